"""A method per network role in real SAC/TD3 runs on Pendulum-v1: density and kind of mask change per network.

- a fixed role (static, TAR, Uniform Revival) keeps its mask at every gradient step of the run;
- a SET/RigL role's mask changes right after each update step of the schedule, and only then;
- a dense role has no zero anywhere (online and target), and all-ones masks.

The masks are read by a listener in the critic optimizer's pre-step hook, ahead of the rewirer, at every step.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback

from sb3_tar.callbacks import DSTCallback, TARCallback
from sb3_tar.sac import SparsePolicy as SACSparsePolicy
from sb3_tar.sb3.execution.enforcement import attached_enforcer
from sb3_tar.sb3.methods.rewiring import STATE_ATTRIBUTE, AttributeState, attached_rewirer
from sb3_tar.sb3.networks import sparse_networks
from sb3_tar.sb3.reporting.model_masks import masks_of
from sb3_tar.td3 import SparsePolicy as TD3SparsePolicy

ENV = "Pendulum-v1"
TOTAL, LEARNING_STARTS = 250, 50
PLANNED = TOTAL - LEARNING_STARTS  # one env, train_freq=1, gradient_steps=1
INTERVAL = 40
UPDATES = [t for t in range(INTERVAL, PLANNED + 1, INTERVAL) if t < 0.8 * PLANNED]  # 40, 80, 120
NET = dict(net_arch=[32, 32])


pytestmark = pytest.mark.usefixtures("single_thread")  # conftest: one torch thread for these tiny networks


class MaskTrace(BaseCallback):
    """Copies every network's masks at each critic step, in the pre-step hook before anything rewires them."""

    def __init__(self) -> None:
        super().__init__()
        self.trace: list[dict[str, list[torch.Tensor]]] = []

    def _on_training_start(self) -> None:
        self.initial = masks_of(self.model)
        attached_enforcer(self.model.policy).pre_step_listeners.insert(0, self.record)

    def record(self, role: str, optimizer: torch.optim.Optimizer) -> None:
        if role == "critic":
            self.trace.append({name: [m.clone() for m in masks] for name, masks in masks_of(self.model).items()})

    def changes(self, name: str) -> list[int]:
        """The gradient steps (1-based) whose pre-step hook first saw a new mask of ``name``."""
        out = []
        for step in range(1, len(self.trace)):
            before, after = self.trace[step - 1][name], self.trace[step][name]
            if not all(torch.equal(a, b) for a, b in zip(before, after)):
                out.append(step + 1)
        return out

    def _on_step(self) -> bool:
        return True


def total_weights(net: Any) -> int:
    return sum(layer.weight.numel() for layer in net.linears)


def check_roles(model: Any, trace: MaskTrace, methods: dict[str, str], sparsity: float) -> None:
    """Density, and the kind of mask change, of every network against its role's method."""
    assert len(trace.trace) == PLANNED
    final = masks_of(model)
    for net in sparse_networks(model.policy):
        method = methods[net.role]
        kept = sum(int(m.sum()) for m in final[net.name])
        if method == "dense":
            assert kept == total_weights(net)
            assert trace.changes(net.name) == []
            for layer in [*net.linears, *net.target_layers]:  # no zero anywhere, online and target
                assert (layer.weight != 0).all(), net.name
            continue
        assert kept == round((1 - sparsity) * total_weights(net)), net.name  # exact count of the role's density
        assert [sum(int(m.sum()) for m in masks[net.name]) for masks in trace.trace] == [kept] * PLANNED
        for i, layer in enumerate(net.linears):  # pruned weights are exactly zero, online and target
            assert (layer.weight[~final[net.name][i].bool()] == 0).all()
            if net.target_layers:
                assert (net.target_layers[i].weight[~final[net.name][i].bool()] == 0).all()
        if method in ("set", "rigl"):  # changed right after each update step (seen at the next step's hook), only then
            assert trace.changes(net.name) == [t + 1 for t in UPDATES], net.name
        else:  # fixed: the mask of the first step is the mask of every step
            assert trace.changes(net.name) == [], net.name
            assert all(torch.equal(a, b) for a, b in zip(trace.initial[net.name], final[net.name]))


def make(algo: type, policy: Any = "MlpPolicy", **policy_kwargs: Any) -> Any:
    return algo(policy, ENV, learning_starts=LEARNING_STARTS, batch_size=64, seed=0, policy_kwargs=dict(NET, **policy_kwargs))


def test_rigl_critic_with_a_static_tar_actor_sac() -> None:
    model = make(SAC)
    callback = DSTCallback(method="rigl", sparsity=0.9, update_interval=INTERVAL, role_methods={"actor": "tar"}, seed=2)
    trace = MaskTrace()
    model.learn(TOTAL, callback=[callback, trace])
    check_roles(model, trace, {"actor": "tar", "critic": "rigl"}, 0.9)
    assert {u.network for u in callback.rewirer.history} == {"critic.qf0", "critic.qf1"}
    actor, critic = callback.reports["actor"], callback.reports["critic.qf0"]
    assert (actor.criterion, actor.revival, critic.criterion, critic.revival) == ("magnitude", "tar", "erk", "none")
    assert actor.budget > 0  # TAR revived weights into the actor
    assert getattr(model, STATE_ATTRIBUTE)["role_methods"] == {"actor": "tar", "critic": "rigl"}


def test_dense_actor_with_a_tar_critic_td3() -> None:
    model = make(TD3)
    trace = MaskTrace()
    callback = TARCallback(sparsity=0.9, role_methods={"actor": "dense"}, sparse_execution=False, seed=0)
    model.learn(TOTAL, callback=[callback, trace])
    check_roles(model, trace, {"actor": "dense", "critic": "tar"}, 0.9)
    assert model.sb3_tar_config["role_methods"] == {"actor": "dense", "critic": "tar"}
    assert model.sb3_tar_config["actor"]["sparsity"] == 0.0


def test_sparse_policy_dense_actor_set_critic_td3_survives_save_and_load(tmp_path: Any) -> None:
    kwargs = dict(role_methods={"actor": "dense", "critic": "set"}, update_interval=INTERVAL, dst_total_steps=PLANNED)
    model = make(TD3, TD3SparsePolicy, sparsity=0.9, **kwargs)
    assert model.policy.dst_config.method == "set" and model.policy.dst_config.role_method("actor") is None
    trace = MaskTrace()
    model.learn(TOTAL, callback=trace)
    check_roles(model, trace, {"actor": "dense", "critic": "set"}, 0.9)
    assert {u.network for u in model.policy.dst_rewirer.history} == {"critic.qf0", "critic.qf1"}
    model.save(tmp_path / "model")
    loaded = TD3.load(tmp_path / "model", env=gym.make(ENV))
    assert loaded.policy.role_methods == {"actor": "dense", "critic": "set"}
    assert loaded.policy.dst_rewirer.config.role_methods == {"actor": "dense", "critic": "set"}
    assert {k: [m.sum() for m in v] for k, v in masks_of(loaded).items()} == {
        k: [m.sum() for m in v] for k, v in masks_of(model).items()
    }


def test_sparse_policy_static_critic_rigl_actor_sac() -> None:
    model = make(SAC, SACSparsePolicy, sparsity=0.8, role_methods={"actor": "rigl"}, revival="none", update_interval=INTERVAL)
    trace = MaskTrace()
    model.learn(TOTAL, callback=[DSTCallback(), trace])  # the callback fills in the planned steps
    check_roles(model, trace, {"actor": "rigl", "critic": "static"}, 0.8)
    assert attached_rewirer(model.policy).config.method == "rigl"
    reports = model.policy.sparsity_reports
    assert (reports["actor"].criterion, reports["critic.qf0"].criterion) == ("erk", "magnitude")


def test_a_loaded_run_keeps_rewiring_only_its_dst_roles(tmp_path: Any) -> None:
    model = make(SAC)
    callback = DSTCallback(method="set", update_interval=INTERVAL, role_methods={"actor": "static"}, seed=4)
    checkpoint = CheckpointCallback(save_freq=150, save_path=str(tmp_path), name_prefix="run")
    model.learn(TOTAL, callback=[callback, checkpoint])  # saved at timestep 150: 99 gradient steps, updates at 40, 80
    loaded = SAC.load(tmp_path / "run_150_steps.zip", env=gym.make(ENV))
    assert getattr(loaded, STATE_ATTRIBUTE)["role_methods"] == {"actor": "static", "critic": "set"}
    actor_before = masks_of(loaded)["actor"]
    with pytest.warns(UserWarning, match="stored settings"):  # this callback would rewire both roles: the stored run wins
        loaded.learn(TOTAL - 150, callback=DSTCallback(method="set", update_interval=INTERVAL), reset_num_timesteps=False)
    rewirer = attached_rewirer(loaded.policy)
    assert sorted({(u.network, u.step) for u in rewirer.history}) == [("critic.qf0", 120), ("critic.qf1", 120)]
    assert all(torch.equal(a, b) for a, b in zip(actor_before, masks_of(loaded)["actor"]))


def test_a_run_saved_before_the_new_settings_resumes_with_their_defaults() -> None:
    model = make(SAC)
    model.learn(LEARNING_STARTS + 5, callback=DSTCallback(method="rigl", update_interval=1000))
    state = getattr(model, STATE_ATTRIBUTE)
    del state["prune_criterion"], state["role_methods"]  # as written by the previous version
    config = AttributeState(model).config()
    assert (config.method, config.prune_criterion, config.role_methods) == ("rigl", "magnitude", None)
    assert config.role_method("actor") == config.role_method("critic") == "rigl"


@pytest.mark.parametrize(
    "make_it, pattern",
    [
        (lambda: TARCallback(role_methods={"critic": "rigl"}), r"role_methods\['critic'\]='rigl' is not allowed"),
        (lambda: TARCallback(role_methods={"policy": "tar"}), "Unknown role 'policy'"),
        (lambda: TARCallback(role_methods=["actor", "dense"]), "role_methods must be a dict"),
        (lambda: TARCallback(actor_sparsity=0.5, role_methods={"actor": "dense"}), "contradicts role_methods"),
        (lambda: DSTCallback(role_methods={"actor": "tar", "critic": "static"}), "rewires no role"),
        (lambda: DSTCallback(role_methods={"actor": "sparse"}), r"role_methods\['actor'\]='sparse'"),
        (lambda: DSTCallback(prune_criterion="grasp"), "prune_criterion"),
        (lambda: make(SAC, SACSparsePolicy, role_methods={"actor": "set", "critic": "rigl"}), "mixes SET and RigL"),
        (lambda: make(SAC, SACSparsePolicy, role_methods={"actor": "dense"}, update_interval=5), "only apply to dynamic"),
        (lambda: make(SAC, SACSparsePolicy, prune_criterion="snip"), "only apply to dynamic"),
    ],
)
def test_role_methods_refuse_bad_values(make_it: Any, pattern: str) -> None:
    with pytest.raises((ValueError, TypeError), match=pattern):
        make_it()


@pytest.mark.parametrize("policy", ["callback", "sparse_policy"])
def test_a_uniform_actor_is_revived_by_uniform_revival_and_the_critic_by_tar(policy: str) -> None:
    """``role_methods={"actor": "uniform"}`` with TAR for the rest: from the real model, the actor's mask is exactly the
    mask a Uniform Revival run draws (same seed and weights), no connectivity floor, and not TAR's; each Q-network's
    mask is exactly a TAR run's. Masks are drawn before any gradient step (learning_starts > steps)."""
    options = dict(sparsity=0.9, recovery_ratio=0.05, criterion="magnitude", seed=3)

    def masks(**kwargs: Any) -> tuple[dict[str, list[torch.Tensor]], Any]:
        model_kwargs = dict(learning_starts=1000, seed=0, device="cpu")
        if policy == "callback":
            model = SAC("MlpPolicy", ENV, policy_kwargs=dict(NET), **model_kwargs)
            model.learn(10, callback=TARCallback(**options, sparse_execution=False, **kwargs))
        else:
            policy_kwargs = dict(NET, **options, sparse_execution=False, **kwargs)  # the mask seed: the policy's seed
            model = SAC(SACSparsePolicy, ENV, policy_kwargs=policy_kwargs, **model_kwargs)
        return masks_of(model), model

    mixed, model = masks(role_methods={"actor": "uniform"})
    uniform, _ = masks(revival="uniform")
    tar, _ = masks(revival="tar")
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # noqa: E731
    assert same(mixed["actor"], uniform["actor"]) and not same(mixed["actor"], tar["actor"])
    for name in ("critic.qf0", "critic.qf1"):
        assert same(mixed[name], tar[name]) and not same(mixed[name], uniform[name])
    from sb3_tar.sb3.reporting.reports import pruning_reports

    reports = pruning_reports(model)
    assert reports["actor"].revival == "uniform" and all(layer.floor == 0 for layer in reports["actor"].layers)
    assert reports["critic.qf0"].revival == "tar" and any(layer.floor > 0 for layer in reports["critic.qf0"].layers)
    budget = reports["actor"].budget
    assert budget > 0 and sum(layer.revived for layer in reports["actor"].layers) == budget
