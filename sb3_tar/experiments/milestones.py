"""The ranking of methods at several points of one training budget, read from the same runs.

A run's return *at step t* is its final return computed as if training had stopped at ``t``: the mean of the
last ``last_fraction`` of its evaluations made at or before ``t`` (at least one; see
:func:`~sb3_tar.experiments.results.final_return`). At ``t`` equal to the budget it is the run's final return.
A run whose last evaluation comes before ``t`` has no return at ``t`` and is left out of that column.

Methods are ranked within each (algo, env, width) and step by their mean over seeds, 1 the highest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sb3_tar.experiments.results import CONFIG_COLUMNS, final_return

#: Columns that group the configurations ranked against each other.
_RANK_GROUP = ["algo", "env", "width"]


def check_steps(steps: Sequence[int]) -> tuple[int, ...]:
    """
    :param steps: Environment steps, positive and increasing.
    :return: The steps as a tuple.
    :raises TypeError: If a step is not an int.
    :raises ValueError: If ``steps`` is empty, holds a step < 1, or is not strictly increasing.
    """
    steps = tuple(steps)
    if not steps:
        raise ValueError("steps must not be empty")
    for step in steps:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"steps must be ints, got {step!r} ({type(step).__name__})")
        if step < 1:
            raise ValueError(f"steps contains {step}, outside the allowed range [1, inf)")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps must be strictly increasing, got {list(steps)}")
    return tuple(int(s) for s in steps)


def returns_at_steps(
    runs: pd.DataFrame,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    steps: Sequence[int],
    last_fraction: float = 0.1,
) -> pd.DataFrame:
    """
    :param runs: Per-run results (``SweepResults.runs``).
    :param curves: Learning curves by ``cell_dir`` (``SweepResults.curves``).
    :param steps: Steps at which to read each run.
    :param last_fraction: Fraction of the evaluations up to a step that are averaged.
    :return: One row per run and step the run reached: the configuration columns, ``label``, ``seed``, ``step``
        and ``return``.
    """
    steps = check_steps(steps)
    rows = []
    for run in runs.itertuples(index=False):
        timesteps, returns = curves[run.cell_dir]
        for step in steps:
            if len(timesteps) == 0 or timesteps[-1] < step:
                continue
            upto = returns[timesteps <= step]
            if upto.size == 0:
                continue
            rows.append(
                {
                    **{column: getattr(run, column) for column in CONFIG_COLUMNS},
                    "label": run.label,
                    "seed": run.seed,
                    "step": step,
                    "return": final_return(upto, last_fraction),
                }
            )
    return pd.DataFrame(rows, columns=[*CONFIG_COLUMNS, "label", "seed", "step", "return"])


def ranking_table(at_steps: pd.DataFrame) -> pd.DataFrame:
    """
    :param at_steps: Output of :func:`returns_at_steps`.
    :return: One row per configuration and step: ``algo``, ``env``, ``width``, ``label``, ``step``, ``n``,
        ``mean``, ``se`` (standard error over seeds, NaN for one seed) and ``rank`` (1 = highest mean among the
        configurations of the same algo, env, width and step; ties share the lower rank).
    """
    if at_steps.empty:
        return pd.DataFrame(columns=[*_RANK_GROUP, "label", "step", "n", "mean", "se", "rank"])
    grouped = at_steps.groupby([*_RANK_GROUP, "label", "step"], sort=False)["return"]
    table = grouped.agg(n="count", mean="mean", std=lambda x: x.std(ddof=1)).reset_index()
    table["se"] = table["std"] / np.sqrt(table["n"])
    table = table.drop(columns="std")
    table["rank"] = table.groupby([*_RANK_GROUP, "step"])["mean"].rank(ascending=False, method="min").astype(int)
    return table


def format_ranking(table: pd.DataFrame) -> pd.DataFrame:
    """
    :param table: Output of :func:`ranking_table`.
    :return: One row per configuration (ordered by its rank at the last step), a column per step holding
        ``mean ± s.e. (#rank)``; ``n`` where a step has fewer runs than the configuration has.
    """
    if table.empty:
        return table
    steps = sorted(table["step"].unique())
    rows = []
    for (algo, env, width), group in table.groupby(_RANK_GROUP, sort=False):
        last = group[group["step"] == steps[-1]].set_index("label")["rank"]
        labels = sorted(group["label"].unique(), key=lambda label: (last.get(label, len(last) + 1), label))
        for label in labels:
            row = {"Algo": str(algo).upper(), "Env": env, "Width": width, "Method": label}
            full = group[group["label"] == label]["n"].max()
            for step in steps:
                cell = group[(group["label"] == label) & (group["step"] == step)]
                if cell.empty:
                    row[f"at {step:,}"] = "–"
                    continue
                cell = cell.iloc[0]
                se = "" if np.isnan(cell["se"]) else f" ± {cell['se']:.1f}"
                n = f", n={cell['n']}" if cell["n"] < full else ""
                row[f"at {step:,}"] = f"{cell['mean']:.1f}{se} (#{cell['rank']}{n})"
            rows.append(row)
    return pd.DataFrame(rows)
