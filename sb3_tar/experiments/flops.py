"""Average training FLOPs of a finished cell relative to the dense network of its width (read from its saved model).

Per gradient step and sample, each network (the actor and every Q-network) costs ``2 K + B`` for its ``K``
active weights and ``B`` bias entries (the backward pass is twice the forward in every case, so the factor
cancels; :func:`sb3_tar.core.masks.training_flops_ratio`). A cell's ratio is the sum over its networks divided
by the same sum for the dense networks of the cell's width:

- dense: 1; static, TAR, Uniform, SET, RigL: the mask's ``K`` (constant through training; RigL's dense
  gradient at its update steps is not counted);
- GMP: its cost integrated over its gradient steps (dense before ``t0``), accumulated during training
  (:func:`sb3_tar.sb3.gradual.training_flops_of_state`);
- small dense: its dense networks against the dense networks of the width it matches (recorded by
  :class:`sb3_tar.baselines.SmallDenseCallback`).
"""

from __future__ import annotations

import math
from typing import Any

from sb3_tar.core.gmp import flops_per_sample


def _networks(params: dict[str, Any]) -> dict[str, dict[str, int]]:
    """``{network: {"total", "kept", "bias"}}`` of the online actor and Q-networks of a saved policy state dict."""
    out: dict[str, dict[str, int]] = {}
    for key, tensor in params.items():
        parts = key.split(".")
        if parts[0] == "actor" and "features_extractor" not in parts:
            name = "actor"
        elif parts[0] == "critic" and len(parts) > 1 and parts[1].startswith("qf"):
            name = f"critic.{parts[1]}"
        else:
            continue
        entry = out.setdefault(name, {"total": 0, "kept": 0, "bias": 0})
        if key.endswith(".weight") and tensor.dim() == 2:
            mask = params.get(key[: -len("weight")] + "weight_mask")
            entry["total"] += tensor.numel()
            entry["kept"] += int(mask.sum()) if mask is not None else tensor.numel()
        elif key.endswith(".bias") and tensor.dim() == 1:
            entry["bias"] += tensor.numel()
    return out


def training_flops(data: dict[str, Any], params: dict[str, Any]) -> float:
    """
    :param data: The saved model's data (``load_from_zip_file``'s first output).
    :param params: Its parameters (the second output); ``params["policy"]`` is the policy's state dict.
    :return: The cell's average training FLOPs relative to dense (see the module docstring); NaN if unknown.
    """
    from sb3_tar.sb3.gradual import GMP_STATE_ATTRIBUTE, training_flops_of_state

    state = data.get(GMP_STATE_ATTRIBUTE)
    if isinstance(state, dict):
        return training_flops_of_state(state)
    networks = _networks(params.get("policy", {}))
    if not networks:
        return math.nan
    sparse = sum(flops_per_sample(n["kept"], n["bias"]) for n in networks.values())
    small = (data.get("sb3_tar_config") or {}).get("small_dense")
    if isinstance(small, dict):
        reference = sum(
            flops_per_sample(r["reference_weights"], r["reference_biases"]) for r in small.values() if isinstance(r, dict)
        )
        return sparse / reference if reference else math.nan
    dense = sum(flops_per_sample(n["total"], n["bias"]) for n in networks.values())
    return sparse / dense


__all__ = ["training_flops"]


def cell_training_flops(summary: dict[str, Any] | None, method: str) -> float:
    """
    A finished cell's training FLOPs ratio from its ``summary.json``: the ``training_flops`` written by the
    sweep (:func:`training_flops`), or, for cells written before that field existed, 1 for dense and, for
    a cell with a pruning report (static masks, SET/RigL's initial mask: per-layer counts they keep), the
    report's per-network ratio weighted by each network's dense cost; NaN otherwise.

    :param summary: The cell's ``summary.json`` content (``None`` if it has none).
    :param method: The cell's method.
    :return: The ratio.
    """
    if summary and isinstance(summary.get("training_flops"), (int, float)):
        return float(summary["training_flops"])
    if method == "dense":
        return 1.0
    reports = (summary or {}).get("reports")
    if method == "gmp" or not reports:
        return math.nan
    sparse = dense = 0.0
    for report in reports.values():
        layers = report.get("layers") or []
        if not isinstance(report.get("flops_ratio"), (int, float)) or not all("shape" in layer for layer in layers):
            return math.nan
        cost = sum(flops_per_sample(o * i, o) for o, i in (layer["shape"] for layer in layers))
        sparse += report["flops_ratio"] * cost
        dense += cost
    return sparse / dense if dense else math.nan
