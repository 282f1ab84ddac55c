"""Sparse CnnPolicy/MultiInputPolicy models (PPO, A2C, DQN) and sb3-contrib's QR-DQN, TRPO, MaskablePPO and CrossQ
(issue 30): exact per-layer kept counts, masks fixed through training and target copies, pruned weights exactly zero
online, in the target and after save/load in a fresh process; refusals name what is supported.

Real training on tiny real envs (``image_envs.BrightSideEnv``: 36x36 images, NatureCNN), a few hundred steps.
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
from sb3_contrib import QRDQN, TRPO, CrossQ, MaskablePPO, RecurrentPPO
from sb3_contrib.common.wrappers import ActionMasker
from sb3_utils import Recorder, assert_mask_invariants, clone_masks, expected_kept
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import CallbackList

from sb3_tar.callbacks import TARCallback
from sb3_tar.sb3.networks import sparse_networks
from sb3_tar.sb3.reporting.model_masks import sparsity_summary

REPO = Path(__file__).resolve().parents[1]
#: Every NatureCNN layer size (and every head here) is a multiple of 4: at 0.75 the "random" criterion (uniform
#: per-layer density) without revival keeps exactly a quarter of every layer.
SPARSITY = 0.75
NATURE_CNN = ["cnn.0", "cnn.2", "cnn.4", "linear.0"]
#: 1x8x8 -> 32 channels, 32x4x4 -> 64, 64x3x3 -> 64 (conv weights), then 64 flattened features -> features_dim.
CONV_SIZES = [32 * 1 * 8 * 8, 64 * 32 * 4 * 4, 64 * 64 * 3 * 3]

CASES = {
    "ppo-cnn": (PPO, "CnnPolicy", {}, dict(n_steps=64, batch_size=16, n_epochs=4)),
    "ppo-cnn-unshared": (
        PPO,
        "CnnPolicy",
        dict(continuous=True),
        dict(n_steps=64, batch_size=16, n_epochs=2, policy_kwargs=dict(share_features_extractor=False)),
    ),
    "a2c-multiinput": (A2C, "MultiInputPolicy", dict(dict_obs=True), dict(n_steps=8)),
    "dqn-cnn": (
        DQN,
        "CnnPolicy",
        {},
        dict(learning_starts=50, buffer_size=500, train_freq=4, target_update_interval=20, batch_size=16),
    ),
}


def make(case: str):
    algo, policy, env_kwargs, kwargs = CASES[case]
    kwargs = dict(kwargs)
    extractor = dict(cnn_output_dim=32) if policy == "MultiInputPolicy" else dict(features_dim=32)
    policy_kwargs = dict(features_extractor_kwargs=extractor, **kwargs.pop("policy_kwargs", {}))
    return algo(policy, BrightSideEnv(**env_kwargs), seed=0, device="cpu", policy_kwargs=policy_kwargs, **kwargs)


def layer_counts(model) -> dict[str, list[int]]:
    """Nonzero weights of every layer of every sparse network, read from the real weights."""
    return {net.name: [int((layer.weight != 0).sum()) for layer in net.linears] for net in sparse_networks(model.policy)}


def test_roles_of_cnn_and_multi_input_policies() -> None:
    """The documented mapping: a shared extractor is a network of role actor; unshared ones follow their branch;
    DQN's Q-network holds its convolutions first."""
    names = {case: [(n.name, n.role, [x for x, _ in n.layers]) for n in sparse_networks(make(case).policy)] for case in CASES}
    assert names["ppo-cnn"] == [
        ("actor", "actor", ["action_net"]),
        ("critic", "critic", ["value_net"]),
        ("features_extractor", "actor", NATURE_CNN),
    ]
    assert names["ppo-cnn-unshared"][2:] == [
        ("pi_features_extractor", "actor", NATURE_CNN),
        ("vf_features_extractor", "critic", NATURE_CNN),
    ]
    assert names["a2c-multiinput"][2] == (
        "features_extractor",
        "actor",
        [f"extractors.image.{n}" for n in NATURE_CNN],
    )
    assert names["dqn-cnn"] == [("q_net", "critic", [f"features_extractor.{n}" for n in NATURE_CNN] + ["q_net.0"])]


@pytest.mark.parametrize("case", list(CASES))
def test_exact_per_layer_counts_fixed_masks_and_zeros(case: str) -> None:
    model = make(case)
    recorder = Recorder()
    model.learn(
        256, callback=CallbackList([TARCallback(sparsity=SPARSITY, criterion="random", revival="none", seed=0), recorder])
    )
    sizes = {net.name: [layer.weight.numel() for layer in net.linears] for net in sparse_networks(model.policy)}
    for name, layers in sizes.items():
        if "features_extractor" in name or name == "q_net":
            assert layers[:3] == CONV_SIZES  # the convolutions are sparsified layers, 4-D masks
            assert [m.dim() for m in recorder.masks[name][:3]] == [4, 4, 4]
    quarter = {name: [n // 4 for n in layers] for name, layers in sizes.items()}
    assert {name: [int(m.sum()) for m in masks] for name, masks in recorder.masks.items()} == quarter
    # after training (PPO's epochs, A2C's RMSprop, DQN's target copies): same masks, a quarter of every layer nonzero
    assert_mask_invariants(model, SPARSITY, recorder.masks)
    assert layer_counts(model) == quarter
    trained = model.policy.state_dict()
    conv = next(k for k in trained if k.endswith("cnn.0.weight"))
    assert not torch.equal(trained[conv], recorder.weights[conv])  # the convolutions trained
    if case.startswith("dqn"):
        (net,) = sparse_networks(model.policy)
        assert model._n_calls >= 2 * model.target_update_interval  # several hard copies
        for target, online, mask in zip(net.target_layers, net.linears, recorder.masks["q_net"]):
            assert torch.all(target.weight[~mask] == 0.0) and torch.equal(target.weight_mask, online.weight_mask)
        target_conv = "q_net_target.features_extractor.cnn.0.weight"
        assert not torch.equal(trained[target_conv], recorder.weights[target_conv])  # a copy carried trained weights


_LOAD = """
import json, sys, torch
sys.path.insert(0, sys.argv[4])
from stable_baselines3 import DQN, PPO
from sb3_tar.sb3.reporting.model_masks import masks_of
from sb3_tar.sb3.networks import sparse_networks
model = {"PPO": PPO, "DQN": DQN}[sys.argv[1]].load(sys.argv[2], device="cpu")
saved, masks, out = torch.load(sys.argv[3]), masks_of(model), {}
for net in sparse_networks(model.policy):
    out[net.name] = dict(
        same=all(torch.equal(a, b) for a, b in zip(masks[net.name], saved[net.name])),
        pruned_nonzero=sum(int((l.weight[~m] != 0).sum()) for ls in (net.linears, net.target_layers)
                           for l, m in zip(ls, masks[net.name])),
        kept=[int((l.weight != 0).sum()) for l in net.linears],
    )
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict:
    """The CNN models trained sparse, saved, and loaded back in one new process: by case, the model and the load's
    job."""
    root = tmp_path_factory.mktemp("fresh")
    out, jobs = {}, []
    for case in ("ppo-cnn", "dqn-cnn"):
        model = make(case)
        model.learn(192, callback=TARCallback(sparsity=SPARSITY, criterion="random", revival="none", seed=0))
        model.save(root / f"{case}.zip")
        torch.save(clone_masks(model), root / f"{case}.pt")
        out[case] = model
        jobs.append((_LOAD, [type(model).__name__, root / f"{case}.zip", root / f"{case}.pt", REPO / "tests"]))
    return {case: (out[case], job) for case, job in zip(out, run_fresh(jobs))}


@pytest.mark.parametrize("case", ["ppo-cnn", "dqn-cnn"])
def test_cnn_masks_survive_save_and_load_in_a_fresh_process(case: str, fresh: dict) -> None:
    model, job = fresh[case]
    report = json.loads(job.last_line())
    assert report == {name: dict(same=True, pruned_nonzero=0, kept=counts) for name, counts in layer_counts(model).items()}
    assert all(counts == [n // 4 for n in _sizes(model, name)] for name, counts in layer_counts(model).items())


def _sizes(model, name: str) -> list[int]:
    return [layer.weight.numel() for layer in next(n for n in sparse_networks(model.policy) if n.name == name).linears]


CONTRIB = {
    "qrdqn": (
        QRDQN,
        "CartPole-v1",
        dict(learning_starts=50, train_freq=4, target_update_interval=10, batch_size=16, buffer_size=500),
    ),
    "trpo": (TRPO, "Pendulum-v1", dict(n_steps=64, batch_size=32, n_critic_updates=3)),
    "maskable-ppo": (MaskablePPO, "masked-CartPole", dict(n_steps=64, batch_size=16, n_epochs=4)),
    "crossq": (CrossQ, "Pendulum-v1", dict(learning_starts=50, batch_size=16)),
}


@pytest.mark.parametrize("case", list(CONTRIB))
def test_contrib_algorithms_keep_exact_counts_and_fixed_masks(case: str) -> None:
    algo, env, kwargs = CONTRIB[case]
    if env == "masked-CartPole":  # MaskablePPO needs action masks: action 0 is invalid at every third step
        steps = iter(range(10**9))
        env = ActionMasker(gym.make("CartPole-v1"), lambda _: np.array([next(steps) % 3 != 0, True]))
    model = algo("MlpPolicy", env, seed=0, device="cpu", policy_kwargs=dict(net_arch=[32, 32]), **kwargs)
    recorder = Recorder()
    model.learn(200, callback=CallbackList([TARCallback(sparsity=0.9, seed=0), recorder]))
    kept = expected_kept(model, 0.9)
    expected_names = {
        "qrdqn": ["quantile_net"],
        "trpo": ["actor", "critic"],
        "maskable-ppo": ["actor", "critic"],
        "crossq": ["actor", "critic.qf0", "critic.qf1"],
    }[case]
    assert list(kept) == expected_names
    assert {n: sum(int(m.sum()) for m in masks) for n, masks in recorder.masks.items()} == kept
    assert {n: sum(c) for n, c in layer_counts(model).items()} == kept
    for name, stats in sparsity_summary(model).items():
        assert stats["pruned_nonzero"] == 0 and stats["kept"] == kept[name], (name, stats)
    for net in sparse_networks(model.policy):  # the masks did not move; targets (QR-DQN's) are zero where pruned
        for layers in (net.linears, net.target_layers):
            for layer, mask in zip(layers, recorder.masks[net.name]):
                assert torch.all(layer.weight[~mask] == 0.0)
        assert all(torch.equal(a, b) for a, b in zip(clone_masks(model)[net.name], recorder.masks[net.name]))
    trained = model.policy.state_dict()
    assert any(not torch.equal(trained[k], recorder.weights[k]) for k in recorder.weights if k.endswith(".weight"))
    if case == "trpo":  # TRPO moves the actor by a line search, not an optimizer step: it moved, and stayed sparse
        key = "action_net.weight"
        assert not torch.equal(trained[key], recorder.weights[key])
    if case == "crossq":  # no target network: CrossQ's batch-norm critics have none
        assert not hasattr(model.policy, "critic_target") and all(not n.target_layers for n in sparse_networks(model.policy))


def test_recurrent_ppo_is_refused_naming_what_is_supported() -> None:
    model = RecurrentPPO("MlpLstmPolicy", "CartPole-v1", n_steps=32, batch_size=32, seed=0, device="cpu")
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    pattern = (
        r"TARCallback supports SAC, TD3, TQC and CrossQ .*PPO, A2C and DQN, "
        r"and sb3-contrib's TRPO, MaskablePPO and QR-DQN, got RecurrentPPO"
    )
    with pytest.raises(TypeError, match=pattern):
        model.learn(32, callback=TARCallback())
    assert all(torch.equal(v, model.policy.state_dict()[k]) for k, v in before.items()) and model.num_timesteps == 0


@pytest.mark.parametrize("callback", ["CyclicCallback", "SculptCallback", "IEECallback"])
@pytest.mark.parametrize("algo", [PPO, A2C, DQN])
def test_methods_that_do_not_fit_on_policy_and_q_models_are_refused(callback: str, algo) -> None:
    """The cyclic/sculpt/IEE schedules (replay-ratio and exploration phases of off-policy actor-critics) are refused on
    PPO/A2C/DQN, naming what they and the others support."""
    import sb3_tar

    kwargs = dict(n_steps=32, batch_size=32) if algo is PPO else dict(n_steps=8) if algo is A2C else {}
    model = algo("MlpPolicy", "CartPole-v1", seed=0, device="cpu", **kwargs)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    pattern = (
        rf"{callback} supports SAC, TD3, TQC and CrossQ \(off-policy actor-critic algorithms\); PPO, A2C, DQN, TRPO, "
        rf"MaskablePPO and QR-DQN are supported by TARCallback, DSTCallback, GMPCallback, SmallDenseCallback and "
        rf"DiagnosticsCallback, "
        rf"got {algo.__name__}"
    )
    with pytest.raises(TypeError, match=pattern):
        model.learn(32, callback=getattr(sb3_tar, callback)())
    assert all(torch.equal(v, model.policy.state_dict()[k]) for k, v in before.items()) and model.num_timesteps == 0


def test_gmp_on_trpo_plans_its_critic_steps_and_ends_exact() -> None:
    """TRPO steps policy.optimizer n_critic_updates * ceil(n_steps / batch_size) times per rollout (the actor moves by a
    line search): GMP's plan counts those steps, and both roles reach their exact final counts at its end."""
    from sb3_tar.baselines import GMPCallback

    model = TRPO(
        "MlpPolicy",
        "Pendulum-v1",
        n_steps=64,
        batch_size=32,
        n_critic_updates=3,
        seed=0,
        device="cpu",
        policy_kwargs=dict(net_arch=[32, 32]),
    )
    gmp = GMPCallback(sparsity=0.9, update_interval=2, seed=0)
    model.learn(256, callback=gmp)
    assert gmp.pruner.total_steps == 4 * 3 * 2 == gmp.pruner.step and gmp.pruner.finished
    kept = expected_kept(model, 0.9)
    assert {n: sum(c) for n, c in layer_counts(model).items()} == kept
    assert all(s["pruned_nonzero"] == 0 and s["kept"] == kept[n] for n, s in sparsity_summary(model).items())
