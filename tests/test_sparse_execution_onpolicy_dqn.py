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
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from fresh_process import run_fresh
from image_envs import BrightSideEnv
from sb3_contrib import QRDQN, TRPO, CrossQ, MaskablePPO
from sb3_contrib.common.wrappers import ActionMasker
from sb3_utils import assert_mask_invariants, clone_masks, expected_kept
from stable_baselines3 import A2C, DQN, PPO

from sb3_tar import a2c, dqn, ppo
from sb3_tar.baselines import GMPCallback
from sb3_tar.callbacks import DSTCallback, TARCallback
from sb3_tar.core.masks import is_compressed
from sb3_tar.kernels import SparseLinear
from sb3_tar.sb3.execution.sparse_execution import DENSITY_THRESHOLD
from sb3_tar.sb3.networks import sparse_networks
from sb3_tar.sb3.reporting.model_masks import sparsity_summary

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
from sb3_tar.sb3.execution.sparse_execution import DENSITY_THRESHOLD
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


#: The models a fresh process loads back on the kernel (:func:`fresh`), by (case, how they were made sparse).
FRESH = [("ppo-cartpole", "callback"), ("a2c-cartpole", "policy"), ("dqn-cartpole", "policy")]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict:
    """The models of :data:`FRESH` trained on the kernel, saved, and loaded back in one new process: by (case, how),
    the model, the actions it predicted before saving and the load's job."""
    root = tmp_path_factory.mktemp("fresh")
    out, jobs = {}, []
    for case, how in FRESH:
        model = make(case, how, True)
        callback = TARCallback(sparsity=SPARSITY, seed=0, sparse_execution=True) if how == "callback" else None
        model.learn(STEPS, callback=callback)
        path = root / f"{case}-{how}.zip"
        model.save(path)
        obs = torch.as_tensor(np.stack([model.observation_space.sample() for _ in range(16)]))
        torch.save(dict(masks=clone_masks(model), obs=obs), root / f"{case}-{how}.pt")
        out[case, how] = (model, model.predict(obs.numpy(), deterministic=True)[0])
        jobs.append((_LOAD_SCRIPT, [type(model).__name__, path, root / f"{case}-{how}.pt", CASES[case][2]]))
    for key, job in zip(FRESH, run_fresh(jobs)):
        out[key] = (*out[key], job)
    return out


@pytest.mark.parametrize("case, how", FRESH)
def test_save_load_in_a_fresh_process_runs_on_the_kernel(case: str, how: str, fresh: dict) -> None:
    """A fresh process loads the saved model onto the kernel: the same layers on the kernel, masks, zeros and
    optimizer state aligned with the kernel's values, the same actions, right after the load and after learn()."""
    model, expected, job = fresh[case, how]
    assert model.policy.sparse_layers
    report = json.loads(job.last_line())
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


#: Image models (tests/image_envs.py: 36x36 frames, NatureCNN with 32 features). At 0.75 sparsity the "random"
#: criterion without revival keeps exactly a quarter of every layer (every size is a multiple of 4), so every linear
#: layer (density 0.25) runs on the kernel and the convolutions (masked too) stay on the masked path.
IMAGE_SPARSITY = 0.75
IMAGE_CASES = {
    "dqn-cnn": (
        DQN,
        "CnnPolicy",
        {},
        dict(learning_starts=50, buffer_size=500, train_freq=4, target_update_interval=16, batch_size=16),
    ),
    "ppo-cnn": (PPO, "CnnPolicy", {}, dict(n_steps=64, batch_size=16, n_epochs=4)),
    "ppo-multiinput": (PPO, "MultiInputPolicy", dict(dict_obs=True), dict(n_steps=64, batch_size=16, n_epochs=2)),
}
#: The layers on the kernel: every linear layer, the features extractor's included; no convolution.
IMAGE_KERNEL_LAYERS = {
    "dqn-cnn": ["q_net/features_extractor.linear.0", "q_net/q_net.0"],
    "ppo-cnn": ["actor/action_net", "critic/value_net", "features_extractor/linear.0"],
    "ppo-multiinput": [
        "actor/action_net",
        "actor/mlp_extractor.policy_net.0",
        "actor/mlp_extractor.policy_net.2",
        "critic/mlp_extractor.value_net.0",
        "critic/mlp_extractor.value_net.2",
        "critic/value_net",
        "features_extractor/extractors.image.linear.0",
    ],
}


def make_image(case: str):
    algo, policy, env_kwargs, kwargs = IMAGE_CASES[case]
    extractor = dict(cnn_output_dim=32) if policy == "MultiInputPolicy" else dict(features_dim=32)
    policy_kwargs = dict(features_extractor_kwargs=extractor)
    return algo(policy, BrightSideEnv(**env_kwargs), seed=0, device="cpu", policy_kwargs=policy_kwargs, **kwargs)


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_cnn_and_multi_input_policies_run_linear_layers_on_the_kernel_and_masked_convolutions(case: str) -> None:
    """Convolutions are sparsified (4-D masks) and stay ``nn.Conv2d`` on the masked path; every linear layer (the
    features extractor's and the heads) runs on the kernel, in DQN's target too. Exact per-layer counts read from the
    weights, pruned positions exactly zero online and in the target after every hard copy, and the same training as
    the masked path (masks exactly, weights within ATOL)."""
    states = {}
    for option in (False, True):
        model = make_image(case)
        copies: list[dict] = []
        if case.startswith("dqn"):  # after every hard copy: the target equals the online network, pruned zeros
            interval, real_on_step = model.target_update_interval, model._on_step

            def on_step_then_check(model=model, interval=interval, real_on_step=real_on_step, copies=copies) -> None:
                real_on_step()
                if model._n_calls % interval == 0:
                    (net,) = sparse_networks(model.policy)
                    masks = clone_masks(model)["q_net"]
                    copies.append(
                        dict(
                            equal=all(torch.equal(t.weight, o.weight) for o, t in zip(net.linears, net.target_layers)),
                            pruned_zero=all(torch.all(t.weight[~m] == 0.0) for t, m in zip(net.target_layers, masks)),
                            kernel=[is_compressed(t) for t in net.target_layers] == [is_compressed(o) for o in net.linears],
                        )
                    )

            model._on_step = on_step_then_check
        callback = TARCallback(sparsity=IMAGE_SPARSITY, criterion="random", revival="none", seed=0, sparse_execution=option)
        model.learn(256, callback=callback)
        assert sorted(model.policy.sparse_layers) == (IMAGE_KERNEL_LAYERS[case] if option else [])
        convs = [m for m in model.policy.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(m.weight_mask.dim() == 4 and not is_compressed(m) for m in convs)
        kernel = {
            f"{net.name}/{name}" for net in sparse_networks(model.policy) for name, layer in net.layers if is_compressed(layer)
        }
        assert sorted(kernel) == sorted(model.policy.sparse_layers)
        assert all(
            type(layer) is torch.nn.Linear
            for net in sparse_networks(model.policy)
            for name, layer in net.layers
            if f"{net.name}/{name}" not in kernel and layer.weight.dim() == 2
        )
        for net in sparse_networks(model.policy):  # exactly a quarter of every layer, online and target
            quarter = [layer.weight.numel() // 4 for layer in net.linears]
            for layers in (net.linears, net.target_layers):
                assert [int((layer.weight != 0).sum()) for layer in layers] == (quarter if layers else []), net.name
        assert_mask_invariants(model, IMAGE_SPARSITY)
        if case.startswith("dqn"):
            assert len(copies) == 256 // model.target_update_interval
            assert all(all(copy.values()) for copy in copies), copies
            assert isinstance(model.policy.q_net_target.q_net[0], SparseLinear) is option
            assert isinstance(model.policy.q_net_target.features_extractor.linear[0], SparseLinear) is option
        states[option] = policy_state(model)
    assert_same_training(states[False], states[True])


def _masked_cartpole() -> gym.Env:
    """CartPole with action masks (MaskablePPO): action 0 is invalid at every third step."""
    steps = iter(range(10**9))
    return ActionMasker(gym.make("CartPole-v1"), lambda _: np.array([next(steps) % 3 != 0, True]))


#: sb3-contrib algorithms the kernel trains like DQN (QR-DQN's quantile_net and its hard-copied target) or like PPO.
CONTRIB_CASES = {
    "qrdqn": (
        QRDQN,
        lambda: "CartPole-v1",
        dict(learning_starts=50, train_freq=4, target_update_interval=10, batch_size=32, buffer_size=1_000),
        ["quantile_net/quantile_net.2", "quantile_net/quantile_net.4"],
    ),
    "maskable-ppo": (MaskablePPO, _masked_cartpole, dict(n_steps=64, batch_size=16, n_epochs=4), KERNEL_LAYERS["ppo"]),
}


@pytest.mark.parametrize("case", list(CONTRIB_CASES))
def test_qrdqn_and_maskable_ppo_on_the_kernel_train_as_on_the_masked_path(case: str) -> None:
    """QR-DQN (target on the kernel with the online mask through its hard copies) and MaskablePPO (PPO's epochs with
    action masks): same masks, weights and Adam state (dense layout) on both paths, state compressed on the kernel."""
    algo, env, kwargs, expected = CONTRIB_CASES[case]
    states, optimizers = {}, {}
    for option in (False, True):
        model = algo("MlpPolicy", env(), seed=0, device="cpu", policy_kwargs=dict(net_arch=[64, 64]), **kwargs)
        model.learn(STEPS, callback=TARCallback(sparsity=SPARSITY, seed=0, sparse_execution=option))
        assert sorted(model.policy.sparse_layers) == (sorted(expected) if option else [])
        assert len(kernel_layers(model)) == (len(expected) * (2 if case == "qrdqn" else 1) if option else 0)
        assert_mask_invariants(model, SPARSITY)
        if option:
            optimizer = model.policy.optimizer
            trained = [layer for layer in kernel_layers(model) if layer.values in optimizer.state]
            assert len(trained) == len(expected)  # online layers only
            assert all(optimizer.state[layer.values]["exp_avg"].shape == layer.values.shape for layer in trained)
        states[option], optimizers[option] = policy_state(model), optimizer_state(model)
    assert_same_training(states[False], states[True])
    if case == "qrdqn":
        assert sum(k.startswith("quantile_net_target.") and k.endswith("weight_mask") for k in states[True]) == 3
    assert optimizers[False].keys() == optimizers[True].keys()
    for index, entry in optimizers[False].items():
        for key, value in entry.items():
            torch.testing.assert_close(optimizers[True][index][key], value, atol=ATOL, rtol=0, msg=f"{index}/{key}")


TRPO_KWARGS = dict(n_steps=64, batch_size=32, n_critic_updates=3, seed=0, device="cpu", policy_kwargs=dict(net_arch=[64, 64]))


@pytest.mark.parametrize("callback", [TARCallback, DSTCallback, GMPCallback])
def test_trpo_refuses_sparse_execution_true_naming_where_it_runs(callback) -> None:
    """TRPO's line search needs second-order gradients and skips parameters named 'value*' (the kernel's ``values``):
    ``True`` is refused before anything changes, naming why and where the kernel runs."""
    model = TRPO("MlpPolicy", "Pendulum-v1", **TRPO_KWARGS)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    pattern = (
        rf"{callback.__name__}: sparse_execution=True is not supported for TRPO: .*second-order gradients.*"
        r"Sparse execution supports SAC, TD3, TQC, CrossQ, PPO, A2C, DQN, MaskablePPO and QR-DQN; use "
        r"sparse_execution='auto' or False \(the masked dense path\) for TRPO"
    )
    with pytest.raises(ValueError, match=pattern):
        model.learn(64, callback=callback(sparse_execution=True))
    after = model.policy.state_dict()
    assert model.num_timesteps == 0 and type(model.policy).__name__ == "ActorCriticPolicy"
    assert after.keys() == before.keys() and all(torch.equal(v, after[k]) for k, v in before.items())


def test_trpo_with_auto_trains_on_the_masked_path_and_loads_there(tmp_path: Path) -> None:
    """``"auto"`` (the default) keeps TRPO on the masked path (recorded as ``False`` in the policy, so a loaded model
    stays there); the actor moved by the line search and stayed sparse."""
    model = TRPO("MlpPolicy", "Pendulum-v1", **TRPO_KWARGS)
    model.learn(256, callback=TARCallback(sparsity=SPARSITY, seed=0))
    assert model.policy.sparse_layers == [] and not kernel_layers(model)
    assert int(model.policy.sb3_tar_sparse_execution) == 0
    assert_mask_invariants(model, SPARSITY)
    model.save(tmp_path / "trpo.zip")
    loaded = TRPO.load(tmp_path / "trpo.zip", device="cpu", env=gym.make("Pendulum-v1"))
    assert not kernel_layers(loaded) and loaded.policy.sparse_layers == []
    loaded.learn(128, reset_num_timesteps=False)
    assert not kernel_layers(loaded)
    assert_mask_invariants(loaded, SPARSITY, clone_masks(model))


def assert_crossq_invariants(model, initial_masks: dict | None = None) -> None:
    """Exact kept counts and pruned weights exactly zero (CrossQ has no target network, so ``assert_mask_invariants``,
    which expects one for an off-policy model, does not apply), masks unchanged."""
    kept = expected_kept(model, SPARSITY)
    summary = sparsity_summary(model)
    assert {n: (s["kept"], s["pruned_nonzero"]) for n, s in summary.items()} == {n: (k, 0) for n, k in kept.items()}
    masks = clone_masks(model)
    for net in sparse_networks(model.policy):
        assert not net.target_layers
        assert [int((layer.weight != 0).sum()) for layer in net.linears] == [int(m.sum()) for m in masks[net.name]]
        if initial_masks is not None:
            assert all(torch.equal(a, b) for a, b in zip(masks[net.name], initial_masks[net.name], strict=True))


def test_crossq_runs_on_the_kernel() -> None:
    """CrossQ (SAC-like, batch-renorm critics, no target) converts its actor's and critics' sparse layers. With SGD both
    paths train the same weights and batch-renorm statistics within ATOL; with Adam a parameter whose gradient is
    analytically zero (a bias whose unit is always active ahead of batch renorm, which removes the shift) takes +-lr
    steps driven by float noise that differs between the paths, so there only the invariants are compared: exact
    counts, fixed masks, pruned weights zero, optimizer state compressed."""
    states = {}
    for option in (False, True):
        policy_kwargs = dict(net_arch=[64, 64], optimizer_class=torch.optim.SGD)
        model = CrossQ(
            "MlpPolicy", "Pendulum-v1", seed=0, device="cpu", policy_kwargs=policy_kwargs, learning_starts=50, batch_size=16
        )
        model.learn(STEPS, callback=TARCallback(sparsity=SPARSITY, seed=0, sparse_execution=option))
        below = [
            f"{net.name}/{name}"
            for net, masks in ((n, clone_masks(model)[n.name]) for n in sparse_networks(model.policy))
            for (name, _), mask in zip(net.layers, masks)
            if float(mask.float().mean()) < DENSITY_THRESHOLD
        ]
        assert below and sorted(model.policy.sparse_layers) == (sorted(below) if option else [])
        assert_crossq_invariants(model)
        states[option] = policy_state(model)
    assert any(k.endswith("ra_mean") for k in states[True])  # the batch-renorm statistics are compared too
    assert_same_training(states[False], states[True])
    model = CrossQ(
        "MlpPolicy",
        "Pendulum-v1",
        seed=0,
        device="cpu",
        policy_kwargs=dict(net_arch=[64, 64]),
        learning_starts=50,
        batch_size=16,
    )
    model.learn(STEPS, callback=TARCallback(sparsity=SPARSITY, seed=0, sparse_execution=True))
    recorder_masks = clone_masks(model)
    model.learn(STEPS, reset_num_timesteps=False)
    assert model.policy.sparse_layers and not hasattr(model.policy, "critic_target")
    assert_crossq_invariants(model, recorder_masks)
    for holder in (model.policy.actor, model.policy.critic):
        for layer in kernel_layers(model):
            if layer.values in holder.optimizer.state:
                assert holder.optimizer.state[layer.values]["exp_avg"].shape == layer.values.shape


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
