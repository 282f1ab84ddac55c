"""SparsePolicy for SAC, TD3 and TQC with real training: masks fixed, exact counts, targets zero."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from sb3_utils import ALGOS, SMALL, assert_mask_invariants, clone_masks, small_kwargs
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.env_util import make_vec_env

import sb3_tar
from sb3_tar import sac, td3, tqc
from sb3_tar.sb3.execution.mask_store import MASK_BUFFER

POLICIES = {"sac": sac.SparsePolicy, "td3": td3.SparsePolicy, "tqc": tqc.SparsePolicy}


@pytest.mark.parametrize("algo", ["sac", "td3", "tqc"])
@pytest.mark.parametrize("env_id", ["Pendulum-v1", "HalfCheetah-v4"])
def test_training_keeps_masks(algo: str, env_id: str) -> None:
    kwargs = small_kwargs(algo)
    kwargs["policy_kwargs"] = dict(kwargs.get("policy_kwargs", {}), **SMALL, sparsity=0.9, criterion="magnitude")
    model = ALGOS[algo](POLICIES[algo], env_id, **kwargs)
    initial = clone_masks(model)
    assert_mask_invariants(model, 0.9)
    model.learn(250)
    assert_mask_invariants(model, 0.9, initial)


@pytest.mark.parametrize(
    "algo, overrides",
    [
        ("sac", dict(gradient_steps=3)),
        ("td3", dict(policy_delay=2, gradient_steps=2)),
        ("tqc", dict(gradient_steps=2)),
    ],
)
def test_multiple_gradient_steps_and_parallel_envs(algo: str, overrides: dict) -> None:
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    kwargs = small_kwargs(algo, **overrides)
    kwargs["policy_kwargs"] = dict(kwargs.get("policy_kwargs", {}), **SMALL, sparsity=0.8, criterion="erk")
    model = ALGOS[algo](POLICIES[algo], env, train_freq=2, **kwargs)
    initial = clone_masks(model)
    model.learn(300)
    assert model._n_updates > 100
    assert_mask_invariants(model, 0.8, initial)


def test_defaults_and_aliases() -> None:
    assert sb3_tar.SACSparsePolicy is sac.SparsePolicy
    assert sb3_tar.TD3SparsePolicy is td3.SparsePolicy
    assert sb3_tar.TQCSparsePolicy is tqc.SparsePolicy
    model = SAC(sac.SparsePolicy, "Pendulum-v1", seed=0)  # documented defaults: 0.9, magnitude, TAR rr=0.01
    reports = model.policy.sparsity_reports
    assert set(reports) == {"actor", "critic.qf0", "critic.qf1"}
    for report in reports.values():
        assert report.criterion == "magnitude" and report.revival == "tar"
        assert report.budget == round(0.01 * report.total)
        assert report.kept == round(0.1 * report.total)
    assert_mask_invariants(model, 0.9)


def test_role_sparsities_and_options() -> None:
    model = TD3(
        td3.SparsePolicy,
        "Pendulum-v1",
        seed=0,
        policy_kwargs=dict(
            net_arch=[64, 64],
            actor_sparsity=0.5,
            critic_sparsity=0.95,
            criterion="synflow",
            synflow_iters=10,
            revival="uniform",
            recovery_ratio=0.02,
            budget_mode="extra",
            revived_init="zero",
        ),
    )
    reports = model.policy.sparsity_reports
    assert reports["actor"].kept == round(0.5 * reports["actor"].total) + round(0.02 * reports["actor"].total)
    assert reports["critic.qf0"].kept == round(0.05 * reports["critic.qf0"].total) + round(0.02 * reports["critic.qf0"].total)
    assert reports["actor"].revival == "uniform" and reports["actor"].criterion == "synflow"


def test_buffers_on_online_and_target_networks() -> None:
    model = TD3(td3.SparsePolicy, "Pendulum-v1", seed=0, policy_kwargs=dict(net_arch=[32, 32]))
    keys = [k for k in model.policy.state_dict() if k.endswith(MASK_BUFFER)]
    for prefix in ("actor.", "actor_target.", "critic.", "critic_target."):
        assert any(k.startswith(prefix) for k in keys), prefix
    state = model.policy.state_dict()
    for key in keys:
        if key.startswith(("actor_target.", "critic_target.")):
            online = key.replace("_target.", ".", 1)
            assert torch.equal(state[key], state[online])


def test_same_seed_same_masks_and_weights() -> None:
    def run(seed: int):
        model = SAC(sac.SparsePolicy, "Pendulum-v1", **small_kwargs("sac", seed=seed), policy_kwargs=dict(SMALL))
        model.learn(120)
        return clone_masks(model), {k: v.clone() for k, v in model.policy.state_dict().items()}

    masks_a, weights_a = run(3)
    masks_b, weights_b = run(3)
    masks_c, _ = run(4)
    for name in masks_a:
        assert all(torch.equal(a, b) for a, b in zip(masks_a[name], masks_b[name]))
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert any(not torch.equal(a, c) for name in masks_a for a, c in zip(masks_a[name], masks_c[name]))


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (dict(sparsity=1.0), ValueError, r"sparsity=1.0 is outside the allowed range \[0, 1\)"),
        (dict(sparsity=-0.1), ValueError, "allowed range"),
        (dict(criterion="snip"), ValueError, r"valid values are \['random', 'erk', 'magnitude', 'synflow'\]"),
        (dict(revival="rigl"), ValueError, r"\['tar', 'uniform', 'none'\]"),
        (dict(recovery_ratio=0.5, sparsity=0.9), ValueError, "recovery_ratio=0.5"),
        (dict(floor_fraction=2.0), ValueError, "floor_fraction"),
        (dict(seed="1"), TypeError, "seed must be an int"),
    ],
)
def test_bad_policy_kwargs(bad: dict, error: type, match: str) -> None:
    env = gym.make("Pendulum-v1")
    with pytest.raises(error, match=match):
        SAC(sac.SparsePolicy, env, policy_kwargs=dict(net_arch=[16], **bad))


@pytest.mark.parametrize("mask_gradients", [False, True])
def test_gradient_masking_option(mask_gradients: bool) -> None:
    """Weights are exactly zero either way; with mask_gradients=True Adam's state at pruned entries is zero too."""
    model = SAC(
        sac.SparsePolicy,
        "Pendulum-v1",
        **small_kwargs("sac"),
        policy_kwargs=dict(SMALL, sparsity=0.9, mask_gradients=mask_gradients, sparse_execution=False),
    )  # the masked dense path: sparse execution keeps no optimizer state at pruned entries at all
    initial = clone_masks(model)
    model.learn(200)
    assert_mask_invariants(model, 0.9, initial)
    optimizer = model.policy.critic.optimizer
    layers = model.policy.mask_enforcer.networks[1].linears
    for layer, mask in zip(layers, initial["critic.qf0"]):
        state = optimizer.state[layer.weight]
        pruned_state = torch.cat([state["exp_avg"][~mask], state["exp_avg_sq"][~mask]])
        assert bool((pruned_state == 0).all()) is mask_gradients
    # the option is saved with the policy
    assert model.policy._get_constructor_parameters()["mask_gradients"] is mask_gradients


def test_callback_gradient_masking_survives_reload(tmp_path) -> None:
    from sb3_tar.callbacks import TARCallback
    from sb3_tar.sb3.reporting.model_masks import enforcer_of

    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs("sac"))
    model.learn(60, callback=TARCallback(sparsity=0.9, mask_gradients=True))
    assert enforcer_of(model).mask_gradients
    model.save(tmp_path / "m.zip")
    loaded = SAC.load(tmp_path / "m.zip", env=model.get_env())
    assert enforcer_of(loaded).mask_gradients
    with pytest.raises(TypeError, match="mask_gradients"):
        TARCallback(mask_gradients="yes")
