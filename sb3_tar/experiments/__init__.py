"""Experiments with RL-Zoo3: sweep grids and presets, a resumable sweep runner, results tables and plots.

Command line: ``sb3-tar sweep``, ``sb3-tar report`` and ``sb3-tar verify-masks`` (see :mod:`sb3_tar.cli`).
"""

from sb3_tar.experiments.grid import METHODS, PRESETS, Cell, GridSpec, get_preset
from sb3_tar.experiments.report import Report, make_report
from sb3_tar.experiments.results import final_return, load_evaluations, load_results
from sb3_tar.experiments.runner import run_cell, run_sweep, zoo_command
from sb3_tar.experiments.verify import verify_masks

__all__ = [
    "METHODS",
    "PRESETS",
    "Cell",
    "GridSpec",
    "Report",
    "final_return",
    "get_preset",
    "load_evaluations",
    "load_results",
    "make_report",
    "run_cell",
    "run_sweep",
    "verify_masks",
    "zoo_command",
]
