"""The report's wording on a small grid (issue 20, point 7): 2 seeds and no SET/RigL cell, cells of a few seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sb3_tar.experiments.grid import GridSpec
from sb3_tar.experiments.report import make_report
from sb3_tar.experiments.runner import CELL_FILE, DONE_FILE, cell_dir, run_dir

LEVEL = {"dense": 1000.0, "static": 500.0, "tar": 700.0}


def test_small_grid_report_warns_and_gives_seconds(tmp_path: Path) -> None:
    root = tmp_path / "results"
    grid = GridSpec(envs=["Pendulum-v1"], methods=["dense", "static", "tar"], criteria=["magnitude"], sparsities=[0.9])
    grid.rrs, grid.widths, grid.seeds = (0.01,), (64,), (0, 1)
    rng = np.random.default_rng(0)
    for i, cell in enumerate(grid.expand()):
        folder, run = cell_dir(root, cell), run_dir(root, cell)
        run.mkdir(parents=True)
        (folder / CELL_FILE).write_text(json.dumps(cell.to_dict()))
        timesteps = np.arange(1, 7) * 100
        results = LEVEL[cell.method] + rng.normal(0, 10, size=(6, 2))
        np.savez(run / "evaluations.npz", timesteps=timesteps, results=results, ep_lengths=np.full((6, 2), 200))
        (folder / DONE_FILE).write_text(json.dumps({"wall_s": 20.0, "finished": 1000.0 + 100 * i}))  # 20 s each
    report = make_report(root, tmp_path / "report", reps=100, progress=False, make_plots=False, echo=lambda s: None)
    text = report.markdown.read_text()
    # 6 cells of 20 s, one after the other: 120 s of training and of wall-clock time, not "0.0 h"
    assert "6 cell(s) with recorded times took 2 min of training in all (median 20 s per cell) and 2 min of" in text
    assert "0.0 h" not in text
    # P(TAR > Original) over 2 runs a side is flagged, next to the table
    section = text[text.index("## Probability of improvement") : text.index("## Every configuration")]
    assert "Not a result where a side has fewer than 5 runs** (the smallest here: 2)" in section
    assert "| TAR > Original | 2, 2" in section
    # no SET/RigL cell: the heading does not promise a comparison with them
    assert "## Original (static) vs TAR\n" in text and "best of SET/RigL" not in text
