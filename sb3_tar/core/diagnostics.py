"""Plasticity diagnostics of a network on a batch of inputs (pure PyTorch, no SB3).

- **tau-dormant units** (Sokar, Agarwal, Castro, Evci 2023, "The Dormant Neuron Phenomenon in Deep
  Reinforcement Learning"): the score of hidden unit ``i`` of a layer is its mean absolute activation over
  the batch divided by the mean of those over the layer's units,
  ``s_i = mean_x |h_i(x)| / ((1/H) * sum_k mean_x |h_k(x)|)``; the unit is tau-dormant if ``s_i <= tau``.
  A layer whose units are all silent (every score's denominator is 0) counts all of them dormant.
- **srank** (Kumar, Agarwal, Ghosh, Levine 2021, "Implicit Under-Parameterization Inhibits Data-Efficient
  Deep Reinforcement Learning"): for a feature matrix ``Phi`` (batch x features) with singular values
  ``sigma_1 >= sigma_2 >= ...``, the smallest ``k`` such that
  ``sum_{i<=k} sigma_i >= (1 - delta) * sum_i sigma_i``; 0 for an all-zero matrix.
- **L2 norm** of a set of tensors (weights or gradients): ``sqrt(sum of squares)`` over all their entries.

:func:`hidden_activations` reads the hidden layers' outputs of any network made of linear layers: the
inputs of its linear layers other than the first, i.e. the post-activation outputs that the next layer reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn


def _as_matrix(activations: torch.Tensor) -> torch.Tensor:
    """A ``(samples, units)`` view: every leading dimension counts as a sample."""
    if not isinstance(activations, torch.Tensor):
        raise TypeError(f"activations must be a torch.Tensor, got {type(activations).__name__}")
    if activations.dim() < 2 or activations.shape[0] == 0:
        raise ValueError(f"activations must be (batch, units) with batch >= 1, got shape {tuple(activations.shape)}")
    return activations.detach().reshape(-1, activations.shape[-1]).double()


def _check_tau(tau: float) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau < 0:
        raise ValueError(f"tau={tau!r} is outside the allowed range [0, inf)")
    return float(tau)


def unit_scores(activations: torch.Tensor) -> torch.Tensor:
    """
    Dormancy scores of one layer's units (Sokar et al. 2023).

    :param activations: The layer's outputs (after its activation function), ``(batch, units)``.
    :return: ``(units,)`` float64 scores: each unit's mean ``|activation|`` over the batch divided by the
        layer's mean of those; all zeros if every unit's output is zero on the whole batch.
    :raises ValueError: On an empty batch or a 1-D tensor.
    """
    mean_abs = _as_matrix(activations).abs().mean(dim=0)
    layer_mean = mean_abs.mean()
    if layer_mean == 0:
        return torch.zeros_like(mean_abs)
    return mean_abs / layer_mean


def dormant_count(activations: torch.Tensor, tau: float) -> int:
    """
    :param activations: One layer's outputs, ``(batch, units)``.
    :param tau: Threshold (``>= 0``): a unit with score ``<= tau`` is dormant.
    :return: The number of tau-dormant units of the layer.
    :raises ValueError: On a negative or non-finite ``tau``.
    """
    tau = _check_tau(tau)
    return int((unit_scores(activations) <= tau).sum())


def dormant_ratio(layers: Sequence[torch.Tensor], tau: float) -> float:
    """
    Fraction of tau-dormant units among all the hidden units of a network.

    :param layers: Each hidden layer's outputs, ``(batch, units)`` (scores are normalised within each layer).
    :param tau: Threshold (``>= 0``).
    :return: ``sum of dormant units / sum of units`` over the layers.
    :raises ValueError: If ``layers`` is empty, or on a bad ``tau``.
    """
    if len(layers) == 0:
        raise ValueError("dormant_ratio needs at least one hidden layer's activations")
    dormant = sum(dormant_count(h, tau) for h in layers)
    units = sum(h.shape[-1] for h in layers)
    return dormant / units


def srank(features: torch.Tensor, delta: float = 0.01) -> int:
    """
    Effective rank of a feature matrix (Kumar et al. 2021).

    :param features: ``(batch, features)`` matrix (e.g. the last hidden layer's outputs on a batch).
    :param delta: Fraction of the singular values' sum that may be left out, in ``(0, 1)``.
    :return: The smallest ``k`` with ``sigma_1 + ... + sigma_k >= (1 - delta) * (sigma_1 + ... + sigma_n)``
        (singular values in decreasing order, computed in float64); 0 if the matrix is all zeros.
    :raises ValueError: On ``delta`` outside ``(0, 1)`` or a matrix that is not 2-D.
    """
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1:
        raise ValueError(f"delta={delta!r} is outside the allowed range (0, 1)")
    matrix = _as_matrix(features)
    singular = torch.linalg.svdvals(matrix)  # decreasing order
    total = singular.sum()
    if total == 0:
        return 0
    cumulative = torch.cumsum(singular, dim=0)
    return int((cumulative < (1.0 - delta) * total).sum()) + 1


def l2_norm(tensors: Iterable[torch.Tensor]) -> float:
    """
    :param tensors: Tensors (weights, gradients), any shapes.
    :return: ``sqrt`` of the sum of the squares of all their entries (float64); 0.0 for none.
    """
    total = torch.zeros((), dtype=torch.float64)
    for tensor in tensors:
        total += tensor.detach().double().pow(2).sum().cpu()
    return float(total.sqrt())


def hidden_activations(layers: Sequence[nn.Module], run: Callable[[], object]) -> list[torch.Tensor]:
    """
    The hidden layers' outputs of a network during one forward pass: the distinct inputs of its linear
    layers after the first one (a tensor read by several layers, like the shared trunk of a policy with two
    heads, counts once), in the order they were computed.

    The input of a convolution, ``(batch, channels, *spatial)``, is returned channels last,
    ``(batch, *spatial, channels)``: its units are its channels, and every position of every sample counts as a
    sample (:func:`unit_scores` averages over all leading dimensions).

    :param layers: The network's linear layers (and convolutions).
    :param run: Runs the forward pass (its result is ignored); called once, with hooks on ``layers``.
    :return: One ``(batch, units)`` tensor per hidden layer (channels last for a convolution's input); empty if
        the network has one layer.
    :raises ValueError: If no layer of ``layers`` ran during ``run``.
    """
    seen: list[torch.Tensor] = []  # the tensors themselves: identity tells a shared input apart
    units_last: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple) -> None:
        x = args[0]
        if not any(x is s for s in seen):
            seen.append(x)
            units_last.append(x.movedim(1, -1) if isinstance(module, nn.modules.conv._ConvNd) and x.dim() > 2 else x)

    handles = [layer.register_forward_pre_hook(hook) for layer in layers]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    if not seen:
        raise ValueError("none of the given layers ran during the forward pass")
    return [x.detach() for x in units_last[1:]]
