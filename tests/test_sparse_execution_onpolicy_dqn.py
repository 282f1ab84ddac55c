"""Sparse execution (the C++ kernel) for SB3's PPO, A2C and DQN (issue 30): equivalence with the masked path, the
clipped gradient norm, DQN's hard target copies, optimizer state, DST/GMP mask changes, save/load in a fresh process.

Real training on real envs (CartPole-v1, Pendulum-v1 for continuous PPO), a few hundred steps, net_arch [64, 64]: at
90% sparsity every hidden and head layer of PPO/A2C and DQN's two last layers are below the density threshold. Each
run is made twice from one seed, with ``sparse_execution=False`` (masked dense path) and ``True`` (kernel); weights
agree to the tolerance of SAC's equivalence tests (``tests/test_sparse_execution.py``: float32 summation order differs
between the kernel and dense matmuls), masks exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import QRDQN, TRPO
from sb3_utils import assert_mask_invariants, clone_masks, expected_kept
from stable_baselines3 import A2C, DQN, PPO

from sb3_tar import a2c, dqn, ppo
from sb3_tar.baselines import GMPCallback
from sb3_tar.callbacks import DSTCallback, TARCallback
from sb3_tar.core.masks import is_compressed
from sb3_tar.kernels import SparseLinear
from sb3_tar.sb3.networks import sparse_networks

SPARSITY = 0.9
ATOL = 2e-4  # as tests/test_sparse_execution.py
REPO = Path(__file__).resolve().parents[1]
STEPS = 256

#: (algorithm, SparsePolicy, env, settings): PPO with several epochs over small minibatches, DQN with frequent hard
#: target copies (every 10 environment steps, 2.5 gradient steps apart).
CASES = {
    "ppo-cartpole": (PPO, ppo.SparsePolicy, "CartPole-v1", dict(n_steps=64, batch_size=16, n_epochs=4)),
    "ppo-pendulum": (PPO, ppo.SparsePolicy, "Pendulum-v1", dict(n_steps=64, batch_size=16, n_epochs=4)),
    "a2c-cartpole": (A2C, a2c.SparsePolicy, "CartPole-v1", dict(n_steps=8)),
    "a2c-pendulum": (A2C, a2c.SparsePolicy, "Pendulum-v1", dict(n_steps=8)),
    "dqn-cartpole": (
        DQN,
        dqn.SparsePolicy,
        "CartPole-v1",
        dict(learning_starts=50, train_freq=4, gradient_steps=1, target_update_interval=10, batch_size=32, buffer_size=1_000),
    ),
}
#: The layers below the density threshold at 90% sparsity (CartPole's 4 inputs keep DQN's first layer dense).
KERNEL_LAYERS = {
    "ppo": [
        "actor/mlp_extractor.policy_net.0",
        "actor/mlp_extractor.policy_net.2",
        "actor/action_net",
        "critic/mlp_extractor.value_net.0",
        "critic/mlp_extractor.value_net.2",
        "critic/value_net",
    ],
    "dqn": ["q_net/q_net.2", "q_net/q_net.4"],
}

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest: one torch thread for these tiny networks


def make(case: str, how: str, option: bool | str, **overrides):
    """The case's model, sparse through its SparsePolicy (``how="policy"``) or a plain MlpPolicy (``"callback"``)."""
    algo, policy, env, kwargs = CASES[case]
    kwargs = dict(kwargs, **overrides)
    if how == "policy":
        policy_kwargs = dict(net_arch=[64, 64], sparsity=SPARSITY, seed=0, sparse_execution=option)
        return algo(policy, env, seed=0, device="cpu", policy_kwargs=policy_kwargs, **kwargs)
    return algo("MlpPolicy", env, seed=0, device="cpu", policy_kwargs=dict(net_arch=[64, 64]), **kwargs)


def kernel_layers(model) -> list[SparseLinear]:
    return [m for m in model.policy.modules() if isinstance(m, SparseLinear)]


def policy_state(model) -> dict[str, torch.Tensor]:
    """The policy's state dict (same keys, dense layout on both paths), without the option's own flag."""
    skip = ("_extra_state", "sb3_tar_sparse_execution")
    return {k: v.clone() for k, v in model.policy.state_dict().items() if k not in skip}


def optimizer_state(model) -> dict[int, dict[str, torch.Tensor]]:
    """``policy.optimizer.state_dict()["state"]``: per-weight state in the dense layout on both paths."""
    return {i: {k: v.clone() for k, v in s.items()} for i, s in model.policy.optimizer.state_dict()["state"].items()}


def assert_same_training(masked: dict, sparse: dict) -> None:
    """Masks identical, floats within ATOL, pruned weights exactly zero on the kernel path (online and target)."""
    assert masked.keys() == sparse.keys()
    for key in masked:
        if key.endswith("weight_mask"):
            assert torch.equal(masked[key], sparse[key]), key
            weight = sparse[key[: -len("_mask")]]
            assert int((weight != 0)[masked[key] == 0].sum()) == 0, key
        elif masked[key].is_floating_point():
            torch.testing.assert_close(sparse[key], masked[key], atol=ATOL, rtol=0, msg=key)
        else:
            assert torch.equal(masked[key], sparse[key]), key


@pytest.mark.parametrize(
    "case, how",
    [
        ("ppo-cartpole", "policy"),
        ("ppo-pendulum", "callback"),
        ("a2c-cartpole", "callback"),
        ("dqn-cartpole", "policy"),
        ("dqn-cartpole", "callback"),
    ],
)
def test_kernel_and_masked_paths_train_the_same_weights_and_optimizer_state(case: str, how: str) -> None:
    """PPO's epochs, A2C's RMSprop steps, DQN's hard target copies: same masks, weights and optimizer state (Adam's
    moments, RMSprop's square_avg, read in the dense layout) on both paths; pruned weights exactly zero."""
    states, optimizers = {}, {}
    for option in (False, True):
        model = make(case, how, option)
        callback = TARCallback(sparsity=SPARSITY, seed=0, sparse_execution=option) if how == "callback" else None
        model.learn(STEPS, callback=callback)
        family = "dqn" if case.startswith("dqn") else "ppo"  # A2C's policy is PPO's
        assert sorted(model.policy.sparse_layers) == (sorted(KERNEL_LAYERS[family]) if option else [])
        assert bool(kernel_layers(model)) == option
        assert_mask_invariants(model, SPARSITY)
        states[option], optimizers[option] = policy_state(model), optimizer_state(model)
        if option:  # the optimizer holds state for kept weights only
            optimizer = model.policy.optimizer
            moments = "square_avg" if case.startswith("a2c") else "exp_avg"
            trained = [layer for layer in kernel_layers(model) if layer.values in optimizer.state]
            assert len(trained) == len(KERNEL_LAYERS[family])  # online layers only
            for layer in trained:
                assert optimizer.state[layer.values][moments].shape == (int(layer.weight_mask.sum()),)
    assert_same_training(states[False], states[True])
    if case.startswith("dqn"):
        assert any(k.startswith("q_net_target.") and k.endswith("weight_mask") for k in states[True])
    assert optimizers[False].keys() == optimizers[True].keys()
    for index, entry in optimizers[False].items():
        for key, value in entry.items():
            torch.testing.assert_close(optimizers[True][index][key], value, atol=ATOL, rtol=0, msg=f"{index}/{key}")


def record_clips(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Record every ``clip_grad_norm_`` call of SB3: the gradients before and after, the norm it returned."""
    calls: list[dict] = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        before = {id(p): (p, p.grad.detach().clone()) for p in parameters if p.grad is not None}
        total = real_clip(parameters, max_norm, *args, **kwargs)
        after = {id(p): p.grad.detach().clone() for p in parameters if p.grad is not None}
        calls.append(dict(before=before, after=after, total=float(total), max_norm=max_norm))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    return calls


@pytest.mark.parametrize("case", ["ppo-pendulum", "a2c-cartpole", "dqn-cartpole"])
def test_clipped_gradient_norm_on_the_kernel_is_the_sparse_networks(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The norm SB3 clips by, with layers on the kernel, equals a hand computation over kept weights (kernel layers:
    every entry of ``values.grad``, one per kept weight; masked layers: their kept positions, zero elsewhere), every
    gradient is scaled by ``max_norm / (norm + 1e-6)``, and the norms are those of the masked path's run."""
    max_grad_norm = 1e-3  # small enough that every step is clipped
    totals = {}
    for option in (False, True):
        calls = record_clips(monkeypatch)
        model = make(case, "policy", option, max_grad_norm=max_grad_norm)
        model.learn(128 if not case.startswith("dqn") else 120)
        totals[option] = [call["total"] for call in calls]
        monkeypatch.undo()
    assert calls, "SB3 did not clip any gradient"
    masks = clone_masks(model)
    kernel_values = {id(layer.values): layer for layer in kernel_layers(model)}
    masked = {
        id(layer.weight): mask
        for net in sparse_networks(model.policy)
        for layer, mask in zip(net.linears, masks[net.name])
        if not is_compressed(layer)
    }
    checked_kernel = 0
    for call in calls:
        squared = 0.0
        for pid, (_, grad) in call["before"].items():
            if pid in kernel_values:  # the kept weights only, by construction
                assert grad.shape == (int(kernel_values[pid].weight_mask.sum()),)
                squared += float((grad.double() ** 2).sum())
                checked_kernel += 1
            elif pid in masked:
                assert torch.all(grad[~masked[pid]] == 0.0), "a pruned weight has a gradient before clipping"
                squared += float((grad[masked[pid]].double() ** 2).sum())
            else:
                squared += float((grad.double() ** 2).sum())  # biases, log_std: dense
        hand_norm = squared**0.5
        assert call["total"] == pytest.approx(hand_norm, rel=1e-5)
        coefficient = min(1.0, call["max_norm"] / (hand_norm + 1e-6))
        assert coefficient < 1.0
        for pid, (_, grad) in call["before"].items():
            torch.testing.assert_close(call["after"][pid], grad * coefficient, rtol=1e-4, atol=1e-12)
    assert checked_kernel > 0
    # the same norms as the masked path's (which the existing masked-path test checks by hand too), step by step
    assert len(totals[True]) == len(totals[False]) > 0
    np.testing.assert_allclose(totals[True][:8], totals[False][:8], rtol=1e-4)
    assert_mask_invariants(model, SPARSITY)


def test_dqn_target_runs_on_the_kernel_with_the_online_mask_after_every_hard_copy() -> None:
    model = make("dqn-cartpole", "policy", True)
    interval = model.target_update_interval
    copies: list[dict] = []
    real_on_step = model._on_step

    def on_step_then_check() -> None:
        real_on_step()
        if model._n_calls % interval == 0:  # DQN copied q_net into q_net_target in this call
            (net,) = sparse_networks(model.policy)
            pairs = [(o, t) for o, t in zip(net.linears, net.target_layers) if is_compressed(o)]
            copies.append(
                dict(
                    kernel=[isinstance(t, SparseLinear) for _, t in pairs],
                    same_mask=[torch.equal(t.weight_mask, o.weight_mask) for o, t in pairs],
                    equal_values=[torch.equal(t.values, o.values) for o, t in pairs],
                    own_values=[t.values is not o.values for o, t in pairs],
                    dense_equal=all(torch.equal(t.weight, o.weight) for o, t in zip(net.linears, net.target_layers)),
                    pruned_zero=all(
                        torch.all(t.weight[~m] == 0.0) for t, m in zip(net.target_layers, clone_masks(model)["q_net"])
                    ),
                )
            )
            with torch.no_grad():  # the target computes on the kernel what the online network computes
                copies[-1]["outputs"] = torch.equal(model.policy.q_net_target(obs), model.policy.q_net(obs))

    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(8)]))
    model._on_step = on_step_then_check
    model.learn(STEPS)
    assert len(copies) == STEPS // interval
    for copy in copies:
        assert len(copy["kernel"]) == 2 and all(all(v) if isinstance(v, list) else v for v in copy.values()), copy
    assert_mask_invariants(model, SPARSITY)


_LOAD_SCRIPT = """
import json, sys, numpy as np, torch
torch.set_num_threads(1)
from stable_baselines3 import A2C, DQN, PPO
from sb3_tar.kernels import SparseLinear
from sb3_tar.sb3.reporting.model_masks import masks_of, sparsity_summary
from sb3_tar.sb3.networks import sparse_networks
algo = {"PPO": PPO, "A2C": A2C, "DQN": DQN}[sys.argv[1]]
model = algo.load(sys.argv[2], device="cpu")
saved = torch.load(sys.argv[3])

def state():
    masks = masks_of(model)
    same = all(torch.equal(a, b) for n in masks for a, b in zip(masks[n], saved["masks"][n]))
    pruned = sum(
        int((l.weight[~m] != 0).sum())
        for net in sparse_networks(model.policy)
        for layers in (net.linears, net.target_layers)
        for l, m in zip(layers, masks[net.name])
    )
    opt = model.policy.optimizer
    aligned = all(
        v.shape == l.values.shape
        for l in model.policy.modules() if isinstance(l, SparseLinear) and l.values in opt.state
        for v in opt.state[l.values].values() if isinstance(v, torch.Tensor) and v.dim() == 1 and v.numel() > 1
    )
    kernel = sum(isinstance(m, SparseLinear) for m in model.policy.modules())
    return dict(same=same, pruned=pruned, aligned=aligned, kernel=kernel, layers=sorted(model.policy.sparse_layers))

loaded = state()
actions = model.predict(saved["obs"].numpy(), deterministic=True)[0]
model.set_env(__import__("gymnasium").make(sys.argv[4]))
model.learn(128)
trained = state()
out = dict(cls=type(model.policy).__name__, loaded=loaded, trained=trained, summary=sparsity_summary(model))
print(json.dumps(out | dict(actions=np.asarray(actions).tolist())))
"""


@pytest.mark.parametrize("case, how", [("ppo-cartpole", "callback"), ("a2c-cartpole", "policy"), ("dqn-cartpole", "policy")])
def test_save_load_in_a_fresh_process_runs_on_the_kernel(case: str, how: str, tmp_path: Path) -> None:
    model = make(case, how, True)
    model.learn(STEPS, callback=TARCallback(sparsity=SPARSITY, seed=0, sparse_execution=True) if how == "callback" else None)
    assert model.policy.sparse_layers
    path = tmp_path / "model.zip"
    model.save(path)
    obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(16)]))
    torch.save(dict(masks=clone_masks(model), obs=obs), tmp_path / "saved.pt")
    expected = model.predict(obs.numpy(), deterministic=True)[0]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, type(model).__name__, str(path), str(tmp_path / "saved.pt"), CASES[case][2]],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["cls"] == ("MaskedPolicy" if how == "callback" else "SparsePolicy")
    n_kernel = len(kernel_layers(model))
    for phase in ("loaded", "trained"):  # right after load, then after learn() without any callback
        stats = report[phase]
        assert stats["layers"] == sorted(model.policy.sparse_layers), (phase, stats)
        assert stats["kernel"] == n_kernel and stats["same"] and stats["pruned"] == 0 and stats["aligned"], (phase, stats)
    np.testing.assert_array_equal(np.asarray(report["actions"]), expected)
    kept = expected_kept(model, SPARSITY)
    assert all(s["pruned_nonzero"] == 0 and s["kept"] == kept[n] for n, s in report["summary"].items())


@pytest.mark.parametrize("case, method", [("ppo-pendulum", "rigl"), ("a2c-pendulum", "set"), ("dqn-cartpole", "rigl")])
def test_dst_on_the_kernel_matches_the_masked_path(case: str, method: str) -> None:
    """SET/RigL mask updates rebuild the kernel layers in place (online and DQN's target): the same masks at the end,
    weights within ATOL, and the run did change the masks. (Not A2C on CartPole: its two logits' gradients are exactly
    opposite, so the action head's weights come in pairs of near-equal magnitude, and float32 noise decides which of a
    pair a magnitude drop takes, on either path.)"""
    states, initial = {}, None
    for option in (False, True):
        model = make(case, "callback", option)
        dst = DSTCallback(method=method, sparsity=SPARSITY, update_interval=4, seed=0, sparse_execution=option)
        model.learn(STEPS, callback=dst)
        assert dst.rewirer.history and any(sum(u.grown) > 0 for u in dst.rewirer.history)
        assert bool(model.policy.sparse_layers) == option and bool(kernel_layers(model)) == option
        assert_mask_invariants(model, SPARSITY)
        states[option] = policy_state(model)
        if initial is None:
            initial = [u.to_dict() for u in dst.rewirer.history]
        else:  # every update dropped and grew the same counts
            assert [u.to_dict() for u in dst.rewirer.history] == initial
    assert_same_training(states[False], states[True])


@pytest.mark.parametrize("case", ["ppo-cartpole", "dqn-cartpole"])
def test_gmp_moves_layers_onto_the_kernel_and_matches_the_masked_path(case: str) -> None:
    """GMP prunes on the masked path until a layer falls below the threshold, which then moves onto the kernel between
    two training calls and is pruned there: same masks, weights within ATOL, exact final counts."""
    states = {}
    for option in (False, True):
        model = make(case, "callback", option)
        gmp = GMPCallback(sparsity=SPARSITY, update_interval=4, seed=0, sparse_execution=option)
        model.learn(STEPS, callback=gmp)
        assert gmp.pruner.finished
        assert bool(model.policy.sparse_layers) == option
        assert_mask_invariants(model, SPARSITY)
        states[option] = policy_state(model)
    assert_same_training(states[False], states[True])


def test_cnn_policy_keeps_its_convolutions_dense_and_runs_its_linear_layers_on_the_kernel() -> None:
    """A CnnPolicy's features extractor is not sparsified (convolutions stay dense ``nn.Conv2d``, no mask); the
    Q-network's linear head runs on the kernel, in the target too."""

    class Frames(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (36, 36, 1), np.uint8)
        action_space = gym.spaces.Discrete(3)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), float(action == 1), False, self.np_random.random() < 0.05, {}

    model = DQN("CnnPolicy", Frames(), learning_starts=20, train_freq=4, buffer_size=200, batch_size=8, seed=0, device="cpu")
    model.learn(60, callback=TARCallback(sparsity=SPARSITY, seed=0, sparse_execution=True))
    assert model.policy.sparse_layers == ["q_net/q_net.0"]
    convs = [m for m in model.policy.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and not any(hasattr(m, "weight_mask") or is_compressed(m) for m in convs)
    assert isinstance(model.policy.q_net.q_net[0], SparseLinear) and isinstance(
        model.policy.q_net_target.q_net[0], SparseLinear
    )


@pytest.mark.parametrize("algo, env_id", [(QRDQN, "CartPole-v1"), (TRPO, "Pendulum-v1")])
def test_sparse_execution_on_an_unsupported_algorithm_is_refused_naming_what_is(algo, env_id: str) -> None:
    model = algo("MlpPolicy", env_id, seed=0, device="cpu", **({"learning_starts": 10} if algo is QRDQN else {}))
    with pytest.raises(TypeError, match=rf"TARCallback supports SAC, TD3 and TQC .*PPO, A2C and DQN, got {algo.__name__}"):
        model.learn(64, callback=TARCallback(sparse_execution=True))
    assert model.num_timesteps == 0 and not any(isinstance(m, SparseLinear) for m in model.policy.modules())


def test_shared_optimizer_owns_both_branches() -> None:
    """PPO's one optimizer saves and loads the state of both branches' kernel layers (its layout hooks know them all)."""
    model = make("ppo-cartpole", "policy", True)
    model.learn(128)
    optimizer = model.policy.optimizer
    owners = {id(p) for p in optimizer._sb3_tar_masks}
    assert owners == {id(layer.values) for layer in kernel_layers(model)}
    saved = optimizer.state_dict()
    dense = [s["exp_avg"] for s in saved["state"].values() if s["exp_avg"].dim() == 2]
    assert len(dense) == 6  # every weight, in the dense layout
    optimizer.load_state_dict(saved)
    for layer in kernel_layers(model):
        assert optimizer.state[layer.values]["exp_avg"].shape == layer.values.shape
