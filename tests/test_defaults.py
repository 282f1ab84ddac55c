"""One default sparsity: every public entry point that takes a sparsity defaults to the one constant
``sb3_tar.core.config.DEFAULT_SPARSITY`` (0.9, the value of the shipped hyperparameter files, the presets and the README),
so swapping one method for another never changes the sparsity; a SparsePolicy built without one is 90% sparse."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import yaml
from stable_baselines3 import SAC

from sb3_tar import sac
from sb3_tar.baselines import CyclicCallback, GMPCallback, IEECallback, SculptCallback, SmallDenseCallback
from sb3_tar.callbacks import DSTCallback, TARCallback
from sb3_tar.core.config import DEFAULT_SPARSITY, SparsityConfig
from sb3_tar.experiments.grid import GridSpec
from sb3_tar.experiments.runner import PACKAGE_CONF_DIR
from sb3_tar.sb3.methods.pruning import role_configs
from sb3_tar.sb3.methods.role_methods import method_configs
from sb3_tar.sb3.policies import SPARSITY_DEFAULTS
from sb3_tar.sb3.reporting.model_masks import sparsity_summary


def test_the_default_sparsity_is_0_9() -> None:
    assert DEFAULT_SPARSITY == 0.9


@pytest.mark.parametrize(
    "entry",
    [
        TARCallback,
        DSTCallback,
        GMPCallback,
        SmallDenseCallback,
        CyclicCallback,
        SculptCallback,
        IEECallback,
        role_configs,
        method_configs,
    ],
    ids=lambda e: e.__name__,
)
def test_every_entry_point_defaults_to_the_one_sparsity(entry) -> None:
    function = entry.__init__ if inspect.isclass(entry) else entry
    assert inspect.signature(function).parameters["sparsity"].default == DEFAULT_SPARSITY


def test_configs_policies_and_grids_default_to_the_one_sparsity() -> None:
    assert {f.name: f.default for f in dataclasses.fields(SparsityConfig)}["sparsity"] == DEFAULT_SPARSITY
    assert SparsityConfig().sparsity == DEFAULT_SPARSITY
    assert SPARSITY_DEFAULTS["sparsity"] == DEFAULT_SPARSITY  # SparsePolicy's policy_kwargs
    assert GridSpec().sparsities == (DEFAULT_SPARSITY,)
    assert {c.sparsity for c in TARCallback().configs.values()} == {DEFAULT_SPARSITY}
    assert {c.sparsity for c in DSTCallback().configs.values()} == {DEFAULT_SPARSITY}
    assert set(GMPCallback().sparsities.values()) == set(SmallDenseCallback().sparsities.values()) == {DEFAULT_SPARSITY}
    for algo in ("sac", "td3", "tqc"):  # the shipped hyperparameter files
        entries = yaml.safe_load((PACKAGE_CONF_DIR / f"{algo}.yml").read_text())
        sparsities = {v["sparsity"] for entry in entries.values() for c in entry.get("callback", []) for v in c.values()}
        assert sparsities == {DEFAULT_SPARSITY}, algo


def test_a_sparse_policy_without_a_sparsity_is_built_at_the_default() -> None:
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(net_arch=[32, 32], sparse_execution=False), device="cpu")
    kept = {name: s["kept"] for name, s in sparsity_summary(model).items()}
    assert kept == {"actor": round(0.1 * 1184), "critic.qf0": round(0.1 * 1184), "critic.qf1": round(0.1 * 1184)}
