"""SET and RigL trained on the sparse kernel against the masked dense path: real SAC/TD3 runs on Pendulum-v1.

From one seed, each run is made twice, with ``sparse_execution=False`` and ``True``. At every mask update
(at least 5 per run) the listener reads, right after the update and before the optimizer step that
follows it, the new masks, the kept weights, Adam's moments of the kept weights and the gradient the
step will apply, from the model's own tensors (``weight``/``weight.grad``/``optimizer.state[weight]`` on
the masked path; ``values``/``values.grad``/``optimizer.state[values]`` on the kernel). Masks must be
identical; the floats agree to float32 summation noise (the kernel and dense matmuls add in different
orders).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback

from sb3_tar import DSTCallback, sac, td3
from sb3_tar.core.dynamic import RewireResult
from sb3_tar.core.masks import is_compressed
from sb3_tar.kernels import SparseLinear
from sb3_tar.sb3.methods.rewiring import DSTUpdate, attached_rewirer
from sb3_tar.sb3.networks import SparseNetwork

ALGOS = {"sac": (SAC, sac.SparsePolicy), "td3": (TD3, td3.SparsePolicy)}
TOTAL, LEARNING_STARTS, INTERVAL = 250, 50, 20  # 200 gradient steps, updates at 20, 40, ..., 140 (< 0.8 * 200)
ATOL = 2e-4  # as tests/test_sparse_execution.py: weights are O(0.1), 200 Adam steps amplify float32 noise


pytestmark = pytest.mark.usefixtures("single_thread")  # conftest: one torch thread for these tiny networks


class Recorder:
    """Listener of a Rewirer: what each update left in the model's tensors, in the dense layout."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.records: list[dict[str, Any]] = []

    def __call__(self, update: DSTUpdate, net: SparseNetwork, result: RewireResult) -> None:
        optimizer = getattr(self.model.policy, net.role).optimizer
        layers = []
        for i, layer in enumerate(net.linears):
            mask = result.masks[i]
            param = layer.values if is_compressed(layer) else layer.weight

            def kept(t: torch.Tensor, layer: Any = layer, mask: torch.Tensor = mask) -> torch.Tensor:
                return t.detach().clone() if is_compressed(layer) else t.detach()[mask].clone()

            state = optimizer.state[param]
            target = net.target_layers[i].weight if net.target_layers else None
            layers.append(
                dict(
                    compressed=is_compressed(layer),
                    mask=mask.clone(),
                    grown=result.grown[i].clone(),
                    weight=kept(param),
                    target=None if target is None else target.detach()[mask].clone(),
                    target_pruned_zero=None if target is None else bool((target[~mask] == 0).all()),
                    grad=kept(param.grad),
                    exp_avg=kept(state["exp_avg"]),
                    exp_avg_sq=kept(state["exp_avg_sq"]),
                    grown_weights=layer.weight.detach()[result.grown[i]].clone(),
                )
            )
        self.records.append(dict(step=update.step, network=net.name, layers=layers))


def update_steps(interval: int) -> list[int]:
    """The schedule's update steps: multiples of the interval below T_end = 0.8 * 200 gradient steps."""
    return list(range(interval, 160, interval))


def run(
    algo: str, method: str, entry: str, option: bool, interval: int = INTERVAL, prune_criterion: str = "magnitude"
) -> tuple[Any, Recorder]:
    cls, policy = ALGOS[algo]
    common = dict(learning_starts=LEARNING_STARTS, batch_size=64, buffer_size=5_000, seed=0, device="cpu")
    kwargs: dict[str, Any] = dict(net_arch=[64, 64], sparsity=0.9)
    if entry == "policy":
        kwargs.update(dst_method=method, update_interval=interval, dst_total_steps=TOTAL - LEARNING_STARTS)
        kwargs.update(prune_criterion=prune_criterion)
        model = cls(policy, "Pendulum-v1", policy_kwargs=dict(kwargs, sparse_execution=option), **common)
        callback = None
    else:
        model = cls("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[64, 64]), **common)
        callback = DSTCallback(
            method, sparsity=0.9, update_interval=interval, sparse_execution=option, prune_criterion=prune_criterion
        )
    recorder = Recorder(model)
    if callback is None:
        attached_rewirer(model.policy).update_listeners.append(recorder)
        model.learn(TOTAL)
    else:
        model.learn(LEARNING_STARTS, callback=callback)  # prunes; no gradient step yet, so the next learn() plans
        attached_rewirer(model.policy).update_listeners.append(recorder)
        model.learn(TOTAL - LEARNING_STARTS, callback=callback, reset_num_timesteps=False)
    return model, recorder


@pytest.mark.parametrize(
    "algo, method, entry, interval, prune_criterion",  # TD3 with an odd interval: its actor is rewired at the next
    [  # (delayed) step; SNIP's drop ranks |w * g|, with g the dense gradient formed from the capture on the kernel
        ("sac", "set", "callback", 20, "magnitude"),
        ("sac", "rigl", "policy", 20, "magnitude"),
        ("td3", "set", "policy", 20, "magnitude"),
        ("td3", "rigl", "callback", 25, "magnitude"),
        ("sac", "set", "policy", 20, "snip"),
    ],
)
def test_kernel_and_masked_paths_rewire_alike(algo: str, method: str, entry: str, interval: int, prune_criterion: str) -> None:
    masked_model, masked = run(algo, method, entry, False, interval, prune_criterion)
    sparse_model, sparse = run(algo, method, entry, True, interval, prune_criterion)
    steps = update_steps(interval)
    assert not any(isinstance(m, SparseLinear) for m in masked_model.policy.modules())
    assert sparse_model.policy.sparse_layers, "no layer runs on the kernel: the test would compare nothing"
    assert len(masked.records) == len(sparse.records)
    networks = {r["network"] for r in masked.records}
    for name in networks:
        assert [r["step"] for r in masked.records if r["network"] == name] == steps, name
    assert len(steps) >= 5
    on_kernel = 0
    for a, b in zip(masked.records, sparse.records):
        assert (a["step"], a["network"]) == (b["step"], b["network"])
        for i, (la, lb) in enumerate(zip(a["layers"], b["layers"])):
            where = f"{a['network']} layer {i} at step {a['step']}"
            assert torch.equal(la["mask"], lb["mask"]), where
            assert not la["compressed"]
            on_kernel += lb["compressed"] and bool(lb["grown"].any())
            for key in ("weight", "target", "grad", "exp_avg", "exp_avg_sq"):
                if la[key] is not None:
                    torch.testing.assert_close(lb[key], la[key], atol=ATOL, rtol=0, msg=f"{key} of {where}")
            # Grown weights start at exactly 0.0 with zero moments, on both paths; targets hold zeros off the mask.
            for rec in (la, lb):
                assert (rec["grown_weights"] == 0).all(), where
                assert rec["target_pruned_zero"] in (None, True), where
            grown_in_kept = lb["grown"][lb["mask"]]  # grown positions in the order of the kept values
            assert (lb["exp_avg"][grown_in_kept] == 0).all() and (lb["exp_avg_sq"][grown_in_kept] == 0).all(), where
    assert on_kernel >= len(steps), "the kernel's layers were not rewired at every update"
    # After training: the same masks and weights (online and target) in the saved layout.
    state_a, state_b = masked_model.policy.state_dict(), sparse_model.policy.state_dict()
    for key, value in state_a.items():
        if key.endswith("weight_mask"):
            assert torch.equal(state_b[key], value), key
        elif value.is_floating_point() and key != "_extra_state":
            torch.testing.assert_close(state_b[key], value, atol=ATOL, rtol=0, msg=key)


def test_kernel_layers_keep_optimizer_state_for_kept_weights_only() -> None:
    """Between and after updates the kernel's layers hold (nnz,) values and (nnz,) Adam moments, nnz fixed."""
    model, recorder = run("sac", "rigl", "policy", True)
    layers = [m for m in model.policy.modules() if isinstance(m, SparseLinear)]
    assert layers
    for role in ("actor", "critic"):
        optimizer = getattr(model.policy, role).optimizer
        for layer in layers:
            if layer.values in optimizer.state:
                nnz = int(layer.weight_mask.sum())
                assert layer.values.shape == (nnz,)
                assert optimizer.state[layer.values]["exp_avg"].shape == (nnz,)
    assert len(recorder.records) >= 5


def test_a_run_loaded_one_step_before_an_update_records_the_dense_gradient(tmp_path: Any, recwarn: Any) -> None:
    """Saved after gradient step 19 (update at 20), loaded and trained on: the update finds its dense gradient."""
    kwargs = dict(net_arch=[64, 64], sparsity=0.9, dst_method="rigl", update_interval=INTERVAL, dst_total_steps=200)
    common = dict(learning_starts=LEARNING_STARTS, batch_size=64, buffer_size=5_000, seed=0, device="cpu")
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=kwargs, **common)
    model.learn(LEARNING_STARTS + INTERVAL - 1)
    assert attached_rewirer(model.policy).step == INTERVAL - 1
    model.save(tmp_path / "rigl")
    loaded = SAC.load(tmp_path / "rigl", env=gym.make("Pendulum-v1"), device="cpu")
    rewirer = attached_rewirer(loaded.policy)
    assert rewirer.step == INTERVAL - 1 and loaded.policy.sparse_layers
    before = {k: v.clone() for k, v in loaded.policy.state_dict().items() if k.endswith("weight_mask")}
    updates: list[DSTUpdate] = []
    rewirer.update_listeners.append(lambda update, net, result: updates.append(update))
    loaded.learn(3, reset_num_timesteps=False)
    assert [u.step for u in updates] == [INTERVAL] * len(rewirer.enforcer.networks)
    assert not [w for w in recwarn if "no dense gradient" in str(w.message)]
    after = loaded.policy.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(after[k], v)]
    assert any(k.startswith("critic.") and "qf0.2" in k for k in changed), changed  # a layer on the kernel rewired


def test_td3_loaded_between_the_critics_and_the_actors_update_records_the_actors_dense_gradient(tmp_path, recwarn) -> None:
    """TD3 + RigL through ``DSTCallback`` with ``update_interval=25``: the critic is rewired at gradient step 25 and
    the actor at step 26 (its optimizer steps at even steps only, ``policy_delay=2``). Saved with ``model.save`` after
    step 25 and loaded, the run's actor update at step 26 reads the dense gradient of the policy loss."""

    class StopAt(BaseCallback):
        def _on_step(self) -> bool:
            return self.num_timesteps != LEARNING_STARTS + 26  # before the gradient step of env step 76

    common = dict(learning_starts=LEARNING_STARTS, batch_size=64, buffer_size=5_000, seed=0, device="cpu")
    model = TD3("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[64, 64]), **common)

    def dst() -> DSTCallback:
        return DSTCallback("rigl", sparsity=0.9, update_interval=25, sparse_execution=True)

    model.learn(LEARNING_STARTS, callback=dst())
    model.learn(TOTAL - LEARNING_STARTS, callback=[dst(), StopAt()], reset_num_timesteps=False)
    state = model.sb3_tar_dst_state
    assert (state["step"], state["actor_step"], state["total_steps"]) == (25, 0, 200)  # actor update still due
    model.save(tmp_path / "td3_rigl")
    loaded = TD3.load(tmp_path / "td3_rigl", env=gym.make("Pendulum-v1"), device="cpu")
    masks = {k: v for k, v in loaded.policy.state_dict().items() if k.startswith("actor.") and k.endswith("weight_mask")}
    before = {k: v.clone() for k, v in masks.items()}
    callback = dst()
    loaded.learn(3, callback=callback, reset_num_timesteps=False)
    rewirer = callback.rewirer
    assert [(u.network, u.step, u.clock) for u in rewirer.history] == [("actor", 25, 26)]
    assert any(is_compressed(layer) for net in rewirer.enforcer.role_networks("actor") for layer in net.linears)
    assert not [w for w in recwarn if "no dense gradient" in str(w.message)]
    after = loaded.policy.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items())  # the actor's mask changed
