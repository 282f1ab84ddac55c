"""Running the ``sb3-tar`` command line from tests, as a user runs it: a subprocess importing this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli_env() -> dict[str, str]:
    """The environment of a CLI run: one thread per process, this checkout first on ``PYTHONPATH``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_cli(*args: str, timeout: float = 540) -> subprocess.CompletedProcess:
    """:return: The finished ``python -m sb3_tar.cli <args>`` (output captured as text)."""
    cmd = [sys.executable, "-m", "sb3_tar.cli", *args]
    return subprocess.run(cmd, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=timeout)
