"""TARCallback on existing projects: plain MlpPolicy models, SparsePolicy models, errors, logging."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from sb3_contrib import ARS, RecurrentPPO
from sb3_utils import ALGOS, SMALL, all_weights, assert_mask_invariants, clone_masks, small_kwargs
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from sb3_tar import sac
from sb3_tar.callbacks import TARCallback
from sb3_tar.sb3.reporting.model_masks import masks_of
from sb3_tar.sb3.reporting.reports import pruning_reports


class _Spy(BaseCallback):
    """Records the logger's values and the weights at the first step after training starts."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: dict = {}
        self.masks_at_first_step: dict | None = None

    def _on_step(self) -> bool:
        if self.masks_at_first_step is None:
            self.logged = dict(self.model.logger.name_to_value)
            self.masks_at_first_step = masks_of(self.model)
        return True


@pytest.mark.parametrize("algo", ["sac", "td3", "tqc"])
def test_callback_makes_plain_model_sparse(algo: str) -> None:
    kwargs = small_kwargs(algo)
    kwargs["policy_kwargs"] = dict(kwargs.get("policy_kwargs", {}), **SMALL)
    model = ALGOS[algo]("MlpPolicy", "HalfCheetah-v4" if algo == "sac" else "Pendulum-v1", **kwargs)
    assert masks_of(model) is None
    spy = _Spy()
    model.learn(200, callback=CallbackList([TARCallback(sparsity=0.9, criterion="magnitude", recovery_ratio=0.02), spy]))
    assert spy.masks_at_first_step is not None  # sparse as soon as learn() starts
    assert_mask_invariants(model, 0.9, spy.masks_at_first_step)  # and stays sparse
    reports = pruning_reports(model)  # logged curves: tests/test_sparse_logging.py
    assert set(reports) == {"actor", "critic.qf0", "critic.qf1"}
    assert reports["actor"].sparsity == pytest.approx(0.9, abs=1e-4) and reports["actor"].budget > 0


def test_second_learn_does_not_prune_again() -> None:
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs("sac"))
    callback = TARCallback(sparsity=0.8)
    model.learn(100, callback=callback)
    masks = clone_masks(model)
    assert callback.pruned
    again = TARCallback(sparsity=0.8)
    model.learn(100, callback=again, reset_num_timesteps=False)
    assert not again.pruned
    model.learn(100, callback=callback, reset_num_timesteps=False)
    assert_mask_invariants(model, 0.8, masks)


def test_callback_on_sparse_policy_keeps_policy_masks(capsys: pytest.CaptureFixture) -> None:
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparsity=0.9), **small_kwargs("sac"))
    masks = clone_masks(model)
    callback = TARCallback(sparsity=0.5, verbose=1)
    model.learn(100, callback=callback)
    assert not callback.pruned
    assert "not pruning" in capsys.readouterr().out
    assert_mask_invariants(model, 0.9, masks)


def test_verbose_prints_table(capsys: pytest.CaptureFixture) -> None:
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs("sac"))
    model.learn(60, callback=TARCallback(sparsity=0.9, verbose=1))
    out = capsys.readouterr().out
    assert "E_l" in out and "B_l" in out and "latent_pi.0" in out and "critic.qf1" in out


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(sparsity=1.5), ValueError, r"sparsity=1.5 is outside the allowed range \[0, 1\)"),
        (dict(actor_sparsity=-0.2), ValueError, "actor_sparsity"),
        (dict(recovery_ratio=-0.01), ValueError, "recovery_ratio"),
        (dict(criterion="snip"), ValueError, "valid values"),
        (dict(budget_mode="both"), ValueError, r"\['reserve', 'extra'\]"),
        (dict(seed=1.5), TypeError, "seed"),
        (dict(sparsity="0.9"), TypeError, "number"),
    ],
)
def test_bad_callback_arguments(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        TARCallback(**kwargs)


@pytest.mark.parametrize("algo_cls, policy", [(ARS, "MlpPolicy"), (RecurrentPPO, "MlpLstmPolicy")])
def test_wrong_algorithm_fails_before_training_and_model_stays_usable(algo_cls, policy: str) -> None:
    # PPO, A2C, DQN and sb3-contrib's TRPO, MaskablePPO, QR-DQN, CrossQ are supported since issue 30
    # (tests/test_onpolicy_dqn.py, tests/test_cnn_contrib.py); ARS and RecurrentPPO are not
    model = algo_cls(policy, "Pendulum-v1", seed=0, **({"n_steps": 32, "batch_size": 32} if algo_cls is RecurrentPPO else {}))
    before = all_weights(model)
    with pytest.raises(TypeError, match="supports SAC, TD3, TQC and CrossQ .*PPO, A2C and DQN.*TRPO, MaskablePPO and QR-DQN"):
        model.learn(64, callback=TARCallback())
    after = all_weights(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.num_timesteps == 0
    model.learn(64)  # still usable without the callback


def test_failed_pruning_leaves_model_unchanged() -> None:
    # An 8-unit net with a huge revival budget in extra mode: rr must be <= sparsity, caught at construction.
    with pytest.raises(ValueError, match="budget_mode='extra'"):
        TARCallback(sparsity=0.1, recovery_ratio=0.2, budget_mode="extra")
    env = gym.make("Pendulum-v1")
    model = SAC("MlpPolicy", env, policy_kwargs=dict(net_arch=[8]), **small_kwargs("sac"))
    before = all_weights(model)
    callback = TARCallback(sparsity=0.5)
    callback.configs["actor"] = callback.configs["actor"].__class__(sparsity=0.5, criterion="synflow", synflow_iters=1)

    def broken_forward(*_args, **_kwargs):
        raise RuntimeError("boom")

    from sb3_tar.sb3 import networks

    original = networks._sac_actor_forward
    networks._sac_actor_forward = broken_forward
    try:
        with pytest.raises(RuntimeError, match="boom"):
            model.learn(60, callback=callback)
    finally:
        networks._sac_actor_forward = original
    after = all_weights(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert masks_of(model) is None
