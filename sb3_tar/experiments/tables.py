"""Results tables: per-configuration mean ± standard error, the paper's Original-vs-TAR table with percent
changes (and TAR vs the best of SET/RigL), and IQM with 95% stratified-bootstrap intervals (rliable).

Percent change of ``x`` over a baseline ``b`` is ``100 * (x - b) / |b|``, so a positive number is an
improvement even when returns are negative. The text tables print changes beyond :data:`PCT_SHOWN_UP_TO` as a bound
(``>+1000%``): there the baseline's mean is near zero and the ratio says nothing the returns do not.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sb3_tar.experiments import role_cells
from sb3_tar.experiments.results import CONFIG_COLUMNS, cell_reports


def import_rliable() -> tuple[Any, Any]:
    """
    Import ``rliable.library`` and ``rliable.metrics`` (lazily: the report is their only user).

    rliable 1.2 imports ``arch``: ``arch`` 7 fails to import under pandas 3 and ``arch`` 8 rejects
    rliable's bootstrap arguments, which is why the package pins ``pandas<3`` and ``arch<8``.

    :return: ``(rliable.library, rliable.metrics)``.
    """
    from rliable import library, metrics

    return library, metrics


def _interval_estimates(library: Any, metrics: Any, scores: dict[str, np.ndarray], reps: int, seed: int) -> tuple[dict, dict]:
    """
    IQM point estimates and 95% stratified-bootstrap intervals (rliable), one method at a time.

    rliable 1.2's ``StratifiedBootstrap`` draws from NumPy's global generator (its ``random_state``
    argument does not reach the draws), so each method is bootstrapped right after seeding the global
    generator with ``seed``: an interval depends only on that method's scores and ``seed``, not on
    which other methods are in the table. The caller's global NumPy random state is restored.
    """
    points, intervals = {}, {}
    state = np.random.get_state()
    try:
        for key, values in scores.items():
            np.random.seed(seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # arch: RandomState is deprecated
                point, interval = library.get_interval_estimates(
                    {key: values}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps
                )
            points[key], intervals[key] = point[key], interval[key]
    finally:
        np.random.set_state(state)
    return points, intervals


def pct_change(value: float, baseline: float) -> float:
    """
    :param value: New value.
    :param baseline: Baseline value.
    :return: ``100 * (value - baseline) / |baseline|`` (NaN if the baseline is 0 or either is NaN).
    """
    if baseline is None or value is None or not np.isfinite(baseline) or not np.isfinite(value) or baseline == 0:
        return float("nan")
    return 100.0 * (value - baseline) / abs(baseline)


def standard_error(values: Sequence[float]) -> float:
    """:return: The standard error of the mean (sample std / sqrt(n)); NaN for fewer than 2 values."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float("nan")
    return float(values.std(ddof=1) / math.sqrt(len(values)))


def with_options(runs: pd.DataFrame, keys: list[str]) -> list[str]:
    """
    :param runs: Per-run results.
    :param keys: Grouping columns of a configuration.
    :return: ``keys``, and ``options`` when the runs have that column (cells that differ only in extra callback
        options, :attr:`~sb3_tar.experiments.grid.Cell.options`, are kept apart, as the tables keep them by label).
    """
    return [*keys, "options"] if "options" in runs.columns else list(keys)


def same_variant(runs: pd.DataFrame, options: str) -> pd.DataFrame:
    """
    The baseline runs of a variant: among ``runs`` (one method's, e.g. Original's beside a TAR configuration), those
    with the same extra callback options, or, where none has them, those without options (a TAR variant such as
    ``budget_mode=extra`` is compared with the plain Original when no Original ran with that option).

    :param runs: Candidate runs (per-run results or a :func:`summarize` table).
    :param options: The variant's options (``""``: none).
    :return: The selected rows (all of ``runs`` when they have no ``options`` column).
    """
    if "options" not in runs.columns:
        return runs
    same = runs[runs["options"] == options]
    return same if len(same) or not options else runs[runs["options"] == ""]


def options_of(row: Any) -> str:
    """:return: The extra callback options of a run or table row (``""`` where it has none or no such column)."""
    options = row.get("options") if hasattr(row, "get") else None
    return options if isinstance(options, str) else ""


def options_suffix(row: Any) -> str:
    """:return: `` [<options>]`` for a run or table row with extra callback options, else ``""``."""
    options = options_of(row)
    return f" [{options}]" if options else ""


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """
    :param runs: Per-run results (see :func:`sb3_tar.experiments.results.load_results`).
    :return: One row per configuration: the configuration columns, ``label`` (and ``options`` where the runs have
        that column), ``n``, ``seeds``,
        ``mean`` and ``se`` of the final return, ``train_flops`` (mean training FLOPs relative to dense) and
        ``wall_s`` (median training time per cell, over the cells whose recorded time is complete, see
        :func:`cell_wall_seconds`; NaN if none is).
    """
    rows = []
    for key, group in runs.groupby([*CONFIG_COLUMNS, "label"], dropna=False, sort=False):  # label: extra options too
        values = group["final_return"].to_numpy()
        row = dict(zip(CONFIG_COLUMNS, key))
        row["label"] = group["label"].iloc[0]
        if "options" in group:
            row["options"] = group["options"].iloc[0]
        row.update(
            n=len(values),
            seeds=" ".join(str(s) for s in sorted(group["seed"])),
            mean=float(values.mean()),
            se=standard_error(values),
            train_flops=float(group["train_flops"].mean()) if "train_flops" in group else float("nan"),
            wall_s=cell_wall_seconds(group),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def complete_wall_times(runs: pd.DataFrame) -> pd.Series:
    """
    :param runs: Per-run results (columns ``wall_s`` and, optionally, ``wall_complete``).
    :return: The recorded training times, in seconds, of the cells whose time covers the whole run (a cell
        resumed from a checkpoint by a sweep that did not record the earlier attempts' time is left out).
    """
    if "wall_s" not in runs:
        return pd.Series(dtype=float)
    complete = runs["wall_complete"].astype(bool) if "wall_complete" in runs else pd.Series(True, index=runs.index)
    return runs.loc[complete, "wall_s"].dropna()


def cell_wall_seconds(runs: pd.DataFrame) -> float:
    """
    :param runs: Cells of one configuration (columns ``wall_s`` and, optionally, ``wall_complete``).
    :return: The median training time per cell, in seconds, over :func:`complete_wall_times`; NaN if no cell
        qualifies.
    """
    values = complete_wall_times(runs)
    return float(values.median()) if len(values) else float("nan")


def dense_runs(runs: pd.DataFrame, algo: str, env: str, width: int) -> pd.DataFrame:
    """
    :param runs: Per-run results.
    :param algo: The algorithm.
    :param env: The environment.
    :param width: The hidden width.
    :return: The dense runs of that algo, env and width: the reference of the sparse runs beside them.
    """
    return runs[(runs["method"] == "dense") & (runs["algo"] == algo) & (runs["env"] == env) & (runs["width"] == width)]


def _select(summary: pd.DataFrame, **conditions: Any) -> pd.DataFrame:
    mask = pd.Series(True, index=summary.index)
    for column, value in conditions.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            mask &= summary[column].isna()
        elif isinstance(value, float):
            mask &= np.isclose(summary[column].astype(float), value)
        else:
            mask &= summary[column] == value
    return summary[mask]


def comparison_table(summary: pd.DataFrame) -> pd.DataFrame:
    """
    The paper's table: one row per TAR configuration (algo, env, criterion, sparsity, width, rr) with its
    static baseline ("Original": same criterion and sparsity), Uniform Revival at the same rr, the best
    of SET/RigL (same sparsity and width) and dense (same width), and the percent changes of TAR.
    If the grid has no TAR run, one row per static configuration. Where cells carry extra callback options, each
    variant is a row of its own (column ``options``), its Original, Uniform and dense those of the same options or,
    where none ran with them, those without (:func:`same_variant`); the best of SET/RigL is the best of all their
    variants (column ``best_dst_options``: its options).

    :param summary: Output of :func:`summarize`.
    :return: The table (numbers; see :func:`format_comparison` for text).
    """
    anchors = summary[summary["method"] == "tar"]
    if anchors.empty:
        anchors = summary[summary["method"] == "static"]
    rows = []
    for _, anchor in anchors.iterrows():
        base = {"algo": anchor["algo"], "env": anchor["env"], "width": anchor["width"]}
        options = options_of(anchor)
        static = _select(summary, method="static", criterion=anchor["criterion"], sparsity=anchor["sparsity"], **base)
        tar = _select(
            summary, method="tar", criterion=anchor["criterion"], sparsity=anchor["sparsity"], rr=anchor["rr"], **base
        )
        uniform = _select(
            summary, method="uniform", criterion=anchor["criterion"], sparsity=anchor["sparsity"], rr=anchor["rr"], **base
        )
        dst = summary[summary["method"].isin(["set", "rigl"])]
        dst = dst[(dst["algo"] == base["algo"]) & (dst["env"] == base["env"]) & (dst["width"] == base["width"])]
        dst = dst[np.isclose(dst["sparsity"].astype(float), float(anchor["sparsity"]))]
        dense = _select(summary, method="dense", **base)
        if anchor["method"] == "tar" and "options" in summary:
            tar = tar[tar["options"] == options]
        static, uniform, dense = (same_variant(frame, options) for frame in (static, uniform, dense))
        row: dict[str, Any] = {
            **base,
            "criterion": anchor["criterion"],
            "sparsity": anchor["sparsity"],
            "rr": anchor["rr"] if anchor["method"] == "tar" else float("nan"),
        }
        if "options" in summary:
            row["options"] = options
        for name, frame in (("original", static), ("tar", tar), ("uniform", uniform), ("dense", dense)):
            first = frame.iloc[0] if len(frame) else None
            row[f"{name}_n"] = int(first["n"]) if first is not None else 0
            row[f"{name}_mean"] = float(first["mean"]) if first is not None else float("nan")
            row[f"{name}_se"] = float(first["se"]) if first is not None else float("nan")
            row[f"{name}_seeds"] = first["seeds"] if first is not None else ""
        if len(dst):
            best = dst.loc[dst["mean"].idxmax()]
            row.update(best_dst=best["method"], best_dst_mean=float(best["mean"]), best_dst_se=float(best["se"]))
            row["best_dst_n"] = int(best["n"])
            if "options" in summary:
                row["best_dst_options"] = options_of(best)
        else:
            row.update(best_dst="", best_dst_mean=float("nan"), best_dst_se=float("nan"), best_dst_n=0)
        row["tar_vs_original_pct"] = pct_change(row["tar_mean"], row["original_mean"])
        row["uniform_vs_original_pct"] = pct_change(row["uniform_mean"], row["original_mean"])
        row["tar_vs_best_dst_pct"] = pct_change(row["tar_mean"], row["best_dst_mean"])
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_se(mean: float, se: float, n: int) -> str:
    if n == 0 or not np.isfinite(mean):
        return "–"
    if not np.isfinite(se):
        return f"{mean:.1f} (n=1)"
    return f"{mean:.1f} ± {se:.1f}"


#: The largest percent change the text tables print as a number; beyond it they print the bound (``>+1000%``).
PCT_SHOWN_UP_TO = 1000.0


def pct_text(value: float) -> str:
    """
    :param value: A percent change (:func:`pct_change`).
    :return: It as the tables print it: ``+12.3%``, ``–`` for NaN, ``>+1000%``/``<-1000%`` beyond
        :data:`PCT_SHOWN_UP_TO`.
    """
    if not np.isfinite(value):
        return "–"
    if abs(value) > PCT_SHOWN_UP_TO:
        return f"{'>+' if value > 0 else '<-'}{PCT_SHOWN_UP_TO:.0f}%"
    return f"{value:+.1f}%"


def with_options_column(text: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """
    :param text: A table as text, one row per row of ``table``.
    :param table: The numbers, with an ``options`` column where the cells carry extra callback options.
    :return: ``text`` with a column ``Options`` after its configuration columns (``–`` for a row without options)
        where ``table`` has a row with options; else ``text`` unchanged.
    """
    if "options" not in table or not table["options"].fillna("").astype(bool).any():
        return text
    return text.assign(Options=[options or "–" for options in table["options"].fillna("")])


#: How the main table names the dynamic sparse training methods.
_NAMES_DST = {"set": "SET", "rigl": "RigL"}


def format_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """
    :param table: Output of :func:`comparison_table`.
    :return: The same table as text ("mean ± se", "+x.y%"), columns with no data dropped.
    """
    if table.empty:
        return pd.DataFrame()
    out = pd.DataFrame(
        {
            "Algo": table["algo"].str.upper(),
            "Env": table["env"],
            "Criterion": table["criterion"],
            "Sparsity": table["sparsity"].map(lambda v: f"{v:g}"),
            "Width": table["width"].astype(int),
            "rr": table["rr"].map(lambda v: "–" if not np.isfinite(v) else f"{v:g}"),
        }
    )
    out = with_options_column(out, table)
    for name, title in (("original", "Original"), ("tar", "TAR"), ("uniform", "Uniform"), ("dense", "Dense")):
        if table[f"{name}_n"].sum() == 0:
            continue
        out[title] = [_mean_se(m, s, n) for m, s, n in zip(table[f"{name}_mean"], table[f"{name}_se"], table[f"{name}_n"])]
        if name == "tar":
            out["TAR vs Original"] = table["tar_vs_original_pct"].map(pct_text)
        if name == "uniform":
            out["Uniform vs Original"] = table["uniform_vs_original_pct"].map(pct_text)
    if table["best_dst_n"].sum() > 0:
        best_options = table["best_dst_options"].fillna("") if "best_dst_options" in table else [""] * len(table)
        out["Best SET/RigL"] = [
            "–" if n == 0 else f"{_mean_se(m, s, n)} ({_NAMES_DST.get(name, name)}{f' [{o}]' if o else ''})"
            for m, s, n, name, o in zip(
                table["best_dst_mean"], table["best_dst_se"], table["best_dst_n"], table["best_dst"], best_options
            )
        ]
        if table["tar_n"].sum() > 0:
            out["TAR vs best DST"] = table["tar_vs_best_dst_pct"].map(pct_text)
    if "Dense" in out:  # keep Dense last
        out["Dense"] = out.pop("Dense")
    return out


#: Readable name of each grid method (per-role methods: :func:`role_cells.display_name`), in tables and plots.
METHOD_NAMES: dict[str, str] = {
    "dense": "Dense",
    "static": "Original",
    "tar": "TAR",
    "uniform": "Uniform",
    "set": "SET",
    "rigl": "RigL",
    "gmp": "GMP",
    "small_dense": "Small dense",
    "cyclic": "Cyclic",
    "sculpt": "SCULPT",
    "iee": "IEE",
}


def _method_label(row: pd.Series) -> str:
    """Readable method name, e.g. ``TAR (magnitude, rr=0.01)`` or ``SET (erk)``."""
    method = row["method"]
    if method in ("dense", "small_dense"):
        return METHOD_NAMES[method]
    name = METHOD_NAMES.get(method, role_cells.display_name(method))
    options = options_suffix(row)
    if method in ("tar", "uniform") or role_cells.revives(method):
        return f"{name} ({row['criterion']}, rr={row['rr']:g}){options}"
    return f"{name} ({row['criterion']}){options}"


def iqm_table(runs: pd.DataFrame, reps: int = 2000, seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """
    IQM of the final return with a 95% stratified-bootstrap interval (rliable), per method, within each
    (algo, env, sparsity, width) group (dense runs join every sparsity of their width).

    :param runs: Per-run results.
    :param reps: Bootstrap replications.
    :param seed: Seed of the bootstrap.
    :param progress: Show a progress bar over groups.
    :return: Columns algo, env, sparsity, width, method, n, iqm, ci_low, ci_high.
    """
    library, metrics = import_rliable()
    from tqdm.auto import tqdm

    runs = runs.assign(method_label=runs.apply(_method_label, axis=1))
    sparse = runs[runs["method"] != "dense"]
    groups = list(sparse.groupby(["algo", "env", "sparsity", "width"], sort=False))
    if sparse.empty:
        groups = [((a, e, float("nan"), w), g) for (a, e, w), g in runs.groupby(["algo", "env", "width"], sort=False)]
    rows = []
    for (algo, env, sparsity, width), group in tqdm(groups, desc="IQM bootstrap", unit="group", disable=not progress):
        dense = dense_runs(runs, algo, env, width)
        frame = pd.concat([dense, group]) if not sparse.empty else group
        scores = {label: g["final_return"].to_numpy()[:, None] for label, g in frame.groupby("method_label", sort=False)}
        point, interval = _interval_estimates(library, metrics, scores, reps, seed)
        for label, values in scores.items():
            rows.append(
                {
                    "algo": algo,
                    "env": env,
                    "sparsity": sparsity,
                    "width": width,
                    "method": label,
                    "n": len(values),
                    "iqm": float(point[label][0]),
                    "ci_low": float(interval[label][0, 0]),
                    "ci_high": float(interval[label][1, 0]),
                }
            )
    return pd.DataFrame(rows)


def format_iqm(table: pd.DataFrame) -> pd.DataFrame:
    """:return: :func:`iqm_table` as text: ``IQM [low, high]``."""
    if table.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "Algo": table["algo"].str.upper(),
            "Env": table["env"],
            "Sparsity": table["sparsity"].map(lambda v: "–" if not np.isfinite(v) else f"{v:g}"),
            "Width": table["width"].astype(int),
            "Method": table["method"],
            "n": table["n"],
            "IQM [95% CI]": [
                f"{m:.1f} [{lo:.1f}, {hi:.1f}]" for m, lo, hi in zip(table["iqm"], table["ci_low"], table["ci_high"])
            ],
        }
    )


def format_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """:return: :func:`summarize` as text, one row per configuration."""
    return pd.DataFrame(
        {
            "Algo": summary["algo"].str.upper(),
            "Env": summary["env"],
            "Configuration": summary["label"],
            "Seeds": summary["seeds"],
            "Final return": [_mean_se(m, s, n) for m, s, n in zip(summary["mean"], summary["se"], summary["n"])],
            "Training FLOPs vs dense": [_ratio(v) for v in summary.get("train_flops", [float("nan")] * len(summary))],
            "Wall time per cell": [_minutes(v) for v in summary.get("wall_s", [float("nan")] * len(summary))],
        }
    )


def _minutes(seconds: float) -> str:
    """A cell's training time as text, e.g. ``31 min`` (``n/a`` if unknown)."""
    return "n/a" if seconds is None or math.isnan(seconds) else f"{seconds / 60:.0f} min"


def _ratio(value: float) -> str:
    """A training-FLOPs ratio as text, e.g. ``0.107x`` (``n/a`` if unknown)."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}x"


def to_markdown(table: pd.DataFrame) -> str:
    """
    :param table: A table of text or numbers.
    :return: A GitHub-flavoured markdown table (no extra dependency).
    """
    if table.empty:
        return "_(no rows)_\n"
    header = [str(c) for c in table.columns]
    body = [[str(v) for v in row] for row in table.itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |"]
    lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _all_seeds_mean(group: pd.DataFrame, column: str) -> float:
    """:return: The mean of ``column`` over the group's runs, NaN unless every run recorded it (a mean over some seeds
    would sit beside a seed count that names them all)."""
    if column not in group or group[column].isna().any():
        return float("nan")
    return float(group[column].mean())


def connectivity_table(runs: pd.DataFrame) -> pd.DataFrame:
    """
    Whether each sparse configuration's mask was connected: dead units (outputs with no incoming and inputs with no
    outgoing connection, summed over every layer of the actor and the Q-networks) before and after revival, as the
    pruning reports in the cells' ``summary.json`` give them, and after training, from the final masks the cells
    recorded (for SET, RigL and GMP the mask their schedule left), averaged over seeds (NaN unless every seed recorded
    it). A baseline with many dead
    units is a broken network, so a gain over it says little.

    :param runs: Per-run results (with ``dead_before`` / ``dead_after`` and, when known, ``units``, ``dead_final``
        and ``units_final``).
    :return: Columns of the configuration, ``n``, ``dead_before``, ``dead_after`` (means; NaN where unknown) and
        ``units`` (the units they are counted among: each layer's outputs plus inputs, of the layers the pruning
        report covers), ``dead_final`` and ``units_final`` (the same for the final mask, over every linear layer);
        one row per sparse configuration with a pruning report or a recorded final mask.
    """
    if "dead_before" not in runs:
        return pd.DataFrame()
    known = runs["dead_before"].notna()
    if "dead_final" in runs:
        known |= runs["dead_final"].notna() & (runs["method"] != "dense")
    rows = []
    for key, group in runs[known].groupby([*CONFIG_COLUMNS, "label"], dropna=False, sort=False):
        row = dict(zip(CONFIG_COLUMNS, key))
        row.update(
            label=group["label"].iloc[0],
            n=len(group),
            dead_before=float(group["dead_before"].mean()),
            dead_after=float(group["dead_after"].mean()),
            units=float(group["units"].mean()) if "units" in group else float("nan"),
            dead_final=_all_seeds_mean(group, "dead_final"),
            units_final=_all_seeds_mean(group, "units_final"),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def format_connectivity(table: pd.DataFrame) -> pd.DataFrame:
    """
    :param table: Output of :func:`connectivity_table`.
    :return: The table as text: algorithm, env, configuration, seeds, and dead units before and after revival
        (one decimal: they are means over seeds) out of the units they are counted among; a column of dead units
        after training where any configuration recorded its final mask ("–" where some of its cells did not).
    """
    if table.empty:
        return table

    def of(value: float, units: float) -> str:
        if np.isnan(value):
            return "–"
        return f"{value:.1f}" if np.isnan(units) else f"{value:.1f} of {units:.0f}"

    out = pd.DataFrame(
        {
            "Algo": table["algo"].str.upper(),
            "Env": table["env"],
            "Configuration": table["label"],
            "Seeds": table["n"],
            "Dead units before revival": [of(v, u) for v, u in zip(table["dead_before"], table["units"])],
            "Dead units after revival": [of(v, u) for v, u in zip(table["dead_after"], table["units"])],
        }
    )
    if "dead_final" in table and table["dead_final"].notna().any():
        out["Dead units after training"] = [of(v, u) for v, u in zip(table["dead_final"], table["units_final"])]
    return out


def layer_table(reports: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """
    :param reports: A cell's pruning reports (``{network: report dict}``, see :meth:`NetworkReport.to_dict
        <sb3_tar.core.layer_report.NetworkReport.to_dict>`).
    :return: One row per layer: network, layer, shape, ``E_l``, ``K_l`` (kept before revival), ``g_l``,
        ``f_l``, ``B_l`` (revived), final density and dead units before and after revival.
    """
    rows = []
    for network, report in reports.items():
        for layer in report["layers"]:
            rows.append(
                {
                    "network": network,
                    "layer": layer["name"],
                    "shape": "x".join(str(v) for v in layer["shape"]),
                    "E_l": layer["threshold"],
                    "K_l": layer["kept_before"],
                    "g_l": layer["need"],
                    "f_l": layer["floor"],
                    "B_l": layer["revived"],
                    "density": f"{layer['density']:.4f}",
                    "dead before": layer["dead_before"],
                    "dead after": layer["dead_after"],
                }
            )
    return pd.DataFrame(rows)


def _close(column: pd.Series, value: float) -> pd.Series:
    """:return: Where ``column`` is ``value``, as floats up to rounding (``numpy.isclose``)."""
    return pd.Series(np.isclose(column.astype(float), float(value)), index=column.index)


def _variants(name: str, runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """
    The comparisons with another method's runs, one per configuration of theirs: ``(name, runs)`` where they are one
    configuration; with two or more starting criteria, each criterion's runs as ``name (criterion)``; with extra
    callback options, each set of options as ``name [options]`` (none for the runs without).
    """
    parts = [(name, runs)]
    if runs["criterion"].nunique() > 1:
        parts = [(f"{name} ({c})", part) for c, part in runs.groupby("criterion", sort=True)]
    if "options" in runs.columns:
        parts = [(f"{n} [{o}]" if o else n, p) for n, frame in parts for o, p in frame.groupby("options", sort=True)]
    return parts


def improvement_table(runs: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """
    Probability of improvement (rliable, Agarwal et al. 2021) of TAR over its Original baseline (same
    criterion and sparsity), over Uniform Revival (same rr) and over SET, RigL and GMP (same sparsity, whatever
    their starting criterion: one comparison per criterion, ``"TAR > RigL (erk)"``, where they ran from two or
    more), per (algo, env, criterion, sparsity, width, rr); and of RigL over dense (same algo, env and width), per
    RigL configuration. 95% stratified-bootstrap intervals (the runs of each method resampled independently).

    ``P(X > Y)`` is the probability that a run of X, drawn at random, ends with a higher final return than a
    run of Y, ties counting one half: the Mann-Whitney U statistic over ``n_X * n_Y`` pairs.

    Where cells carry extra callback options, each variant of TAR (or RigL) is a row of its own (column
    ``options``). Its Original and Uniform (``TARCallback``'s options too) are those of the same options or, where
    none ran with them, those without (:func:`same_variant`); SET, RigL and GMP take other callbacks' options, so
    each of their variants is a comparison of its own, named with its options (``"TAR > RigL
    [prune_criterion=snip]"``); dense is the one of the same options, else the plain one.

    :param runs: Per-run results.
    :param reps: Bootstrap replications.
    :param seed: Seed of the bootstrap (NumPy's global generator is restored afterwards).
    :return: Columns algo, env, criterion, sparsity, width, rr (and options, where the runs have that column),
        comparison (``"TAR > Original"``, ``"TAR > Uniform"``, ``"TAR > SET"``, ``"TAR > RigL"``, ``"TAR > GMP"`` or
        ``"RigL > dense"``), n_x, n_y, probability, ci_low, ci_high.
    """
    library, metrics = import_rliable()
    rows = []
    keys = ["algo", "env", "criterion", "sparsity", "width"]
    shared = ["algo", "env", "sparsity", "width"]
    configuration = with_options(runs, [*keys, "rr"])
    for key, group in runs[runs["method"] == "tar"].groupby(configuration, sort=False):
        base = dict(zip(configuration, key))
        options = base.get("options", "")
        same = runs[(runs[keys] == pd.Series({k: base[k] for k in keys})).all(axis=1)]
        any_criterion = runs[(runs[shared] == pd.Series({k: base[k] for k in shared})).all(axis=1)]
        others = [
            ("TAR > Original", same_variant(same[same["method"] == "static"], options)),
            ("TAR > Uniform", same_variant(same[(same["method"] == "uniform") & _close(same["rr"], base["rr"])], options)),
        ]
        for method in ("set", "rigl", "gmp"):  # each of their configurations on its own (criterion, options)
            others += _variants(f"TAR > {METHOD_NAMES[method]}", any_criterion[any_criterion["method"] == method])
        for name, other in others:
            if not other.empty:
                rows.append({**base, **improvement_row(library, metrics, name, group, other, reps, seed)})
    dense_keys = ["algo", "env", "width"]
    for key, group in runs[runs["method"] == "rigl"].groupby(configuration, sort=False, dropna=False):
        base = dict(zip(configuration, key))
        dense = runs[
            (runs["method"] == "dense") & (runs[dense_keys] == pd.Series({k: base[k] for k in dense_keys})).all(axis=1)
        ]
        dense = same_variant(dense, base.get("options", ""))
        if not dense.empty:
            rows.append({**base, **improvement_row(library, metrics, "RigL > dense", group, dense, reps, seed)})
    return pd.DataFrame(rows)


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """
    ``P(X > Y)``, averaged over tasks: rliable's ``metrics.probability_of_improvement`` (the Mann-Whitney
    ``U`` statistic of each task over ``n_x * n_y``: pairs with ``x > y`` count 1 and ties 1/2), computed by
    counting pairs instead of through SciPy's test, which costs most of a report's bootstrap time. Every
    count is an integer or a half, so the value is exactly rliable's.

    :param scores_x: ``(runs of X, tasks)`` scores.
    :param scores_y: ``(runs of Y, tasks)`` scores.
    :return: The mean over tasks of ``P(X_m > Y_m)``.
    """
    x = np.asarray(scores_x, dtype=np.float64)
    y = np.asarray(scores_y, dtype=np.float64)
    greater = (x[:, None, :] > y[None, :, :]).sum(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).sum(axis=(0, 1))
    return float(np.mean((greater + 0.5 * ties) / (x.shape[0] * y.shape[0])))


def improvement_row(
    library: Any, metrics: Any, name: str, x: pd.DataFrame, y: pd.DataFrame, reps: int, seed: int
) -> dict[str, Any]:
    """
    P(X > Y) of the runs ``x`` over the runs ``y`` (:func:`probability_of_improvement`) with its 95%
    stratified-bootstrap interval, NumPy's global generator seeded with ``seed`` for the bootstrap and restored
    afterwards.

    :param library: rliable's ``library`` module (:func:`import_rliable`).
    :param metrics: rliable's ``metrics`` module.
    :param name: The comparison's name, e.g. ``"TAR > Original"``.
    :param x: The runs of X (column ``final_return``).
    :param y: The runs of Y.
    :param reps: Bootstrap replications.
    :param seed: Seed of the bootstrap.
    :return: ``comparison``, ``n_x``, ``n_y``, ``probability``, ``ci_low``, ``ci_high``.
    """
    pair = (x["final_return"].to_numpy()[:, None], y["final_return"].to_numpy()[:, None])
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            point, interval = library.get_interval_estimates({name: pair}, probability_of_improvement, reps=reps)
    finally:
        np.random.set_state(state)
    return {
        "comparison": name,
        "n_x": len(x),
        "n_y": len(y),
        "probability": float(np.squeeze(point[name])),
        "ci_low": float(np.squeeze(interval[name][0])),
        "ci_high": float(np.squeeze(interval[name][1])),
    }


def format_improvement(table: pd.DataFrame) -> pd.DataFrame:
    """
    :param table: Output of :func:`improvement_table`.
    :return: The table as text, ``P(X > Y)`` with its interval to two decimals.
    """
    if table.empty:
        return table
    cis = zip(table["probability"], table["ci_low"], table["ci_high"])
    out = pd.DataFrame(
        {
            "Algo": table["algo"].str.upper(),
            "Env": table["env"],
            "Criterion": table["criterion"],
            "Sparsity": table["sparsity"],
            "Width": table["width"],
            "rr": [("–" if pd.isna(rr) else rr) for rr in table["rr"]],  # RigL > dense: RigL has no rr
        }
    )
    return with_options_column(out, table).assign(
        **{
            "Comparison": table["comparison"],
            "Runs (X, Y)": [f"{x}, {y}" for x, y in zip(table["n_x"], table["n_y"])],
            "P(X > Y) [95% CI]": [f"{p:.2f} [{lo:.2f}, {hi:.2f}]" for p, lo, hi in cis],
        }
    )


def aggregate_iqm_table(runs: pd.DataFrame, reps: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """
    IQM across environments of the dense-normalised final return (return / dense mean return of the same
    algo, env and width), with 95% stratified-bootstrap intervals (runs resampled within each env), per
    (algo, sparsity, width) and method. Needs at least two envs, each with dense runs of positive mean.

    :param runs: Per-run results.
    :param reps: Bootstrap replications.
    :param seed: Seed of the bootstrap.
    :return: ``(table, message)``: the table (columns algo, sparsity, width, method, n_envs, n_runs, iqm,
        ci_low, ci_high) and, when it is empty, why.
    """
    if runs["env"].nunique() < 2:
        return pd.DataFrame(), "aggregate IQM skipped: the grid has a single env"
    dense = runs[runs["method"] == "dense"].groupby(["algo", "env", "width"])["final_return"].mean()
    if dense.empty or (dense <= 0).any():
        return pd.DataFrame(), "aggregate IQM skipped: it needs dense runs with a positive mean return in every env"
    library, metrics = import_rliable()
    runs = runs.assign(method_label=runs.apply(_method_label, axis=1))
    rows = []
    sparse = runs[runs["method"] != "dense"]
    for (algo, sparsity, width), group in sparse.groupby(["algo", "sparsity", "width"], sort=False):
        dense_group = runs[(runs["method"] == "dense") & (runs["algo"] == algo) & (runs["width"] == width)]
        frame = pd.concat([dense_group, group])
        scores = {}
        for label, g in frame.groupby("method_label", sort=False):
            per_env = []
            for env, e in g.groupby("env", sort=False):
                if (algo, env, width) not in dense.index:
                    per_env = []
                    break
                per_env.append(e.sort_values("seed")["final_return"].to_numpy() / dense[(algo, env, width)])
            if len(per_env) < 2:
                continue
            n_runs = min(len(v) for v in per_env)
            scores[label] = np.stack([v[:n_runs] for v in per_env], axis=1)
        if not scores:
            continue
        point, interval = _interval_estimates(library, metrics, scores, reps, seed)
        for label, values in scores.items():
            rows.append(
                {
                    "algo": algo,
                    "sparsity": sparsity,
                    "width": width,
                    "method": label,
                    "n_envs": values.shape[1],
                    "n_runs": values.shape[0],
                    "iqm": float(point[label][0]),
                    "ci_low": float(interval[label][0, 0]),
                    "ci_high": float(interval[label][1, 0]),
                }
            )
    table = pd.DataFrame(rows)
    return table, "" if len(table) else "aggregate IQM skipped: no method has runs in two or more envs"


def static_stage_check(runs: pd.DataFrame) -> tuple[int, list[str]]:
    """
    Check from the cells' pruning reports that the paired design held: in every seed, TAR and Uniform Revival
    (same rr) share their static stage (equal kept weights and dead units before revival, layer by layer), and
    that stage is a subset of Original's mask in count (no layer keeps more weights than Original's). In
    reserve mode the static stage is pruned to ``sparsity + rr``, so it keeps fewer weights than Original; in
    extra mode it keeps as many. Where cells carry extra callback options, a TAR cell is paired with the Uniform cells
    of its own options and with the Original of :func:`same_variant`.

    :param runs: Per-run results (with ``cell_dir``).
    :return: ``(groups checked, problems)``: how many (configuration, seed) groups with a TAR run and a report
        were compared against at least one partner, and one line per disagreement.
    """

    def layers(row: pd.Series) -> dict[tuple[str, str], dict[str, Any]] | None:
        reports = cell_reports(row["cell_dir"])
        if reports is None:
            return None
        return {(net, layer["name"]): layer for net, report in reports.items() for layer in report["layers"]}

    keys = ["algo", "env", "criterion", "sparsity", "width", "seed"]
    checked, problems = 0, []
    sparse = runs[runs["method"].isin(["static", "tar", "uniform"])]
    for key, group in sparse.groupby(keys, sort=False):
        where = " ".join(str(v) for v in key[:-1]) + f" seed {key[-1]}"
        compared = False
        statics: dict[str, Any] = {}  # Original's layers by TAR options: each summary read once per group
        for _, tar_row in group[group["method"] == "tar"].iterrows():
            tar = layers(tar_row)
            if tar is None:
                continue
            options = options_of(tar_row)
            if options not in statics:
                candidates = same_variant(group[group["method"] == "static"], options).iterrows()
                statics[options] = next((s for s in (layers(r) for _, r in candidates) if s is not None), None)
            static = statics[options]
            same_rr = group[(group["method"] == "uniform") & _close(group["rr"], tar_row["rr"])]
            if "options" in same_rr:  # the paired design holds between TAR and Uniform of the same options only
                same_rr = same_rr[same_rr["options"] == options]
            for _, uniform_row in same_rr.iterrows():
                uniform = layers(uniform_row)
                if uniform is None:
                    continue
                compared = True
                for name, layer in tar.items():
                    other = uniform.get(name, {})
                    for field in ("kept_before", "dead_before"):
                        if layer.get(field) != other.get(field):
                            problems.append(
                                f"{where} rr {tar_row['rr']:g}: {name[0]} {name[1]} {field} is {layer.get(field)} for TAR "
                                f"but {other.get(field)} for Uniform (their static stages differ)"
                            )
            if static is not None:
                compared = True
                for name, layer in tar.items():
                    if name not in static or layer["kept_before"] > static[name]["kept_before"]:
                        problems.append(
                            f"{where} rr {tar_row['rr']:g}: {name[0]} {name[1]} keeps {layer['kept_before']} before "
                            f"revival, more than Original's {static.get(name, {}).get('kept_before')}"
                        )
        checked += compared
    return checked, problems
