"""The 300k grid's fixed-mask runs repeat the 60k grid's runs of the same configuration and seed over their first
60,000 steps, episode for episode: read from the committed monitor files of both grids."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
#: Methods whose training does not depend on the planned number of steps (RigL's and GMP's schedules do).
LENGTH_INDEPENDENT = ("dense", "static", "tar", "uniform")


def _episodes(cell: Path) -> list[tuple[str, str]]:
    """(return, length) of every training episode, as the monitor wrote them (its third column is wall time)."""
    (monitor,) = cell.glob("sac/*_1/0.monitor.csv")
    with open(monitor, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0].startswith("#") and rows[1][:2] == ["r", "l"], rows[:2]
    return [(r, length) for r, length, *_ in rows[2:]]


def _pairs() -> list[tuple[Path, Path]]:
    pairs = []
    for done in sorted((RESULTS / "cpu300k").glob("sac/*/*/seed_*/done.json")):
        cell = done.parent
        short = RESULTS / "cpu60k" / cell.relative_to(RESULTS / "cpu300k")
        method = json.loads((cell / "cell.json").read_text())["method"]
        if method in LENGTH_INDEPENDENT and (short / "done.json").is_file():
            pairs.append((short, cell))
    return pairs


def test_300k_runs_repeat_the_60k_runs_over_their_first_60k_steps() -> None:
    pairs = _pairs()
    # seed 0 of dense, Original (ERK) and TAR (ERK) are committed in both grids
    assert len(pairs) >= 3, pairs
    for short, long in pairs:
        first, full = _episodes(short), _episodes(long)
        assert sum(int(length) for _, length in first) == 60_000 and len(full) > len(first), long
        assert full[: len(first)] == first, f"{long} does not repeat {short}"


def test_the_compared_runs_include_runs_resumed_before_step_60k() -> None:
    """README and docs/experiments.md name dense seed 0 (resumed at 50,000) and TAR seed 1 (at 25,000): they are
    among the pairs above, and their logs show that they were killed and resumed before step 60,000."""
    compared = {long.relative_to(RESULTS / "cpu300k").as_posix() for _, long in _pairs()}
    for cell, step in (("dense_w256/seed_0", 50_000), ("tar_erk_sp0.9_rr0.01_w256/seed_1", 25_000)):
        folder = RESULTS / "cpu300k" / "sac" / "HalfCheetah-v4" / cell
        assert f"sac/HalfCheetah-v4/{cell}" in compared, cell
        assert json.loads((folder / "done.json").read_text())["resumed"] is True, cell
        log = (folder / "train.log").read_text(errors="replace")
        resumes = [int(s) for s in re.findall(r"resumed from \S+ at step (\d+)", log)]
        assert step in resumes and min(resumes) < 60_000, (cell, resumes)


def test_the_comparison_can_fail() -> None:
    """The planned length changes a RigL run from its first mask update on, so its episodes differ: the monitor
    files compared above are not the same whatever ran."""
    short = RESULTS / "cpu60k" / "sac" / "HalfCheetah-v4" / "rigl_erk_sp0.9_w256" / "seed_0"
    long = RESULTS / "cpu300k" / "sac" / "HalfCheetah-v4" / "rigl_erk_sp0.9_w256" / "seed_0"
    first, full = _episodes(short), _episodes(long)
    assert full[:5] == first[:5]  # the same until the first update (1,000 gradient steps after step 5,000)
    assert full[: len(first)] != first


def test_gmp_runs_repeat_the_dense_run_of_their_seed_until_gmp_first_prunes() -> None:
    """A GMP run is dense SAC until its first pruning step, so over those steps it repeats the 300k grid's dense run
    of the same seed episode for episode, whichever commit ran each; from the next episode on it differs. The step is
    computed by hand from the committed schedule: ``T = n_timesteps - learning_starts`` gradient steps,
    ``t0 = round(start_fraction * T)`` keeps every weight (``c_t0 = 0``), so the first weights go at gradient step
    ``t0 + interval``, right after env step ``learning_starts + t0 + interval`` (one gradient step per env step)."""
    base = RESULTS / "cpu300k" / "sac" / "HalfCheetah-v4"
    compared = 0
    for done in sorted((base / "gmp_magnitude_sp0.9_w256").glob("seed_*/done.json")):
        gmp, dense = done.parent, base / "dense_w256" / done.parent.name
        cell = json.loads((gmp / "cell.json").read_text())
        schedule = json.loads((gmp / "summary.json").read_text())["config"]["gmp"]
        learning_starts = int(dict(cell["hyperparams"])["learning_starts"])
        total = cell["n_timesteps"] - learning_starts
        first_prune = learning_starts + round(schedule["start_fraction"] * total) + schedule["interval"]
        assert (total, first_prune) == (295_000, 65_000)  # 5,000 + 59,000 + 1,000
        episodes, reference = _episodes(gmp), _episodes(dense)
        lengths = {int(length) for _, length in episodes + reference}
        assert lengths == {1000}, lengths  # HalfCheetah episodes end only by the time limit
        before = first_prune // 1000
        assert episodes[:before] == reference[:before], gmp
        assert episodes[before] != reference[before], gmp  # the pruned actor acts differently from here
        compared += 1
    assert compared == 5  # seeds 0-4, all committed
