"""Send sparsity reports to SB3's logger (``sparsity/...`` keys, shown by TensorBoard)."""

from __future__ import annotations

from collections.abc import Mapping

from stable_baselines3.common.logger import Logger

from sb3_tar.core.layer_report import NetworkReport


def log_reports(logger: Logger, reports: Mapping[str, NetworkReport]) -> None:
    """
    Record each network's totals (also on stdout) and per-layer numbers (not on stdout).

    Keys: ``sparsity/<network>/{sparsity,kept,revived,flops_ratio,dead_units_before,dead_units_after}``
    and ``sparsity/<network>/<layer>/{density,revived,threshold,need,floor}``.

    :param logger: The model's SB3 logger.
    :param reports: Reports per network.
    """
    for name, report in reports.items():
        prefix = f"sparsity/{name}"
        logger.record(f"{prefix}/sparsity", report.sparsity)
        logger.record(f"{prefix}/kept", report.kept)
        logger.record(f"{prefix}/revived", report.budget)
        logger.record(f"{prefix}/flops_ratio", report.flops_ratio)
        logger.record(f"{prefix}/dead_units_before", sum(layer.dead_before for layer in report.layers))
        logger.record(f"{prefix}/dead_units_after", sum(layer.dead_after for layer in report.layers))
        for layer in report.layers:
            for key in ("density", "revived", "threshold", "need", "floor"):
                logger.record(f"{prefix}/{layer.name}/{key}", getattr(layer, key), exclude=("stdout", "log"))
