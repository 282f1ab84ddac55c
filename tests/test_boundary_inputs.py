"""Odd inputs are refused at the boundary with a clear error that names the bad value (issue 20, point 5)."""

from __future__ import annotations

import pytest
import torch
from sb3_contrib import TQC
from sb3_utils import small_kwargs
from stable_baselines3 import DQN, PPO, SAC, TD3
from stable_baselines3.common.envs import BitFlippingEnv
from stable_baselines3.her import HerReplayBuffer

import sb3_tar
from sb3_tar import sac, td3, tqc
from sb3_tar.core.sparsify import max_sparsity
from sb3_tar.sb3.reporting.model_masks import masks_of, sparsity_summary


def test_zero_width_layer_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"'latent_pi.0' of actor has a 0x3 weight.*net_arch entry must be >= 1"):
        SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(net_arch=[0, 32]), device="cpu")
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[0, 32]), **small_kwargs("sac"))
    with pytest.raises(ValueError, match="net_arch entry must be >= 1"):
        model.learn(10, callback=sb3_tar.TARCallback(sparsity=0.5))
    assert masks_of(model) is None  # the failed call left the model dense


def test_fewer_kept_weights_than_layers_is_refused() -> None:
    # Pendulum actor with net_arch=[2, 2]: 2x3 + 2x2 + 1x2 (mu) + 1x2 (log_std) = 14 weights in 4 layers;
    # sparsity 0.99 keeps round(0.01 * 14) = 0 of them.
    with pytest.raises(ValueError, match=r"sparsity=0.99 keeps 0 of the 14 weights of actor, fewer than its 4 layers"):
        SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(net_arch=[2, 2], sparsity=0.99), device="cpu")
    # the largest sparsity the message offers keeps round((1 - 0.7142) * 14) = round(4.0012) = 4 weights: one per layer
    assert max_sparsity(14, 4) == 0.7142
    model = SAC(
        sac.SparsePolicy,
        "Pendulum-v1",
        policy_kwargs=dict(net_arch=[2, 2], sparsity=0.7142, criterion="random", revival="none"),
        device="cpu",
    )
    assert sparsity_summary(model)["actor"]["kept"] == 4
    plain = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[2, 2]), **small_kwargs("sac", learning_starts=5))
    before = {k: v.clone() for k, v in plain.policy.state_dict().items()}
    with pytest.raises(ValueError, match="fewer than its"):
        plain.learn(10, callback=sb3_tar.TARCallback(sparsity=0.99))
    after = plain.policy.state_dict()
    assert masks_of(plain) is None and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "algo, policy, expected",
    [
        (PPO, sac.SparsePolicy, "SAC"),
        (TD3, sac.SparsePolicy, "SAC"),
        (SAC, td3.SparsePolicy, "TD3"),
        (SAC, tqc.SparsePolicy, "TQC"),
        (TQC, sac.SparsePolicy, "SAC"),
    ],
)
def test_sparse_policy_with_the_wrong_algorithm_is_a_type_error(algo, policy, expected) -> None:
    with pytest.raises(TypeError, match=rf"SparsePolicy is a policy for {expected}, got {algo.__name__}"):
        algo(policy, "Pendulum-v1", device="cpu")


def test_sparse_policy_with_dqn_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="is a policy for SAC, got DQN"):
        DQN(sac.SparsePolicy, "CartPole-v1", device="cpu")


def test_sparsity_one_names_sparsity() -> None:
    with pytest.raises(ValueError, match=r"^sparsity=1.0 is outside the allowed range \[0, 1\)"):
        sb3_tar.TARCallback(sparsity=1.0)
    with pytest.raises(ValueError, match=r"^actor_sparsity=1.0 is outside"):
        sb3_tar.TARCallback(sparsity=0.5, actor_sparsity=1.0)
    with pytest.raises(ValueError, match=r"^sparsity=1.0 is outside"):
        SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(sparsity=1.0), device="cpu")


def test_magnitude_layer_is_magnitude_with_layer_scope() -> None:
    callback = sb3_tar.TARCallback(sparsity=0.9, criterion="magnitude_layer")
    assert {(c.criterion, c.magnitude_scope) for c in callback.configs.values()} == {("magnitude", "layer")}
    dst = sb3_tar.DSTCallback(sparsity=0.9, criterion="magnitude_layer")
    assert {(c.criterion, c.magnitude_scope) for c in dst.configs.values()} == {("magnitude", "layer")}
    # per-layer scope: every layer keeps round(0.1 * its size) of its largest weights (here 64x3 -> 19)
    model = SAC(
        sac.SparsePolicy,
        "Pendulum-v1",
        policy_kwargs=dict(net_arch=[64, 64], sparsity=0.9, criterion="magnitude_layer", revival="none"),
        device="cpu",
    )
    first = model.policy.actor.latent_pi[0].weight
    assert int((first != 0).sum()) == round(0.1 * first.numel())


def test_dict_observations_point_to_multi_input_policy_and_the_callback() -> None:
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    with pytest.raises(TypeError, match=r"Dict observation space.*MultiInputPolicy.*TARCallback"):
        SAC(sac.SparsePolicy, env, device="cpu")
    # ... and what the message points to works, with HER
    model = SAC(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=2, goal_selection_strategy="future"),
        policy_kwargs=dict(net_arch=[32, 32]),
        **small_kwargs("sac", learning_starts=20, batch_size=16, buffer_size=1000),
    )
    model.learn(60, callback=sb3_tar.TARCallback(sparsity=0.8))
    summary = sparsity_summary(model)
    assert {name: stats["pruned_nonzero"] for name, stats in summary.items()} == {n: 0 for n in summary}
    assert summary["actor"]["kept"] == round(0.2 * summary["actor"]["total"])
