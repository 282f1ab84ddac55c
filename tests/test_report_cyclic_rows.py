"""The report gives cyclic, SCULPT and IEE cells rows of their own beside TAR, RigL and GMP (synthetic evaluations,
no training): readable labels in the IQM table and their cells' labels in the table of every configuration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sb3_tar.experiments.grid import GridSpec
from sb3_tar.experiments.report import make_report
from sb3_tar.experiments.runner import CELL_FILE, DONE_FILE, cell_dir, run_dir

LEVEL = {"dense": 1000.0, "tar": 700.0, "rigl": 800.0, "gmp": 750.0, "cyclic": 600.0, "sculpt": 650.0, "iee": 720.0}


def test_cyclic_sculpt_iee_rows_beside_tar_rigl_gmp(tmp_path: Path) -> None:
    root = tmp_path / "results"
    methods = ["dense", "tar", "rigl", "gmp", "cyclic", "sculpt", "iee"]
    grid = GridSpec(envs=["Pendulum-v1"], methods=methods, criteria=["magnitude"], sparsities=[0.9])
    grid.rrs, grid.widths, grid.seeds = (0.01,), (64,), (0, 1)
    for i, cell in enumerate(grid.expand()):
        folder, run = cell_dir(root, cell), run_dir(root, cell)
        run.mkdir(parents=True)
        (folder / CELL_FILE).write_text(json.dumps(cell.to_dict()))
        results = np.full((6, 2), LEVEL[cell.method] + cell.seed)  # final return: the level + the seed
        timesteps = np.arange(1, 7) * 100
        np.savez(run / "evaluations.npz", timesteps=timesteps, results=results, ep_lengths=np.full((6, 2), 200))
        (folder / DONE_FILE).write_text(json.dumps({"wall_s": 20.0, "finished": 1000.0 + 100 * i}))
    report = make_report(root, tmp_path / "report", reps=100, progress=False, make_plots=False, echo=lambda s: None)
    text = report.markdown.read_text()
    iqm = text[text.index("#### IQM") if "#### IQM" in text else text.index("IQM") :]
    rows = {line.split("|")[5].strip(): line.split("|")[7].strip() for line in iqm.splitlines() if "| Pendulum" in line}
    for label, level in (
        ("TAR (magnitude, rr=0.01)", 700),
        ("GMP (magnitude)", 750),
        ("Cyclic (magnitude)", 600),
        ("SCULPT (magnitude)", 650),
        ("IEE (magnitude)", 720),
    ):
        assert rows[label].startswith(f"{level + 0.5:.1f} ["), (label, rows)  # IQM of two runs: their mean
    assert any(label.startswith("RigL (") for label in rows)
    table = text[text.index("## Every configuration") :]
    labels = {line.split("|")[3].strip() for line in table.splitlines() if "| Pendulum" in line}
    assert {"cyclic_magnitude_sp0.9_w64", "sculpt_magnitude_sp0.9_w64", "iee_magnitude_sp0.9_w64"} <= labels
