"""``.ci/venv_check`` runs the README's two commands in a fresh virtual environment (issue 32): check that the
commands it runs are exactly the README's (running them takes the full install and suite, so CI or a release
check runs the script itself; ``tests/test_wheel.py`` covers the part that once failed only in a venv)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from test_readme import _readme_commands

ROOT = Path(__file__).resolve().parents[1]


def test_venv_check_runs_exactly_the_readme_commands() -> None:
    script = ROOT / ".ci" / "venv_check"
    assert script.stat().st_mode & 0o111, "not executable"
    printed = subprocess.run([str(script), "--print"], capture_output=True, text=True, check=True).stdout
    assert printed.splitlines() == [command.strip() for command in _readme_commands()]
    text = script.read_text()
    assert 'python3 -m venv "$venv"' in text and 'source "$venv/bin/activate"' in text
