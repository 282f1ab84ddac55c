"""Load a sweep's results: every finished cell's ``evaluations.npz`` (RL-Zoo / SB3 ``EvalCallback`` format).

Evaluation protocol (``docs/experiments.md``): each evaluation's return is the mean over its episodes; a run's
final return is the mean of its last 10% of evaluations (at least one).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sb3_tar.experiments.flops import cell_training_flops
from sb3_tar.experiments.grid import Cell
from sb3_tar.experiments.runner import CELL_FILE, DONE_FILE, LOG_FILE, RESUME_MARKER, SUMMARY_FILE

#: Columns that identify a configuration (a run without its seed).
CONFIG_COLUMNS: list[str] = ["algo", "env", "method", "criterion", "sparsity", "rr", "width"]


def load_evaluations(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """
    :param path: An ``evaluations.npz`` file, or the run folder holding one.
    :return: ``(timesteps, returns)``: the evaluation steps and each evaluation's mean episode return.
    :raises FileNotFoundError: If there is no such file.
    :raises ValueError: If the file holds no evaluation.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "evaluations.npz"
    with np.load(path) as data:
        timesteps = np.asarray(data["timesteps"], dtype=np.int64)
        results = np.asarray(data["results"], dtype=np.float64)
    if results.size == 0:
        raise ValueError(f"{path} holds no evaluation")
    returns = results.reshape(len(timesteps), -1).mean(axis=1)
    return timesteps, returns


def final_return(returns: np.ndarray, last_fraction: float = 0.1) -> float:
    """
    :param returns: Per-evaluation returns, in time order.
    :param last_fraction: Fraction of the last evaluations to average, in (0, 1].
    :return: The mean of the last ``ceil(last_fraction * n)`` evaluations (at least one).
    :raises ValueError: If ``returns`` is empty or ``last_fraction`` is outside (0, 1].
    """
    if not 0.0 < last_fraction <= 1.0:
        raise ValueError(f"last_fraction={last_fraction!r} is outside the allowed range (0, 1]")
    returns = np.asarray(returns, dtype=np.float64)
    if returns.size == 0:
        raise ValueError("returns is empty: a run needs at least one evaluation")
    n_last = max(1, math.ceil(last_fraction * len(returns) - 1e-9))
    return float(returns[-n_last:].mean())


@dataclass
class SweepResults:
    """
    Every finished run of a results directory.

    :param runs: One row per run: the configuration columns, ``seed``, ``label``, ``final_return``,
        ``n_evals``, ``last_timestep``, ``cell_dir``, ``commit`` (:func:`package_commit_of`), ``hardware``
        (:func:`hardware_label`), ``wall_s`` (seconds
        of training, from ``done.json``) and, from the cell's
        ``summary.json`` where it has a
        pruning report, ``dead_before`` / ``dead_after``: dead units of all networks before and after revival
        (NaN otherwise), and ``train_flops``: average training FLOPs relative to the dense network of the cell's
        width (:func:`sb3_tar.experiments.flops.cell_training_flops`), and ``dead_final`` / ``units_final``: dead units
        of the mask the cell ended with, from the ``final_masks`` its summary records (:func:`final_dead_units`; NaN
        for cells run before that record).
    :param curves: Learning curves by ``cell_dir``: ``(timesteps, returns)``.
    :param unfinished: Cell folders without a done marker (skipped).
    """

    runs: pd.DataFrame
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)


def load_results(
    root: str | os.PathLike,
    last_fraction: float = 0.1,
    progress: bool = False,
    cell_ids: Collection[str] | None = None,
) -> SweepResults:
    """
    :param root: A results directory written by ``sb3-tar sweep``.
    :param last_fraction: Fraction of the last evaluations averaged into the final return.
    :param progress: Show a progress bar while reading.
    :param cell_ids: Read only these cells (``<algo>/<env>/<label>/seed_<k>``, as :attr:`Cell.cell_id
        <sb3_tar.experiments.grid.Cell.cell_id>`), e.g. the cells of some presets; ``None``: every cell. The others
        are neither read nor counted as unfinished.
    :return: The results.
    :raises FileNotFoundError: If ``root`` does not exist or holds no finished cell (among ``cell_ids``).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Results directory {root} does not exist")
    from tqdm.auto import tqdm

    rows, curves, unfinished = [], {}, []
    cell_files = sorted(p for p in root.rglob(CELL_FILE) if "zoo" not in p.relative_to(root).parts[:1])
    if cell_ids is not None:
        wanted = set(cell_ids)
        cell_files = [p for p in cell_files if p.parent.relative_to(root).as_posix() in wanted]
    for cell_file in tqdm(cell_files, desc="loading runs", unit="run", disable=not progress):
        folder = cell_file.parent
        if not (folder / DONE_FILE).is_file():
            unfinished.append(str(folder))
            continue
        cell = Cell.from_dict(json.loads(cell_file.read_text()))
        done = _done_record(folder)
        timesteps, returns = load_evaluations(_run_folder(folder, cell))
        curves[str(folder)] = (timesteps, returns)
        rows.append(
            {
                "algo": cell.algo,
                "env": cell.env,
                "method": cell.method,
                "criterion": cell.criterion,
                "sparsity": cell.sparsity,
                "rr": cell.rr,
                "width": cell.width,
                "seed": cell.seed,
                "label": cell.label,
                "options": cell.options,
                "final_return": final_return(returns, last_fraction),
                "n_evals": len(returns),
                "last_timestep": int(timesteps[-1]),
                "cell_dir": str(folder),
                "commit": _commit_label(done),
                "hardware": hardware_label(done),
                "wall_s": _number(done, "wall_s"),
                "wall_complete": _wall_complete(done, folder),
                "finished": _number(done, "finished"),
                **dead_units(folder),
                **final_dead_units(folder),
                "train_flops": cell_training_flops(_summary(folder), cell.method, _run_folder(folder, cell), cell.n_timesteps),
            }
        )
    if not rows:
        among = f" among the {len(set(cell_ids))} cells asked for" if cell_ids is not None else ""
        raise FileNotFoundError(f"No finished cell (with {DONE_FILE}) under {root}{among}")
    runs = pd.DataFrame(rows).sort_values([*CONFIG_COLUMNS, "options", "seed"], na_position="first", key=_sort_key)
    if not runs["options"].astype(bool).any():  # no cell with extra callback options: the columns of earlier reports
        runs = runs.drop(columns="options")
    return SweepResults(runs.reset_index(drop=True), curves, unfinished)


def _wall_complete(done: dict, folder: Path) -> bool:
    """
    Whether the cell's ``wall_s`` is its whole training time: recorded by the sweep (``wall_s_complete``), or,
    for cells finished before it recorded that, whether the cell ran in one attempt (no resume in its log).
    """
    if "wall_s_complete" in done:
        return bool(done["wall_s_complete"])
    try:
        return RESUME_MARKER not in (folder / LOG_FILE).read_text(errors="replace")
    except OSError:  # no log: nothing says it was resumed
        return True


def _done_record(folder: str | os.PathLike) -> dict:
    """The cell's ``done.json`` (empty if missing or unreadable)."""
    try:
        record = json.loads((Path(folder) / DONE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _commit_label(done: dict) -> str:
    """The commit recorded in a ``done.json`` record: 12 characters, ``+dirty`` if so, ``"unknown"`` if none."""
    package = done.get("package") or {}
    commit = package.get("commit") or "unknown"
    return f"{commit[:12]}+dirty" if package.get("dirty") else commit[:12] if commit != "unknown" else commit


def hardware_label(done: dict) -> str:
    """
    :param done: A cell's ``done.json`` record.
    :return: The CPU type that finished the cell, ``"<model> (<family/model/stepping>, <torch CPU capability>)"``
        from its ``hardware`` record, or ``"not recorded"`` for cells finished before the sweep recorded it. Runs
        are bit-identical only on the same CPU type: this is what tells whether two cells could be.
    """
    hardware = done.get("hardware")
    if not isinstance(hardware, dict):
        return "not recorded"
    model = hardware.get("cpu_model") or "unknown CPU"
    detail = ", ".join(str(v) for v in (hardware.get("cpu_id"), hardware.get("torch_cpu_capability")) if v)
    return f"{model} ({detail})" if detail else model


def _number(done: dict, key: str) -> float:
    """A number from a ``done.json`` record (NaN if not recorded)."""
    try:
        return float(done.get(key, float("nan")))
    except (TypeError, ValueError):
        return float("nan")


def package_commit_of(folder: str | os.PathLike) -> str:
    """
    :param folder: A finished cell folder.
    :return: The sb3-tar commit that ran it, from its ``done.json`` (``"unknown"`` if not recorded), with
        ``+dirty`` when the package had uncommitted changes.
    """
    return _commit_label(_done_record(folder))


def wall_clock_seconds(runs: pd.DataFrame) -> float:
    """
    Wall-clock time a grid took: the length of the union of its cells' run intervals
    ``[finished - wall_s, finished]``. Cells that ran side by side count once, and the gaps between
    working sessions (when nothing ran) not at all.

    :param runs: Per-run results (columns ``wall_s`` and ``finished``).
    :return: Seconds (0.0 when no cell recorded both times).
    """
    if not {"wall_s", "finished"} <= set(runs):
        return 0.0
    known = runs[["wall_s", "finished"]].dropna()
    intervals = sorted((end - wall, end) for wall, end in zip(known["wall_s"], known["finished"]))
    total, current_start, current_end = 0.0, None, None
    for start, end in intervals:
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


def _summary(folder: str | os.PathLike) -> dict | None:
    """The cell's ``summary.json`` (``None`` if missing or unreadable)."""
    try:
        return json.loads((Path(folder) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None


def cell_reports(folder: str | os.PathLike) -> dict | None:
    """
    :param folder: A cell folder.
    :return: The pruning/revival reports stored in its ``summary.json`` (``{network: report dict}``), or
        ``None`` if it has none (dense cells, or cells run before summaries were written).
    """
    path = Path(folder) / SUMMARY_FILE
    if not path.is_file():
        return None
    reports = json.loads(path.read_text()).get("reports")
    return reports or None


def dead_units(folder: str | os.PathLike) -> dict[str, float]:
    """
    :param folder: A cell folder.
    :return: ``{"dead_before", "dead_after", "units"}``: dead units summed over every layer of every network,
        before and after revival, from the cell's pruning report, and the number of units they are counted
        among (each layer's outputs plus inputs, summed the same way); NaN without a report. The final mask's
        are :func:`final_dead_units`.
    """
    reports = cell_reports(folder)
    if reports is None:
        return {"dead_before": float("nan"), "dead_after": float("nan"), "units": float("nan")}
    layers = [layer for report in reports.values() for layer in report["layers"]]
    return {
        "dead_before": float(sum(layer["dead_before"] for layer in layers)),
        "dead_after": float(sum(layer["dead_after"] for layer in layers)),
        "units": float(sum(layer["shape"][0] + layer["shape"][1] for layer in layers)),
    }


def final_dead_units(folder: str | os.PathLike) -> dict[str, float]:
    """
    :param folder: A cell folder.
    :return: ``{"dead_final", "units_final"}``: dead units of the mask the cell ended training with (outputs with no
        incoming and inputs with no outgoing nonzero weight, summed over every layer of every network, from the
        ``final_masks`` of its ``summary.json``) and the units they are counted among; NaN for a cell whose summary
        predates that record. For a fixed mask this is the mask after revival; for SET, RigL and GMP it is the mask
        their schedule left.
    """
    networks = (_summary(folder) or {}).get("final_masks")
    if not networks:
        return {"dead_final": float("nan"), "units_final": float("nan")}
    layers = [layer for layers in networks.values() for layer in layers]
    return {
        "dead_final": float(sum(layer["dead_out"] + layer["dead_in"] for layer in layers)),
        "units_final": float(sum(layer["shape"][0] + layer["shape"][1] for layer in layers)),
    }


def _run_folder(folder: Path, cell: Cell) -> Path:
    """RL-Zoo's run folder inside a cell folder."""
    return folder / cell.algo / f"{cell.env}_1"


def _sort_key(column: pd.Series) -> pd.Series:
    if column.name == "method":
        order = {m: i for i, m in enumerate(("dense", "static", "tar", "uniform", "set", "rigl", "gmp", "small_dense"))}
        return column.map(order)
    return column
