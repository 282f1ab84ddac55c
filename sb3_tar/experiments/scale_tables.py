"""The paper's scale questions as tables: final return against the recovery ratio at several sparsities (its rr
figure), and TAR's gain over Original at two widths with whether the gain grows with width (its width figure).

Both tables read the per-run results of :func:`sb3_tar.experiments.results.load_results`. A configuration's final
return is the mean ± standard error over seeds; ``P(TAR > Original)`` is the probability of improvement with its
95% stratified-bootstrap interval (:func:`sb3_tar.experiments.tables.improvement_table`). TAR's *gain* at a width is
the percent change of its mean final return over Original's at that width, ``100 (T - O) / |O|``; the difference
of the gains between two widths gets a percentile-bootstrap interval, each of the four groups of runs (Original and
TAR at each width) resampled with replacement independently.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from sb3_tar.experiments.tables import (
    _close,
    _mean_se,
    dense_runs,
    import_rliable,
    improvement_row,
    improvement_table,
    options_of,
    pct_change,
    pct_text,
    same_variant,
    standard_error,
    with_options,
    with_options_column,
)

#: Methods whose runs form the rr axis (rr = 0 is Original, the static baseline).
_RR_METHODS = ("static", "tar")


def rr_groups(runs: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """
    The configurations of the paper's rr figure: Original/TAR runs of one (algo, env, criterion, width[, options])
    that hold TAR and two or more rr values (rr = 0 is Original), at two or more sparsities or with two or more TAR
    recovery ratios at one sparsity (a single rr at a single sparsity is the main table's business). The rr table
    appears when there is one, and :mod:`sb3_tar.experiments.plots` draws one rr plot per group.

    :param runs: Per-run results.
    :return: ``(key, runs)`` pairs, keys sorted.
    """
    sub = runs[runs["method"].isin(_RR_METHODS)]
    out = []
    for key, group in sub.groupby(with_options(sub, ["algo", "env", "criterion", "width"]), sort=True):
        tar = group[group["method"] == "tar"]
        if tar.empty or group["rr"].nunique() < 2:
            continue
        if group["sparsity"].nunique() >= 2 or any(t["rr"].nunique() >= 2 for _, t in tar.groupby("sparsity")):
            out.append((key, group))
    return out


def has_rr_axis(runs: pd.DataFrame) -> bool:
    """
    :param runs: Per-run results.
    :return: Whether the runs hold a configuration of the paper's rr figure (:func:`rr_groups`).
    """
    return bool(rr_groups(runs))


def tar_over_original(improvement: pd.DataFrame, row: dict[str, Any]) -> dict[str, float]:
    """
    ``P(TAR > Original)`` of one TAR configuration, read from the report's improvement table (no bootstrap again).

    :param improvement: Output of :func:`sb3_tar.experiments.tables.improvement_table`.
    :param row: The configuration: algo, env, criterion, sparsity, width and rr (and options, where cells carry
        extra callback options).
    :return: ``probability``, ``ci_low``, ``ci_high`` (NaN where the table has no such row).
    """
    found = {"probability": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    if improvement.empty:
        return found
    if "options" in improvement:
        improvement = improvement[improvement["options"] == options_of(row)]
    match = improvement[
        (improvement["comparison"] == "TAR > Original")
        & (improvement["algo"] == row["algo"])
        & (improvement["env"] == row["env"])
        & (improvement["criterion"] == row["criterion"])
        & (improvement["width"] == row["width"])
        & _close(improvement["sparsity"], row["sparsity"])
        & _close(improvement["rr"], row["rr"])
    ]
    if len(match):
        found.update({k: float(match.iloc[0][k]) for k in found})
    return found


def _improvement_of(runs: pd.DataFrame, improvement: pd.DataFrame | None, reps: int, seed: int) -> pd.DataFrame:
    """The given improvement table, or that of the Original/TAR runs (the same numbers: same runs, reps and seed)."""
    if improvement is not None:
        return improvement
    return improvement_table(runs[runs["method"].isin(_RR_METHODS)], reps=reps, seed=seed)


def rr_table(runs: pd.DataFrame, reps: int = 2000, seed: int = 0, improvement: pd.DataFrame | None = None) -> pd.DataFrame:
    """
    Final return against the recovery ratio, per (algo, env, criterion, width, sparsity): Original (rr = 0) and TAR
    at every rr it ran, with TAR's change over Original, ``P(TAR > Original)`` and the dead units before and after
    revival (means over seeds, from the pruning reports).

    :param runs: Per-run results (columns of :func:`~sb3_tar.experiments.results.load_results`).
    :param reps: Bootstrap replications of the probability of improvement (without ``improvement``).
    :param seed: Seed of that bootstrap (without ``improvement``).
    :param improvement: The report's :func:`~sb3_tar.experiments.tables.improvement_table`, whose ``TAR > Original``
        rows are reused (``None``: computed here, for the Original/TAR runs).
    :return: Columns algo, env, criterion, width, sparsity (and options, where the runs have that column: each
        variant is a configuration of its own, its Original that of :func:`~sb3_tar.experiments.tables.same_variant`),
        rr, method, n, mean, se, vs_original_pct, probability, ci_low, ci_high, dead_before, dead_after; rows ordered
        by the grouping keys, then rr. Empty if the runs hold no Original/TAR run.
    """
    improvement = _improvement_of(runs, improvement, reps, seed)
    sub = runs[runs["method"].isin(_RR_METHODS)]
    rows: list[dict[str, Any]] = []
    plain = ["algo", "env", "criterion", "width", "sparsity"]
    keys = with_options(sub, plain)
    for key, group in sub.groupby(keys, sort=True):
        base = dict(zip(keys, key))
        at = sub[(sub[plain] == pd.Series({k: base[k] for k in plain})).all(axis=1)]
        original = same_variant(at[at["method"] == "static"], options_of(base))
        original_mean = float(original["final_return"].mean()) if len(original) else math.nan
        for (method, rr), runs_at in group.groupby(["method", "rr"], sort=True):
            row = {**base, "rr": float(rr), "method": method, "n": len(runs_at)}
            values = runs_at["final_return"].to_numpy(dtype=np.float64)
            row.update(mean=float(values.mean()), se=standard_error(values))
            row["vs_original_pct"] = pct_change(row["mean"], original_mean) if method == "tar" else math.nan
            row.update(probability=math.nan, ci_low=math.nan, ci_high=math.nan)
            if method == "tar" and len(original):
                row.update(tar_over_original(improvement, row))
            row["dead_before"] = float(runs_at["dead_before"].mean()) if "dead_before" in runs_at else math.nan
            row["dead_after"] = float(runs_at["dead_after"].mean()) if "dead_after" in runs_at else math.nan
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values([*keys, "rr"], kind="stable").reset_index(drop=True)


def _interval(probability: float, low: float, high: float) -> str:
    return "–" if not np.isfinite(probability) else f"{probability:.2f} [{low:.2f}, {high:.2f}]"


def _one(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.1f}"


def _configuration_columns(table: pd.DataFrame) -> dict[str, pd.Series]:
    """:return: The text columns Algo, Env, Criterion, Width and Sparsity of an rr table's rows, and Options where
    a row has extra callback options (:func:`~sb3_tar.experiments.tables.with_options_column`)."""
    columns = {
        "Algo": table["algo"].str.upper(),
        "Env": table["env"],
        "Criterion": table["criterion"],
        "Width": table["width"].astype(int),
        "Sparsity": table["sparsity"].map(lambda v: f"{v:g}"),
    }
    return dict(with_options_column(pd.DataFrame(columns), table).items())


def format_rr_table(table: pd.DataFrame) -> pd.DataFrame:
    """:return: :func:`rr_table` as text, one row per (sparsity, rr)."""
    if table.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            **_configuration_columns(table),
            "rr": table["rr"].map(lambda v: f"{v:g}"),
            "Method": table["method"].map({"static": "Original", "tar": "TAR"}),
            "Final return": [_mean_se(m, s, n) for m, s, n in zip(table["mean"], table["se"], table["n"])],
            "vs Original": table["vs_original_pct"].map(pct_text),
            "P(TAR > Original) [95% CI]": [
                _interval(p, lo, hi) for p, lo, hi in zip(table["probability"], table["ci_low"], table["ci_high"])
            ],
            "Dead units before revival": table["dead_before"].map(_one),
            "Dead units after revival": table["dead_after"].map(_one),
        }
    )


def rr_pairs_table(runs: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """
    TAR's recovery ratios against each other and against dense, in every configuration of the rr figure
    (:func:`rr_groups`), per sparsity: ``P(TAR at rr b > TAR at rr a)`` for every pair ``a < b`` of the rr values TAR
    ran (does more revival help?), then ``P(TAR at rr > dense)`` for each rr, dense of the same algo, env and width
    (does TAR close the gap to the dense network?), each with its 95% stratified-bootstrap interval
    (:func:`~sb3_tar.experiments.tables.improvement_row`).

    :param runs: Per-run results.
    :param reps: Bootstrap replications.
    :param seed: Seed of each bootstrap.
    :return: Columns algo, env, criterion, width (and options, where the runs have that column), sparsity,
        comparison (``"TAR rr 0.02 > TAR rr 0.005"``,
        ``"TAR rr 0.01 > dense"``), n_x, n_y, probability, ci_low, ci_high; empty without a configuration of the rr
        figure.
    """
    rows: list[dict[str, Any]] = []
    groups = rr_groups(runs)
    if not groups:
        return pd.DataFrame(rows)
    library, metrics = import_rliable()
    for _, group in groups:
        first = group.iloc[0]
        base = {key: first[key] for key in with_options(group, ["algo", "env", "criterion", "width"])}
        dense = same_variant(dense_runs(runs, base["algo"], base["env"], base["width"]), options_of(base))
        tar = group[group["method"] == "tar"]
        for sparsity, at in tar.groupby("sparsity", sort=True):
            by_rr = {float(rr): runs_at for rr, runs_at in at.groupby("rr", sort=True)}
            comparisons = [
                (f"TAR rr {high:g} > TAR rr {low:g}", by_rr[high], by_rr[low])
                for low, high in itertools.combinations(sorted(by_rr), 2)
            ]
            if len(dense):
                comparisons += [(f"TAR rr {rr:g} > dense", by_rr[rr], dense) for rr in sorted(by_rr)]
            for name, x, y in comparisons:
                row = improvement_row(library, metrics, name, x, y, reps, seed)
                rows.append({**base, "sparsity": float(sparsity), **row})
    return pd.DataFrame(rows)


def format_rr_pairs_table(table: pd.DataFrame) -> pd.DataFrame:
    """:return: :func:`rr_pairs_table` as text, ``P(X > Y)`` with its interval to two decimals."""
    if table.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            **_configuration_columns(table),
            "Comparison": table["comparison"],
            "Runs (X, Y)": [f"{x}, {y}" for x, y in zip(table["n_x"], table["n_y"])],
            "P(X > Y) [95% CI]": [
                _interval(p, lo, hi) for p, lo, hi in zip(table["probability"], table["ci_low"], table["ci_high"])
            ],
        }
    )


def _shared_widths(original: pd.DataFrame, tar: pd.DataFrame) -> list[int]:
    """:return: The widths at which both ``original`` and ``tar`` (TAR runs of one rr) ran, sorted."""
    return sorted(int(w) for w in set(original["width"]) & set(tar["width"]))


def width_groups(runs: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """
    The configurations of the paper's width figure: Original/TAR runs of one (algo, env, criterion,
    sparsity[, options]) where TAR at one rr and its Original both ran at two or more widths (the configurations of
    the width tables, :func:`_width_configurations`: a TAR variant whose options no Original ran with is measured
    against the plain Original). The width tables appear when there is one, and :mod:`sb3_tar.experiments.plots`
    draws a width plot per (algo, sparsity) of these groups.

    :param runs: Per-run results.
    :return: ``(key, runs)`` pairs, keys sorted.
    """
    sub = runs[runs["method"].isin(_RR_METHODS)]
    keys = with_options(sub, ["algo", "env", "criterion", "sparsity"])
    qualified = {tuple(config[k] for k in keys) for config, *_ in _width_configurations(runs)}
    return [(key, group) for key, group in sub.groupby(keys, sort=True) if key in qualified]


def _width_configurations(runs: pd.DataFrame):
    """
    Yield ``config, tar, original, widths`` for every TAR configuration of :func:`width_groups`: ``config`` the
    dict of its algo, env, criterion, sparsity, rr (and options, where the runs have that column), TAR's runs at
    that rr, Original's of the same algo, env, criterion and sparsity (of the same options or, where none ran with
    them, without: :func:`~sb3_tar.experiments.tables.same_variant`), and the two or more widths at which both ran
    (sorted).
    """
    tar_runs = runs[runs["method"] == "tar"]
    keys = with_options(runs, ["algo", "env", "criterion", "sparsity", "rr"])
    for key, tar in tar_runs.groupby(keys, sort=True):
        config = dict(zip(keys, key))
        original = runs[
            (runs["method"] == "static")
            & (runs["algo"] == config["algo"])
            & (runs["env"] == config["env"])
            & (runs["criterion"] == config["criterion"])
            & _close(runs["sparsity"], config["sparsity"])
        ]
        original = same_variant(original, options_of(config))
        widths = _shared_widths(original, tar)
        if len(widths) >= 2:
            config.update(sparsity=float(config["sparsity"]), rr=float(config["rr"]))
            yield config, tar, original, widths


def has_width_axis(runs: pd.DataFrame) -> bool:
    """
    :param runs: Per-run results.
    :return: Whether Original and TAR of one configuration both ran at two or more widths (:func:`width_groups`).
    """
    return bool(width_groups(runs))


def dense_cost_ratio(layer_shapes: list[tuple[int, int]], width: int, reference_width: int) -> float:
    """
    Dense training cost of a network of ``width`` relative to the same network at ``reference_width``, per sample:
    every layer costs ``2 n_out n_in + n_out`` (:func:`sb3_tar.core.gmp.flops_per_sample`), and every dimension
    equal to ``width`` (a hidden layer's) becomes ``reference_width``.

    :param layer_shapes: ``(n_out, n_in)`` of every linear layer of the networks at ``width``.
    :param width: Their hidden width.
    :param reference_width: The width to compare with.
    :return: The ratio (NaN without layers).
    """

    def cost(shapes: list[tuple[int, int]]) -> int:
        return sum(2 * o * i + o for o, i in shapes)

    def swap(dim: int) -> int:
        return reference_width if dim == width else dim

    reference = cost([(swap(o), swap(i)) for o, i in layer_shapes])
    return cost(layer_shapes) / reference if reference else math.nan


def _layer_shapes(cell_dir: str) -> list[tuple[int, int]]:
    """Every linear layer's ``(n_out, n_in)`` of a cell, from its summary's final masks or pruning reports."""
    from sb3_tar.experiments.results import _summary

    summary = _summary(cell_dir) or {}
    networks = summary.get("final_masks") or {}
    if networks:
        return [tuple(layer["shape"]) for layers in networks.values() for layer in layers]
    reports = summary.get("reports") or {}
    return [tuple(layer["shape"]) for report in reports.values() for layer in report.get("layers", [])]


def width_table(runs: pd.DataFrame, reps: int = 2000, seed: int = 0, improvement: pd.DataFrame | None = None) -> pd.DataFrame:
    """
    Original, TAR, RigL and dense at each width of the paper's width figure: for every (algo, env, criterion,
    sparsity, TAR's rr) at which Original and TAR both ran at two or more widths (:func:`width_groups`), a row per
    such width, with TAR's gain over Original and ``P(TAR > Original)``, and each method's training FLOPs per sample
    relative to the dense network of the narrowest width of the runs (the practical question: a wide sparse network
    against a narrow dense one). A TAR rr or a sparsity that ran at one width only has no row: it is the rr table's
    or the main table's business. RigL rows are matched on sparsity and width whatever their starting criterion
    (where RigL ran from several: :func:`_rigl_beside`).

    :param runs: Per-run results.
    :param reps: Bootstrap replications of the probability of improvement (without ``improvement``).
    :param seed: Seed of that bootstrap (without ``improvement``).
    :param improvement: The report's :func:`~sb3_tar.experiments.tables.improvement_table`, whose ``TAR > Original``
        rows are reused (``None``: computed here, for the Original/TAR runs).
    :return: Columns algo, env, criterion, sparsity, rr (and options, where the runs have that column), width,
        and for each of original, tar, rigl, dense:
        ``<m>_n``, ``<m>_mean``, ``<m>_se``, ``<m>_flops``; then gain_pct, probability, ci_low, ci_high.
    """
    improvement = _improvement_of(runs, improvement, reps, seed)
    rows: list[dict[str, Any]] = []
    narrowest = int(runs["width"].min()) if len(runs) else 0
    for config, tar_all, original, widths in _width_configurations(runs):
        for width in widths:
            groups = _methods_at(runs, config, tar_all, original, width)
            row: dict[str, Any] = {**config, "width": int(width)}
            for name, group in groups.items():
                values = group["final_return"].to_numpy(dtype=np.float64)
                row[f"{name}_n"] = len(values)
                row[f"{name}_mean"] = float(values.mean()) if len(values) else math.nan
                row[f"{name}_se"] = standard_error(values)
                row[f"{name}_flops"] = _flops_vs(group, int(width), narrowest)
            row["gain_pct"] = pct_change(row["tar_mean"], row["original_mean"])
            row.update(tar_over_original(improvement, row))
            rows.append(row)
    return pd.DataFrame(rows)


def _methods_at(
    runs: pd.DataFrame, config: dict[str, Any], tar: pd.DataFrame, original: pd.DataFrame, width: int
) -> dict[str, pd.DataFrame]:
    """:return: The runs of a width configuration (:func:`_width_configurations`) at one width, by method: original,
    tar, rigl (:func:`_rigl_beside`) and dense (of the configuration's options or, where none ran with them, without)."""
    at = runs[(runs["algo"] == config["algo"]) & (runs["env"] == config["env"]) & (runs["width"] == width)]
    return {
        "original": original[original["width"] == width],
        "tar": tar[tar["width"] == width],
        "rigl": _rigl_beside(at[(at["method"] == "rigl") & _close(at["sparsity"], config["sparsity"])], config),
        "dense": same_variant(dense_runs(runs, config["algo"], config["env"], width), options_of(config)),
    }


def wide_against_narrow_dense(runs: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """
    The practical question of the width figure, a wide sparse network against the narrow dense one: for every
    configuration of :func:`width_table` and each of its widths above the narrowest, ``P(X > dense at the narrowest
    width)`` for X = Original, TAR, RigL (matched as in :func:`width_table`) and dense at that width, with its 95%
    stratified-bootstrap interval (:func:`~sb3_tar.experiments.tables.improvement_row`), and X's training FLOPs per
    sample relative to that dense network.

    :param runs: Per-run results.
    :param reps: Bootstrap replications.
    :param seed: Seed of each bootstrap.
    :return: Columns algo, env, criterion, sparsity, rr (and options, where the runs have that column), width,
        narrow, comparison (``"TAR w1024 > dense w256"``), n_x, n_y, probability, ci_low, ci_high, flops; no row for a
        method that did not run, and none without dense runs at the narrowest width.
    """
    rows: list[dict[str, Any]] = []
    configurations = list(_width_configurations(runs))
    if not configurations:
        return pd.DataFrame(rows)
    library, metrics = import_rliable()
    titles = dict(_WIDTH_METHODS)
    for config, tar, original, widths in configurations:
        narrow = int(widths[0])
        dense = _methods_at(runs, config, tar, original, narrow)["dense"]
        if dense.empty:
            continue
        for width in widths[1:]:
            for name, group in _methods_at(runs, config, tar, original, width).items():
                if group.empty:
                    continue
                comparison = f"{titles[name]} w{int(width)} > dense w{narrow}"
                row = improvement_row(library, metrics, comparison, group, dense, reps, seed)
                rows.append(
                    {**config, "width": int(width), "narrow": narrow, **row, "flops": _flops_vs(group, int(width), narrow)}
                )
    return pd.DataFrame(rows)


def _width_configuration_columns(table: pd.DataFrame) -> pd.DataFrame:
    """:return: The text columns Algo, Env, Criterion, Sparsity and rr of a width configuration's rows, and Options
    where a row has extra callback options (:func:`~sb3_tar.experiments.tables.with_options_column`)."""
    columns = pd.DataFrame(
        {
            "Algo": table["algo"].str.upper(),
            "Env": table["env"],
            "Criterion": table["criterion"],
            "Sparsity": table["sparsity"].map(lambda v: f"{v:g}"),
            "rr": table["rr"].map(lambda v: f"{v:g}"),
        }
    )
    return with_options_column(columns, table)


def format_wide_against_narrow_dense(table: pd.DataFrame) -> pd.DataFrame:
    """:return: :func:`wide_against_narrow_dense` as text: ``P(X > Y)`` with its interval to two decimals, and X's
    training FLOPs relative to the narrow dense network (``–`` where unknown)."""
    if table.empty:
        return pd.DataFrame()
    out = _width_configuration_columns(table)
    out["Comparison"] = table["comparison"]
    out["Runs (X, Y)"] = [f"{x}, {y}" for x, y in zip(table["n_x"], table["n_y"])]
    out["P(X > Y) [95% CI]"] = [
        _interval(p, lo, hi) for p, lo, hi in zip(table["probability"], table["ci_low"], table["ci_high"])
    ]
    out["Training FLOPs of X vs Y"] = ["–" if not np.isfinite(v) else f"{v:.3f}x" for v in table["flops"]]
    return out


def _rigl_beside(rigl: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """
    The RigL runs of a width-table row: RigL at its sparsity and width, from whatever starting criterion; where
    RigL ran from two or more, those from the row's criterion, else from ERK (the field's RigL start), never
    several pooled; of the row's options, else the plain ones (:func:`~sb3_tar.experiments.tables.same_variant`).
    """
    if rigl["criterion"].nunique() > 1:
        same = rigl[rigl["criterion"] == config["criterion"]]
        rigl = same if len(same) else rigl[rigl["criterion"] == "erk"]
    return same_variant(rigl, options_of(config))


def _flops_vs(group: pd.DataFrame, width: int, reference_width: int) -> float:
    """Mean training FLOPs of ``group`` (cells of one width) relative to the dense network at ``reference_width``."""
    if group.empty or "train_flops" not in group:
        return math.nan
    ratio = float(group["train_flops"].mean())
    if width == reference_width:
        return ratio
    for cell_dir in group.get("cell_dir", []):
        shapes = _layer_shapes(cell_dir)
        if shapes:
            return ratio * dense_cost_ratio(shapes, width, reference_width)
    return math.nan


#: The methods of :func:`width_table`, with their column titles.
_WIDTH_METHODS = (("original", "Original"), ("tar", "TAR"), ("rigl", "RigL"), ("dense", "Dense"))


def format_width_table(table: pd.DataFrame) -> pd.DataFrame:
    """:return: :func:`width_table` as text, one row per configuration and width; the training FLOPs of the
    methods that ran share one column (``Original / TAR / RigL / Dense``, ``–`` where one is unknown)."""
    if table.empty:
        return pd.DataFrame()
    narrowest = int(table["width"].min())
    out = pd.DataFrame(
        {
            "Algo": table["algo"].str.upper(),
            "Env": table["env"],
            "Criterion": table["criterion"],
            "Sparsity": table["sparsity"].map(lambda v: f"{v:g}"),
            "Width": table["width"].astype(int),
        }
    )
    out["rr"] = table["rr"].map(lambda v: f"{v:g}")
    out = with_options_column(out, table)
    for name, title in _WIDTH_METHODS:
        if table[f"{name}_n"].sum() == 0:
            continue
        out[title] = [_mean_se(m, s, n) for m, s, n in zip(table[f"{name}_mean"], table[f"{name}_se"], table[f"{name}_n"])]
    out["TAR vs Original"] = table["gain_pct"].map(pct_text)
    out["P(TAR > Original) [95% CI]"] = [
        _interval(p, lo, hi) for p, lo, hi in zip(table["probability"], table["ci_low"], table["ci_high"])
    ]
    shown = [(n, t) for n, t in _WIDTH_METHODS if table[f"{n}_n"].sum()]
    heading = " / ".join(t for _, t in shown)
    out[f"Training FLOPs vs dense w{narrowest} ({heading})"] = [
        " / ".join("–" if not np.isfinite(v) else f"{v:.3f}x" for v in values)
        for values in zip(*(table[f"{n}_flops"] for n, _ in shown))
    ]
    return out


def gain_difference(
    original_narrow: np.ndarray,
    tar_narrow: np.ndarray,
    original_wide: np.ndarray,
    tar_wide: np.ndarray,
    reps: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """
    Whether TAR's gain over Original grows with width: the gain at the wide width minus the gain at the narrow one,
    in percentage points, with a 95% percentile-bootstrap interval.

    :param original_narrow: Final returns of Original at the narrow width (one per seed).
    :param tar_narrow: TAR's at the narrow width.
    :param original_wide: Original's at the wide width.
    :param tar_wide: TAR's at the wide width.
    :param reps: Bootstrap replications (each group resampled with replacement, independently).
    :param seed: Seed of the bootstrap's generator (``numpy.random.default_rng``).
    :return: ``{"gain_narrow", "gain_wide", "difference", "ci_low", "ci_high", "p_positive"}``: the two gains and
        their difference on the data, the interval's 2.5th and 97.5th percentiles and the fraction of replications
        in which the difference is positive; NaN where a group is empty.
    :raises ValueError: If ``reps`` < 1.
    """
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps={reps!r} is outside the allowed range [1, inf)")
    groups = [np.asarray(g, dtype=np.float64) for g in (original_narrow, tar_narrow, original_wide, tar_wide)]
    nan = {"gain_narrow": math.nan, "gain_wide": math.nan, "difference": math.nan}
    if any(len(g) == 0 for g in groups):
        return {**nan, "ci_low": math.nan, "ci_high": math.nan, "p_positive": math.nan}

    def gains(on, tn, ow, tw) -> tuple[np.ndarray, np.ndarray]:
        narrow = 100.0 * (tn - on) / np.abs(on)
        wide = 100.0 * (tw - ow) / np.abs(ow)
        return narrow, wide

    means = [g.mean() for g in groups]
    narrow, wide = gains(*[np.array([m]) for m in means])
    rng = np.random.default_rng(seed)
    samples = [g[rng.integers(0, len(g), size=(reps, len(g)))].mean(axis=1) for g in groups]
    boot_narrow, boot_wide = gains(*samples)
    difference = boot_wide - boot_narrow
    finite = difference[np.isfinite(difference)]
    return {
        "gain_narrow": float(narrow[0]),
        "gain_wide": float(wide[0]),
        "difference": float(wide[0] - narrow[0]),
        "ci_low": float(np.percentile(finite, 2.5)) if len(finite) else math.nan,
        "ci_high": float(np.percentile(finite, 97.5)) if len(finite) else math.nan,
        "p_positive": float((finite > 0).mean()) if len(finite) else math.nan,
    }


#: The run-count columns of :func:`gain_difference_table`, one per group of runs of :func:`gain_difference`.
GAIN_RUN_COLUMNS = ("n_original_narrow", "n_tar_narrow", "n_original_wide", "n_tar_wide")


def gain_difference_table(runs: pd.DataFrame, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """
    :func:`gain_difference` between the narrowest and the widest width of every (algo, env, criterion, sparsity,
    TAR's rr) at which both Original and TAR ran at two or more widths.

    :param runs: Per-run results.
    :param reps: Bootstrap replications.
    :param seed: Seed of the bootstrap.
    :return: Columns algo, env, criterion, sparsity, rr (and options, where the runs have that column), narrow,
        wide, n (runs per group, ``"5/5/5/5"``, and each as a number: n_original_narrow, n_tar_narrow,
        n_original_wide, n_tar_wide), and those of :func:`gain_difference`.
    """
    rows = []
    for config, tar, original, widths in _width_configurations(runs):
        narrow, wide = widths[0], widths[-1]
        groups = [
            original.loc[original["width"] == narrow, "final_return"].to_numpy(),
            tar.loc[tar["width"] == narrow, "final_return"].to_numpy(),
            original.loc[original["width"] == wide, "final_return"].to_numpy(),
            tar.loc[tar["width"] == wide, "final_return"].to_numpy(),
        ]
        row = dict(config)
        row.update(narrow=int(narrow), wide=int(wide), n="/".join(str(len(g)) for g in groups))
        row.update({column: len(g) for column, g in zip(GAIN_RUN_COLUMNS, groups)})
        row.update(gain_difference(*groups, reps=reps, seed=seed))
        rows.append(row)
    return pd.DataFrame(rows)


def format_gain_difference(table: pd.DataFrame) -> pd.DataFrame:
    """:return: :func:`gain_difference_table` as text."""
    if table.empty:
        return pd.DataFrame()

    def points(value: float) -> str:
        return "–" if not np.isfinite(value) else f"{value:+.1f}"

    return _width_configuration_columns(table).assign(
        **{
            "Widths": [f"{n} → {w}" for n, w in zip(table["narrow"], table["wide"])],
            "Runs (O/T narrow, O/T wide)": table["n"],
            "Gain narrow": table["gain_narrow"].map(pct_text),
            "Gain wide": table["gain_wide"].map(pct_text),
            "Wide − narrow (points) [95% CI]": [
                f"{points(d)} [{points(lo)}, {points(hi)}]"
                for d, lo, hi in zip(table["difference"], table["ci_low"], table["ci_high"])
            ],
            "Bootstrap share > 0": table["p_positive"].map(lambda v: "–" if not np.isfinite(v) else f"{v:.2f}"),
        }
    )
