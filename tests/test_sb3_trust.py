"""A sparse model never turns dense silently (issue: trustworthy masks).

Every check here reads the model's own state: the weights of ``policy.actor``, ``policy.critic.q_networks``,
``policy.critic_target`` and ``policy.actor_target`` found by walking the modules, and the masks stored in a
saved zip file, never sb3-tar's own list of layers or its diagnostics (except where the diagnostics are what
is tested).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from sb3_utils import ALGOS, SMALL, small_kwargs
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.save_util import load_from_zip_file
from torch import nn

import sb3_tar
from sb3_tar import DSTCallback, TARCallback, sac, td3
from sb3_tar.sb3.execution.enforcement import attached_enforcer
from sb3_tar.sb3.reporting.model_masks import masks_of, sparsity_summary

# -- reading the model's real state ------------------------------------------------------------------


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def networks_of(model) -> dict[str, tuple[list[nn.Linear], list[nn.Linear]]]:
    """``{name: (online layers, target layers or [])}`` from the policy's own attributes."""
    policy = model.policy
    actor_target = getattr(policy, "actor_target", None)
    nets = {"actor": (_linears(policy.actor), _linears(actor_target) if actor_target is not None else [])}
    for i, (q, q_target) in enumerate(zip(policy.critic.q_networks, policy.critic_target.q_networks)):
        nets[f"critic.qf{i}"] = (_linears(q), _linears(q_target))
    return nets


def file_pruned(path: Path) -> dict[str, torch.Tensor]:
    """Pruned positions of every online layer, read from a saved model: ``weight_mask == 0`` in the file."""
    _, params, _ = load_from_zip_file(path, device="cpu", print_system_info=False)
    state = params["policy"]
    pruned = {}
    for key, value in state.items():
        if key.endswith(".weight_mask") and not key.startswith(("critic_target.", "actor_target.")):
            weight = state[key[: -len("_mask")]]
            assert torch.all(weight[value == 0] == 0), f"{key}: the saved file has nonzero pruned weights"
            pruned[key[: -len(".weight_mask")]] = value == 0
    assert pruned, f"{path} holds no masks"
    return pruned


def nonzero_at(model, pruned: dict[str, torch.Tensor]) -> dict[str, int]:
    """Count nonzero weights at ``pruned`` positions, online and in the target (``critic_target`` / ``actor_target``)."""
    modules = dict(model.policy.named_modules())
    counts = {}
    for name, where in pruned.items():
        counts[name] = int((modules[name].weight.detach() != 0)[where].sum())
        target_name = name.replace("critic.", "critic_target.", 1) if name.startswith("critic.") else "actor_target" + name[5:]
        if target_name in modules:
            counts[target_name] = int((modules[target_name].weight.detach() != 0)[where].sum())
    return counts


def assert_stays_sparse(model, pruned: dict[str, torch.Tensor]) -> None:
    counts = nonzero_at(model, pruned)
    assert sum(counts.values()) == 0, {k: v for k, v in counts.items() if v}
    assert any("target" in k for k in counts), "no target network was checked"


def train_callback_model(algo: str, callback: BaseCallback, steps: int = 150):
    model = ALGOS[algo]("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs(algo))
    model.learn(steps, callback=callback)
    return model


# -- 1. masks survive load -> learn() on every resume path ------------------------------------------


@pytest.mark.parametrize("algo", ["sac", "td3"])
@pytest.mark.parametrize("resume", ["no_callback", "new_tar_callback", "enforce_masks"])
def test_loaded_callback_model_stays_sparse(algo: str, resume: str, tmp_path: Path) -> None:
    model = train_callback_model(algo, TARCallback(sparsity=0.9))
    model.save(tmp_path / "model.zip")
    pruned = file_pruned(tmp_path / "model.zip")
    loaded = ALGOS[algo].load(tmp_path / "model.zip", env=model.get_env())
    assert_stays_sparse(loaded, pruned)  # freshly loaded, before any sb3-tar call
    callback = None
    if resume == "new_tar_callback":
        callback = TARCallback(sparsity=0.5, criterion="random")  # must not prune again
    elif resume == "enforce_masks":
        assert sb3_tar.enforce_masks(loaded)
    loaded.learn(300, callback=callback, reset_num_timesteps=False)
    assert_stays_sparse(loaded, pruned)
    if callback is not None:
        assert not callback.pruned
    loaded.save(tmp_path / "again.zip")
    for name, where in file_pruned(tmp_path / "again.zip").items():
        assert torch.equal(where, pruned[name]), f"mask of {name} changed"


def test_loaded_dst_model_without_callback_keeps_its_mask(tmp_path: Path) -> None:
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs("sac"))
    model.learn(300, callback=DSTCallback("set", sparsity=0.9, update_interval=50))
    model.save(tmp_path / "model.zip")
    pruned = file_pruned(tmp_path / "model.zip")
    loaded = SAC.load(tmp_path / "model.zip", env=model.get_env())
    loaded.learn(300, reset_num_timesteps=False)  # no DSTCallback: the mask stays fixed
    assert_stays_sparse(loaded, pruned)
    for name, where in file_pruned(Path(_save(loaded, tmp_path / "after.zip"))).items():
        assert torch.equal(where, pruned[name])


def _save(model, path: Path) -> Path:
    model.save(path)
    return path


def test_loaded_model_class_is_the_masked_variant_and_still_a_sac_policy(tmp_path: Path) -> None:
    model = train_callback_model("sac", TARCallback(sparsity=0.9))
    assert model.policy_class is sac.MaskedPolicy
    loaded = SAC.load(_save(model, tmp_path / "m.zip"))
    assert isinstance(loaded.policy, sac.MaskedPolicy)
    from stable_baselines3.sac.policies import SACPolicy

    assert isinstance(loaded.policy, SACPolicy)
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


class _CustomPolicy(td3.MaskedPolicy.__mro__[2]):  # a user's own TD3Policy subclass
    """A custom policy class: its masked variant is made on the fly and saved by value."""


def test_custom_policy_class_gets_a_masked_variant(tmp_path: Path) -> None:
    model = TD3(_CustomPolicy, "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs("td3"))
    model.learn(150, callback=TARCallback(sparsity=0.9))
    assert issubclass(model.policy_class, _CustomPolicy) and model.policy_class is not _CustomPolicy
    model.save(tmp_path / "m.zip")
    pruned = file_pruned(tmp_path / "m.zip")
    loaded = TD3.load(tmp_path / "m.zip", env=model.get_env())
    assert isinstance(loaded.policy, _CustomPolicy)
    loaded.learn(200, reset_num_timesteps=False)
    assert_stays_sparse(loaded, pruned)


# -- 2. diagnostics measure, they do not repair ------------------------------------------------------


def test_diagnostics_report_a_planted_nonzero_and_leave_it(tmp_path: Path) -> None:
    model = train_callback_model("sac", TARCallback(sparsity=0.9))
    loaded = SAC.load(_save(model, tmp_path / "m.zip"))
    pruned = file_pruned(tmp_path / "m.zip")
    modules = dict(loaded.policy.named_modules())
    where = pruned["critic.qf0.0"].nonzero()[0].tolist()
    with torch.no_grad():
        modules["critic.qf0.0"].weight[tuple(where)] = 0.5
        modules["critic_target.qf0.0"].weight[tuple(where)] = 0.25
    summary = sparsity_summary(loaded)
    masks = masks_of(loaded)
    assert summary["critic.qf0"]["pruned_nonzero"] == 2
    assert summary["critic.qf1"]["pruned_nonzero"] == 0
    assert masks is not None and not bool(masks["critic.qf0"][0][tuple(where)])
    assert modules["critic.qf0.0"].weight[tuple(where)].item() == 0.5  # reported, not repaired
    assert modules["critic_target.qf0.0"].weight[tuple(where)].item() == 0.25


def test_diagnostics_attach_nothing() -> None:
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparsity=0.9), **small_kwargs("sac"))
    attached_enforcer(model.policy).detach(model.policy)
    summary = sparsity_summary(model)
    masks_of(model)
    assert attached_enforcer(model.policy) is None
    assert summary["actor"]["enforced"] == 0.0
    assert sb3_tar.enforce_masks(model) and attached_enforcer(model.policy) is not None
    assert sparsity_summary(model)["actor"]["enforced"] == 1.0


# -- 3. seeds draw independent masks -----------------------------------------------------------------


@pytest.mark.parametrize("criterion", ["random", "erk"])
def test_neighbouring_seeds_share_no_q_network_mask(criterion: str) -> None:
    """Seed s's critic.qf1 against seed s+1's critic.qf0 (equal under the old ``seed + i`` offsets)."""
    masks = {}
    for seed in (0, 1, 2):
        kwargs = dict(SMALL, sparsity=0.9, criterion=criterion, seed=seed)
        model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=kwargs, **small_kwargs("sac"))
        nets = networks_of(model)
        masks[seed] = {name: [layer.weight_mask.clone() for layer in online] for name, (online, _) in nets.items()}
    for seed in (0, 1):
        for a, b in (("critic.qf1", "critic.qf0"), ("critic.qf0", "actor")):
            same = [torch.equal(x, y) for x, y in zip(masks[seed][a], masks[seed + 1][b]) if x.shape == y.shape]
            assert not all(same), f"seed {seed} {a} equals seed {seed + 1} {b}"


def test_static_and_tar_of_one_seed_share_their_static_mask_through_the_callback() -> None:
    """Extra mode: the TAR mask is the Original mask plus revived positions (the paired design)."""
    masks = {}
    for revival in ("none", "tar"):
        cb = TARCallback(sparsity=0.9, criterion="erk", revival=revival, budget_mode="extra", recovery_ratio=0.02, seed=4)
        model = train_callback_model("sac", cb, steps=60)
        nets = networks_of(model)
        masks[revival] = {name: [layer.weight_mask.bool() for layer in online] for name, (online, _) in nets.items()}
    for name in masks["none"]:
        for original, tar in zip(masks["none"][name], masks["tar"][name]):
            assert not bool((original & ~tar).any())
        extra = sum(int(t.sum()) - int(o.sum()) for o, t in zip(masks["none"][name], masks["tar"][name]))
        total = sum(o.numel() for o in masks["none"][name])
        assert extra == round(0.02 * total)


# -- 4. optimizers that are not elementwise get masked gradients --------------------------------------


def test_adafactor_step_equals_a_step_on_masked_gradients() -> None:
    """One enforcer-hooked Adafactor step against a hand-made reference: zero the pruned gradients, then step."""
    from sb3_tar.sb3.execution.enforcement import MaskEnforcer
    from sb3_tar.sb3.execution.mask_store import BufferStore
    from sb3_tar.sb3.networks import SparseNetwork

    torch.manual_seed(0)
    layer = nn.Linear(12, 8)
    mask = torch.rand(8, 12) < 0.3
    with torch.no_grad():
        layer.weight.mul_(mask)
    reference = copy.deepcopy(layer)
    x = torch.randn(32, 12)

    holder = nn.Module()
    holder.actor, holder.critic = nn.Module(), nn.Module()
    holder.actor.optimizer = torch.optim.Adafactor(layer.parameters(), lr=0.01)
    holder.critic.optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    net = SparseNetwork("actor", "actor", layer, [("0", layer)])
    enforcer = MaskEnforcer([net], BufferStore.register([net], {"actor": [mask]}))
    enforcer.attach(holder)
    assert enforcer.gradient_masking == {"actor": True, "critic": False}

    ref_opt = torch.optim.Adafactor(reference.parameters(), lr=0.01)
    for _ in range(3):
        for module, opt in ((layer, holder.actor.optimizer), (reference, ref_opt)):
            opt.zero_grad()
            (module(x) ** 2).sum().backward()
            if module is reference:
                reference.weight.grad.mul_(mask)
            opt.step()
            if module is reference:
                with torch.no_grad():
                    reference.weight.mul_(mask)
    assert torch.equal(layer.weight, reference.weight)


def test_adafactor_sac_keeps_the_kept_weights_of_the_masked_gradient_run() -> None:
    """250 SAC steps with Adafactor: the default equals mask_gradients=True (unmasked gradients would differ)."""

    def run(mask_gradients: bool) -> dict[str, torch.Tensor]:
        kwargs = dict(SMALL, sparsity=0.9, optimizer_class=torch.optim.Adafactor, mask_gradients=mask_gradients)
        model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=kwargs, **small_kwargs("sac"))
        assert model.policy.mask_enforcer.gradient_masking == {"actor": True, "critic": True}
        model.learn(250)
        return {k: v.clone() for k, v in model.policy.state_dict().items() if k.endswith(".weight")}

    default, masked = run(False), run(True)
    for key in default:
        assert torch.equal(default[key], masked[key]), key


def test_adam_is_not_gradient_masked_by_default() -> None:
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparsity=0.9), **small_kwargs("sac"))
    assert model.policy.mask_enforcer.gradient_masking == {"actor": False, "critic": False}


# -- 5. revived_init="zero" on a model that trained dense first -------------------------------------


class _AfterPruning(BaseCallback):
    """Copies every online and target weight right after the callbacks before it ran on_training_start."""

    def _on_training_start(self) -> None:
        self.state = {k: v.clone() for k, v in self.model.policy.state_dict().items()}

    def _on_step(self) -> bool:
        return True


def test_zero_revived_weights_start_at_zero_in_the_target_too() -> None:
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs("sac"))
    model.learn(300)  # dense training: the target has drifted from the online network
    spy = _AfterPruning()
    tar = TARCallback(sparsity=0.8, revived_init="zero", budget_mode="extra", recovery_ratio=0.05)
    model.learn(10, callback=CallbackList([tar, spy]), reset_num_timesteps=False)
    state = spy.state
    for i in range(2):
        revived_total = 0
        for layer in ("0", "2", "4"):
            online = state[f"critic.qf{i}.{layer}.weight"]
            target = state[f"critic_target.qf{i}.{layer}.weight"]
            mask = state[f"critic.qf{i}.{layer}.weight_mask"].bool()
            revived = mask & (online == 0)  # dense-trained kept weights are never exactly zero
            revived_total += int(revived.sum())
            assert torch.all(target[revived] == 0)
            assert torch.all(target[~mask] == 0)
            assert torch.all(target[mask & (online != 0)] != 0)  # kept weights keep the target's own values
        assert revived_total == tar.reports[f"critic.qf{i}"].budget > 0


# -- 6. a loaded SparsePolicy reports the masks it holds ---------------------------------------------


def test_loaded_sparse_policy_reports_describe_the_loaded_masks(tmp_path: Path) -> None:
    kwargs = dict(SMALL, sparsity=0.9, criterion="random", revival="tar", recovery_ratio=0.02)
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=kwargs, **small_kwargs("sac", seed=None))
    model.save(tmp_path / "m.zip")
    torch.manual_seed(123)  # the rebuild inside load() draws a different mask seed
    loaded = SAC.load(tmp_path / "m.zip")
    for name, (online, _) in networks_of(loaded).items():
        report = loaded.policy.sparsity_reports[name]
        assert report.to_dict() == model.policy.sparsity_reports[name].to_dict()
        for layer_report, layer in zip(report.layers, online):
            kept = int(layer.weight_mask.sum())
            assert kept == layer_report.kept_before + layer_report.revived
    assert loaded.policy.sparsity_seed_used == model.policy.sparsity_seed_used


# -- 7. targets, read from the model's own attributes -----------------------------------------------


@pytest.mark.parametrize("algo", ["sac", "td3"])
@pytest.mark.parametrize("path", ["sparse_policy", "callback"])
def test_targets_carry_the_online_zeros(algo: str, path: str) -> None:
    if path == "sparse_policy":
        policy = {"sac": sac.SparsePolicy, "td3": td3.SparsePolicy}[algo]
        model = ALGOS[algo](policy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparsity=0.9), **small_kwargs(algo))
        model.learn(200)
    else:
        model = train_callback_model(algo, TARCallback(sparsity=0.9), steps=200)
    nets = networks_of(model)
    assert len(nets) == 3 and all(targets for name, (_, targets) in nets.items() if name != "actor" or algo == "td3")
    for name, (online, targets) in nets.items():
        if name == "actor" and algo == "sac":  # SAC's actor has no target network
            continue
        for layer, target in zip(online, targets, strict=True):
            assert torch.equal(layer.weight == 0, target.weight == 0), name
    for name, (online, _) in nets.items():  # exact count: round(0.1 N) nonzero weights per network
        total = sum(layer.weight.numel() for layer in online)
        assert sum(int((layer.weight != 0).sum()) for layer in online) == round(0.1 * total), name
