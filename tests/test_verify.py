"""``sb3-tar verify-masks``: the package re-draws a committed grid cell's masks identically, and reports a cell
whose recorded draw differs. The committed cell was run by an older package commit (76daf05), so the first test
is also the regression test that mask drawing has not changed since the one-CPU grid started."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sb3_tar.cli import main
from sb3_tar.experiments.verify import compare_draws, sparse_cells

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "benchmarks" / "results" / "cpu60k"
TAR_SEED_0 = GRID / "sac" / "HalfCheetah-v4" / "tar_magnitude_sp0.9_rr0.01_w256" / "seed_0"


def _copy_cell(folder: Path, root: Path) -> Path:
    """A cell's committed files in a results directory of its own, in the sweep's layout."""
    copy = root / folder.relative_to(GRID)
    shutil.copytree(folder, copy)
    return copy


def test_committed_tar_cell_is_redrawn_identically(tmp_path, capsys) -> None:
    summary = json.loads((TAR_SEED_0 / "summary.json").read_text())
    assert summary["package"]["commit"].startswith("76daf05")  # drawn by an older commit than this one
    copy = _copy_cell(TAR_SEED_0, tmp_path)
    assert main(["verify-masks", str(tmp_path), "--cells", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "same masks: sac/HalfCheetah-v4/tar_magnitude_sp0.9_rr0.01_w256/seed_0 (run by 76daf056f5b7)" in out
    assert "1 of 1 cell(s) drew the same masks" in out


def test_a_cell_whose_recorded_draw_differs_is_reported(tmp_path, capsys) -> None:
    """The recorded report says one more weight was revived in the actor's mu layer than the seed draws."""
    copy = _copy_cell(TAR_SEED_0, tmp_path)
    summary = json.loads((copy / "summary.json").read_text())
    mu = next(layer for layer in summary["reports"]["actor"]["layers"] if layer["name"] == "mu")
    revived = mu["revived"]
    mu["revived"] += 1
    (copy / "summary.json").write_text(json.dumps(summary))
    assert main(["verify-masks", str(tmp_path)]) == 1  # every sparse cell of the folder: this one
    out = capsys.readouterr().out
    assert "DIFFERENT: sac/HalfCheetah-v4/tar_magnitude_sp0.9_rr0.01_w256/seed_0" in out
    assert f"actor mu: revived {revived + 1} -> {revived}" in out
    assert "0 of 1 cell(s) drew the same masks" in out


def _summary(revived: int, pattern: str | None) -> dict:
    layer = dict(name="0", shape=[4, 3], kept_before=2, revived=revived, dead_before=1, dead_after=0)
    sparsity = {"actor": {"total": 12, "nonzero": 2 + revived, **({"pattern_sha256": pattern} if pattern else {})}}
    return {"reports": {"actor": {"layers": [layer]}}, "final_sparsity": sparsity}


def test_compare_draws_reads_reports_and_patterns() -> None:
    assert compare_draws(_summary(1, "ab" * 32), _summary(1, "ab" * 32)) == []
    assert compare_draws(_summary(1, "ab" * 32), _summary(2, "ab" * 32)) == ["actor 0: revived 1 -> 2"]
    assert compare_draws(_summary(1, "ab" * 32), _summary(1, "cd" * 32)) == [
        "actor: nonzero pattern abababababab committed, cdcdcdcdcdcd now"
    ]
    assert compare_draws(_summary(1, "ab" * 32), _summary(1, "cd" * 32), rewired=True) == []  # SET/RigL rewire
    assert compare_draws(_summary(1, None), _summary(1, "cd" * 32)) == []  # cells run before fingerprints
    other = {"reports": {"critic.qf0": _summary(1, None)["reports"]["actor"]}}
    assert compare_draws(_summary(1, None), other) == ["networks differ: ['actor'] committed, ['critic.qf0'] now"]


def test_sparse_cells_skip_dense_and_unfinished(tmp_path) -> None:
    cells = sparse_cells(GRID)
    assert cells and all("dense" not in str(c) and (c / "done.json").is_file() for c in cells)
    assert TAR_SEED_0 in cells
    from sb3_tar.experiments.verify import verify_masks

    with pytest.raises(FileNotFoundError, match="No finished sparse cell"):
        verify_masks(tmp_path)
    dense = GRID / "sac" / "HalfCheetah-v4" / "dense_w256" / "seed_0"
    lines = []
    with pytest.raises(FileNotFoundError, match="No finished sparse cell"):  # named explicitly, still nothing to draw
        verify_masks(GRID, cells=[dense], echo=lines.append)
    assert lines == [f"skipped: {dense} is dense (no mask to draw)"]


def test_cells_are_named_by_folder_or_by_cell_id(tmp_path, capsys) -> None:
    """`--cells` takes the ids the tool prints as well as folders; a name that is neither, or an unfinished
    cell, stops with a message naming it before anything runs."""
    from sb3_tar.experiments.verify import resolve_cells

    cell_id = TAR_SEED_0.relative_to(GRID).as_posix()
    assert resolve_cells(GRID, [cell_id]) == [GRID / cell_id]
    assert resolve_cells(GRID, [TAR_SEED_0]) == [TAR_SEED_0]
    with pytest.raises(FileNotFoundError, match="No cell 'sac/HalfCheetah-v4/tar_nothing/seed_0'"):
        resolve_cells(GRID, [cell_id, "sac/HalfCheetah-v4/tar_nothing/seed_0"])
    copy = _copy_cell(TAR_SEED_0, tmp_path)
    (copy / "done.json").unlink()
    with pytest.raises(FileNotFoundError, match="has not finished"):
        resolve_cells(tmp_path, [cell_id])
    assert main(["verify-masks", str(GRID), "--cells", "seed_9"]) == 2
    err = capsys.readouterr().err
    assert "No cell 'seed_9'" in err and str(GRID / "seed_9") in err
