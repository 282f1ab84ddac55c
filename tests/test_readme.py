"""The README opens with the two commands a new user runs; CI runs exactly the test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text[: text.index("\n## ")]  # the opening section, before the first heading
    return re.findall(r"```bash\n(.+?)\n```", head, flags=re.S)


def test_readme_opens_with_main_job_and_test_commands() -> None:
    commands = _readme_commands()
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "pip install torch==2.13.0" in main_job and "examples/quickstart.py" in main_job
    assert "pip install torch==2.13.0" in tests and "pytest" in tests
    assert (ROOT / "examples" / "quickstart.py").exists()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci_lines = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd ", "export "))
    ]
    assert ci_lines == [_readme_commands()[1].strip()]
