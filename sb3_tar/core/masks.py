"""Masks over the sparsifiable layers of a network (pure PyTorch, no SB3).

A *sparsifiable layer* is the weight of an :class:`torch.nn.Linear` or of a convolution
(:data:`CONV_TYPES`: ``nn.Conv1d``/``Conv2d``/``Conv3d``); biases stay dense. A mask is a boolean tensor
of the weight's shape: ``True`` keeps a weight, ``False`` prunes it (the weight is held at exactly ``0.0``).

Every criterion, revival and report reads a convolution as the matrix ``(out_channels, fan_in)`` with
``fan_in = in_channels / groups * prod(kernel_size)`` (:func:`matrix_shape`): a kept weight is one
kernel entry, an output unit is an output channel and an input unit is one (input channel, kernel
offset) pair, as in the im2col view of the convolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def is_compressed(layer: nn.Module) -> bool:
    """
    :param layer: A module.
    :return: Whether it is a linear layer held in a compressed format (its class sets
        ``sb3_tar_compressed = True``, as :class:`sb3_tar.kernels.SparseLinear` does): its pruned weights do
        not exist, so there is nothing to re-zero, and ``layer.weight`` is a read-only dense copy.
    """
    return bool(getattr(type(layer), "sb3_tar_compressed", False))


#: The convolutions whose weights are sparsifiable (transposed convolutions are not: their weight is laid out
#: ``(in, out, ...)``).
CONV_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def is_sparsifiable(module: nn.Module) -> bool:
    """:return: Whether ``module`` is an ``nn.Linear``, a compressed linear layer or a convolution of :data:`CONV_TYPES`."""
    return isinstance(module, nn.Linear) or is_compressed(module) or type(module) in CONV_TYPES


def matrix_shape(layer_or_tensor: nn.Module | torch.Tensor) -> tuple[int, int]:
    """
    :param layer_or_tensor: A sparsifiable layer, or a weight or mask of one.
    :return: ``(n_out, n_in)`` of its weight read as a matrix: a linear layer's weight shape; a convolution's
        ``(out_channels, fan_in)`` (see the module docstring).
    """
    if isinstance(layer_or_tensor, nn.Module):
        if is_compressed(layer_or_tensor):
            return int(layer_or_tensor.out_features), int(layer_or_tensor.in_features)
        layer_or_tensor = layer_or_tensor.weight
    shape = tuple(layer_or_tensor.shape)
    return int(shape[0]), int(math.prod(shape[1:]))


def as_matrix(tensor: torch.Tensor) -> torch.Tensor:
    """:return: ``tensor`` (a weight, gradient or mask) viewed as its :func:`matrix_shape` (a linear one unchanged)."""
    return tensor if tensor.dim() == 2 else tensor.reshape(tensor.shape[0], -1)


def linear_layers(network: nn.Module, exclude: Sequence[nn.Module] = ()) -> list[tuple[str, nn.Linear]]:
    """
    List the sparsifiable layers of a network: every ``nn.Linear`` (or compressed linear layer, see
    :func:`is_compressed`) and every convolution of :data:`CONV_TYPES`, in module order.

    :param network: The network to inspect.
    :param exclude: Sub-modules whose ``nn.Linear`` layers are left out (for example a shared
        features extractor).
    :return: ``(qualified name, layer)`` pairs in the order of ``network.named_modules()``.
    :raises TypeError: If ``network`` is not an ``nn.Module`` or holds no ``nn.Linear`` layer.
    """
    if not isinstance(network, nn.Module):
        raise TypeError(f"Expected a torch.nn.Module, got {type(network).__name__}")
    skipped = {id(m) for sub in exclude for m in sub.modules()}
    layers = [(name, m) for name, m in network.named_modules() if is_sparsifiable(m) and id(m) not in skipped]
    if not layers:
        raise TypeError(
            f"{type(network).__name__} has no nn.Linear or convolution layer to sparsify: sb3-tar sparsifies "
            "fully connected and convolutional layers only"
        )
    return layers


def ones_masks(layers: Sequence[nn.Linear]) -> list[torch.Tensor]:
    """
    Dense (all-``True``) masks for the given layers.

    :param layers: The sparsifiable layers.
    :return: One boolean mask per layer, on the layer's device.
    """
    return [torch.ones_like(layer.weight, dtype=torch.bool) for layer in layers]


@torch.no_grad()
def apply_masks(layers: Sequence[nn.Linear], masks: Sequence[torch.Tensor]) -> None:
    """
    Zero the pruned weights of each layer in place (``weight *= mask``).

    :param layers: The sparsifiable layers.
    :param masks: One mask per layer, of the weight's shape.
    """
    check_masks(layers, masks)
    pairs = [(layer.weight, mask) for layer, mask in zip(layers, masks) if not is_compressed(layer)]
    if pairs:
        _multiply([w for w, _ in pairs], [m for _, m in pairs])


@torch.no_grad()
def mask_gradients(layers: Sequence[nn.Linear], masks: Sequence[torch.Tensor]) -> None:
    """
    Zero the gradients of pruned weights in place, so an optimizer step cannot move them.

    :param layers: The sparsifiable layers.
    :param masks: One mask per layer, of the weight's shape.
    :raises ValueError: On a count or shape mismatch (:func:`check_masks`).
    """
    check_masks(layers, masks)
    pairs = [
        (layer.weight.grad, mask)
        for layer, mask in zip(layers, masks)
        if not is_compressed(layer) and layer.weight.grad is not None
    ]
    if pairs:
        _multiply([g for g, _ in pairs], [m for _, m in pairs])


def _multiply(tensors: list[torch.Tensor], masks: Sequence[torch.Tensor]) -> None:
    """``tensor *= mask`` for every pair, in one fused call (masks stored in the tensors' dtype need no copy)."""
    torch._foreach_mul_(tensors, [m if m.dtype == t.dtype else m.to(t.dtype) for t, m in zip(tensors, masks)])


def check_masks(layers: Sequence[nn.Linear], masks: Sequence[torch.Tensor]) -> None:
    """
    Check that there is one mask per layer with the weight's shape.

    :param layers: The sparsifiable layers.
    :param masks: The masks.
    :raises ValueError: On a count or shape mismatch.
    """
    if len(layers) != len(masks):
        raise ValueError(f"Got {len(masks)} masks for {len(layers)} layers")
    for i, (layer, mask) in enumerate(zip(layers, masks)):
        # a compressed layer's shape from its attributes: its ``weight`` is a dense copy built on each read
        shape = (layer.out_features, layer.in_features) if is_compressed(layer) else tuple(layer.weight.shape)
        if tuple(mask.shape) != shape:
            raise ValueError(f"Mask {i} has shape {tuple(mask.shape)}, layer weight has shape {shape}")


def kept_count(masks: Sequence[torch.Tensor]) -> int:
    """
    :param masks: Masks of one network.
    :return: Number of kept (non-pruned) weights over all masks.
    """
    return int(sum(int(m.sum()) for m in masks))


def total_count(masks: Sequence[torch.Tensor]) -> int:
    """
    :param masks: Masks of one network.
    :return: Number of sparsifiable weights over all masks.
    """
    return int(sum(m.numel() for m in masks))


def density(masks: Sequence[torch.Tensor]) -> float:
    """
    :param masks: Masks of one network.
    :return: Fraction of kept weights over the whole network (1 - sparsity).
    :raises ValueError: If the masks hold no weight.
    """
    total = total_count(masks)
    if total == 0:
        raise ValueError(f"density of no weights: got {len(masks)} masks holding none")
    return kept_count(masks) / total


def layer_densities(masks: Sequence[torch.Tensor]) -> list[float]:
    """
    :param masks: Masks of one network.
    :return: Fraction of kept weights in each layer.
    """
    return [float(m.sum()) / m.numel() for m in masks]


def dead_units(mask: torch.Tensor) -> tuple[int, int]:
    """
    Count the disconnected units of one layer.

    :param mask: Mask of an ``nn.Linear`` weight, shape ``(n_out, n_in)``, or of a convolution (read as
        :func:`matrix_shape`: output channels, and (input channel, kernel offset) pairs).
    :return: ``(dead outputs, dead inputs)``: outputs with no incoming kept connection and
        inputs with no outgoing kept connection.
    """
    m = as_matrix(mask.bool())
    return int((~m.any(dim=1)).sum()), int((~m.any(dim=0)).sum())


def hidden_unit_states(producer: torch.Tensor, consumers: Sequence[torch.Tensor]) -> tuple[int, int, int]:
    """
    Classify the hidden units between one layer and the layers that read its output.

    A per-layer dead-unit count cannot tell a unit removed whole (no input and no output: the network is
    narrower but still connected, as SynFlow leaves it) from a half-connected one (its input weights feed
    nothing, or its output weights read a constant), which wastes the weights it keeps.

    :param producer: Mask of the layer that computes the hidden units, shape ``(n_hidden, n_in)``.
    :param consumers: Masks of every layer that reads them (one, or parallel heads such as SAC's ``mu``
        and ``log_std``), each of shape ``(n_out, n_hidden)``.
    :return: ``(removed whole, half-connected, live)`` unit counts; they sum to ``n_hidden``.
    :raises ValueError: If a mask is not 2-D, there is no consumer or a consumer's input size is not ``n_hidden``.
    """
    if not consumers:
        raise ValueError("hidden_unit_states needs at least one consumer mask")
    for m in (producer, *consumers):
        if m.dim() != 2:
            raise ValueError(f"hidden_unit_states reads 2-D (n_out, n_in) masks: got shape {tuple(m.shape)}")
    n_hidden = producer.shape[0]
    for c in consumers:
        if c.shape[1] != n_hidden:
            raise ValueError(f"a consumer mask has shape {tuple(c.shape)}: expected (n_out, {n_hidden})")
    has_input = producer.bool().any(dim=1)
    has_output = torch.stack([c.bool().any(dim=0) for c in consumers]).any(dim=0)
    removed = int((~has_input & ~has_output).sum())
    live = int((has_input & has_output).sum())
    return removed, n_hidden - removed - live, live


def masks_from_weights(layers: Sequence[nn.Linear]) -> list[torch.Tensor]:
    """
    Recover masks from the weights: a weight is kept iff it is not exactly ``0.0``.

    Pruned weights are held at exactly zero, and a trained kept weight is exactly zero with
    probability ~0, so this recovers the mask of a trained sparse network.

    :param layers: The sparsifiable layers.
    :return: One boolean mask per layer.
    """
    return [layer.weight.detach() != 0 for layer in layers]


def training_flops_ratio(masks: Sequence[torch.Tensor], biases: Sequence[bool] | None = None) -> float:
    """
    Estimated training FLOPs of the masked layers relative to the dense network.

    Per sample, a linear layer's forward pass costs ``2*K`` multiply-adds for its ``K`` kept
    weights plus ``n_out`` bias additions; the backward pass costs twice the forward (gradient
    with respect to the input and to the weights), as in RigL (Evci et al. 2020). Sparse
    matrix products are counted at their nonzeros, as RigL-style papers report them.

    :param masks: Masks of one network.
    :param biases: Whether each layer has a bias (default: all do).
    :return: ``sparse FLOPs / dense FLOPs`` (in ``(0, 1]``).
    """
    if biases is None:
        biases = [True] * len(masks)
    if len(masks) == 0 or len(biases) != len(masks):
        raise ValueError(f"Expected one bias flag per mask and at least one mask, got {len(masks)} masks, {len(biases)} flags")
    sparse = dense = 0.0
    for mask, has_bias in zip(masks, biases):
        n_out, n_in = matrix_shape(mask)
        bias_ops = n_out if has_bias else 0
        sparse += 3 * (2 * float(mask.sum()) + bias_ops)
        dense += 3 * (2 * n_out * n_in + bias_ops)
    return sparse / dense
