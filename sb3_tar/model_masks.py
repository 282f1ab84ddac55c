"""Read the masks of an SB3 model, however they were made (``SparsePolicy`` or a callback)."""

from __future__ import annotations

from typing import Any

import torch

from sb3_tar.enforcement import MaskEnforcer, attached_enforcer
from sb3_tar.mask_store import MODEL_ATTRIBUTE, AttributeStore, BufferStore
from sb3_tar.masks import kept_count, total_count
from sb3_tar.networks import sparse_networks


def _policy(model_or_policy: Any) -> torch.nn.Module:
    return getattr(model_or_policy, "policy", model_or_policy)


def enforcer_of(model: Any) -> MaskEnforcer | None:
    """
    The mask enforcer of a sparse model, re-attached from saved masks if needed.

    :param model: An SB3 model (or a policy) sparsified by ``SparsePolicy`` or a sb3-tar callback.
    :return: Its :class:`~sb3_tar.enforcement.MaskEnforcer`, or ``None`` if it is not sparse.
    """
    policy = _policy(model)
    enforcer = attached_enforcer(policy)
    if enforcer is not None:
        return enforcer
    if isinstance(getattr(model, MODEL_ATTRIBUTE, None), dict) and getattr(model, MODEL_ATTRIBUTE):
        store = AttributeStore(model)
        store.to(next(policy.parameters()).device)
        config = getattr(model, "sb3_tar_config", None)
        mask_gradients = bool(config.get("mask_gradients", False)) if isinstance(config, dict) else False
        enforcer = MaskEnforcer(sparse_networks(policy), store, mask_gradients=mask_gradients)
        enforcer.attach(policy)
        enforcer.apply()
        return enforcer
    networks = sparse_networks(policy)
    buffers = BufferStore(networks)
    if all(buffers.has(n.name) for n in networks):
        enforcer = MaskEnforcer(networks, buffers)
        enforcer.attach(policy)
        return enforcer
    return None


def masks_of(model: Any) -> dict[str, list[torch.Tensor]] | None:
    """
    :param model: An SB3 model or policy.
    :return: ``{network name: [boolean mask per layer]}`` (copies), or ``None`` if the model
        is not sparse.
    """
    enforcer = enforcer_of(model)
    if enforcer is None:
        return None
    return {n.name: [m.detach().clone().bool() for m in enforcer.store.get(n.name)] for n in enforcer.networks}


def sparsity_summary(model: Any) -> dict[str, dict[str, float]]:
    """
    Measured state of every sparse network: mask density, and the fraction of weights that
    are exactly zero (online and target), which must be at least the mask's sparsity.

    :param model: A sparse SB3 model or policy.
    :return: ``{network name: {"density", "sparsity", "kept", "total", "zero_fraction",
        "target_zero_fraction", "pruned_nonzero"}}``; ``pruned_nonzero`` counts pruned entries
        that are not exactly zero in the online or target network (it must be 0).
    """
    enforcer = enforcer_of(model)
    if enforcer is None:
        raise ValueError("The model is not sparse: use SparsePolicy or a sb3-tar callback")
    summary = {}
    for net in enforcer.networks:
        masks = enforcer.store.get(net.name)
        zeros = sum(int((layer.weight == 0).sum()) for layer in net.linears)
        target_zeros = sum(int((layer.weight == 0).sum()) for layer in net.target_layers)
        bad = sum(
            int(((~m.bool()) & (layer.weight != 0)).sum())
            for layers in (net.linears, net.target_layers)
            for layer, m in zip(layers, masks)
        )
        total = total_count(masks)
        summary[net.name] = {
            "density": kept_count(masks) / total,
            "sparsity": 1 - kept_count(masks) / total,
            "kept": kept_count(masks),
            "total": total,
            "zero_fraction": zeros / total,
            "target_zero_fraction": target_zeros / total if net.target_layers else float("nan"),
            "pruned_nonzero": bad,
        }
    return summary
