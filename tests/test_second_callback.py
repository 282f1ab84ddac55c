"""A sparse callback on a model that is already sparse: it keeps the model's masks and says so when it was asked for
others (a warning naming each kept and each asked setting), refuses masks of another method (SET/RigL, GMP), and the
small-dense callback refuses a sparse model. Real SAC models on Pendulum-v1."""

from __future__ import annotations

import warnings

import pytest
from sb3_utils import SMALL, small_kwargs
from stable_baselines3 import SAC

from sb3_tar import sac
from sb3_tar.baselines import GMPCallback, SmallDenseCallback
from sb3_tar.callbacks import DSTCallback, TARCallback
from sb3_tar.sb3.reporting.model_masks import sparsity_summary

STEPS = 120  # learning_starts=50: 70 gradient steps


def _sparse_policy(**options) -> SAC:
    return SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, **options), **small_kwargs("sac"))


def _plain() -> SAC:
    return SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs("sac"))


def _sparsities(model) -> dict[str, float]:
    return {name: round(stats["sparsity"], 3) for name, stats in sparsity_summary(model).items()}


def test_tar_callback_on_a_sparse_policy_warns_and_keeps_its_masks() -> None:
    model = _sparse_policy(sparsity=0.5, sparse_execution=False)
    pattern = r"TARCallback: not pruning, the policy is a SparsePolicy.*sparsity=0.5 kept \(asked 0.9\)"
    with pytest.warns(UserWarning, match=pattern):
        model.learn(STEPS, callback=TARCallback(sparsity=0.9, sparse_execution=False))
    assert set(_sparsities(model).values()) == {0.5}


def test_tar_callback_without_settings_or_with_the_same_ones_is_silent() -> None:
    model = _sparse_policy(sparsity=0.5, criterion="erk", sparse_execution=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.learn(STEPS, callback=TARCallback(verbose=0))  # asks for nothing: only the logging
        model.learn(STEPS, callback=TARCallback(sparsity=0.5), reset_num_timesteps=False)  # asks what the masks have
    plain = _plain()
    plain.learn(STEPS, callback=TARCallback(sparsity=0.7, sparse_execution=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain.learn(STEPS, callback=TARCallback(sparsity=0.7, sparse_execution=False), reset_num_timesteps=False)
    assert set(_sparsities(plain).values()) == {0.7}


def test_tar_callback_on_a_model_pruned_otherwise_warns_after_save_and_load(tmp_path) -> None:
    plain = _plain()
    plain.learn(STEPS, callback=TARCallback(sparsity=0.7, criterion="erk", sparse_execution=False))
    plain.save(tmp_path / "m.zip")
    loaded = SAC.load(tmp_path / "m.zip", env=plain.get_env(), device="cpu")
    with pytest.warns(UserWarning, match=r"the model already has masks.*criterion='erk' kept \(asked 'magnitude'\)"):
        loaded.learn(STEPS, callback=TARCallback(sparsity=0.7, criterion="magnitude", sparse_execution=False))
    assert set(_sparsities(loaded).values()) == {0.7}


@pytest.mark.parametrize("first", ["dst", "gmp", "dst_policy"])
def test_tar_callback_refuses_set_rigl_and_gmp_masks(first: str) -> None:
    if first == "dst_policy":
        model = _sparse_policy(sparsity=0.5, dst_method="set", dst_total_steps=100, sparse_execution=False)
        model.learn(STEPS)
    else:
        model = _plain()
        callback = DSTCallback(sparsity=0.5) if first == "dst" else GMPCallback(sparsity=0.5, update_interval=10)
        model.learn(STEPS, callback=callback)
    before = _sparsities(model)
    with pytest.raises(ValueError, match="TARCallback: the model already has (SET/RigL|GMP) masks"):
        model.learn(STEPS, callback=TARCallback(sparsity=0.9), reset_num_timesteps=False)
    assert _sparsities(model) == before


def test_dst_callback_on_a_set_rigl_sparse_policy_warns_when_asked_for_other_settings() -> None:
    model = _sparse_policy(sparsity=0.5, dst_method="rigl", update_interval=20, sparse_execution=False)
    pattern = r"the SparsePolicy runs RIGL with its own settings.*method='rigl' kept \(asked 'set'\)"
    with pytest.warns(UserWarning, match=pattern):
        model.learn(STEPS, callback=DSTCallback(method="set", sparsity=0.5))
    with warnings.catch_warnings():  # the documented use: DSTCallback() only fills in the planned steps
        warnings.simplefilter("error")
        _sparse_policy(sparsity=0.5, dst_method="rigl", sparse_execution=False).learn(STEPS, callback=DSTCallback())


def test_small_dense_callback_refuses_a_sparse_model() -> None:
    with pytest.raises(ValueError, match="SmallDenseCallback describes a dense model"):
        _sparse_policy(sparsity=0.9, sparse_execution=False).learn(STEPS, callback=SmallDenseCallback(reference_width=64))
    model = _plain()
    model.learn(STEPS, callback=TARCallback(sparsity=0.9, sparse_execution=False))
    with pytest.raises(ValueError, match="SmallDenseCallback describes a dense model"):
        model.learn(STEPS, callback=SmallDenseCallback(reference_width=64))
