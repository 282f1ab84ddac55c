"""``sb3-tar report``: turn a results directory into tables (markdown + CSV) and PNG plots."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sb3_tar.experiments import plots, tables
from sb3_tar.experiments.results import cell_reports, load_results, wall_clock_seconds


@dataclass
class Report:
    """
    Files written by :func:`make_report`.

    :param out_dir: Output folder.
    :param markdown: The markdown report (``report.md``).
    :param csv: CSV files by name (``runs``, ``summary``, ``table``, ``iqm``, ``iqm_aggregate``, ``improvement``,
        ``connectivity``).
    :param plots: PNG files.
    :param messages: Notes (skipped plots, unfinished cells, seed mismatches).
    :param table_text: The main table as markdown.
    """

    out_dir: Path
    markdown: Path
    csv: dict[str, Path] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    table_text: str = ""


def make_report(
    results_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    last_fraction: float = 0.1,
    reps: int = 2000,
    seed: int = 0,
    make_plots: bool = True,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> Report:
    """
    Build the report of a sweep.

    :param results_dir: Results directory written by ``sb3-tar sweep``.
    :param out_dir: Where to write (default: ``<results_dir>/report``).
    :param last_fraction: Fraction of the last evaluations averaged into a run's final return.
    :param reps: Bootstrap replications for the IQM intervals.
    :param seed: Seed of the bootstrap.
    :param make_plots: Write the PNG plots.
    :param progress: Show progress bars.
    :param echo: Where to print the main table and notes.
    :return: The written files.
    """
    results = load_results(results_dir, last_fraction, progress=progress)
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    runs = results.runs
    summary = tables.summarize(runs)
    comparison = tables.comparison_table(summary)
    iqm = tables.iqm_table(runs, reps=reps, seed=seed, progress=progress)
    aggregate, aggregate_message = tables.aggregate_iqm_table(runs, reps=reps, seed=seed)
    improvement = tables.improvement_table(runs, reps=reps, seed=seed)
    connectivity = tables.connectivity_table(runs)
    report = Report(out_dir=out, markdown=out / "report.md")
    if results.unfinished:
        report.messages.append(f"{len(results.unfinished)} unfinished cell(s) left out, e.g. {results.unfinished[0]}")
    report.messages += _seed_mismatches(comparison)
    wall = runs["wall_s"].dropna()
    if len(wall):
        report.messages.append(
            f"{len(wall)} cell(s) with recorded times took {wall.sum() / 3600:.1f} h of training in all "
            f"(median {wall.median() / 60:.0f} min per cell) and {wall_clock_seconds(runs) / 3600:.1f} h of "
            "wall-clock time (the union of their run intervals: cells that ran side by side count once, "
            "time between sessions not at all)"
        )
    commits = runs["commit"].value_counts()
    if len(commits) > 1:
        report.messages.append(
            "cells were run by several sb3-tar commits ("
            + ", ".join(f"{commit}: {count}" for commit, count in commits.items())
            + "); compare them only if no commit between them changed how masks are drawn"
        )
    if aggregate_message:
        report.messages.append(aggregate_message)
    frames = {
        "runs": runs,
        "summary": summary,
        "table": comparison,
        "iqm": iqm,
        "iqm_aggregate": aggregate,
        "improvement": improvement,
        "connectivity": connectivity,
    }
    for name, frame in frames.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)
        report.csv[name] = path
    if make_plots:
        for func, args in (
            (plots.learning_curves, (runs, results.curves, out)),
            (plots.rr_sensitivity, (runs, out)),
            (plots.width_scaling, (runs, out)),
        ):
            written, messages = func(*args)
            report.plots += written
            report.messages += messages
    main = tables.format_comparison(comparison)
    if main.empty:
        report.messages.append("Original-vs-TAR table skipped: the grid has no static or TAR run")
    report.table_text = tables.to_markdown(main) if not main.empty else ""
    text = _markdown(report, main, iqm, aggregate, improvement, summary, runs, connectivity, last_fraction, reps)
    report.markdown.write_text(text)
    if report.table_text:
        echo(report.table_text)
    for message in report.messages:
        echo(f"note: {message}")
    echo(f"Report written to {report.markdown} ({len(report.plots)} plot(s))")
    return report


def _layer_sections(runs, connectivity) -> list[str]:
    """Markdown lines: dead units per configuration, and where TAR put its budget in the lowest seed of each TAR
    configuration."""
    if connectivity.empty:
        return []
    lines = ["## Connectivity of the masks (dead units, mean over seeds)", ""]
    lines.append(
        "A unit is dead in a layer when it has no incoming (an output) or no outgoing (an input) connection; the "
        "counts are summed over every layer of the actor and both Q-networks, among each layer's outputs plus "
        "inputs. For Original, Uniform and TAR, *before revival* is the shared static mask.\n"
    )
    lines.append(tables.to_markdown(tables.format_connectivity(connectivity)))
    tar = runs[(runs["method"] == "tar") & runs["dead_before"].notna()]
    for label, group in tar.groupby("label", sort=False):
        first = group.sort_values("seed").iloc[0]
        reports = cell_reports(first["cell_dir"])
        if reports is None:
            continue
        lines += [f"## Where TAR put its budget: {first['env']} {label}, seed {first['seed']}", ""]
        lines.append(
            "`E_l`: topology proxy; `K_l`: weights the static mask kept; `g_l = max(0, E_l - K_l)`: the layer's "
            "need; `f_l`: connectivity floor; `B_l`: weights revived; density after revival; dead units before "
            "and after revival.\n"
        )
        lines.append(tables.to_markdown(tables.layer_table(reports)))
    return lines


def _seed_mismatches(comparison) -> list[str]:
    notes = []
    for _, row in comparison.iterrows():
        if row["original_n"] and row["tar_n"] and row["original_seeds"] != row["tar_seeds"]:
            notes.append(
                f"{row['algo']} {row['env']} {row['criterion']} sparsity {row['sparsity']:g}: Original seeds "
                f"[{row['original_seeds']}] differ from TAR seeds [{row['tar_seeds']}] (not a paired comparison)"
            )
    return notes


def _markdown(
    report: Report, main, iqm, aggregate, improvement, summary, runs, connectivity, last_fraction: float, reps: int
) -> str:
    lines = ["# sb3-tar results", ""]
    lines.append(
        f"{len(runs)} run(s). Final return = mean of the last {last_fraction:.0%} of evaluations (each evaluation = "
        "mean of its episodes); mean ± standard error over seeds. Percent change = 100·(x − baseline)/|baseline|. "
        f"IQM with 95% stratified-bootstrap intervals from rliable ({reps} replications)."
    )
    lines += ["", "## Original (static) vs TAR, and TAR vs the best of SET/RigL", ""]
    lines.append(report.table_text or "_(no static or TAR run)_\n")
    lines += ["## IQM of the final return (95% CI)", "", tables.to_markdown(tables.format_iqm(iqm))]
    if len(aggregate):
        lines += ["## IQM across environments, normalised to dense (95% CI)", ""]
        cis = zip(aggregate["iqm"], aggregate["ci_low"], aggregate["ci_high"])
        text = aggregate.assign(**{"IQM [95% CI]": [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in cis]})
        text = text.drop(columns=["iqm", "ci_low", "ci_high"])
        lines.append(tables.to_markdown(text))
    if len(improvement):
        lines += ["## Probability of improvement (95% CI)", ""]
        lines.append(tables.to_markdown(tables.format_improvement(improvement)))
    lines += ["## Every configuration", "", tables.to_markdown(tables.format_summary(summary))]
    lines += _layer_sections(runs, connectivity)
    if report.plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in report.plots]
        lines.append("")
    if report.messages:
        lines += ["## Notes", ""]
        lines += [f"- {m}" for m in report.messages]
        lines.append("")
    return "\n".join(lines)
