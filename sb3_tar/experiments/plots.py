"""PNG plots of a sweep: learning curves, rr sensitivity (the paper's Figure 5 kind) and width scaling
(its Figure 4 kind). Each function returns the files it wrote and a message when the grid lacks the axis
it needs (then it writes nothing). Cells that differ only in extra callback options (``options``,
:attr:`~sb3_tar.experiments.grid.Cell.options`) are lines of their own, named with their options, as the tables keep
them apart."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from sb3_tar.experiments import role_cells
from sb3_tar.experiments.scale_tables import rr_groups, width_groups, with_options
from sb3_tar.experiments.tables import METHOD_NAMES, dense_runs, options_suffix, standard_error

_COLORS = {
    "dense": "black",
    "static": "tab:blue",
    "tar": "tab:red",
    "uniform": "tab:orange",
    "set": "tab:green",
    "rigl": "tab:purple",
    "gmp": "tab:brown",
    "small_dense": "tab:gray",
    "cyclic": "tab:olive",
    "sculpt": "tab:cyan",
    "iee": "tab:pink",
}
_MARKERS = {"magnitude": "o", "erk": "s", "synflow": "^", "random": "v"}
_DPI = 130
#: Horizontal offset between neighbouring lines of a width plot, in octaves of width (the x axis is log2).
_DODGE = 0.04


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style_axis(ax, title: str, xlabel: str, ylabel: str, **legend_kwargs) -> None:
    """Title, axis labels, tick and legend sizes shared by every panel."""
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, **legend_kwargs)


def _save_figure(plt, fig, title: str, path: Path) -> Path:
    """Give the figure its title, write it as PNG and free it."""
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


#: The columns of one line: a configuration (:func:`_line_keys` adds ``options`` where the runs have them).
_LINE_KEYS = ["method", "criterion", "rr"]


def line_configs(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """
    The lines of a panel: one per configuration (method, criterion, rr and, where the runs have them, the extra
    callback options), in the order the runs come.

    :param runs: The runs of one panel.
    :return: ``(legend label, runs of the line)`` pairs.
    """
    return [
        (_line_label(config.iloc[0]), config)
        for _, config in runs.groupby(with_options(runs, _LINE_KEYS), dropna=False, sort=False)
    ]


def _line_label(row: pd.Series) -> str:
    name = METHOD_NAMES.get(row["method"], role_cells.display_name(row["method"]))
    if row["method"] in ("tar", "uniform"):
        return f"{name} rr={row['rr']:g}" + options_suffix(row)
    if row["method"] in ("set", "rigl", "gmp"):
        return f"{name} ({row['criterion']})" + options_suffix(row)
    return name + options_suffix(row)


def _mean_curve(
    folders: list[str], curves: dict[str, tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard error over seeds, truncated to the shortest run."""
    series = [curves[f] for f in folders]
    length = min(len(r) for _, r in series)
    timesteps = series[0][0][:length]
    values = np.stack([r[:length] for _, r in series])
    se = values.std(axis=0, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else np.zeros(length)
    return timesteps, values.mean(axis=0), se


def curves_file(out_dir: str | Path, algo: str, env: str, width: int) -> Path:
    """:return: Where :func:`learning_curves` writes the plot of one algo, env and width."""
    return Path(out_dir) / f"curves_{algo}_{_safe(env)}_w{width}.png"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in text)


def learning_curves(
    runs: pd.DataFrame, curves: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: str | Path
) -> tuple[list[Path], list[str]]:
    """
    One PNG per (algo, env, width): a panel per (sparsity, criterion), each with the sparse methods of that
    panel plus dense and SET/RigL of the same sparsity; mean over seeds with a ±1 standard-error band.

    :param runs: Per-run results (with ``cell_dir`` keys into ``curves``).
    :param curves: Learning curves by cell folder.
    :param out_dir: Output folder.
    :return: ``(files written, messages)``.
    """
    plt = _pyplot()
    out_dir = Path(out_dir)
    written = []
    for (algo, env, width), group in runs.groupby(["algo", "env", "width"], sort=False):
        static_like = group[group["method"].isin(["static", "tar", "uniform"])]
        panels = sorted({(s, c) for s, c in zip(static_like["sparsity"], static_like["criterion"])})
        if not panels:
            panels = sorted({(s, None) for s in group["sparsity"].dropna()}) or [(None, None)]
        sparsities = sorted({s for s, _ in panels if s is not None}) or [None]
        criteria = sorted({c for _, c in panels if c is not None}, key=str) or [None]
        cells = [(sparsity, criterion) for sparsity in sparsities for criterion in criteria]
        # one row per sparsity; a single sparsity with many criteria wraps into rows of two panels
        ncols = len(criteria) if len(sparsities) > 1 else min(2, len(criteria))
        nrows = math.ceil(len(cells) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
        for extra in axes.flat[len(cells) :]:
            extra.set_visible(False)
        for ax, (sparsity, criterion) in zip(axes.flat, cells):
            panel = group[group["method"] == "dense"]
            if sparsity is not None:
                same = np.isclose(group["sparsity"].astype(float), sparsity)
                dst = group[group["method"].isin(["set", "rigl", "gmp", "small_dense"]) & same]
                mine = group[group["method"].isin(["static", "tar", "uniform"]) & same]
                if criterion is not None:
                    mine = mine[mine["criterion"] == criterion]
                panel = pd.concat([panel, mine, dst])
            for label, config in line_configs(panel):
                timesteps, mean, se = _mean_curve(list(config["cell_dir"]), curves)
                row = config.iloc[0]
                style = "--" if row["method"] == "uniform" else "-"
                color = _COLORS[row["method"]]
                ax.plot(timesteps, mean, style, color=color, label=f"{label} (n={len(config)})")
                ax.fill_between(timesteps, mean - se, mean + se, color=color, alpha=0.15)
            title = env if sparsity is None else f"{env}, sparsity {sparsity:g}"
            _style_axis(ax, title + (f", {criterion}" if criterion else ""), "timesteps", "eval return")
        path = curves_file(out_dir, algo, env, width)
        written.append(_save_figure(plt, fig, f"{algo.upper()} learning curves (width {width}; mean ± s.e. over seeds)", path))
    return written, []


def rr_sensitivity(runs: pd.DataFrame, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """
    Final return against the recovery ratio rr (rr = 0 is the static baseline), one PNG per
    (algo, sparsity, width) with a panel per env and a line per criterion (solid: TAR, dashed: Uniform).

    :param runs: Per-run results.
    :param out_dir: Output folder.
    :return: ``(files written, messages)``; nothing is written if no configuration has two or more rr values.
    """
    plt = _pyplot()
    out_dir = Path(out_dir)
    revival = runs[runs["method"].isin(["static", "tar", "uniform"])]
    if revival.empty or revival["rr"].nunique() < 2:
        return [], ["rr-sensitivity plot skipped: the grid needs static/TAR runs at two or more rr values (rr=0 is static)"]
    written = []
    for (algo, sparsity, width), group in revival.groupby(["algo", "sparsity", "width"], sort=False):
        if group["rr"].nunique() < 2:
            continue
        envs = list(dict.fromkeys(group["env"]))
        fig, axes = plt.subplots(1, len(envs), figsize=(4.2 * len(envs), 3.2), squeeze=False)
        for ax, env in zip(axes[0], envs):
            sub = group[group["env"] == env]
            for k, (_, crit) in enumerate(sub.groupby(with_options(sub, ["criterion"]), sort=True)):
                color = f"C{k}"
                criterion = crit["criterion"].iloc[0]
                for method, style in (("tar", "-o"), ("uniform", "--s")):
                    points = crit[crit["method"].isin(["static", method])]
                    if points["method"].eq(method).sum() == 0:
                        continue
                    stats = points.groupby("rr")["final_return"].agg(["mean", standard_error]).sort_index()
                    label = f"{criterion} ({METHOD_NAMES[method]})" + options_suffix(crit.iloc[0])
                    ax.errorbar(
                        stats.index,
                        stats["mean"],
                        yerr=stats["standard_error"],
                        fmt=style,
                        color=color,
                        capsize=3,
                        label=label,
                    )
            _style_axis(ax, f"{env}", "recovery ratio rr (0 = Original)", "final return")
        path = out_dir / f"rr_sensitivity_{algo}_sp{sparsity:g}_w{width}.png"
        title = f"{algo.upper()} rr sensitivity, sparsity {sparsity:g}, width {width} (mean ± s.e.)"
        written.append(_save_figure(plt, fig, title, path))
    return written, []


def width_lines(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """
    The lines of a width-scaling panel: the configurations of :func:`line_configs` that ran at two or more widths.

    :param runs: The runs of one panel (or of one sparsity).
    :return: ``(legend label, runs of the line)`` pairs, in the order the runs come.
    """
    return [(label, config) for label, config in line_configs(runs) if config["width"].nunique() >= 2]


def width_scaling(runs: pd.DataFrame, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """
    Final return against network width, one PNG per (algo, sparsity) with a panel per env and a line per
    method configuration (dense, Original/TAR/Uniform per criterion and rr, SET, RigL) that ran at two or more
    widths (a configuration of one width has no line to draw: the tables show it); a sparsity at which no sparse
    configuration ran at two widths has no plot. ERK lines are dotted, Uniform's dashed; the lines are drawn a
    little apart along the width axis so that their error bars do not hide each other.

    :param runs: Per-run results.
    :param out_dir: Output folder.
    :return: ``(files written, messages)``; nothing is written if the grid has a single width.
    """
    plt = _pyplot()
    out_dir = Path(out_dir)
    if runs["width"].nunique() < 2:
        return [], [f"width-scaling plot skipped: the grid has a single width ({runs['width'].iloc[0]})"]
    written = []
    sparse = runs[runs["method"] != "dense"]
    sparsities = sorted(sparse["sparsity"].dropna().unique()) or [None]
    for algo, by_algo in runs.groupby("algo", sort=False):
        for sparsity in sparsities:
            group = by_algo[by_algo["method"] == "dense"]
            if sparsity is not None:
                at = by_algo[np.isclose(by_algo["sparsity"].astype(float), sparsity)]
                if not width_lines(at):
                    continue  # no sparse configuration of this sparsity ran at two widths
                group = pd.concat([group, at])
            envs = list(dict.fromkeys(group["env"]))
            fig, axes = plt.subplots(1, len(envs), figsize=(6.2 * len(envs), 3.4), squeeze=False)
            for ax, env in zip(axes[0], envs):
                sub = group[group["env"] == env]
                lines = width_lines(sub)
                for i, (label, config) in enumerate(lines):
                    row = config.iloc[0]
                    stats = config.groupby("width")["final_return"].agg(["mean", standard_error]).sort_index()
                    label = label + (f" [{row['criterion']}]" if row["method"] in ("static", "tar", "uniform") else "")
                    marker = _MARKERS.get(row["criterion"], "o")
                    line = "--" if row["method"] == "uniform" else ":" if row["criterion"] == "erk" else "-"
                    dodge = 2.0 ** (_DODGE * (i - (len(lines) - 1) / 2))  # error bars side by side, not on top
                    ax.errorbar(
                        stats.index.to_numpy(dtype=float) * dodge,
                        stats["mean"],
                        yerr=stats["standard_error"],
                        fmt=line + marker,
                        color=_COLORS.get(row["method"], role_cells.COLOR),
                        capsize=3,
                        label=label,
                    )
                ax.set_xscale("log", base=2)
                _style_axis(ax, env, "hidden width", "final return", loc="center left", bbox_to_anchor=(1.0, 0.5))
            title = f"{algo.upper()} width scaling" + (f", sparsity {sparsity:g}" if sparsity is not None else "")
            path = width_scaling_file(out_dir, algo, sparsity)
            written.append(_save_figure(plt, fig, title + " (mean ± s.e.)", path))
    return written, []


def rr_by_sparsity_file(out_dir: str | Path, algo: str, env: str, criterion: str, width: int, options: str = "") -> Path:
    """:return: Where :func:`rr_by_sparsity` writes the plot of one algo, env, criterion, width (and extra options)."""
    suffix = f"_{_safe(options)}" if options else ""
    return Path(out_dir) / f"rr_by_sparsity_{algo}_{_safe(env)}_{criterion}_w{width}{suffix}.png"


def _rr_plots(runs: pd.DataFrame) -> list[tuple[tuple[str, str, str, int, str], pd.DataFrame]]:
    """The groups of :func:`~sb3_tar.experiments.scale_tables.rr_groups` as ``((algo, env, criterion, width, options),
    runs)``, ``options`` ``""`` for cells without extra options."""
    return [((*key[:4], key[4] if len(key) > 4 else ""), group) for key, group in rr_groups(runs)]


def dense_reference(runs: pd.DataFrame, algo: str, env: str, width: int) -> tuple[float, float, int] | None:
    """
    :param runs: Per-run results.
    :param algo: The algorithm.
    :param env: The environment.
    :param width: The hidden width.
    :return: Mean, standard error and count of the final returns of dense runs of that algo, env and width (the
        dashed reference of :func:`rr_by_sparsity`), or ``None`` without one.
    """
    dense = dense_runs(runs, algo, env, width)["final_return"]
    if dense.empty:
        return None
    return float(dense.mean()), standard_error(dense), len(dense)


def rr_by_sparsity(runs: pd.DataFrame, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """
    The paper's rr figure: final return against the recovery ratio rr (rr = 0 is Original), a line per sparsity,
    one PNG per configuration of :func:`~sb3_tar.experiments.scale_tables.rr_groups` (the groups the rr table reports),
    with dense of the same algo, env and width as a dashed line and its ± s.e. band where the runs hold it.

    :param runs: Per-run results.
    :param out_dir: Output folder.
    :return: ``(files written, messages)``.
    """
    groups = _rr_plots(runs)
    if not groups:
        return [], []
    plt = _pyplot()
    written = []
    for (algo, env, criterion, width, options), group in groups:
        fig, ax = plt.subplots(figsize=(4.6, 3.3))
        for k, (sparsity, sub) in enumerate(group.groupby("sparsity", sort=True)):
            stats = sub.groupby("rr")["final_return"].agg(["mean", standard_error]).sort_index()
            ax.errorbar(
                stats.index,
                stats["mean"],
                yerr=stats["standard_error"],
                fmt="-o",
                color=f"C{k}",
                capsize=3,
                label=f"sparsity {sparsity:g}",
            )
        dense = dense_reference(runs, algo, env, width)
        if dense is not None:
            mean, se, n = dense
            ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"dense (n={n})")
            if np.isfinite(se):
                ax.axhspan(mean - se, mean + se, color="black", alpha=0.08, linewidth=0)
        title = f"{env}, {criterion}, width {width}" + (f" [{options}]" if options else "")
        _style_axis(ax, title, "recovery ratio rr (0 = Original)", "final return")
        path = rr_by_sparsity_file(out_dir, algo, env, criterion, width, options)
        written.append(_save_figure(plt, fig, f"{algo.upper()}: TAR's rr at each sparsity (mean ± s.e.)", path))
    return written, []


def width_scaling_file(out_dir: str | Path, algo: str, sparsity: float | None) -> Path:
    """:return: Where :func:`width_scaling` writes the plot of one algo and sparsity."""
    return Path(out_dir) / (f"width_scaling_{algo}" + (f"_sp{sparsity:g}" if sparsity is not None else "") + ".png")


def scale_files(runs: pd.DataFrame, out_dir: str | Path) -> list[tuple[Path, str]]:
    """
    The plots of the scale sections of a report, whether or not they were drawn: :func:`rr_by_sparsity`'s, and
    :func:`width_scaling`'s for each (algo, sparsity) of :func:`~sb3_tar.experiments.scale_tables.width_groups` (the
    groups the width table reports).

    :param runs: Per-run results.
    :param out_dir: The report's folder.
    :return: ``(path, alt text)`` pairs.
    """
    out = [
        (
            rr_by_sparsity_file(out_dir, algo, env, criterion, width, options),
            f"{algo.upper()} {env} {criterion} width {width}{f' [{options}]' if options else ''}: rr by sparsity",
        )
        for (algo, env, criterion, width, options), _ in _rr_plots(runs)
    ]
    for algo, sparsity in sorted({(key[0], key[3]) for key, _ in width_groups(runs)}):
        out.append((width_scaling_file(out_dir, algo, sparsity), f"{algo.upper()} width scaling, sparsity {sparsity:g}"))
    return out
