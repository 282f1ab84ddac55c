"""TARCallback on SB3's PPO, A2C and DQN (issue 30): roles, fixed masks, clipped gradients, optimizer state, targets.

Real training on real envs (CartPole-v1, Pendulum-v1 for continuous PPO), a few hundred steps, net_arch [64, 64].
Tests that read a layer's dense ``weight`` parameter, its gradient or its optimizer state run on the masked dense path
(``sparse_execution=False``); the kernel path is tested against it in ``tests/test_sparse_execution_onpolicy_dqn.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fresh_process import run_fresh
from sb3_contrib import ARS, RecurrentPPO
from sb3_utils import Recorder, assert_mask_invariants, clone_masks, expected_kept
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from sb3_tar import a2c, dqn, ppo
from sb3_tar.baselines import GMPCallback, SmallDenseCallback
from sb3_tar.callbacks import DSTCallback, TARCallback
from sb3_tar.sb3.methods.gradual import attached_pruner
from sb3_tar.sb3.methods.rewiring import attached_rewirer, planned_steps_of
from sb3_tar.sb3.networks import sparse_networks
from sb3_tar.sb3.reporting.model_masks import masks_of, sparsity_summary

SPARSITY = 0.9
REPO = Path(__file__).resolve().parents[1]

#: (algorithm, env, settings): PPO with several epochs over small minibatches, DQN with frequent hard target copies.
CASES = {
    "ppo-cartpole": (PPO, "CartPole-v1", dict(n_steps=64, batch_size=16, n_epochs=4)),
    "ppo-pendulum": (PPO, "Pendulum-v1", dict(n_steps=64, batch_size=16, n_epochs=4)),
    "a2c-cartpole": (A2C, "CartPole-v1", dict(n_steps=8)),
    "dqn-cartpole": (
        DQN,
        "CartPole-v1",
        dict(learning_starts=50, train_freq=4, gradient_steps=1, target_update_interval=10, batch_size=32, buffer_size=1_000),
    ),
}
STEPS = 256
#: The masked dense path (the default "auto" runs layers below the density threshold on the sparse kernel).
MASKED = dict(sparse_execution=False)


def make(case: str, **overrides):
    algo, env, kwargs = CASES[case]
    kwargs = dict(kwargs, **overrides)
    return algo("MlpPolicy", env, seed=0, device="cpu", policy_kwargs=dict(net_arch=[64, 64]), **kwargs)


SPARSE_POLICIES = {PPO: ppo.SparsePolicy, A2C: a2c.SparsePolicy, DQN: dqn.SparsePolicy}


def make_sparse(case: str, **policy_kwargs):
    """The case's model built with sb3-tar's SparsePolicy of its algorithm."""
    algo, env, kwargs = CASES[case]
    policy_kwargs = dict(dict(net_arch=[64, 64], sparsity=SPARSITY, seed=0, **MASKED), **policy_kwargs)
    return algo(SPARSE_POLICIES[algo], env, seed=0, device="cpu", policy_kwargs=policy_kwargs, **kwargs)


def nonzero_counts(model) -> dict[str, int]:
    """Nonzero weights of each sparse network, read from the model's real weights."""
    return {net.name: sum(int((layer.weight != 0).sum()) for layer in net.linears) for net in sparse_networks(model.policy)}


def test_roles_of_actor_critic_and_dqn_policies() -> None:
    ppo = make("ppo-cartpole")
    nets = {n.name: n for n in sparse_networks(ppo.policy)}
    assert [(n.name, n.role) for n in nets.values()] == [("actor", "actor"), ("critic", "critic")]
    policy = ppo.policy
    assert nets["actor"].linears == [policy.mlp_extractor.policy_net[0], policy.mlp_extractor.policy_net[2], policy.action_net]
    assert nets["critic"].linears == [policy.mlp_extractor.value_net[0], policy.mlp_extractor.value_net[2], policy.value_net]
    assert [name for name, _ in nets["actor"].layers] == [
        "mlp_extractor.policy_net.0",
        "mlp_extractor.policy_net.2",
        "action_net",
    ]
    assert not nets["actor"].target_layers and not nets["critic"].target_layers
    dqn = make("dqn-cartpole")
    (q,) = sparse_networks(dqn.policy)
    assert (q.name, q.role) == ("q_net", "critic")
    assert q.linears == [dqn.policy.q_net.q_net[0], dqn.policy.q_net.q_net[2], dqn.policy.q_net.q_net[4]]
    assert q.target_layers == [dqn.policy.q_net_target.q_net[i] for i in (0, 2, 4)]


@pytest.mark.parametrize("case", list(CASES))
def test_exact_counts_fixed_masks_and_zeros_through_training(case: str) -> None:
    model = make(case)
    recorder = Recorder()
    model.learn(STEPS, callback=CallbackList([TARCallback(sparsity=SPARSITY, seed=0, **MASKED), recorder]))
    kept = expected_kept(model, SPARSITY)
    names = ["q_net"] if case.startswith("dqn") else ["actor", "critic"]
    assert sorted(kept) == sorted(names)
    # right after pruning: exact kept counts in the masks and in the real weights
    after_pruning = {
        net.name: sum(int((recorder.weights[f"{prefix}.weight"] != 0).sum()) for prefix in _prefixes(model, net))
        for net in sparse_networks(model.policy)
    }
    assert after_pruning == kept
    assert {name: sum(int(m.sum()) for m in masks) for name, masks in recorder.masks.items()} == kept
    # after training (PPO's epochs, A2C's RMSprop steps, DQN's target copies): same masks, same counts, zeros
    assert_mask_invariants(model, SPARSITY, recorder.masks)
    assert nonzero_counts(model) == kept
    trained = model.policy.state_dict()
    assert any(not torch.equal(trained[k], recorder.weights[k]) for k in recorder.weights if k.endswith(".weight"))
    for name, stats in sparsity_summary(model).items():
        assert stats["pruned_nonzero"] == 0 and stats["enforced"] == 1.0, (name, stats)


def _prefixes(model, net) -> list[str]:
    """The state-dict prefixes of a network's online layers."""
    names = {id(module): name for name, module in model.policy.named_modules()}
    return [names[id(layer)] for layer in net.linears]


@pytest.mark.parametrize("case", ["ppo-cartpole", "ppo-pendulum", "a2c-cartpole", "dqn-cartpole"])
def test_clipped_gradient_norm_is_the_sparse_networks(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The norm SB3 clips by is computed over kept weights only: pruned gradients are zero before clipping."""
    max_grad_norm = 1e-3  # small enough that every step is clipped
    model = make(case, max_grad_norm=max_grad_norm)
    calls: list[dict] = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        before = {id(p): p.grad.detach().clone() for p in parameters if p.grad is not None}
        total = real_clip(parameters, max_norm, *args, **kwargs)
        after = {id(p): p.grad.detach().clone() for p in parameters if p.grad is not None}
        calls.append(dict(before=before, after=after, total=float(total), max_norm=max_norm))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    model.learn(128 if not case.startswith("dqn") else 120, callback=TARCallback(sparsity=SPARSITY, seed=0, **MASKED))
    assert calls, "SB3 did not clip any gradient"
    networks = sparse_networks(model.policy)
    masks = clone_masks(model)
    sparse_ids = {id(layer.weight): mask for net in networks for layer, mask in zip(net.linears, masks[net.name])}
    params = {id(p): p for p in model.policy.parameters()}
    for call in calls:
        squared = 0.0
        for pid, grad in call["before"].items():
            if pid in sparse_ids:
                mask = sparse_ids[pid]
                assert torch.all(grad[~mask] == 0.0), "a pruned weight has a gradient before clipping"
                squared += float((grad[mask].double() ** 2).sum())  # kept weights only
            else:
                squared += float((grad.double() ** 2).sum())  # biases, log_std: dense
        hand_norm = squared**0.5
        assert call["total"] == pytest.approx(hand_norm, rel=1e-5)
        coefficient = min(1.0, call["max_norm"] / (hand_norm + 1e-6))
        assert coefficient < 1.0
        for pid, grad in call["before"].items():
            torch.testing.assert_close(call["after"][pid], grad * coefficient, rtol=1e-4, atol=1e-12)
            if pid in sparse_ids:
                assert torch.all(call["after"][pid][~sparse_ids[pid]] == 0.0)
    assert set(call["before"]) <= set(params)
    assert_mask_invariants(model, SPARSITY)


def test_a2c_rmsprop_state_is_zero_at_pruned_positions() -> None:
    model = make("a2c-cartpole")
    model.learn(STEPS, callback=TARCallback(sparsity=SPARSITY, seed=0, **MASKED))
    optimizer = model.policy.optimizer
    assert type(optimizer) is torch.optim.RMSprop
    masks = clone_masks(model)
    for net in sparse_networks(model.policy):
        for layer, mask in zip(net.linears, masks[net.name]):
            square_avg = optimizer.state[layer.weight]["square_avg"]
            assert torch.all(square_avg[~mask] == 0.0), f"{net.name}: RMSprop state at pruned positions"
            assert torch.count_nonzero(square_avg[mask]) > 0
    assert_mask_invariants(model, SPARSITY)


def test_ppo_adam_state_is_zero_at_pruned_positions() -> None:
    model = make("ppo-pendulum")
    model.learn(128, callback=TARCallback(sparsity=SPARSITY, seed=0, **MASKED))
    masks = clone_masks(model)
    for net in sparse_networks(model.policy):
        for layer, mask in zip(net.linears, masks[net.name]):
            state = model.policy.optimizer.state[layer.weight]
            assert torch.all(state["exp_avg"][~mask] == 0.0) and torch.all(state["exp_avg_sq"][~mask] == 0.0)


def test_dqn_target_follows_the_mask_through_hard_copies() -> None:
    model = make("dqn-cartpole")
    interval = model.target_update_interval
    copies: list[tuple[bool, bool, bool]] = []
    real_on_step = model._on_step

    def on_step_then_check() -> None:
        real_on_step()
        if model._n_calls % interval == 0:  # DQN copied q_net into q_net_target in this call
            (net,) = sparse_networks(model.policy)
            masks = clone_masks(model)["q_net"]
            equal = all(torch.equal(t.weight, o.weight) for t, o in zip(net.target_layers, net.linears))
            zero = all(torch.all(t.weight[~m] == 0.0) for t, m in zip(net.target_layers, masks))
            same_masks = all(torch.equal(t.weight_mask, o.weight_mask) for t, o in zip(net.target_layers, net.linears))
            copies.append((equal, zero, same_masks))

    model._on_step = on_step_then_check
    recorder = Recorder()
    model.learn(STEPS, callback=CallbackList([TARCallback(sparsity=SPARSITY, seed=0, **MASKED), recorder]))
    assert len(copies) == STEPS // interval
    assert all(all(c) for c in copies), copies
    assert_mask_invariants(model, SPARSITY, recorder.masks)
    # the copies carried trained weights (the online network moved after learning_starts)
    (net,) = sparse_networks(model.policy)
    names = _prefixes(model, net)
    assert any(not torch.equal(net.target_layers[i].weight, recorder.weights[f"{n}.weight"]) for i, n in enumerate(names))


_LOAD_SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)
from stable_baselines3 import A2C, DQN, PPO
from sb3_tar.sb3.reporting.model_masks import masks_of, sparsity_summary
from sb3_tar.sb3.networks import sparse_networks
algo = {"PPO": PPO, "A2C": A2C, "DQN": DQN}[sys.argv[1]]
model = algo.load(sys.argv[2], device="cpu")
saved = torch.load(sys.argv[3])

def state():
    out = {}
    masks = masks_of(model)
    for net in sparse_networks(model.policy):
        same = all(torch.equal(a, b) for a, b in zip(masks[net.name], saved[net.name]))
        online = sum(int((l.weight[~m] != 0).sum()) for l, m in zip(net.linears, masks[net.name]))
        target = sum(int((l.weight[~m] != 0).sum()) for l, m in zip(net.target_layers, masks[net.name]))
        nonzero = sum(int((l.weight != 0).sum()) for l in net.linears)
        out[net.name] = dict(same=same, online=online, target=target, nonzero=nonzero, targets=len(net.target_layers))
    return out

loaded = state()
model.set_env(model.get_env() or __import__("gymnasium").make(sys.argv[4]))
model.learn(128)
trained = state()
print(json.dumps(dict(cls=type(model.policy).__name__, loaded=loaded, trained=trained, summary=sparsity_summary(model))))
"""


#: The saved models that a fresh process loads back with sb3-tar (:func:`fresh`), by (case, how they were made sparse).
SAVE_LOAD = [
    ("ppo-cartpole", "callback"),
    ("a2c-cartpole", "callback"),
    ("dqn-cartpole", "callback"),
    ("ppo-cartpole", "policy"),
    ("dqn-cartpole", "policy"),
]


@pytest.mark.parametrize("case, how", SAVE_LOAD)
def test_save_load_in_a_fresh_process_keeps_the_masks(case: str, how: str, fresh: dict) -> None:
    """A fresh process loads the saved model: the same masks, exact counts and zeros online and in DQN's target,
    right after the load and after learn() without any callback."""
    kept, job = fresh["save_load", case, how]
    report = json.loads(job.last_line())
    assert report["cls"] == ("MaskedPolicy" if how == "callback" else "SparsePolicy")
    for phase in ("loaded", "trained"):  # right after load, then after learn() without any callback
        assert set(report[phase]) == set(kept)
        for name, stats in report[phase].items():
            assert stats["same"] and stats["online"] == 0 and stats["target"] == 0, (phase, name, stats)
            assert stats["nonzero"] == kept[name], (phase, name, stats)
            assert stats["targets"] == (3 if case.startswith("dqn") else 0)
    assert all(s["pruned_nonzero"] == 0 and s["kept"] == kept[n] for n, s in report["summary"].items())


@pytest.mark.parametrize(
    "algo, env_id",
    [(ARS, "Pendulum-v1"), (RecurrentPPO, "CartPole-v1")],
)
def test_unsupported_algorithm_is_refused_naming_what_is_supported(algo, env_id: str) -> None:
    policy = "MlpLstmPolicy" if algo is RecurrentPPO else "MlpPolicy"
    model = algo(policy, env_id, seed=0, device="cpu", **({"n_steps": 32, "batch_size": 32} if algo is RecurrentPPO else {}))
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    supported = (
        r"TARCallback supports SAC, TD3, TQC and CrossQ .*PPO, A2C and DQN, and sb3-contrib's TRPO, MaskablePPO and QR-DQN"
    )
    with pytest.raises(TypeError, match=rf"{supported}, got {algo.__name__}"):
        model.learn(64, callback=TARCallback())
    after = model.policy.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and model.num_timesteps == 0


#: Small dense of the width-64, 0.9-sparse networks on CartPole (4 observations, 2 actions), by hand:
#: P(h) = 4 h1 + h1 h2 + h2 n_out. Policy branch and Q-network (n_out = 2): P(64) = 256 + 4096 + 128 = 4480,
#: K = 448; [18, 19] gives 72 + 342 + 38 = 452 (the other mixes: [18, 18] 432, [19, 18] 454, [19, 19] 475). Value
#: branch (n_out = 1): P(64) = 4416, K = round(441.6) = 442; [19, 18] gives 76 + 342 + 18 = 436 ([18, 19] 433,
#: [19, 19] 456, [18, 18] 414).
SMALL_DENSE = {
    "actor": {"widths": [18, 19], "reference_weights": 4480, "target": 448, "weights": 452},
    "critic": {"widths": [19, 18], "reference_weights": 4416, "target": 442, "weights": 436},
    "q_net": {"widths": [18, 19], "reference_weights": 4480, "target": 448, "weights": 452},
}
#: The weight tensors of each network in the policy's state dict.
SMALL_DENSE_KEYS = {
    "actor": ("mlp_extractor.policy_net.", "action_net."),
    "critic": ("mlp_extractor.value_net.", "value_net."),
    "q_net": ("q_net.q_net.",),
    "q_net_target": ("q_net_target.q_net.",),
}

_SMALL_DENSE_LOAD = """
import json, sys
from stable_baselines3 import A2C, DQN, PPO
model = {"PPO": PPO, "A2C": A2C, "DQN": DQN}[sys.argv[1]].load(sys.argv[2], device="cpu")
state = model.policy.state_dict()
weights = {k: v.numel() for k, v in state.items() if k.endswith(".weight")}
print(json.dumps({"config": model.sb3_tar_config["small_dense"], "weights": weights}))
"""


def weight_counts(weights: dict[str, int], network: str) -> int:
    """Weights of one network, summed over the ``.weight`` entries of its state-dict prefixes."""
    return sum(n for k, n in weights.items() if k.startswith(SMALL_DENSE_KEYS[network]))


SMALL_DENSE_CASES = ["ppo-cartpole", "a2c-cartpole", "dqn-cartpole"]


def _small_dense_model(case: str):
    """The case's small dense model (widths solved by small_dense_net_arch), trained with SmallDenseCallback; a warning
    fails (the widths are the solved ones)."""
    from sb3_tar.sb3.methods.small_dense import small_dense_net_arch

    algo, env_id, kwargs = CASES[case]
    arch, _ = small_dense_net_arch(case.split("-")[0], env_id, 64, SPARSITY)
    model = algo("MlpPolicy", env_id, seed=0, device="cpu", policy_kwargs=dict(net_arch=arch), **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the widths are the solved ones: no warning
        model.learn(STEPS, callback=SmallDenseCallback(reference_width=64, sparsity=SPARSITY))
    return model


@pytest.mark.parametrize("case", SMALL_DENSE_CASES)
def test_small_dense_widths_counts_and_fresh_process_load(case: str, fresh: dict) -> None:
    """small_dense_net_arch solves each network's widths as computed by hand (PPO/A2C per branch, DQN one Q-network); a
    real run with SmallDenseCallback records them without a warning, the built networks (DQN's target too) hold the
    hand counts, and a fresh process reads both back from the saved model."""
    from sb3_tar.sb3.methods.small_dense import small_dense_net_arch

    algo, env_id, _ = CASES[case]
    arch, matches = small_dense_net_arch(case.split("-")[0], env_id, 64, SPARSITY)
    networks = ["q_net"] if algo is DQN else ["actor", "critic"]
    expected_arch = SMALL_DENSE["q_net"]["widths"] if algo is DQN else {"pi": [18, 19], "vf": [19, 18]}
    assert arch == expected_arch and sorted(matches) == sorted(networks)
    model, job = fresh["small_dense", case]
    assert model.num_timesteps >= STEPS
    record = model.sb3_tar_config["small_dense"]
    weights = {k: v.numel() for k, v in model.policy.state_dict().items() if k.endswith(".weight")}
    for network in networks:
        hand = SMALL_DENSE[network]
        entry = record[network]
        assert {k: entry[k] for k in hand} == hand, network
        assert entry["model_widths"] == hand["widths"] and entry["model_weights"] == hand["weights"]
        assert entry["sparsity"] == SPARSITY and entry["reference_width"] == 64
        assert weight_counts(weights, network) == hand["weights"]  # the real model's weights
    if algo is DQN:
        assert weight_counts(weights, "q_net_target") == SMALL_DENSE["q_net"]["weights"]
    loaded = json.loads(job.last_line())
    assert loaded["config"] == json.loads(json.dumps(record))
    assert loaded["weights"] == weights


def test_small_dense_on_ppo_warns_on_other_widths_and_refuses_a_sparse_model() -> None:
    """A PPO model at width 64 is not the small dense one: the callback warns, naming the branch and its solved widths,
    and records the model's own counts; a sparse PPO model is refused before anything changes."""
    model = make("ppo-cartpole")
    with pytest.warns(UserWarning, match=r"critic has hidden widths \[64, 64\]; the widths matching .* are \[19, 18\]"):
        model.learn(64, callback=SmallDenseCallback(reference_width=64, sparsity=SPARSITY))
    assert model.sb3_tar_config["small_dense"]["actor"]["model_weights"] == 4480
    sparse = make_sparse("ppo-cartpole")
    before = {k: v.clone() for k, v in sparse.policy.state_dict().items()}
    with pytest.raises(ValueError, match="SmallDenseCallback describes a dense model"):
        sparse.learn(64, callback=SmallDenseCallback())
    assert all(torch.equal(v, sparse.policy.state_dict()[k]) for k, v in before.items()) and sparse.num_timesteps == 0


def test_sparse_execution_options_on_ppo() -> None:
    """True and "auto" (the default) run the layers below the density threshold on the kernel, False none."""
    for option, kernel in ((True, True), ("auto", True), (False, False)):
        model = make("ppo-cartpole")
        model.learn(64, callback=TARCallback(sparsity=SPARSITY, sparse_execution=option))
        assert bool(model.policy.sparse_layers) == kernel, option
        assert_mask_invariants(model, SPARSITY)


def test_per_role_sparsity_dict_net_arch_and_several_envs() -> None:
    """actor_sparsity/critic_sparsity map onto the policy and value branches; net_arch=dict(pi, vf); n_envs=2."""
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=16,
        n_epochs=3,
        seed=0,
        device="cpu",
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[32])),
    )
    recorder = Recorder()
    model.learn(256, callback=CallbackList([TARCallback(actor_sparsity=0.5, critic_sparsity=0.8, seed=0), recorder]))
    totals = {net.name: sum(layer.weight.numel() for layer in net.linears) for net in sparse_networks(model.policy)}
    assert totals == {"actor": 4 * 64 + 64 * 64 + 64 * 2, "critic": 4 * 32 + 32 * 1}
    kept = {"actor": round(0.5 * totals["actor"]), "critic": round(0.2 * totals["critic"])}
    assert nonzero_counts(model) == kept
    assert {name: sum(int(m.sum()) for m in masks) for name, masks in clone_masks(model).items()} == kept
    assert all(torch.equal(a, b) for name in kept for a, b in zip(clone_masks(model)[name], recorder.masks[name]))
    assert all(s["pruned_nonzero"] == 0 for s in sparsity_summary(model).values())


@pytest.mark.parametrize("case", ["ppo-cartpole", "ppo-pendulum", "a2c-cartpole", "dqn-cartpole"])
def test_sparse_policy_classes(case: str) -> None:
    """PPO(ppo.SparsePolicy), A2C(a2c.SparsePolicy), DQN(dqn.SparsePolicy): exact counts when built and after training."""
    model = make_sparse(case)
    kept = expected_kept(model, SPARSITY)
    assert nonzero_counts(model) == kept
    built = clone_masks(model)
    assert_mask_invariants(model, SPARSITY)
    model.learn(STEPS)
    assert_mask_invariants(model, SPARSITY, built)
    assert nonzero_counts(model) == kept
    assert model.policy.sparse_layers == []  # the masked dense path


def test_sparse_policy_classes_refuse_other_algorithms() -> None:
    with pytest.raises(TypeError, match=r"ppo.SparsePolicy is a policy for PPO, got DQN: .*DQN \(sb3_tar.dqn.SparsePolicy\)"):
        DQN(ppo.SparsePolicy, "CartPole-v1", device="cpu")
    with pytest.raises(TypeError, match=r"dqn.SparsePolicy is a policy for DQN, got A2C"):
        A2C(dqn.SparsePolicy, "CartPole-v1", device="cpu")
    assert make_sparse("dqn-cartpole", sparse_execution=True).policy.sparse_layers == ["q_net/q_net.2", "q_net/q_net.4"]
    model = make_sparse("ppo-cartpole", actor_sparsity=0.5, critic_sparsity=0.8)
    with pytest.warns(UserWarning, match="TARCallback: not pruning, the policy is a SparsePolicy"):
        model.learn(64, callback=TARCallback(sparsity=0.3))
    totals = {net.name: sum(layer.weight.numel() for layer in net.linears) for net in sparse_networks(model.policy)}
    assert nonzero_counts(model) == {"actor": round(0.5 * totals["actor"]), "critic": round(0.2 * totals["critic"])}


class StepRecorder(BaseCallback):
    """After the callbacks before it attached their hooks: records, after every optimizer step, the GMP clock and each
    network's kept count (mask) and nonzero count (real weights)."""

    def _on_training_start(self) -> None:
        self.rows: list[tuple[int, dict[str, int], dict[str, int]]] = []
        self.model.policy.optimizer.register_step_post_hook(self._record)

    def _record(self, optimizer, args, kwargs) -> None:
        pruner = attached_pruner(self.model.policy)
        masks = clone_masks(self.model)
        self.rows.append(
            (pruner.step, {n: sum(int(m.sum()) for m in ms) for n, ms in masks.items()}, nonzero_counts(self.model))
        )

    def _on_step(self) -> bool:
        return True


@pytest.mark.parametrize("case", ["ppo-cartpole", "ppo-pendulum", "a2c-cartpole", "dqn-cartpole"])
def test_gmp_counts_exact_at_every_gradient_step(case: str) -> None:
    model = make(case)
    gmp = GMPCallback(sparsity=SPARSITY, update_interval=4, seed=0, **MASKED)
    recorder = StepRecorder()
    model.learn(STEPS, callback=CallbackList([gmp, recorder]))
    pruner = gmp.pruner
    assert pruner.step == pruner.total_steps == len(recorder.rows) > 0  # the plan is exact (no target_kl)
    t0, t1 = pruner.window
    assert 0 < t0 < t1 <= pruner.total_steps
    final = expected_kept(model, SPARSITY)
    for step, kept, nonzero in recorder.rows:
        expected = {name: pruner.kept_at_step(name, step) for name in kept}  # both roles change at the same step
        assert kept == expected == nonzero, (step, kept, nonzero, expected)
    assert recorder.rows[t1 - 1][1] == final and recorder.rows[-1][1] == final
    assert sorted({s for s, _, _ in pruner.history}) == [
        t for t in range(1, t1 + 1) if pruner.config.is_prune_step(t, pruner.total_steps)
    ]
    assert pruner.finished
    assert_mask_invariants(model, SPARSITY)


def test_planned_gradient_steps_of_on_policy_models() -> None:
    for case, expected in (("ppo-cartpole", 4 * 4 * 4), ("a2c-cartpole", 32)):
        model = make(case)
        model._setup_learn(STEPS)
        assert planned_steps_of(model) == expected


class DSTRecorder(BaseCallback):
    """After DSTCallback attached its rewirer: after every optimizer step, each network's kept count and whether every
    pruned weight is exactly zero (online and target); at every update, the dense gradient the rewirer could read."""

    def _on_training_start(self) -> None:
        self.rows: list[tuple[int, dict[str, int], bool]] = []
        self.dense: list[tuple[int, str, int, int]] = []
        self.rewirer = attached_rewirer(self.model.policy)
        self.rewirer.enforcer.pre_step_listeners.append(self._after_rewire)
        self.model.policy.optimizer.register_step_post_hook(self._record)

    def _after_rewire(self, role: str, optimizer) -> None:
        for update in self.rewirer.history:
            if update.clock == self.rewirer.step and update.role == role:
                net = next(n for n in sparse_networks(self.model.policy) if n.name == update.network)
                kept = sum(int(m.sum()) for m in clone_masks(self.model)[net.name])
                grads = [self.rewirer.enforcer.dense_grad(net.name, i) for i in range(len(net.linears))]
                self.dense.append((update.clock, net.name, sum(int((g != 0).sum()) for g in grads if g is not None), kept))

    def _record(self, optimizer, args, kwargs) -> None:
        masks = clone_masks(self.model)
        zero = all(
            torch.all(layer.weight[~mask] == 0.0)
            for net in sparse_networks(self.model.policy)
            for layers in (net.linears, net.target_layers)
            for layer, mask in zip(layers, masks[net.name])
        )
        self.rows.append((self.rewirer.step, {n: sum(int(m.sum()) for m in ms) for n, ms in masks.items()}, zero))

    def _on_step(self) -> bool:
        return True


@pytest.mark.parametrize(
    "case, method", [("ppo-cartpole", "set"), ("ppo-pendulum", "rigl"), ("a2c-cartpole", "rigl"), ("dqn-cartpole", "rigl")]
)
def test_dst_counts_exact_at_every_step_and_rigl_reads_dense_gradients(case: str, method: str) -> None:
    model = make(case)
    dst = DSTCallback(method=method, sparsity=SPARSITY, update_interval=4, seed=0, **MASKED)
    recorder = DSTRecorder()
    initial = Recorder()
    model.learn(STEPS, callback=CallbackList([dst, initial, recorder]))
    rewirer = dst.rewirer
    kept = expected_kept(model, SPARSITY)
    assert rewirer.step == rewirer.total_steps == len(recorder.rows) > 0
    for step, counts, zero in recorder.rows:
        assert counts == kept and zero, (step, counts, zero)
    updates = rewirer.history
    assert updates and all(sum(u.dropped) == sum(u.grown) for u in updates) and any(sum(u.grown) > 0 for u in updates)
    assert {u.network for u in updates} == set(kept)
    for name in kept:  # both roles are rewired at the same gradient steps (critic hooks first on PPO/A2C)
        assert [u.clock for u in updates if u.network == name] == [u.step for u in updates if u.network == name]
    assert any(not torch.equal(a, b) for name in kept for a, b in zip(clone_masks(model)[name], initial.masks[name]))
    assert_mask_invariants(model, SPARSITY)
    # grown weights start at 0.0; one into a unit with no outgoing connection never gets a gradient, so <=
    assert all(nonzero_counts(model)[name] <= kept[name] for name in kept)
    if method == "rigl":  # the dense gradient (recorded before the hooks zeroed pruned positions) was read
        assert recorder.dense and all(nonzero > k for _, _, nonzero, k in recorder.dense), recorder.dense


def test_deepcopy_of_a_sparse_ppo_policy_stays_sparse() -> None:
    """A copied policy re-attaches its enforcer (and the gradient hooks) on its first forward pass."""
    import copy

    model = make_sparse("ppo-cartpole")  # before learn(): SB3's trained policy holds its last distribution (a graph)
    copied = copy.deepcopy(model.policy)
    obs = torch.as_tensor(model.observation_space.sample()[None])
    copied(obs)  # the first forward pass re-attaches
    actions = torch.as_tensor([[model.action_space.sample()]])
    values, log_prob, entropy = copied.evaluate_actions(obs, actions.flatten())
    (values.sum() + log_prob.sum()).backward()
    masks = clone_masks(copied)
    for net in sparse_networks(copied):
        for layer, mask in zip(net.linears, masks[net.name]):
            assert torch.all(layer.weight.grad[~mask] == 0.0)
    copied.optimizer.step()
    assert all(s["pruned_nonzero"] == 0 for s in sparsity_summary(copied).values())


@pytest.mark.parametrize("case, callback", [("ppo-cartpole", "dst"), ("dqn-cartpole", "gmp")])
def test_schedules_continue_after_save_and_load(case: str, callback: str, tmp_path: Path) -> None:
    algo = CASES[case][0]
    model = make(case)
    make_callback = (
        (lambda: DSTCallback(method="rigl", sparsity=SPARSITY, update_interval=4, seed=0))
        if callback == "dst"
        else (lambda: GMPCallback(sparsity=SPARSITY, update_interval=4, seed=0))
    )
    first = make_callback()
    model.learn(STEPS // 2, callback=first)
    schedule = first.rewirer if callback == "dst" else first.pruner
    step = schedule.step
    assert step > 0
    model.save(tmp_path / "model.zip")
    loaded = algo.load(tmp_path / "model.zip", env=model.get_env(), device="cpu")
    second = make_callback()
    loaded.learn(STEPS // 2, callback=second, reset_num_timesteps=False)
    resumed = second.rewirer if callback == "dst" else second.pruner
    assert resumed.step > step  # continued, not restarted
    assert resumed.total_steps == schedule.total_steps
    assert resumed.finished  # T was planned by the first learn(): the second trains on with the final mask
    assert_mask_invariants(loaded, SPARSITY)


@pytest.mark.parametrize("case", ["ppo-cartpole", "dqn-cartpole"])
def test_sparse_policy_with_rigl(case: str) -> None:
    """PPO(ppo.SparsePolicy, policy_kwargs=dict(dst_method="rigl")): the policy rewires itself, DSTCallback plans T."""
    model = make_sparse(case, dst_method="rigl", update_interval=4)
    recorder = DSTRecorder()
    model.learn(STEPS, callback=CallbackList([DSTCallback(), recorder]))
    rewirer = model.policy.dst_rewirer
    kept = expected_kept(model, SPARSITY)
    assert rewirer.step == rewirer.total_steps == len(recorder.rows) > 0
    assert all(counts == kept and zero for _, counts, zero in recorder.rows)
    assert rewirer.history and recorder.dense and all(nonzero > k for _, _, nonzero, k in recorder.dense)
    assert_mask_invariants(model, SPARSITY)


def test_rl_zoo_trains_sparse_ppo_a2c_and_dqn_models(tmp_path: Path) -> None:
    """python -m rl_zoo3.train --algo ppo|a2c|dqn -conf hyperparams/<algo>.yml leaves a saved model that is sparse."""
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    runs = {
        "ppo": ["-n", "512"],
        "a2c": ["-n", "256"],
        "dqn": ["-n", "600", "-params", "learning_starts:100", "train_freq:64", "gradient_steps:8"],
    }
    procs = {}
    for algo, extra in runs.items():
        cmd = [
            sys.executable,
            "-m",
            "rl_zoo3.train",
            "--algo",
            algo,
            "--env",
            "CartPole-v1",
            "-conf",
            f"hyperparams/{algo}.yml",
        ]
        cmd += ["-f", str(tmp_path / algo), "--seed", "0", "--num-threads", "1", *extra]
        procs[algo] = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for algo, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-5000:]
        model = {"ppo": PPO, "a2c": A2C, "dqn": DQN}[algo].load(tmp_path / algo / algo / "CartPole-v1_1" / "CartPole-v1.zip")
        kept = expected_kept(model, SPARSITY)
        assert nonzero_counts(model) == kept, algo
        assert all(s["pruned_nonzero"] == 0 and s["kept"] == kept[n] for n, s in sparsity_summary(model).items())
        assert (
            "sb3_tar.callbacks.TARCallback"
            in (tmp_path / algo / algo / "CartPole-v1_1" / "CartPole-v1" / "config.yml").read_text()
        )


_LOAD_PLAIN = """
import sys
import numpy as np
from stable_baselines3 import A2C, DQN, PPO
algo, path, obs = sys.argv[1], sys.argv[2], np.load(sys.argv[3])
model = {"PPO": PPO, "A2C": A2C, "DQN": DQN}[algo].load(path, device="cpu")
np.save(path + ".actions.npy", model.predict(obs, deterministic=True)[0])
np.savez(path + ".weights.npz", **{k: v.numpy() for k, v in model.policy.state_dict().items()})
print(type(model.policy).__module__ + "." + type(model.policy).__qualname__)
"""


#: The models that :func:`sb3_tar.to_sb3` writes as plain SB3 files (:func:`fresh`), by (case, how they were made sparse).
TO_SB3 = [
    ("ppo-cartpole", "callback"),
    ("ppo-pendulum", "policy"),
    ("a2c-cartpole", "policy"),
    ("a2c-cartpole", "callback"),
    ("dqn-cartpole", "callback"),
    ("dqn-cartpole", "policy"),
]


@pytest.mark.parametrize("case, how", TO_SB3)
def test_to_sb3_writes_plain_ppo_a2c_dqn_files(case: str, how: str, fresh: dict) -> None:
    """to_sb3 bakes the masks in: the file loads where sb3-tar cannot be imported (plain SB3 policy class) and predicts
    the same actions; the weights it loads there are exactly zero at every pruned position, online and DQN's target,
    and equal to the sparse model's elsewhere."""
    model, path, obs, job = fresh["to_sb3", case, how]
    assert job.last_line().startswith("stable_baselines3.")
    assert np.array_equal(np.load(str(path) + ".actions.npy"), model.predict(obs, deterministic=True)[0])
    loaded = np.load(str(path) + ".weights.npz")
    assert not [k for k in loaded.files if k.endswith("_mask")]
    checked = 0
    for net in sparse_networks(model.policy):
        for prefix, layer, mask in zip(_prefixes(model, net), net.linears, masks_of(model)[net.name], strict=True):
            kept = mask.numpy()
            weight = loaded[f"{prefix}.weight"]
            assert (weight[~kept] == 0).all() and int((weight != 0).sum()) == int(kept.sum()), prefix  # pruned: exactly 0
            np.testing.assert_array_equal(weight[kept], layer.weight.detach().numpy()[kept])
            checked += 1
            if net.target_layers:  # DQN's q_net_target: a lagged copy, zero at the same positions
                target = loaded[prefix.replace("q_net.", "q_net_target.", 1) + ".weight"]
                assert (target[~kept] == 0).all(), prefix
                checked += 1
    assert checked == 6  # PPO/A2C: 3 layers in each branch; DQN: 3 layers online and 3 in the target
    plain = type(model).load(path, device="cpu")
    assert nonzero_counts(plain) == expected_kept(model, SPARSITY)


def test_ppo_with_subprocess_envs() -> None:
    """Rollouts from SubprocVecEnv workers: the policy (and its masks) lives in this process; nothing else changes."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    env = make_vec_env("CartPole-v1", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        model = PPO(
            "MlpPolicy",
            env,
            n_steps=32,
            batch_size=16,
            n_epochs=2,
            seed=0,
            device="cpu",
            policy_kwargs=dict(net_arch=[64, 64]),
        )
        recorder = Recorder()
        model.learn(128, callback=CallbackList([TARCallback(sparsity=SPARSITY, seed=0), recorder]))
        assert_mask_invariants(model, SPARSITY, recorder.masks)
        assert nonzero_counts(model) == expected_kept(model, SPARSITY)
    finally:
        env.close()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict:
    """
    The models of the fresh-process tests above, trained and saved here, then loaded in two new processes: one with
    sb3-tar (the saved sparse models, :data:`SAVE_LOAD`, and the small dense ones), one where sb3-tar cannot be
    imported (the plain files of :func:`sb3_tar.to_sb3`, :data:`TO_SB3`).

    :return: By ``("save_load", case, how)``: the hand-expected kept counts and the load's job; by
        ``("small_dense", case)``: the model and the job; by ``("to_sb3", case, how)``: the model, the plain file, the
        observations it was asked to predict and the job.
    """
    from sb3_tar import to_sb3

    root = tmp_path_factory.mktemp("fresh")
    out: dict = {}
    jobs, plain = [], []
    for case, how in SAVE_LOAD:
        folder = root / f"save_load-{case}-{how}"
        folder.mkdir()
        if how == "callback":
            model = make(case)
            model.learn(STEPS, callback=TARCallback(sparsity=SPARSITY, seed=0))
        else:
            model = make_sparse(case)
            model.learn(STEPS)
        model.save(folder / "model.zip")
        torch.save(clone_masks(model), folder / "masks.pt")
        out["save_load", case, how] = (expected_kept(model, SPARSITY),)
        argv = [type(model).__name__, folder / "model.zip", folder / "masks.pt", CASES[case][1]]
        jobs.append((("save_load", case, how), (_LOAD_SCRIPT, argv)))
    for case in SMALL_DENSE_CASES:
        model = _small_dense_model(case)
        path = root / f"small_dense-{case}.zip"
        model.save(path)
        out["small_dense", case] = (model,)
        jobs.append((("small_dense", case), (_SMALL_DENSE_LOAD, [type(model).__name__, path])))
    for case, how in TO_SB3:
        model = make(case) if how == "callback" else make_sparse(case)
        model.learn(128, callback=TARCallback(sparsity=SPARSITY, seed=0) if how == "callback" else None)
        path = to_sb3(model, root / f"plain-{case}-{how}.zip")
        obs = np.stack([model.observation_space.sample() for _ in range(32)])
        np.save(root / f"obs-{case}-{how}.npy", obs)
        out["to_sb3", case, how] = (model, path, obs)
        plain.append((("to_sb3", case, how), (_LOAD_PLAIN, [type(model).__name__, path, root / f"obs-{case}-{how}.npy"])))
    for batch, without in ((jobs, None), (plain, "sb3_tar")):
        for (key, _), job in zip(batch, run_fresh([j for _, j in batch], without=without)):
            out[key] = (*out[key], job)
    return out
