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


def test_readme_results_are_the_report_of_the_committed_cells(tmp_path) -> None:
    """The README's one-CPU results block is what `sb3-tar report ... --readme README.md` writes from the cells
    committed under benchmarks/results/cpu60k: regenerate it into a copy and compare, and check its plots exist."""
    from sb3_tar.experiments.report import make_report, readme_block

    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    make_report(
        ROOT / "benchmarks" / "results" / "cpu60k",
        tmp_path / "report",
        last_fraction=0.25,
        make_plots=False,
        progress=False,
        echo=lambda _: None,
        readme=readme,
    )
    committed = readme_block(ROOT / "README.md")
    # the copy's plot links point into tmp_path/report instead of the committed report folder
    assert readme_block(readme) == committed.replace("](benchmarks/results/cpu60k/report/", "](report/")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", committed)
    assert links and all((ROOT / link).is_file() for link in links), links


def test_numbers_quoted_in_the_results_prose_are_in_the_generated_block() -> None:
    """The prose above the one-CPU block quotes returns, percentages and dead-unit counts; each must be one the
    block (regenerated from the data by the test above) prints, so the prose cannot drift from the data."""
    from sb3_tar.experiments.report import DIGEST_BEGIN, readme_block

    text = (ROOT / "README.md").read_text()
    prose = text[text.index("## Results on one CPU") : text.index(DIGEST_BEGIN)]
    block = readme_block(ROOT / "README.md")
    quoted = re.findall(r"\d+\.\d+%?", prose)
    assert len(quoted) >= 8, quoted
    paper = {"13.5%", "37.9%"}  # the paper's own figures, quoted for comparison
    missing = [number for number in quoted if number not in block and number not in paper]
    assert not missing, missing


def test_readme_300k_block_is_the_report_of_the_committed_cells(tmp_path) -> None:
    """The README's "At 300,000 steps" block (named `cpu300k`) is what `sb3-tar report benchmarks/results/cpu300k
    --last-fraction 0.1 --at-steps 60000 150000 300000 --readme README.md --block cpu300k` writes from the cells
    committed under benchmarks/results/cpu300k; its prose quotes only numbers the block prints."""
    from sb3_tar.experiments.report import block_markers, make_report, readme_block

    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    make_report(
        ROOT / "benchmarks" / "results" / "cpu300k",
        tmp_path / "report",
        last_fraction=0.1,
        make_plots=False,
        progress=False,
        echo=lambda _: None,
        readme=readme,
        block="cpu300k",
        at_steps=(60000, 150000, 300000),
    )
    committed = readme_block(ROOT / "README.md", "cpu300k")
    assert readme_block(readme, "cpu300k") == committed.replace("](benchmarks/results/cpu300k/report/", "](report/")
    assert readme_block(readme) == readme_block(ROOT / "README.md")  # the 60k block is left alone
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", committed)
    assert links and all((ROOT / link).is_file() for link in links), links
    assert "#### Ranking at 60,000, 150,000, 300,000 steps" in committed

    text = (ROOT / "README.md").read_text()
    prose = text[text.index("## At 300,000 steps") : text.index(block_markers("cpu300k")[0])]
    quoted = re.findall(r"\d+\.\d+%?", prose)
    setup = {"0.01"}  # TAR's recovery ratio, a setting of the grid rather than a result
    missing = [number for number in quoted if number not in committed and number not in setup]
    assert not missing, missing
