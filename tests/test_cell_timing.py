"""Wall time per cell: a cell resumed from a checkpoint is credited with its earlier attempts' time up to the
checkpoint it resumed from, and the report's per-configuration median leaves out cells whose time is incomplete."""

from __future__ import annotations

import json
import math
import os

import pandas as pd

from sb3_tar.experiments import runner
from sb3_tar.experiments.tables import cell_wall_seconds, format_summary, summarize


def _checkpoint(folder, step: int, written: float) -> None:
    path = folder / runner.CHECKPOINT_DIR / f"step_{step:012d}"
    path.mkdir(parents=True)
    (path / "meta.json").write_text("{}")
    os.utime(path / "meta.json", (written, written))


def test_resume_credits_the_time_up_to_the_checkpoint_it_resumes_from(tmp_path) -> None:
    # first attempt started at t=1000 and wrote checkpoints at 1600 and 2200; it was killed later (lost work)
    runner._write_timing(tmp_path, 1000.0, 0.0)
    _checkpoint(tmp_path, 100, 1600.0)
    _checkpoint(tmp_path, 200, 2200.0)
    assert runner._credited_seconds(tmp_path) == 1200.0
    # second attempt starts at 5000 with that credit and writes one more checkpoint at 5300
    runner._write_timing(tmp_path, 5000.0, 1200.0)
    _checkpoint(tmp_path, 300, 5300.0)
    assert runner._credited_seconds(tmp_path) == 1500.0
    assert json.loads((tmp_path / runner.CHECKPOINT_DIR / runner.TIMING_FILE).read_text()) == {
        "attempt_start": 5000.0,
        "credited_s": 1200.0,
    }


def test_resume_without_recorded_timing_is_unknown(tmp_path) -> None:
    _checkpoint(tmp_path, 100, 1600.0)  # written by a sweep that kept no timing file
    assert runner._credited_seconds(tmp_path) is None
    runner._write_timing(tmp_path, 2000.0, None)  # and the attempt resumed from it passes the unknown on
    _checkpoint(tmp_path, 200, 2600.0)
    assert runner._credited_seconds(tmp_path) is None


def test_median_wall_time_per_configuration_leaves_incomplete_cells_out() -> None:
    runs = pd.DataFrame(
        {
            "algo": "sac",
            "env": "HalfCheetah-v4",
            "method": ["dense"] * 4 + ["rigl"] * 2,
            "criterion": [None] * 4 + ["erk"] * 2,
            "sparsity": [math.nan] * 4 + [0.9] * 2,
            "rr": math.nan,
            "width": 256,
            "seed": [0, 1, 2, 3, 0, 1],
            "label": ["dense_w256"] * 4 + ["rigl_erk_sp0.9_w256"] * 2,
            "final_return": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "train_flops": [1.0] * 4 + [0.1034] * 2,
            "wall_s": [600.0, 900.0, 60.0, 1200.0, 3000.0, math.nan],
            "wall_complete": [True, True, False, True, True, True],
        }
    )
    assert cell_wall_seconds(runs.iloc[:4]) == 900.0  # median of 600, 900, 1200 (the 60 s resumed cell left out)
    assert cell_wall_seconds(runs.iloc[4:]) == 3000.0
    assert math.isnan(cell_wall_seconds(runs.iloc[[2]]))
    text = format_summary(summarize(runs))
    assert list(text["Wall time per cell"]) == ["15 min", "50 min"]
    assert list(text["Training FLOPs vs dense"]) == ["1.000x", "0.103x"]
