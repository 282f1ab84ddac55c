"""Per-role grid methods (``<actor method>+<critic method>``): expansion and callback. (One real sweep cell end to end,
with its report: test_sweep_baselines.py.)"""

from __future__ import annotations

import pytest

from sb3_tar.experiments.grid import DST_CALLBACK, TAR_CALLBACK, GridSpec, get_preset

PLAIN = ["dense", "static", "tar", "uniform", "set", "rigl"]
MIXED = ["tar+rigl", "dense+tar", "dense+rigl", "rigl+static"]


def grid(methods: list[str], **kwargs) -> GridSpec:
    base = dict(envs=["Pendulum-v1"], criteria=["magnitude", "erk"], sparsities=[0.9], rrs=[0.0, 0.01], widths=[32], seeds=[0])
    return GridSpec(methods=methods, **{**base, **kwargs})


def test_existing_cell_ids_are_unchanged() -> None:
    plain = [c.cell_id for c in grid(PLAIN).expand()]
    both = [c.cell_id for c in grid(PLAIN + MIXED).expand()]
    assert both[: len(plain)] == plain and len(both) > len(plain)
    # The smoke preset's cells, written out as they were before per-role methods existed (its SET/RigL cells name
    # the preset's extra DSTCallback argument, update_interval=100).
    assert sorted({c.label for c in get_preset("smoke").expand()}) == [
        "dense_w64",
        "rigl_erk_sp0.9_w64_update_interval=100",
        "set_erk_sp0.9_w64_update_interval=100",
        "static_magnitude_sp0.9_w64",
        "tar_magnitude_sp0.9_rr0.01_w64",
        "uniform_magnitude_sp0.9_rr0.01_w64",
    ]


def test_per_role_methods_expand_over_their_axes() -> None:
    labels = [c.label for c in grid(MIXED).expand()]
    assert labels == [
        # tar+rigl: criteria axis (a static-family role), rr axis; at rr 0 the TAR actor is static
        "static+rigl_magnitude_sp0.9_w32",
        "tar+rigl_magnitude_sp0.9_rr0.01_w32",
        "static+rigl_erk_sp0.9_w32",
        "tar+rigl_erk_sp0.9_rr0.01_w32",
        "dense+static_magnitude_sp0.9_w32",
        "dense+tar_magnitude_sp0.9_rr0.01_w32",
        "dense+static_erk_sp0.9_w32",
        "dense+tar_erk_sp0.9_rr0.01_w32",
        "dense+rigl_erk_sp0.9_w32",  # only SET/RigL and dense roles: dst_criterion, no rr
        "rigl+static_magnitude_sp0.9_w32",
        "rigl+static_erk_sp0.9_w32",
    ]


def test_per_role_cells_run_the_right_callback() -> None:
    cells = {c.label: c for c in grid(MIXED, dst_kwargs={"update_interval": 50}, tar_kwargs={"floor_fraction": 0.5}).expand()}
    dst = cells["tar+rigl_magnitude_sp0.9_rr0.01_w32_update_interval=50"].callback()
    assert dst == [
        {
            DST_CALLBACK: {
                "sparsity": 0.9,
                "role_methods": {"actor": "tar", "critic": "rigl"},
                "criterion": "magnitude",
                "recovery_ratio": 0.01,
                "seed": 0,
                "verbose": 1,
                "method": "rigl",
                "update_interval": 50,
            }
        }
    ]
    tar = cells["dense+tar_erk_sp0.9_rr0.01_w32_floor_fraction=0.5"].callback()[0][TAR_CALLBACK]
    assert tar["role_methods"] == {"actor": "dense", "critic": "tar"} and tar["floor_fraction"] == 0.5
    assert cells["rigl+static_erk_sp0.9_w32_update_interval=50"].callback()[0][DST_CALLBACK]["method"] == "rigl"
    from sb3_tar.callbacks import DSTCallback, TARCallback

    for cell in cells.values():  # every spec builds its callback
        ((name, kwargs),) = cell.callback()[0].items()
        (DSTCallback if name == DST_CALLBACK else TARCallback)(**kwargs)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(methods=["tar+tar"]), "names one method twice"),
        (dict(methods=["tar+gmp"]), "Unknown per-role method 'tar\\+gmp'"),
        (dict(methods=["tar+rigl"], magnitude_scopes=["layer"]), "magnitude_layer cannot start"),
        (dict(methods=["dense+tar"], sparsities=[0.995]), "rr=0.01 with sparsity=0.995"),
    ],
)
def test_bad_per_role_methods_are_refused(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        grid(**kwargs).validate()
