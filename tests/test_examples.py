"""The README's main job runs end to end (shortened) and prints what it did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs_and_reports() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "quickstart.py"),
            "--env",
            "Pendulum-v1",
            "--steps",
            "450",
            "--eval-episodes",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "E_l" in out and "B_l" in out  # the pruning/revival table
    assert "total_timesteps" in out  # SB3's progress table
    assert "pruned-but-nonzero 0" in out and "sparsity 0.9000" in out
    assert "Evaluation over 1 episodes" in out
    assert "Execution: sparse C++ kernel for" in out  # the fast path, on this machine and CI's


def test_pendulum_example_runs_without_mujoco_and_reports() -> None:
    """The README's one-minute example (shortened): a plain MlpPolicy SAC made sparse by TARCallback, its per-layer
    table, the measured sparsity of each network (SB3's default (256, 256) network on Pendulum: 66,816 weights,
    6,682 kept at 90%) and an evaluation."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "pendulum.py"), "--steps", "300"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "E_l" in out and "B_l" in out
    # actor 3*256 + 256*256 + 2*256 = 66,816 weights, each Q-network (3 + 1)*256 + 256*256 + 256 = 66,816; 6,682 kept
    for name in ("actor", "critic.qf0", "critic.qf1"):
        assert f"{name}: 6682 of 66816 weights kept (sparsity 0.9000)" in out
    assert "mean return over 10 episodes:" in out
