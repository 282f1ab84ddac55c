"""The sweep grid's cyclic, sculpt and iee methods (no training here): the cpu60k-cyclic preset's 15 cells, their labels
and callbacks, the cells of the presets run before them unchanged, and ``sb3-tar sweep --methods cyclic sculpt iee
--dry-run`` listing them."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import pytest
from cli_utils import run_cli
from rl_zoo3.utils import StoreDict

from sb3_tar.cli import main
from sb3_tar.experiments.grid import PRESETS, Cell, get_preset
from sb3_tar.experiments.runner import find_conf_dir, zoo_command

REPO = Path(__file__).resolve().parents[1]


def test_cpu60k_cyclic_preset_is_15_cells_beside_the_60k_grid() -> None:
    cells = get_preset("cpu60k-cyclic").expand()
    assert len(cells) == 15
    assert Counter(c.label for c in cells) == {
        "cyclic_magnitude_sp0.9_w256": 5,
        "sculpt_magnitude_sp0.9_w256": 5,
        "iee_magnitude_sp0.9_w256": 5,
    }
    assert {c.seed for c in cells} == {0, 1, 2, 3, 4}
    assert {(c.algo, c.env, c.width, c.n_timesteps, c.eval_freq, c.eval_episodes, c.hyperparams) for c in cells} == {
        ("sac", "HalfCheetah-v4", 256, 60_000, 5_000, 5, (("learning_starts", "5000"),))
    }
    others = {
        c.cell_id
        for name in ("cpu60k", "cpu60k-criteria", "cpu60k-td3", "cpu60k-baselines")
        for c in get_preset(name).expand()
    }
    assert not others & {c.cell_id for c in cells}
    classes = {c.method: next(iter(c.callback()[0])) for c in cells}
    assert classes == {
        "cyclic": "sb3_tar.baselines.CyclicCallback",
        "sculpt": "sb3_tar.baselines.SculptCallback",
        "iee": "sb3_tar.baselines.IEECallback",
    }
    cell = next(c for c in cells if c.method == "iee" and c.seed == 3)
    assert cell.callback() == [
        {"sb3_tar.baselines.IEECallback": {"sparsity": 0.9, "criterion": "magnitude", "seed": 3, "verbose": 1}}
    ]
    parser = argparse.ArgumentParser()
    parser.add_argument("-params", "--hyperparams", type=str, nargs="+", action=StoreDict)
    cmd = zoo_command(cell, Path("/tmp/x"), find_conf_dir(REPO / "hyperparams") / "sac.yml")
    assert parser.parse_args(cmd[cmd.index("-params") :]).hyperparams["callback"] == cell.callback()
    assert Cell.from_dict(cell.to_dict()) == cell


def test_the_callbacks_are_built_from_the_cell_kwargs() -> None:
    import sb3_tar.baselines as baselines

    for cell in get_preset("cpu60k-cyclic").expand()[::5]:
        ((path, kwargs),) = cell.callback()[0].items()
        callback = getattr(baselines, path.rsplit(".", 1)[1])(**kwargs)
        assert callback.sparsities == {"actor": 0.9, "critic": 0.9} and callback.criterion == "magnitude"


def test_existing_presets_keep_their_cells() -> None:
    """The methods were added at the end of METHODS: every earlier preset expands to the cells it had."""
    counts = {name: len(PRESETS[name].expand()) for name in ("smoke", "cpu60k", "cpu60k-baselines", "cpu300k", "cpu300k-gmp")}
    assert counts == {"smoke": 12, "cpu60k": 30, "cpu60k-baselines": 10, "cpu300k": 20, "cpu300k-gmp": 5}


@pytest.mark.parametrize("in_process", [True, False])
def test_sweep_dry_run_lists_the_cells(tmp_path: Path, capsys: pytest.CaptureFixture, in_process: bool) -> None:
    args = ["sweep", "--preset", "cpu60k", "--methods", "cyclic", "sculpt", "iee", "--dry-run", "-o", str(tmp_path)]
    if in_process:
        assert main(args) == 0
        out = capsys.readouterr().out
    else:
        result = run_cli(*args, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        out = result.stdout
    assert out.startswith("15 cells (0 finished")
    for method, name in (("cyclic", "CyclicCallback"), ("sculpt", "SculptCallback"), ("iee", "IEECallback")):
        assert out.count(f"[new] sac/HalfCheetah-v4/{method}_magnitude_sp0.9_w256/seed_") == 5
        assert out.count(f"sb3_tar.baselines.{name}") == 5
    assert not any(tmp_path.iterdir())
