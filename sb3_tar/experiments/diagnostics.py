"""The plasticity diagnostics of a sweep (each cell's ``diagnostics.csv``, written by
:class:`~sb3_tar.diagnostics.DiagnosticsCallback`): loading, and one PNG per algorithm, env and width with the
diagnostics of every method through training (``sb3-tar report``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sb3_tar.experiments import plots, role_cells
from sb3_tar.experiments.runner import DIAGNOSTICS_FILE
from sb3_tar.experiments.tables import METHOD_NAMES, options_suffix, with_options

_PREFIX = "diagnostics/"
_FIXED_ORDER = ("srank", "weight_norm", "grad_norm")
_TITLES = {"srank": "srank (last hidden layer)", "weight_norm": "weight norm", "grad_norm": "gradient norm"}


def load_cell_diagnostics(cell_dir: str | Path) -> pd.DataFrame | None:
    """
    :param cell_dir: A cell folder.
    :return: Its ``diagnostics.csv`` as a frame (``timesteps`` and the ``diagnostics/...`` columns), or ``None`` if
        the cell has none (cells run before diagnostics were recorded) or it holds no row.
    """
    path = Path(cell_dir) / DIAGNOSTICS_FILE
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    return frame if len(frame) else None


def _group_order(groups: set[str]) -> list[str]:
    """:return: ``actor`` and ``critic`` first (SAC/TD3/TQC, PPO/A2C), then any other network (DQN's ``q_net``)."""
    return [g for g in ("actor", "critic") if g in groups] + sorted(groups - {"actor", "critic"})


def network_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """
    Per network group, the first part of each column's network name: the actor, the critic as the mean over its
    Q-networks (``critic/qf0``, ``critic/qf1``, ...), and any other network as it is (DQN's ``q_net``).

    :param frame: A cell's diagnostics (see :func:`load_cell_diagnostics`).
    :return: Columns ``timesteps``, ``group`` (``actor``, ``critic``, ``q_net``, ...), and one column per metric
        (``dormant_<tau>``, ``srank``, ``weight_norm``, ``grad_norm``).
    """
    by_group: dict[str, dict[str, list[str]]] = {}
    for column in frame.columns:
        if not column.startswith(_PREFIX):
            continue
        network, _, metric = column[len(_PREFIX) :].rpartition("/")
        by_group.setdefault(network.split("/")[0], {}).setdefault(metric, []).append(column)
    parts = []
    for group in _group_order(set(by_group)):
        columns = by_group[group]
        part = pd.DataFrame({metric: frame[cols].mean(axis=1) for metric, cols in columns.items()})
        part.insert(0, "group", group)
        part.insert(0, "timesteps", frame["timesteps"].to_numpy())
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["timesteps", "group"])


def _metric_order(metrics: set[str]) -> list[str]:
    dormant = sorted((m for m in metrics if m.startswith("dormant_")), key=lambda m: float(m.split("_", 1)[1]))
    return dormant + [m for m in _FIXED_ORDER if m in metrics]


def _title(metric: str) -> str:
    if metric.startswith("dormant_"):
        return f"dormant units, tau = {metric.split('_', 1)[1]}"
    return _TITLES.get(metric, metric)


def _label(row: pd.Series) -> str:
    method = row["method"]
    label = METHOD_NAMES.get(method) or role_cells.display_name(method)  # per-role: "TAR actor + RigL critic"
    if (method in ("tar", "uniform") or role_cells.revives(method)) and pd.notna(row.get("rr")):
        label += f" rr={row['rr']:g}"
    if method != "dense" and isinstance(row.get("criterion"), str):
        label += f" [{row['criterion']}]"
    if pd.notna(row.get("sparsity")):
        label += f" s={row['sparsity']:g}"
    return label + options_suffix(row)


def configurations(runs: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """
    :param runs: Per-run results of one algo, env and width.
    :return: ``(key, runs)`` of each configuration, a curve of the diagnostics plot: method, criterion, sparsity, rr
        and, where the runs have them, extra callback options (a variant is a curve of its own), in the runs' order.
    """
    return list(runs.groupby(with_options(runs, ["method", "criterion", "sparsity", "rr"]), dropna=False, sort=False))


def diagnostics_file(out_dir: str | Path, algo: str, env: str, width: int) -> Path:
    """:return: Where :func:`diagnostics_plots` writes the plot of one algo, env and width."""
    return Path(out_dir) / f"diagnostics_{algo}_{plots._safe(env)}_w{width}.png"


def diagnostics_plots(runs: pd.DataFrame, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """
    One PNG per (algo, env, width) with the cells that recorded diagnostics: a row per metric (dormant ratio per
    tau, srank, weight norm, gradient norm), a column per network (actor; critic = mean over its Q-networks; DQN's
    Q-network), a line per method configuration: the mean over seeds (truncated to the shortest run) with a ±1
    standard-error band.

    :param runs: Per-run results (``cell_dir`` and the configuration columns).
    :param out_dir: Output folder.
    :return: ``(files written, messages)``; nothing is written if no cell has a ``diagnostics.csv``.
    """
    loaded = {folder: load_cell_diagnostics(folder) for folder in runs["cell_dir"]}
    tables = {folder: network_metrics(frame) for folder, frame in loaded.items() if frame is not None}
    if not tables:
        return [], ["diagnostics plot skipped: no cell has a diagnostics.csv (cells run before diagnostics were recorded)"]
    plt = plots._pyplot()
    written = []
    with_diag = runs[runs["cell_dir"].isin(list(tables))]
    for (algo, env, width), group in with_diag.groupby(["algo", "env", "width"], sort=False):
        metrics = _metric_order({c for f in group["cell_dir"] for c in tables[f].columns} - {"timesteps", "group"})
        groups = _group_order({g for f in group["cell_dir"] for g in tables[f]["group"].unique()})
        if not metrics or not groups:
            continue
        fig, axes = plt.subplots(len(metrics), len(groups), figsize=(4.4 * len(groups), 2.5 * len(metrics)), squeeze=False)
        configs = configurations(group)
        for k, (_, config) in enumerate(configs):
            row = config.iloc[0]
            color = plots._COLORS.get(row["method"], f"C{k % 10}")
            style = ("-", "--", ":", "-.")[sum(1 for _, c in configs[:k] if c.iloc[0]["method"] == row["method"]) % 4]
            for j, network in enumerate(groups):
                series = [tables[f][tables[f]["group"] == network] for f in config["cell_dir"]]
                length = min(len(s) for s in series)
                if length == 0:
                    continue
                timesteps = series[0]["timesteps"].to_numpy()[:length]
                for i, metric in enumerate(metrics):
                    values = pd.DataFrame([s[metric].to_numpy(dtype=float)[:length] for s in series])
                    mean = values.mean(axis=0).to_numpy()  # NaN (no gradient yet) skipped
                    ax = axes[i][j]
                    ax.plot(timesteps, mean, style, color=color, label=f"{_label(row)} (n={len(series)})")
                    if len(series) > 1:
                        se = (values.std(axis=0, ddof=1) / np.sqrt(values.count(axis=0))).to_numpy()
                        ax.fill_between(timesteps, mean - se, mean + se, color=color, alpha=0.15)
        for i, metric in enumerate(metrics):
            for j, network in enumerate(groups):
                ax = axes[i][j]
                ax.set_title(f"{network}: {_title(metric)}", fontsize=9)
                ax.set_xlabel("timesteps", fontsize=8)
                ax.tick_params(labelsize=7)
        axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
        path = diagnostics_file(out_dir, algo, env, width)
        title = f"{algo.upper()} {env} width {width}: plasticity diagnostics (mean ± s.e. over seeds)"
        written.append(plots._save_figure(plt, fig, title, path))
    return written, []
