"""One name per concept: ``update_interval`` (GMP's ``interval``), ``magnitude_scope`` (GMP's ``scope``) and ``seed``
(``SparsePolicy``'s ``sparsity_seed``). The former names keep working for one release, with a ``FutureWarning`` naming
the new one, and mean exactly the same; giving both names with different values is refused."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from stable_baselines3 import SAC

from sb3_tar import sac
from sb3_tar.baselines import GMPCallback
from sb3_tar.callbacks import DSTCallback, TARCallback
from sb3_tar.experiments.grid import GridSpec
from sb3_tar.sb3.model_masks import masks_of


def test_every_callback_and_the_policy_use_the_one_names() -> None:
    for cls, names in (
        (GMPCallback, ("update_interval", "magnitude_scope", "seed")),
        (DSTCallback, ("update_interval", "seed")),
        (TARCallback, ("magnitude_scope", "seed")),
    ):
        assert set(names) <= set(inspect.signature(cls.__init__).parameters), cls.__name__
    from sb3_tar.sb3.policies import DST_DEFAULTS, SPARSITY_DEFAULTS

    assert {"seed", "magnitude_scope"} <= set(SPARSITY_DEFAULTS) and "update_interval" in DST_DEFAULTS
    assert "sparsity_seed" not in SPARSITY_DEFAULTS


@pytest.mark.parametrize(
    "old, new, value",
    [("interval", "update_interval", 7), ("scope", "magnitude_scope", "layer")],
)
def test_gmp_former_names_work_with_a_future_warning(old: str, new: str, value) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        current = GMPCallback(**{new: value})
    with pytest.warns(FutureWarning, match=f"GMPCallback: {old}= is deprecated .* use {new}="):
        former = GMPCallback(**{old: value})
    assert former.config == current.config
    with pytest.raises(TypeError, match=f"{old} is the former name of {new}"):
        GMPCallback(**{old: value, new: {"update_interval": 9, "magnitude_scope": "erk"}[new]})
    GridSpec(methods=("gmp",), gmp_kwargs={old: value}).validate()  # a sweep still accepts it (the cell warns)


def test_sparse_policy_sparsity_seed_is_the_former_name_of_seed(tmp_path) -> None:
    def build(**options) -> SAC:
        kwargs = dict(net_arch=[32, 32], sparsity=0.9, sparse_execution=False, **options)
        return SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=kwargs, seed=0, device="cpu")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        current = build(seed=5)
    with pytest.warns(FutureWarning, match="sparsity_seed= is deprecated .* use seed="):
        former = build(sparsity_seed=5)
    assert current.policy.sparsity_seed_used == former.policy.sparsity_seed_used == 5
    for name, masks in masks_of(current).items():  # the same masks
        assert all(torch.equal(a, b) for a, b in zip(masks, masks_of(former)[name], strict=True)), name
    other = build(seed=6)
    assert not all(torch.equal(a, b) for a, b in zip(masks_of(current)["actor"], masks_of(other)["actor"]))
    current.save(tmp_path / "current.zip")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert SAC.load(tmp_path / "current.zip", device="cpu").policy.sparsity_seed_used == 5
    former.save(tmp_path / "former.zip")  # SB3 keeps the policy_kwargs it was given: it loads, with the warning
    with pytest.warns(FutureWarning, match="sparsity_seed= is deprecated"):
        loaded = SAC.load(tmp_path / "former.zip", device="cpu")
    assert loaded.policy.sparsity_seed_used == 5
    assert all(torch.equal(a, b) for a, b in zip(masks_of(loaded)["actor"], masks_of(former)["actor"], strict=True))
    with pytest.raises(TypeError, match="sparsity_seed is the former name of seed"):
        build(sparsity_seed=5, seed=6)
