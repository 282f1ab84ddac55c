"""Check that the installed sb3-tar draws the same masks as the commits that ran a results directory's cells.

A grid that spans working sessions is run by several package commits. Its cells may share one table only
if none of those commits changed how masks are drawn. :func:`verify_masks` proves it cell by cell: it runs
each sparse cell's exact configuration (algorithm, env, hyperparameters, seed, callback) again for a few
steps, so that the callback prunes and revives but no gradient step is taken, and compares

- the per-layer pruning/revival report (kept weights, need, floor, revived count, density and dead units
  before and after revival, layer by layer), which every cell's ``summary.json`` holds, and
- the fingerprint of the nonzero pattern of the online weights (``pattern_sha256``), where the committed
  cell recorded one and its mask stayed fixed (not SET/RigL, whose final mask was rewired).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sb3_tar.experiments import role_cells
from sb3_tar.experiments.grid import Cell
from sb3_tar.experiments.runner import CELL_FILE, DONE_FILE, SUMMARY_FILE, cell_dir, run_cell

#: Environment steps of a re-draw: enough for RL-Zoo to start training and evaluate once.
REDRAW_STEPS = 100


def redraw(cell: Cell, scratch: str | os.PathLike, conf_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """
    Run a cell's configuration for :data:`REDRAW_STEPS` steps (one evaluation episode) and return its summary.

    :param cell: The cell (its ``hyperparams`` and ``callback_kwargs`` are kept; only the budget and the
        evaluation schedule change, which the mask draw does not read).
    :param scratch: Results directory for the short run.
    :param conf_dir: Folder of hyperparameter files (default: the package's ``hyperparams/``).
    :return: The short run's ``summary.json``.
    :raises RuntimeError: If the short run fails (the message names its log).
    """
    short = dataclasses.replace(cell, n_timesteps=REDRAW_STEPS, eval_freq=REDRAW_STEPS, eval_episodes=1)
    result = run_cell(short, scratch, conf_dir)
    if result.status != "done":
        raise RuntimeError(f"re-drawing {cell.cell_id} failed (exit code {result.returncode}); log: {result.log}")
    return json.loads((cell_dir(scratch, short) / SUMMARY_FILE).read_text())


def compare_draws(committed: dict[str, Any], redrawn: dict[str, Any], rewired: bool = False) -> list[str]:
    """
    :param committed: A finished cell's ``summary.json``.
    :param redrawn: The summary of its re-draw (:func:`redraw`).
    :param rewired: The cell's mask changed during training (SET/RigL): skip the pattern fingerprints.
    :return: The differences, one line each (empty when the draws agree).
    """
    differences = []
    old, new = committed.get("reports") or {}, redrawn.get("reports") or {}
    if set(old) != set(new):
        return [f"networks differ: {sorted(old)} committed, {sorted(new)} now"]
    for network in old:
        old_layers, new_layers = old[network]["layers"], new[network]["layers"]
        if len(old_layers) != len(new_layers):
            differences.append(f"{network}: {len(old_layers)} layers committed, {len(new_layers)} now")
            continue
        for a, b in zip(old_layers, new_layers):
            changed = sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))
            if changed:
                values = ", ".join(f"{key} {a.get(key)!r} -> {b.get(key)!r}" for key in changed)
                differences.append(f"{network} {a.get('name')}: {values}")
    if not rewired:
        for network, entry in (committed.get("final_sparsity") or {}).items():
            expected = entry.get("pattern_sha256")
            found = (redrawn.get("final_sparsity") or {}).get(network, {}).get("pattern_sha256")
            if expected is not None and expected != found:
                differences.append(f"{network}: nonzero pattern {expected[:12]} committed, {str(found)[:12]} now")
    return differences


#: Methods with no mask drawn at initialization: dense networks, and GMP (its mask comes from training).
NOT_DRAWN: dict[str, str] = {"dense": "is dense", "small_dense": "is dense", "gmp": "prunes during training"}


def _is_dense(folder: Path) -> bool:
    """Whether a cell folder holds a run with no mask drawn at initialization (:data:`NOT_DRAWN`)."""
    return _method(folder) in NOT_DRAWN


def _method(folder: Path) -> str | None:
    return json.loads((folder / CELL_FILE).read_text()).get("method")


def sparse_cells(results_dir: str | os.PathLike) -> list[Path]:
    """:return: The finished cell folders of a results directory whose method draws a mask at initialization."""
    finished = [
        f.parent for f in sorted(Path(results_dir).glob(f"*/*/*/seed_*/{CELL_FILE}")) if (f.parent / DONE_FILE).is_file()
    ]
    return [folder for folder in finished if not _is_dense(folder)]


def resolve_cells(results_dir: str | os.PathLike, cells: Sequence[str | os.PathLike]) -> list[Path]:
    """
    :param results_dir: Results directory written by ``sb3-tar sweep``.
    :param cells: Cells, each a folder path or a cell id relative to ``results_dir`` (as ``verify_masks`` and
        ``sb3-tar sweep`` print them, e.g. ``sac/HalfCheetah-v4/tar_magnitude_sp0.9_rr0.01_w256/seed_0``).
    :return: Their folders.
    :raises FileNotFoundError: If one is neither, or its cell has not finished (no ``done.json``); nothing
        is checked then.
    """
    folders = []
    for cell in cells:
        candidates = [Path(cell), Path(results_dir) / cell]
        folder = next((c for c in candidates if (c / CELL_FILE).is_file()), None)
        if folder is None:
            raise FileNotFoundError(
                f"No cell {str(cell)!r}: neither {candidates[0]} nor {candidates[1]} holds a {CELL_FILE} "
                f"(give a cell folder or a cell id under {results_dir})"
            )
        if not (folder / DONE_FILE).is_file():
            raise FileNotFoundError(f"Cell {folder} has not finished (no {DONE_FILE}): there is no committed draw to compare")
        folders.append(folder)
    return folders


def verify_masks(
    results_dir: str | os.PathLike,
    cells: Sequence[str | os.PathLike] | None = None,
    conf_dir: str | os.PathLike | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, list[str]]:
    """
    Re-draw the masks of finished sparse cells with the installed package and compare (see the module doc).

    :param results_dir: Results directory written by ``sb3-tar sweep``.
    :param cells: Cells to check, as folders or cell ids (:func:`resolve_cells`; default: every finished sparse
        cell, :func:`sparse_cells`); dense and GMP ones (:data:`NOT_DRAWN`) are skipped with a line.
    :param conf_dir: Folder of hyperparameter files.
    :param echo: Where to print one line per cell.
    :return: ``{cell_id: differences}`` for every checked cell (an empty list: same masks).
    :raises FileNotFoundError: If there is no finished sparse cell to check, or a given cell is not one.
    """
    folders = resolve_cells(results_dir, cells) if cells is not None else sparse_cells(results_dir)
    skipped = [f for f in folders if _is_dense(f)]
    for folder in skipped:
        echo(f"skipped: {folder} {NOT_DRAWN[_method(folder)]} (no mask to draw)")
    folders = [f for f in folders if f not in skipped]
    if not folders:
        raise FileNotFoundError(
            f"No finished sparse cell (with {DONE_FILE}, a method other than {', '.join(NOT_DRAWN)}) under {results_dir}"
        )
    outcome: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="sb3-tar-verify-") as scratch:
        for folder in folders:
            cell = Cell.from_dict(json.loads((folder / CELL_FILE).read_text()))
            committed = json.loads((folder / SUMMARY_FILE).read_text())
            rewired = cell.method in ("set", "rigl", "sculpt", "iee") or role_cells.is_dynamic(cell.method)
            differences = compare_draws(committed, redraw(cell, scratch, conf_dir), rewired=rewired)
            outcome[cell.cell_id] = differences
            commit = str((committed.get("package") or {}).get("commit", "unknown"))[:12]
            echo(f"{'same masks' if not differences else 'DIFFERENT'}: {cell.cell_id} (run by {commit})")
            for line in differences:
                echo(f"    {line}")
    return outcome
