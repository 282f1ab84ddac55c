"""Read the masks of an SB3 model, however they were made (``SparsePolicy`` or a callback).

:func:`masks_of` and :func:`sparsity_summary` are diagnostics: they read the ``weight_mask``
buffers and the weights as they are and change nothing (no hook is attached, no weight is
re-zeroed), so a pruned weight that is not zero is reported, not repaired.
"""

from __future__ import annotations

from typing import Any

import torch

from sb3_tar.core.masks import kept_count, total_count
from sb3_tar.sb3.execution.enforcement import MaskEnforcer, attached_enforcer
from sb3_tar.sb3.execution.mask_store import BufferStore
from sb3_tar.sb3.networks import SparseNetwork, sparse_networks


def _policy(model_or_policy: Any) -> torch.nn.Module:
    policy = getattr(model_or_policy, "policy", model_or_policy)
    if not isinstance(policy, torch.nn.Module):
        raise TypeError(f"expected an SB3 model or policy, got {type(model_or_policy).__name__}")
    return policy


def stored_masks(model: Any) -> tuple[list[SparseNetwork], dict[str, list[torch.Tensor]]] | None:
    """
    The networks of a model and the masks in their ``weight_mask`` buffers, read as they are.

    :param model: An SB3 model or policy.
    :return: ``(networks, {network name: [mask per layer]})`` (the buffers themselves, not copies),
        or ``None`` if the model holds no masks.
    """
    policy = _policy(model)
    try:
        networks = sparse_networks(policy)
    except TypeError:  # not an actor-critic policy: it cannot hold sb3-tar masks
        return None
    store = BufferStore(networks)
    if not all(store.has(n.name) for n in networks):
        return None
    return networks, {n.name: store.get(n.name) for n in networks}


def enforcer_of(model: Any) -> MaskEnforcer | None:
    """
    The mask enforcer of a sparse model, attached from its ``weight_mask`` buffers if none is.

    Unlike the diagnostics this may attach hooks (and callers such as :func:`sb3_tar.enforce_masks`
    then zero the pruned weights): use it to train, not to inspect.

    :param model: An SB3 model (or a policy) sparsified by ``SparsePolicy`` or a sb3-tar callback.
    :return: Its :class:`~sb3_tar.sb3.execution.enforcement.MaskEnforcer`, or ``None`` if it holds no masks.
    """
    policy = _policy(model)
    enforcer = attached_enforcer(policy)
    if enforcer is not None:
        return enforcer
    found = stored_masks(model)
    if found is None:
        return None
    networks, _ = found
    flag = getattr(policy, "sb3_tar_mask_gradients", None)
    enforcer = MaskEnforcer(networks, BufferStore(networks), mask_gradients=bool(flag) if flag is not None else False)
    enforcer.attach(policy)
    return enforcer


def masks_of(model: Any) -> dict[str, list[torch.Tensor]] | None:
    """
    :param model: An SB3 model or policy.
    :return: ``{network name: [boolean mask per layer]}`` (copies of the ``weight_mask`` buffers),
        or ``None`` if the model is not sparse. Reads only.
    """
    found = stored_masks(model)
    if found is None:
        return None
    return {name: [m.detach().clone().bool() for m in masks] for name, masks in found[1].items()}


def sparsity_summary(model: Any) -> dict[str, dict[str, float]]:
    """
    Measured state of every sparse network: mask density, and the fraction of weights that
    are exactly zero (online and target), which must be at least the mask's sparsity. Reads only:
    nothing is re-zeroed or attached.

    :param model: A sparse SB3 model or policy.
    :return: ``{network name: {"density", "sparsity", "kept", "total", "zero_fraction",
        "target_zero_fraction", "pruned_nonzero", "enforced"}}``; ``pruned_nonzero`` counts pruned
        entries that are not exactly zero in the online or target network (it must be 0), and
        ``enforced`` is 1.0 if hooks on the policy's optimizers keep the masks during training, else 0.0.
    :raises ValueError: If the model holds no masks.
    """
    found = stored_masks(model)
    if found is None:
        raise ValueError("The model is not sparse: use SparsePolicy or a sb3-tar callback")
    networks, stored = found
    enforced = float(attached_enforcer(_policy(model)) is not None)
    summary = {}
    for net in networks:
        masks = stored[net.name]
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
            "enforced": enforced,
        }
    return summary
