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
from sb3_tar.sb3.reporting.model_masks import masks_of


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


# -- the sweep's --recovery-ratios (the callbacks' recovery_ratio), formerly --rrs ------------------------------------


def test_sweep_recovery_ratios_is_the_one_name_and_rrs_warns() -> None:
    from sb3_tar.cli import _build_parser, grid_from_args

    base = ["sweep", "--methods", "static", "tar", "--seeds", "0"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        current = grid_from_args(_build_parser().parse_args([*base, "--recovery-ratios", "0.005", "0.02"]))
    with pytest.warns(FutureWarning, match="sb3-tar sweep: --rrs is deprecated .* use --recovery-ratios"):
        former = grid_from_args(_build_parser().parse_args([*base, "--rrs", "0.005", "0.02"]))
    assert current.rrs == former.rrs == (0.005, 0.02)
    assert (
        [c.cell_id for c in current.expand()]
        == [c.cell_id for c in former.expand()]
        == [
            "sac/HalfCheetah-v4/static_magnitude_sp0.9_w256/seed_0",
            "sac/HalfCheetah-v4/tar_magnitude_sp0.9_rr0.005_w256/seed_0",
            "sac/HalfCheetah-v4/tar_magnitude_sp0.9_rr0.02_w256/seed_0",
        ]
    )
    assert [c.callback() for c in current.expand()] == [c.callback() for c in former.expand()]
    with pytest.raises(ValueError, match="--rrs is the former name of --recovery-ratios"):
        grid_from_args(_build_parser().parse_args([*base, "--rrs", "0.01", "--recovery-ratios", "0.02"]))
    assert "--recovery-ratios" in _build_parser()._subparsers._group_actions[0].choices["sweep"].format_help()


# -- prune_criterion="sign_balanced_magnitude" (SET's drop rule), formerly "set" ---------------------------------------


def test_the_former_prune_criterion_set_drops_the_same_weights_with_a_warning() -> None:
    from sb3_tar.core.prune_criteria import PRUNE_CRITERIA, drop_positions

    assert "sign_balanced_magnitude" in PRUNE_CRITERIA and "set" not in PRUNE_CRITERIA
    weight = torch.tensor([[0.5, 0.1, -0.2, -0.3, -0.05, -0.9, 0.02, 0.7]])
    mask = torch.ones_like(weight, dtype=torch.bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        current = drop_positions("sign_balanced_magnitude", weight, mask, 4, torch.Generator().manual_seed(0))
    with pytest.warns(FutureWarning, match="prune_criterion='set' is deprecated .* prune_criterion='sign_balanced_mag"):
        former = drop_positions("set", weight, mask, 4, torch.Generator().manual_seed(0))
    # by hand: 2 smallest positive (0.02, 0.1) and 2 non-positive closest to 0 (-0.05, -0.2)
    assert torch.equal(current, former) and current.nonzero()[:, 1].tolist() == [1, 2, 4, 6]
    with pytest.raises(ValueError, match=r"Unknown prune_criterion 'sett': valid values are \['magnitude', 'sign_bal"):
        DSTCallback(method="set", prune_criterion="sett")


def _dst_run(**options) -> SAC:
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[32, 32]), learning_starts=50, seed=0, device="cpu")
    model.learn(150, callback=DSTCallback(method="set", sparsity=0.8, update_interval=20, seed=0, **options))
    return model


def test_dst_callback_with_prune_criterion_set_trains_exactly_as_the_new_name() -> None:
    """100 gradient steps, T_end = 80: updates at t = 20, 40, 60; both names give the same masks and weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        current = _dst_run(prune_criterion="sign_balanced_magnitude")
    with pytest.warns(FutureWarning, match="prune_criterion='set' is deprecated"):
        former = _dst_run(prune_criterion="set")
    plain = _dst_run()  # magnitude: another drop rule, other masks (the comparison can fail)
    assert former.sb3_tar_dst_state["prune_criterion"] == "sign_balanced_magnitude"
    for name, masks in masks_of(current).items():
        assert all(torch.equal(a, b) for a, b in zip(masks, masks_of(former)[name], strict=True)), name
    assert not all(torch.equal(a, b) for a, b in zip(masks_of(current)["actor"], masks_of(plain)["actor"], strict=True))
    for (key, a), (_, b) in zip(current.policy.state_dict().items(), former.policy.state_dict().items(), strict=True):
        assert torch.equal(a, b), key


def test_sparse_policy_and_sweep_accept_the_former_prune_criterion_with_a_warning() -> None:
    kwargs = dict(net_arch=[32, 32], sparsity=0.9, dst_method="set", dst_total_steps=100, sparse_execution=False)
    with pytest.warns(FutureWarning, match="prune_criterion='set' is deprecated"):
        model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(kwargs, prune_criterion="set"), device="cpu")
    from sb3_tar.sb3.methods.rewiring import attached_rewirer

    assert attached_rewirer(model.policy).config.prune_criterion == "sign_balanced_magnitude"
    current = GridSpec(methods=("set",), seeds=(0,), prune_criteria=("magnitude", "sign_balanced_magnitude"))
    with pytest.warns(FutureWarning, match="prune_criteria='set' is deprecated"):
        former = GridSpec(methods=("set",), seeds=(0,), prune_criteria=("magnitude", "set"))
        former.validate()
    assert [(c.cell_id, c.callback()) for c in former.expand()] == [(c.cell_id, c.callback()) for c in current.expand()]
    assert current.expand()[1].label == "set_erk_sp0.9_w256_prune_criterion=sign_balanced_magnitude"
    with pytest.warns(FutureWarning, match="prune_criterion='set' is deprecated"):
        in_kwargs = GridSpec(methods=("set",), seeds=(0,), dst_kwargs={"prune_criterion": "set"})
        in_kwargs.validate()
    assert [c.label for c in in_kwargs.expand()] == ["set_erk_sp0.9_w256_prune_criterion=sign_balanced_magnitude"]
    with pytest.raises(ValueError, match=r"Unknown prune_criteria 'sett': valid values are \['magnitude', 'sign_bal"):
        GridSpec(methods=("set",), prune_criteria=("sett",)).validate()


# -- criterion "magnitude" with magnitude_scope "layer", labelled magnitude_layer -------------------------------------

#: The committed cells of this configuration (benchmarks/results/cpu60k): their ids must not change.
_COMMITTED = ("static_magnitude_layer_sp0.9_w256", "tar_magnitude_layer_sp0.9_rr0.01_w256")


def test_magnitude_scopes_axis_gives_the_committed_magnitude_layer_cells() -> None:
    from pathlib import Path

    from sb3_tar.experiments.grid import get_preset

    folder = Path(__file__).resolve().parents[1] / "benchmarks/results/cpu60k/sac/HalfCheetah-v4"
    assert all((folder / label).is_dir() for label in _COMMITTED)
    preset = get_preset("cpu60k-criteria")
    assert preset.criteria == ("erk", "synflow", "magnitude") and preset.magnitude_scopes == ("layer",)
    labels = list(dict.fromkeys(c.label for c in preset.expand()))
    assert set(_COMMITTED) <= set(labels) and all((folder / label).is_dir() for label in labels)
    grid = dict(methods=("static", "tar", "gmp"), criteria=("magnitude", "erk"), seeds=(0,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = GridSpec(**grid, magnitude_scopes=("global", "layer")).expand()
    assert [c.label for c in both] == [
        *("static_magnitude_sp0.9_w256", "static_magnitude_layer_sp0.9_w256", "static_erk_sp0.9_w256"),
        *("tar_magnitude_sp0.9_rr0.01_w256", "tar_magnitude_layer_sp0.9_rr0.01_w256", "tar_erk_sp0.9_rr0.01_w256"),
        *("gmp_magnitude_sp0.9_w256", "gmp_magnitude_layer_sp0.9_w256", "gmp_erk_sp0.9_w256"),
    ]
    tar = both[4].callback()[0]["sb3_tar.callbacks.TARCallback"]
    assert (tar["criterion"], tar["magnitude_scope"]) == ("magnitude", "layer")
    assert both[7].callback()[0]["sb3_tar.baselines.GMPCallback"]["magnitude_scope"] == "layer"
    assert [c.label for c in GridSpec(**dict(grid, criteria=("erk",)), magnitude_scopes=("layer",)).expand()] == [
        "static_erk_sp0.9_w256",
        "tar_erk_sp0.9_rr0.01_w256",
        "gmp_erk_sp0.9_w256",
    ]  # the scope applies to the magnitude criterion only


@pytest.mark.parametrize(
    "former, current",
    [
        (("magnitude_layer",), dict(criteria=("magnitude",), magnitude_scopes=("layer",))),
        (("erk", "magnitude_layer"), dict(criteria=("erk", "magnitude"), magnitude_scopes=("layer",))),
        (("magnitude", "magnitude_layer"), dict(criteria=("magnitude",), magnitude_scopes=("global", "layer"))),
    ],
)
def test_criteria_magnitude_layer_is_the_former_spelling(former: tuple, current: dict) -> None:
    grid = dict(methods=("static", "tar", "gmp", "cyclic"), seeds=(0,))
    with pytest.warns(FutureWarning, match="criteria 'magnitude_layer' is deprecated .* --magnitude-scopes layer"):
        old = GridSpec(**grid, criteria=former)
        old.validate()
    new = GridSpec(**grid, **current)
    assert [(c.cell_id, c.callback()) for c in old.expand()] == [(c.cell_id, c.callback()) for c in new.expand()]


def test_sweep_cli_magnitude_scopes_and_its_refusals(capsys) -> None:
    from sb3_tar.cli import _build_parser, grid_from_args, main

    args = ["sweep", "--methods", "tar", "--criteria", "magnitude", "--magnitude-scopes", "layer", "--seeds", "0"]
    (cell,) = grid_from_args(_build_parser().parse_args(args)).expand()
    assert cell.label == "tar_magnitude_layer_sp0.9_rr0.01_w256"
    with pytest.warns(FutureWarning, match="criteria 'magnitude_layer' is deprecated"):
        former = grid_from_args(_build_parser().parse_args([*args[:3], "--criteria", "magnitude_layer", *args[-2:]]))
    assert former.expand() == [cell]
    with pytest.raises(SystemExit):  # argparse: an unknown scope, with the valid ones
        _build_parser().parse_args([*args[:5], "--magnitude-scopes", "local"])
    assert "invalid choice: 'local' (choose from" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"Unknown magnitude_scope 'local': valid values are \['global', 'layer'\]"):
        GridSpec(magnitude_scopes=("local",)).validate()
    with pytest.raises(ValueError, match="tar_kwargs sets magnitude_scope='layer': the grid sets it per cell"):
        GridSpec(tar_kwargs={"magnitude_scope": "layer"}).validate()
    assert main([*args, "--gmp-kwargs", "magnitude_scope:erk", "--dry-run"]) == 2
    assert "use magnitude_scopes" in capsys.readouterr().err
