"""The report's wording on a small grid (issue 20, point 7): 2 seeds and no SET/RigL cell, cells of a few seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sb3_tar.experiments.grid import GridSpec
from sb3_tar.experiments.report import make_report
from sb3_tar.experiments.runner import CELL_FILE, DONE_FILE, RESUME_MARKER, cell_dir, run_dir

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
        if cell.method == "tar" and cell.seed == 1:  # resumed by a sweep that did not time the earlier attempt
            (folder / DONE_FILE).write_text(json.dumps({"wall_s": 5.0, "finished": 1000.0 + 100 * i}))
            (folder / "train.log").write_text(f"...\n{RESUME_MARKER} in {folder}/checkpoints\n...")
        if cell.method == "static" and cell.seed == 1:  # resumed by a sweep that credited the earlier attempt
            record = {"wall_s": 80.0, "finished": 1000.0 + 100 * i, "resumed": True, "wall_s_complete": True}
            (folder / DONE_FILE).write_text(json.dumps(record))
            (folder / "train.log").write_text(f"...\n{RESUME_MARKER} in {folder}/checkpoints\n...")
    report = make_report(root, tmp_path / "report", reps=100, progress=False, make_plots=False, echo=lambda s: None)
    text = report.markdown.read_text()
    # 5 cells timed whole (20, 20, 20, 20, 80 s: 160 s), not "0.0 h"; the resumed TAR cell left out
    assert "5 cell(s) with complete recorded times took 3 min of training in all (median 20 s per cell) and" in text
    assert "; 1 cell(s) resumed from a checkpoint whose earlier attempts were not timed are left out" in text
    # per configuration: dense 20 and 20 s, static 20 and 80 s (median 50 s), TAR only its complete 20 s cell
    table = text[text.index("## Every configuration") :]
    rows = {line.split("|")[3].strip(): line.split("|")[-2].strip() for line in table.splitlines() if "| Pendulum" in line}
    assert rows == {"dense_w64": "0 min", "static_magnitude_sp0.9_w64": "1 min", "tar_magnitude_sp0.9_rr0.01_w64": "0 min"}
    assert "0.0 h" not in text
    # P(TAR > Original) over 2 runs a side is flagged, next to the table
    section = text[text.index("## Probability of improvement") : text.index("## Every configuration")]
    assert "Not a result where a side has fewer than 5 runs** (the smallest here: 2)" in section
    assert "| TAR > Original | 2, 2" in section
    # no SET/RigL cell: the heading does not promise a comparison with them
    assert "## Original (static) vs TAR\n" in text and "best of SET/RigL" not in text
