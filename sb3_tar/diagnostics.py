"""``DiagnosticsCallback``: plasticity diagnostics through training (dormant units, srank, weight and gradient norms),
and its CSV files (``docs/diagnostics.md``). The import path of RL-Zoo files and sweep commands
(``sb3_tar.diagnostics.DiagnosticsCallback``); the callback lives in :mod:`sb3_tar.sb3.callbacks.diagnostics`."""

from sb3_tar.sb3.callbacks.diagnostics import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EVERY,
    PREFIX,
    DiagnosticsCallback,
    read_diagnostics_csv,
    write_diagnostics_csv,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EVERY",
    "PREFIX",
    "DiagnosticsCallback",
    "read_diagnostics_csv",
    "write_diagnostics_csv",
]
