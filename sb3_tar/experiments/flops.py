"""Average training FLOPs of a finished cell relative to the dense network of its width (read from its saved model).

Per gradient step and sample, each network (the actor and every Q-network) costs ``2 K + B`` for its ``K``
active weights and ``B`` bias entries (the backward pass is twice the forward in every case, so the factor
cancels; :func:`sb3_tar.core.masks.training_flops_ratio`). A cell's ratio is the sum over its networks divided
by the same sum for the dense networks of the cell's width:

- dense: 1; static, TAR, Uniform, SET, RigL: the mask's ``K`` (constant through training);
- RigL, besides: the dense weight gradient it reads at each mask update of the networks it grows
  (:func:`sb3_tar.core.dynamic.dense_gradient_flops`; a few parts in 10,000 with its default interval of
  1,000 gradient steps). The run's gradient steps and updates come from the DST state saved with the model;
  a cell written before the sweep recorded that state gets the steps its RL-Zoo configuration plans
  (:func:`sb3_tar.core.dynamic.planned_gradient_steps`);
- GMP: its cost integrated over its gradient steps (dense before ``t0``), accumulated during training
  (:func:`sb3_tar.sb3.methods.gradual.training_flops_of_state`);
- small dense: its dense networks against the dense networks of the width it matches (recorded by
  :class:`sb3_tar.baselines.SmallDenseCallback`);
- cyclic, SCULPT, exploitation-exploration: their cost integrated over their gradient steps, accumulated during
  training like GMP's (:mod:`sb3_tar.sb3.methods.cyclic`): the mask's ``K`` for cyclic training; SCULPT's starting mask
  (twice the target's density by default) until its prune, the target's after; for exploitation-exploration every
  exploration step counts the dense network (every weight is trained) and every other step the mask's ``K``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sb3_tar.core.dynamic import DSTConfig, dense_gradient_flops, planned_gradient_steps, update_count
from sb3_tar.core.gmp import flops_per_sample
from sb3_tar.experiments.state_networks import network_of_key, role_of


def _networks(params: dict[str, Any]) -> dict[str, dict[str, int]]:
    """``{network: {"total", "kept", "bias"}}`` of the online networks of a saved policy state dict
    (:mod:`sb3_tar.experiments.state_networks`)."""
    out: dict[str, dict[str, int]] = {}
    for key, tensor in params.items():
        found = network_of_key(key)
        if found is None or found.target:
            continue
        name = found.network
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
    from sb3_tar.sb3.methods.cyclic import STATE_ATTRIBUTE as SCHEDULE_STATE_ATTRIBUTE
    from sb3_tar.sb3.methods.gradual import GMP_STATE_ATTRIBUTE, training_flops_of_state

    for attribute in (GMP_STATE_ATTRIBUTE, SCHEDULE_STATE_ATTRIBUTE):
        state = data.get(attribute)
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
    extra = 0.0
    state = dst_state(data, params)
    if state is not None:
        extra = dst_gradient_flops(state, {k: (n["total"], n["kept"], n["bias"]) for k, n in networks.items()})
    return sparse / dense + extra


def dst_state(data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | None:
    """
    The DST settings and schedule position saved with a model: ``{"config": {...}, "step", "total_steps"}``.

    :param data: The saved model's data.
    :param params: Its parameters.
    :return: The state, or ``None`` for a model without dynamic sparse training.
    """
    from sb3_tar.sb3.methods.rewiring import STATE_ATTRIBUTE

    attribute = data.get(STATE_ATTRIBUTE)
    config = ((data.get("sb3_tar_config") or {}).get("dst")) or None
    if isinstance(attribute, dict):
        config = {k: v for k, v in attribute.items() if k in DSTConfig.__dataclass_fields__}
        return {"config": config, "step": int(attribute["step"]), "total_steps": int(attribute["total_steps"])}
    policy = params.get("policy", {})
    if isinstance(config, dict) and "dst_step" in policy:
        return {"config": config, "step": int(policy["dst_step"]), "total_steps": int(policy["dst_total_steps"])}
    return None


def dst_gradient_flops(state: Mapping[str, Any], networks: Mapping[str, tuple[int, int, int]]) -> float:
    """
    RigL's dense-gradient cost for a DST run (:func:`sb3_tar.core.dynamic.dense_gradient_flops`), relative to
    the dense networks.

    :param state: :func:`dst_state`'s output: the DST settings and the run's gradient steps.
    :param networks: ``{network: (total weights, kept weights, bias entries)}`` of the online actor and
        Q-networks (``"actor"``, ``"critic.qf0"``, ...).
    :return: The extra cost (0 for SET, or when no update has run yet).
    """
    config = DSTConfig(**{k: v for k, v in state["config"].items() if k in DSTConfig.__dataclass_fields__})
    step = int(state["step"])
    if step < 1:
        return 0.0
    updates = update_count(step, config.update_interval, config.end_step(int(state["total_steps"])))
    pruned = sum(total - kept for name, (total, kept, _) in networks.items() if config.role_method(_role(name)) == "rigl")
    dense = sum(flops_per_sample(total, bias) for total, _, bias in networks.values())
    return dense_gradient_flops(updates, step, pruned, dense)


def _role(network: str) -> str:
    """``"actor"`` -> ``"actor"``, ``"critic.qf0"`` -> ``"critic"``, ``"q_net"`` -> ``"critic"``."""
    return role_of(network)


def cell_training_flops(
    summary: dict[str, Any] | None,
    method: str,
    run_folder: str | os.PathLike | None = None,
    n_timesteps: int | None = None,
) -> float:
    """
    A finished cell's training FLOPs ratio from its ``summary.json``: the ``training_flops`` written by the
    sweep (:func:`training_flops`), or, for cells written before that field existed, 1 for dense and, for
    a cell with a pruning report (static masks, SET/RigL's initial mask: per-layer counts they keep), the
    report's per-network ratio weighted by each network's dense cost; NaN otherwise. A DST cell whose summary
    predates the recorded ``dst_state`` gets RigL's dense-gradient cost (:func:`dst_gradient_flops`) for the
    gradient steps its RL-Zoo configuration plans (:func:`planned_steps_of_run`).

    :param summary: The cell's ``summary.json`` content (``None`` if it has none).
    :param method: The cell's method.
    :param run_folder: The cell's RL-Zoo run folder (only read for such a DST cell).
    :param n_timesteps: The cell's timesteps (only read for such a DST cell).
    :return: The ratio.
    """
    ratio = _recorded_ratio(summary, method)
    dst = ((summary or {}).get("config") or {}).get("dst")
    if not isinstance(dst, dict) or "dst_state" in summary or run_folder is None or not n_timesteps:
        return ratio
    planned = planned_steps_of_run(run_folder, n_timesteps)
    if not planned:
        return ratio
    networks = {
        name: (int(n["total"]), int(n["nonzero"]), _bias_entries(summary, name))
        for name, n in (summary.get("final_sparsity") or {}).items()
    }
    return ratio + dst_gradient_flops({"config": dst, "step": planned, "total_steps": planned}, networks)


def _recorded_ratio(summary: dict[str, Any] | None, method: str) -> float:
    """The ratio the summary records, or the one its pruning reports give (see :func:`cell_training_flops`)."""
    if summary and isinstance(summary.get("training_flops"), (int, float)):
        return float(summary["training_flops"])
    if method == "dense":
        return 1.0
    reports = (summary or {}).get("reports")
    if method in ("gmp", "sculpt", "iee") or not reports:
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


def _bias_entries(summary: dict[str, Any], network: str) -> int:
    """Bias entries of ``network`` from the pruning report's layer shapes (one per output unit; 0 if unknown)."""
    report = (summary.get("reports") or {}).get(network) or {}
    return sum(int(layer["shape"][0]) for layer in report.get("layers", []) if "shape" in layer)


class _ZooConfigLoader(yaml.SafeLoader):
    """A safe loader for RL-Zoo's ``config.yml`` (an ``OrderedDict`` of ``[key, value]`` pairs)."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    (pairs,) = loader.construct_sequence(node, deep=True)
    return dict(pairs)


_ZooConfigLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict)
_ZooConfigLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node, deep=True))
)


def planned_steps_of_run(run_folder: str | os.PathLike, n_timesteps: int) -> int | None:
    """
    The gradient steps an RL-Zoo run plans, from the hyperparameters it saved (``<env>/config.yml``: the
    ``learning_starts``, ``train_freq`` and ``gradient_steps`` it ran with; SB3's off-policy defaults 100, 1
    and 1 where absent) and the timesteps it was asked for.

    :param run_folder: RL-Zoo's run folder (``<cell>/<algo>/<env>_1``).
    :param n_timesteps: The run's timesteps (``-n``).
    :return: The planned gradient steps, or ``None`` if the file is missing, unreadable or uses an episode
        ``train_freq``.
    """
    files = sorted(Path(run_folder).glob("*/config.yml"))
    if not files:
        return None
    try:
        config = yaml.load(files[0].read_text(), Loader=_ZooConfigLoader)  # noqa: S506 (a safe loader)
        train_freq = config.get("train_freq", 1)
        if isinstance(train_freq, (list, tuple)):
            if len(train_freq) != 2 or train_freq[1] != "step":
                return None
            train_freq = train_freq[0]
        return planned_gradient_steps(
            int(n_timesteps),
            0,
            int(config.get("learning_starts", 100)),
            int(train_freq),
            "step",
            int(config.get("gradient_steps", 1)),
        )
    except (yaml.YAMLError, AttributeError, TypeError, ValueError):
        return None


__all__ = [
    "cell_training_flops",
    "dst_gradient_flops",
    "dst_state",
    "planned_steps_of_run",
    "training_flops",
]
