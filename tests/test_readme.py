"""The README opens with the two commands a new user runs; CI runs exactly the test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


def _regenerated_block(
    tmp_path: Path, grid: str, block: str | None, report_dir: str = "report", **report_kwargs
) -> tuple[Path, str]:
    """Run the report of the cells committed under benchmarks/results/<grid> into a copy of the README, check that
    it writes the committed block again (its plot links point into tmp_path/report instead of the committed report
    folder benchmarks/results/<grid>/<report_dir>) and that the block's plots exist. :return: the copy and the
    committed block."""
    from sb3_tar.experiments.report import make_report, readme_block

    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    make_report(
        ROOT / "benchmarks" / "results" / grid,
        tmp_path / "report",
        make_plots=False,
        progress=False,
        echo=lambda _: None,
        readme=readme,
        block=block,
        **report_kwargs,
    )
    committed = readme_block(ROOT / "README.md", block)
    assert readme_block(readme, block) == committed.replace(f"](benchmarks/results/{grid}/{report_dir}/", "](report/")
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", committed)
    assert links and all((ROOT / link).is_file() for link in links), links
    return readme, committed


#: The presets whose cells the README's first results block reads (the folder also holds the scale grid's cells).
CPU60K_PHASES = ("cpu60k", "cpu60k-criteria", "cpu60k-td3", "cpu60k-baselines", "cpu60k-cyclic")

PAPER_FIGURES = frozenset({"13.5%", "37.9%"})  # the paper's own figures, which the prose quotes for comparison


def _quoted_numbers_not_in(
    generated: str, heading: str, block: str | None, allowed: frozenset[str] = frozenset()
) -> list[str]:
    """Check that the README's prose between ``heading`` and the begin marker of ``block`` quotes at least 8 decimal
    numbers (and percentages). :return: those it quotes that neither the ``generated`` block text prints nor are the
    paper's figures or in ``allowed``."""
    from sb3_tar.experiments.report import block_markers

    text = (ROOT / "README.md").read_text()
    quoted = re.findall(r"\d+\.\d+%?", text[text.index(heading) : text.index(block_markers(block)[0])])
    assert len(quoted) >= 8, quoted
    return [number for number in quoted if number not in generated and number not in PAPER_FIGURES | allowed]


def test_readme_results_are_the_report_of_the_committed_cells(tmp_path) -> None:
    """The README's one-CPU results block is what `sb3-tar report ... --readme README.md` writes from the cells
    committed under benchmarks/results/cpu60k: regenerate it into a copy and compare, and check its plots exist."""
    _regenerated_block(tmp_path, "cpu60k", None, last_fraction=0.25, presets=CPU60K_PHASES)


def test_numbers_quoted_in_the_results_prose_are_in_the_generated_block() -> None:
    """The prose above the one-CPU block quotes returns, percentages and dead-unit counts; each must be one the
    block (regenerated from the data by the test above) prints, so the prose cannot drift from the data."""
    from sb3_tar.experiments.report import readme_block

    missing = _quoted_numbers_not_in(readme_block(ROOT / "README.md"), "## Results on one CPU", None)
    assert not missing, missing


def test_readme_300k_block_is_the_report_of_the_committed_cells(tmp_path) -> None:
    """The README's "At 300,000 steps" block (named `cpu300k`) is what `sb3-tar report benchmarks/results/cpu300k
    --last-fraction 0.1 --at-steps 60000 150000 300000 --readme README.md --block cpu300k` writes from the cells
    committed under benchmarks/results/cpu300k; its prose quotes only numbers the block prints."""
    from sb3_tar.experiments.report import readme_block

    copy, committed = _regenerated_block(tmp_path, "cpu300k", "cpu300k", last_fraction=0.1, at_steps=(60000, 150000, 300000))
    assert readme_block(copy) == readme_block(ROOT / "README.md")  # the 60k block is left alone
    assert "#### Ranking at 60,000, 150,000, 300,000 steps" in committed

    setup = frozenset({"0.01"})  # TAR's recovery ratio, a setting of the grid rather than a result
    missing = _quoted_numbers_not_in(committed, "## At 300,000 steps", "cpu300k", allowed=setup)
    assert not missing, missing


def test_readme_scale_block_is_the_report_of_the_committed_cells(tmp_path) -> None:
    """The README's "Width and revival ratio" block (named `scale`) is what `sb3-tar report benchmarks/results/cpu60k
    --presets cpu60k-rr cpu60k-width --last-fraction 0.25 --readme README.md --block scale` writes from the committed
    cells of those two presets, and the other two blocks are left alone; the section's commands are the ones this
    test runs."""
    from sb3_tar.experiments.report import readme_block

    copy, committed = _regenerated_block(
        tmp_path, "cpu60k", "scale", report_dir="report-scale", last_fraction=0.25, presets=("cpu60k-rr", "cpu60k-width")
    )
    assert readme_block(copy) == readme_block(ROOT / "README.md")
    assert readme_block(copy, "cpu300k") == readme_block(ROOT / "README.md", "cpu300k")
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Width and revival ratio") : text.index("<!-- sb3-tar report scale: begin")]
    assert "--presets cpu60k-rr cpu60k-width --last-fraction 0.25" in section
    assert "-o benchmarks/results/cpu60k/report-scale --readme README.md --block scale" in section
    missing = _quoted_numbers_not_in(committed, "## Width and revival ratio", "scale", allowed=frozenset({"0.25"}))
    assert not missing, missing  # the prose reads every number from the block (0.25: the command's setting)


#: The README's demonstration blocks (issue 30): preset, block name and the heading of the prose that reads it.
DEMOS = [("dqn-demo", "### DQN on LunarLander-v3"), ("ppo-demo", "### PPO on HalfCheetah-v4")]


@pytest.mark.parametrize("grid, heading", DEMOS)
def test_readme_demo_blocks_are_the_report_of_the_committed_cells(grid: str, heading: str, tmp_path) -> None:
    """The README's PPO and DQN demonstration blocks are what `sb3-tar report benchmarks/results/<preset>
    --last-fraction 0.25 --readme README.md --block <preset>` writes from the cells committed there; the other blocks
    are left alone; the prose quotes only numbers the block prints, and the section shows the commands."""
    from sb3_tar.experiments.report import readme_block

    copy, committed = _regenerated_block(tmp_path, grid, grid, last_fraction=0.25)
    for other in (None, "cpu300k", "scale"):
        assert readme_block(copy, other) == readme_block(ROOT / "README.md", other)
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading) : text.index(f"<!-- sb3-tar report {grid}: begin")]
    assert f"sb3-tar sweep --preset {grid} -o benchmarks/results/{grid}" in section
    assert f"sb3-tar report benchmarks/results/{grid} --last-fraction 0.25 --readme README.md --block {grid}" in section
    assert f"{len(list((ROOT / 'benchmarks' / 'results' / grid).glob('*/*/*/seed_*/done.json')))} runs." in committed
    missing = _quoted_numbers_not_in(committed, heading, grid, allowed=frozenset({"0.25"}))  # the command's setting
    assert not missing, missing


def test_training_speed_tables_quote_the_committed_benchmark_outputs() -> None:
    """The README's training-speed tables quote steps/s that the benchmark outputs linked beside them print (files
    under benchmarks/results/speed, each with the line naming the CPU it was measured on)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Training speed") : text.index("## Documentation")]
    files = re.findall(r"\]\((benchmarks/results/speed/[^)]+\.txt)\)", section)
    assert len(files) == 2, files
    outputs = ""
    for name in files:
        output = (ROOT / name).read_text()
        assert re.search(r"^CPU: .+ISA .+torch", output, flags=re.M), name  # the CPU it was measured on
        outputs += output
    rows = [line for line in section.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    quoted = [number for row in rows for number in re.findall(r"(?<![\d.])\d+\.\d(?![\d×])", row)]
    assert len(quoted) >= 12, quoted
    missing = [number for number in quoted if not re.search(rf"(?<![\d.]){re.escape(number)}(?!\d)", outputs)]
    assert not missing, missing
