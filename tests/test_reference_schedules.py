"""The reference study's DST and GMP schedules as the PPO/A2C/DQN defaults (Graesser et al. 2022, google-research/rigl
``rigl/rl/tfagents/configs``; ``docs/method.md``, "PPO and DQN in the reference study"): real short runs whose update
and prune steps and drop fractions are computed by hand, explicit values that win, SAC unchanged."""

from __future__ import annotations

import math

import pytest
from stable_baselines3 import DQN, PPO, SAC

from sb3_tar import ppo
from sb3_tar.baselines import GMPCallback
from sb3_tar.callbacks import DSTCallback
from sb3_tar.core.dynamic import dst_config
from sb3_tar.core.gmp import GMPConfig
from sb3_tar.sb3.methods.reference_schedules import REFERENCE_DST, REFERENCE_GMP

#: PPO: 40 rollouts of 128 steps, 10 epochs of 128 / 16 = 8 minibatches: T = 40 * 10 * 8 = 3200 gradient steps.
#: DQN: 6100 steps, train_freq 4, gradient_steps 2, learning_starts 100: ceil(6100 / 4) = 1525 rollouts, the first
#: floor(100 / 4) = 25 before learning: T = (1525 - 25) * 2 = 3000.
RUNS = {
    "ppo": (PPO, dict(n_steps=128, batch_size=16, n_epochs=10), 40 * 128, 3200),
    "dqn": (DQN, dict(learning_starts=100, train_freq=4, gradient_steps=2, batch_size=32, buffer_size=10_000), 6100, 3000),
}
PPO_END = 120_000 / 156_480


def make(algo: str):
    cls, kwargs, _, _ = RUNS[algo]
    return cls("MlpPolicy", "CartPole-v1", seed=0, device="cpu", policy_kwargs=dict(net_arch=[32, 32]), **kwargs)


def test_the_fractions_give_the_studys_steps_at_its_budget() -> None:
    """At the study's run lengths (PPO 489 * 320 = 156,480 gradient steps, DQN 100,000) the fractions give its steps:
    GMP from 32,000 to 120,000 (PPO) and 20,000 to 75,000 (DQN); DST's last update before 120,000 / 75,000 (whose drop
    fraction is 0 in their cosine, as in ours)."""
    for algo, total, window, last in (
        ("ppo", 156_480, (32_000, 120_000), 119_000),
        ("dqn", 100_000, (20_000, 75_000), 74_000),
    ):
        gmp = REFERENCE_GMP[algo]
        config = GMPConfig(gmp["start_fraction"], gmp["end_fraction"], gmp["update_interval"])
        assert config.window(total) == window
        dst = dst_config("rigl", **REFERENCE_DST[algo])
        assert dst.end_step(total) == pytest.approx(window[1])
        assert dst.last_update_step(total, total) == last


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_dst_defaults_on_a_real_run_match_a_hand_computation(algo: str) -> None:
    """SET with no schedule argument: update every 1000 gradient steps while t < T_end = end_fraction * T, drop fraction
    0.1 / 2 * (1 + cos(pi * t / T_end)), each layer dropping round(zeta_t * K_l) of its K_l kept weights."""
    _, _, steps, total = RUNS[algo]
    model = make(algo)
    dst = DSTCallback(method="set", sparsity=0.9, seed=0, verbose=1)
    model.learn(steps, callback=dst)
    end = PPO_END if algo == "ppo" else 0.75
    assert dst.reference_defaults == {"update_interval": 1000, "drop_fraction": 0.1, "end_fraction": end}
    rewirer = dst.rewirer
    assert (rewirer.config.update_interval, rewirer.config.drop_fraction, rewirer.config.end_fraction) == (1000, 0.1, end)
    assert rewirer.total_steps == rewirer.step == total
    t_end = end * total  # PPO: 2453.99, DQN: 2250
    assert [1000, 2000] == [t for t in range(1000, total + 1, 1000) if t < t_end]
    networks = ["critic", "actor"] if algo == "ppo" else ["q_net"]
    updates = rewirer.history
    assert sorted({u.step for u in updates}) == [1000, 2000]
    assert sorted(u.network for u in updates if u.step == 1000) == sorted(networks)
    for update in updates:
        zeta = 0.1 / 2 * (1 + math.cos(math.pi * update.step / t_end))
        assert update.drop_fraction == pytest.approx(zeta)
        assert list(update.dropped) == [round(zeta * k) for k in update.kept] == list(update.grown)
    assert sum(sum(u.dropped) for u in updates) > 0


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_gmp_defaults_on_a_real_run_match_a_hand_computation(algo: str) -> None:
    """GMP with no schedule argument: t0 = round(start_fraction * T), t1 = round(end_fraction * T), prune steps
    t0 + k * interval below t1, and t1. PPO (T = 3200): t0 = round(654.40) = 654, t1 = round(2453.99) = 2454, every
    500: 1154, 1654, 2154, 2454. DQN (T = 3000): t0 = 600, t1 = 2250, every 1000: 1600, 2250."""
    _, _, steps, total = RUNS[algo]
    model = make(algo)
    gmp = GMPCallback(sparsity=0.9, seed=0)
    model.learn(steps, callback=gmp)
    pruner = gmp.pruner
    assert pruner.total_steps == total
    expected = {"ppo": ((654, 2454), [1154, 1654, 2154, 2454]), "dqn": ((600, 2250), [1600, 2250])}[algo]
    assert pruner.window == expected[0]
    assert sorted({step for step, _, _ in pruner.history}) == expected[1]
    assert gmp.reference_defaults == REFERENCE_GMP[algo]
    assert model.sb3_tar_config["gmp"]["interval"] == (500 if algo == "ppo" else 1000)


def test_explicit_values_win_and_sac_keeps_its_defaults() -> None:
    """An explicit argument (even equal to the SAC default) is never replaced; None counts as unset; SAC takes nothing;
    a study value beyond an explicit end of the GMP window is not taken."""
    model = make("ppo")
    dst = DSTCallback(method="rigl", update_interval=250, end_fraction=0.8, drop_fraction=None, seed=0)
    model.learn(128, callback=dst)
    assert dst.reference_defaults == {"drop_fraction": 0.1}
    assert (dst.config.update_interval, dst.config.drop_fraction, dst.config.end_fraction) == (250, 0.1, 0.8)
    model = make("dqn")
    gmp = GMPCallback(update_interval=1000, start_fraction=0.2, end_fraction=0.8, seed=0)
    model.learn(128, callback=gmp)
    assert gmp.reference_defaults == {} and gmp.config == GMPConfig(0.2, 0.8, 1000)
    model = make("ppo")
    gmp = GMPCallback(end_fraction=0.2, seed=0)  # the study's start (0.2045) would pass this end: not taken
    model.learn(128, callback=gmp)
    assert gmp.reference_defaults == {"update_interval": 500} and gmp.config == GMPConfig(0.2, 0.2, 500)
    sac = SAC("MlpPolicy", "Pendulum-v1", learning_starts=10, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16, 16]))
    dst = DSTCallback(method="rigl", seed=0)
    sac.learn(20, callback=dst)
    assert dst.reference_defaults == {} and dst.config == dst_config("rigl")
    assert (dst.config.update_interval, dst.config.drop_fraction, dst.config.end_fraction) == (1000, 0.5, 0.8)


def test_sparse_policy_takes_the_study_defaults_and_keeps_them_on_load(tmp_path) -> None:
    """A PPO SparsePolicy built with dst_method takes the study's values for the options not given; loaded (rebuilt from
    its policy_kwargs) it has the same schedule; an explicit option wins."""
    kwargs = dict(net_arch=[32, 32], sparsity=0.9, seed=0, dst_method="set", dst_total_steps=3200)
    model = PPO(ppo.SparsePolicy, "CartPole-v1", n_steps=64, batch_size=16, seed=0, device="cpu", policy_kwargs=kwargs)
    assert model.policy.reference_defaults == REFERENCE_DST["ppo"]
    config = model.policy.dst_config
    assert (config.update_interval, config.drop_fraction, config.end_fraction) == (1000, 0.1, PPO_END)
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    assert loaded.policy.dst_config == config and loaded.policy.reference_defaults == REFERENCE_DST["ppo"]
    explicit = dict(kwargs, drop_fraction=0.3)
    model = PPO(ppo.SparsePolicy, "CartPole-v1", n_steps=64, batch_size=16, seed=0, device="cpu", policy_kwargs=explicit)
    assert model.policy.dst_config.drop_fraction == 0.3 and "drop_fraction" not in model.policy.reference_defaults
