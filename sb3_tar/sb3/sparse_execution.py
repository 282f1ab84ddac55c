"""Sparse execution of a fixed mask inside an SB3 policy (thin SB3 glue over :mod:`sb3_tar.kernels`).

With a fixed mask (static sparse training, TAR), every sparse layer whose density is below
:data:`DENSITY_THRESHOLD` is replaced, in the online *and* the target network, by a
:class:`~sb3_tar.kernels.SparseLinear`: its only weight parameter holds the kept weights, the C++
kernel computes forward, input gradient and the gradient of kept weights in time proportional to
their number, and the optimizer keeps state for kept weights only. Denser layers (the input layer
often stays ~75% dense under global magnitude pruning) keep the masked dense path.

- The actor and critic optimizers are rebuilt with the same class, parameter groups and options,
  their state (if any) gathered at the kept positions; the mask-enforcement hooks move to them.
- Polyak averaging stays exact: online and target networks are converted alike, so
  ``critic.parameters()`` and ``critic_target.parameters()`` still pair up one to one.
- Files are those of the masked path: a :class:`~sb3_tar.kernels.SparseLinear` saves a dense
  ``weight`` with its ``weight_mask``, and hooks on the optimizers save their per-weight state in the
  dense layout (zeros at pruned positions) and read either layout back. A model trained with sparse
  execution therefore loads with or without the kernel, and the other way round.
- SET and RigL change the mask during training: their layers stay converted and are rebuilt in place
  at each update (:mod:`sb3_tar.sb3.compressed_dst`).

``sparse_execution`` takes ``"auto"`` (default: sparse execution where the kernel builds, else the
masked path with one warning), ``True`` (raise a clear error if the kernel is not available) or
``False`` (the masked path).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from sb3_tar.core.masks import is_compressed
from sb3_tar.sb3.networks import SparseNetwork

#: Layers whose mask density is below this run on the sparse kernel (measured: see docs/benchmarks.md).
DENSITY_THRESHOLD = 0.3
#: Allowed values of the ``sparse_execution`` option.
CHOICES: tuple[Any, ...] = ("auto", True, False)
#: Policy buffer recording the option (0: False, 1: True, 2: "auto"), saved with the policy.
FLAG_BUFFER = "sb3_tar_sparse_execution"
_CODES = {False: 0, True: 1, "auto": 2}
_warned = False


def check_option(value: Any) -> bool | str:
    """
    :param value: The ``sparse_execution`` option.
    :return: ``value`` if it is ``"auto"``, ``True`` or ``False``.
    :raises ValueError: Otherwise (the message lists the allowed values).
    """
    if not (value is True or value is False or value == "auto"):
        raise ValueError(f"sparse_execution={value!r} is not allowed: use 'auto', True or False")
    return value


def option_code(value: bool | str) -> int:
    """:return: The integer stored in the policy buffer for ``value``."""
    return _CODES[check_option(value)]


def option_from_code(code: int) -> bool | str:
    """:return: The option stored as ``code``."""
    return {v: k for k, v in _CODES.items()}[int(code)]


def resolve(value: bool | str) -> bool:
    """
    Decide whether sparse execution runs.

    :param value: ``"auto"``, ``True`` or ``False``.
    :return: Whether to convert the sparse layers.
    :raises RuntimeError: With ``True`` when the kernel cannot be built here (the message says why).
    """
    global _warned
    value = check_option(value)
    if value is False:
        return False
    try:
        from sb3_tar.kernels import kernel_available, kernel_error
    except ImportError as e:  # a broken installation: no kernel package
        available, reason = False, f"sb3_tar.kernels cannot be imported ({e})"
    else:
        available, reason = kernel_available(), kernel_error()
    if available:
        return True
    if value is True:
        raise RuntimeError(
            f"sparse_execution=True, but the sparse kernel is not available here: {reason}. "
            "Use sparse_execution='auto' (falls back to the masked dense path) or False."
        )
    if not _warned:
        _warned = True
        warnings.warn(
            f"sb3-tar: sparse execution is not available ({reason}); training on the masked dense path",
            RuntimeWarning,
            stacklevel=3,
        )
    return False


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


@torch.no_grad()
def convert_networks(
    policy: nn.Module, networks: Sequence[SparseNetwork], threshold: float = DENSITY_THRESHOLD
) -> dict[nn.Parameter, tuple[nn.Parameter, torch.Tensor | None]]:
    """
    Replace every masked ``nn.Linear`` of density below ``threshold`` by a
    :class:`~sb3_tar.kernels.SparseLinear`, in the online network and its target, updating ``networks``.

    :param policy: The policy the networks belong to.
    :param networks: Its sparse networks, holding ``weight_mask`` buffers.
    :param threshold: Density below which a layer is converted.
    :return: ``{old parameter: (new parameter, boolean mask or None)}`` for the online layers: each dense
        weight maps to the kept values (with its mask), each bias to the new layer's bias (what
        :func:`rebuild_optimizer` needs).
    """
    from sb3_tar.kernels import SparseLinear

    replaced: dict[nn.Parameter, tuple[nn.Parameter, torch.Tensor | None]] = {}
    for net in networks:
        for i, (name, layer) in enumerate(net.layers):
            if is_compressed(layer):
                continue
            mask = layer.weight_mask.bool()
            if float(mask.float().mean()) >= threshold:
                continue
            sparse = SparseLinear.from_linear(layer, mask)
            _set_submodule(net.module, name, sparse)
            net.layers[i] = (name, sparse)
            replaced[layer.weight] = (sparse.values, mask)
            if layer.bias is not None:
                replaced[layer.bias] = (sparse.bias, None)
            if net.target_layers:
                target = net.target_layers[i]
                target_sparse = SparseLinear.from_linear(target, mask)
                target_sparse.values.requires_grad_(target.weight.requires_grad)
                _set_submodule(net.target_module, name, target_sparse)
                net.target_layers[i] = target_sparse
    return replaced


def rebuild_optimizer(
    optimizer: torch.optim.Optimizer, replaced: dict[nn.Parameter, tuple[nn.Parameter, torch.Tensor | None]]
) -> torch.optim.Optimizer:
    """
    A new optimizer of the same class over the same parameter groups and options, with each replaced
    parameter swapped for its new one (a dense weight for its kept values, a bias for the new layer's
    bias); existing state moves with it, gathered at the kept positions for weights. The new
    optimizer saves per-weight state in the dense layout and loads either layout (see the module doc).

    :param optimizer: The policy's actor or critic optimizer.
    :param replaced: Output of :func:`convert_networks`.
    :return: The new optimizer (the old one is left as it is).
    """
    from sb3_tar.kernels import dense_to_values

    groups = []
    for group in optimizer.param_groups:
        options = {k: v for k, v in group.items() if k != "params"}
        groups.append({"params": [replaced[p][0] if p in replaced else p for p in group["params"]], **options})
    accepted = inspect.signature(type(optimizer).__init__).parameters
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted}  # e.g. AdamW records a key it does not take
    new = type(optimizer)(groups, **defaults)
    for old, state in optimizer.state.items():
        target, mask = replaced.get(old, (old, None))
        new.state[target] = {
            k: dense_to_values(v, mask) if mask is not None and isinstance(v, torch.Tensor) and v.shape == mask.shape else v
            for k, v in state.items()
        }
    add_layout_hooks(new)
    return new


def _compressed_params(optimizer: torch.optim.Optimizer) -> dict[int, nn.Parameter]:
    """``{state-dict index: values parameter}`` of the optimizer's SparseLinear parameters."""
    owners = getattr(optimizer, "_sb3_tar_masks", {})
    index = 0
    out = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p in owners:
                out[index] = p
            index += 1
    return out


def add_layout_hooks(optimizer: torch.optim.Optimizer) -> None:
    """
    Make ``optimizer.state_dict()`` hold per-weight state of SparseLinear values in the dense layout, and
    ``optimizer.load_state_dict()`` accept either layout. The mask of each values parameter is read from its
    layer when the hook runs (:func:`register_owner` records which layer that is).

    :param optimizer: An optimizer built by :func:`rebuild_optimizer`.
    """
    from sb3_tar.kernels import dense_to_values, values_to_dense

    def convert(state_dict: dict[str, Any], to_dense_layout: bool) -> dict[str, Any]:
        state = dict(state_dict["state"])
        for index, p in _compressed_params(optimizer).items():
            if index not in state:
                continue
            mask = optimizer._sb3_tar_masks[p]().bool()  # type: ignore[attr-defined]
            layout = p.shape if to_dense_layout else mask.shape  # the layout the entry is converted from
            change = values_to_dense if to_dense_layout else dense_to_values
            state[index] = {
                k: change(v, mask) if isinstance(v, torch.Tensor) and v.shape == layout else v for k, v in state[index].items()
            }
        return dict(state_dict, state=state)

    def to_dense(opt: torch.optim.Optimizer, state_dict: dict[str, Any]) -> dict[str, Any]:
        return convert(state_dict, to_dense_layout=True)

    def to_values(opt: torch.optim.Optimizer, state_dict: dict[str, Any]) -> dict[str, Any]:
        return convert(state_dict, to_dense_layout=False)

    optimizer.register_state_dict_post_hook(to_dense)
    optimizer.register_load_state_dict_pre_hook(to_values)


def register_owner(optimizer: torch.optim.Optimizer, networks: Sequence[SparseNetwork]) -> None:
    """Record, for the optimizer's layout hooks, which layer's mask belongs to each values parameter."""
    owners: dict[nn.Parameter, Any] = {}
    for net in networks:
        for _, layer in net.layers:
            if is_compressed(layer):
                owners[layer.values] = lambda layer=layer: layer.weight_mask
    optimizer._sb3_tar_masks = owners  # type: ignore[attr-defined]


def enable(policy: nn.Module, networks: Sequence[SparseNetwork], threshold: float = DENSITY_THRESHOLD) -> list[str]:
    """
    Convert the policy's sparse layers (online and target) and rebuild its actor and critic optimizers.
    The caller re-attaches the mask enforcer to the new optimizers.

    :param policy: An SB3 SAC/TD3/TQC policy holding masks.
    :param networks: Its sparse networks (updated in place).
    :param threshold: Density below which a layer is converted.
    :return: The qualified names (``"<network>/<layer>"``) of the converted layers.
    """
    replaced = convert_networks(policy, networks, threshold)
    for role in ("actor", "critic"):
        holder = getattr(policy, role)
        if any(p in replaced for group in holder.optimizer.param_groups for p in group["params"]):
            holder.optimizer = rebuild_optimizer(holder.optimizer, replaced)
        elif not hasattr(holder.optimizer, "_sb3_tar_masks"):
            add_layout_hooks(holder.optimizer)
        register_owner(holder.optimizer, [n for n in networks if n.role == role])
    return [f"{net.name}/{name}" for net in networks for name, layer in net.layers if is_compressed(layer)]
