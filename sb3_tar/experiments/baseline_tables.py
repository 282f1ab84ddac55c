"""Report tables of the baselines: the widths and weight counts of the small-dense networks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sb3_tar.experiments.runner import SUMMARY_FILE


def small_dense_table(runs: pd.DataFrame) -> pd.DataFrame:
    """
    :param runs: Per-run results (:func:`sb3_tar.experiments.results.load_results`).
    :return: One row per small-dense configuration and network, read from the lowest seed's ``summary.json``
        (the widths do not depend on the seed): columns ``Algo``, ``Env``, ``Width``, ``Sparsity``, ``Network``,
        ``Sparse kept`` (``K`` of ``P(W)``), ``Dense widths``, ``Dense weights`` and ``Difference`` (relative to
        ``K``). Empty if there is no small-dense run.
    """
    rows = []
    small = runs[runs["method"] == "small_dense"].sort_values("seed") if "method" in runs else runs.iloc[0:0]
    for _, group in small.groupby(["algo", "env", "width", "sparsity"], sort=False):
        first = group.iloc[0]
        try:
            record = json.loads((Path(first["cell_dir"]) / SUMMARY_FILE).read_text())["config"]["small_dense"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for network, entry in record.items():
            rows.append(
                {
                    "Algo": str(first["algo"]).upper(),
                    "Env": first["env"],
                    "Width": int(first["width"]),
                    "Sparsity": f"{first['sparsity']:g}",
                    "Network": network,
                    "Sparse kept": f"{entry['target']} of {entry['reference_weights']}",
                    "Dense widths": str(entry["model_widths"]),
                    "Dense weights": entry["model_weights"],
                    "Difference": f"{100 * (entry['model_weights'] - entry['target']) / entry['target']:+.2f}%",
                }
            )
    return pd.DataFrame(rows)


def small_dense_section(runs: pd.DataFrame) -> list[str]:
    """:return: Markdown lines of the small-dense table (none without a small-dense run)."""
    from sb3_tar.experiments.tables import to_markdown

    table = small_dense_table(runs)
    if table.empty:
        return []
    return [
        "## Small dense: widths and weight counts",
        "",
        "Each network of a small-dense run is dense, with hidden widths solved so that its weights match the kept "
        "count of the network of the grid's width at the given sparsity (docs/method.md, Small dense).",
        "",
        to_markdown(table),
    ]


__all__ = ["small_dense_section", "small_dense_table"]
