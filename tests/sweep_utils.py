"""Sweeps shared by several test modules: the smoke preset, run once per session through the ``sb3-tar`` CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cli_utils import run_cli

SMOKE_ENV = "Pendulum-v1"


def failed_logs(root: Path) -> str:
    """:return: The tail of the RL-Zoo log of every cell under ``root`` that did not finish (for assertion messages)."""
    logs = []
    for log in root.glob("*/*/*/seed_*/train.log"):
        if not (log.parent / "done.json").exists():
            logs.append(f"--- {log}\n" + log.read_text()[-3000:])
    return "\n".join(logs)


def run_smoke(root: Path) -> tuple[Path, subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """
    ``sb3-tar sweep --preset smoke -o root --jobs 2`` (12 cells: dense, static, tar, uniform, set and rigl, seeds 0 and
    1, 600 steps), then ``sb3-tar report root``.

    :param root: The results directory.
    :return: ``root`` and the two finished commands.
    """
    sweep = run_cli("sweep", "--preset", "smoke", "-o", str(root), "--jobs", "2", "--no-progress")
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr + failed_logs(root)
    report = run_cli("report", str(root), "--reps", "50", "--no-progress", timeout=180)
    assert report.returncode == 0, report.stdout + report.stderr
    return root, sweep, report
