"""Static, data-free pruning criteria applied at initialization (pure PyTorch, ``docs/method.md``).

=============  ======================================  ===============================
criterion      layer budget                            kept weights
=============  ======================================  ===============================
``random``     uniform (every layer at the density)    uniformly random
``erk``        Erdos-Renyi-Kernel, dense-capped        uniformly random
``magnitude``  global (``scope="layer"``: uniform)     largest ``|w|`` at init
``synflow``    global                                  iterative SynFlow (Tanaka 2020)
=============  ======================================  ===============================

Every criterion keeps an exact number of weights; ties are broken with a seeded generator.
Passing ``within`` masks restricts the selection to their kept weights, which makes masks
nest: the mask at a lower density is a subset of the one it is computed within.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import torch
from torch import nn

from sb3_tar.core.config import CRITERIA, MAGNITUDE_SCOPES, check_choice, check_int, check_lengths
from sb3_tar.core.masks import is_sparsifiable, matrix_shape
from sb3_tar.core.selection import apportion, top_k_mask

#: ``forward(network, x) -> outputs``: how SynFlow feeds an input through a network.
ForwardFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def default_forward(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SynFlow forward for a plain network: ``network(x)``."""
    return network(x)


def erk_densities(shapes: Sequence[tuple[int, int]], n_keep: int) -> list[float]:
    """
    Erdos-Renyi-Kernel layer densities for a network total of ``n_keep`` kept weights.

    ``density_l = eps * (n_in + n_out) / (n_in * n_out)`` with one ``eps`` for the network;
    a layer whose density would exceed 1 is made dense and ``eps`` is solved again for the rest.

    :param shapes: ``(n_out, n_in)`` of each layer.
    :param n_keep: Number of weights to keep over the network.
    :return: Real-valued density of each layer (their weighted sum is ``n_keep``).
    """
    sizes = [o * i for o, i in shapes]
    if any(size < 1 for size in sizes) or not 0 <= n_keep <= sum(sizes):
        raise ValueError(f"n_keep={n_keep} is outside the allowed range [0, {sum(sizes)}] (layers of shapes {list(shapes)})")
    raw = [(o + i) / (o * i) for o, i in shapes]
    dense: set[int] = set()
    while True:
        free = [l for l in range(len(shapes)) if l not in dense]
        budget = n_keep - sum(sizes[l] for l in dense)
        denom = sum(raw[l] * sizes[l] for l in free)
        eps = budget / denom if denom > 0 else 0.0
        over = {l for l in free if eps * raw[l] > 1.0}
        if not over:
            return [1.0 if l in dense else eps * raw[l] for l in range(len(shapes))]
        dense |= over


def layer_counts(
    criterion: str, shapes: Sequence[tuple[int, int]], n_keep: int, caps: Sequence[int] | None = None
) -> list[int]:
    """
    Exact per-layer kept counts of a layer-budgeted criterion (``random``, ``erk``, layer magnitude).

    :param criterion: ``"erk"`` for ERK densities, anything else for a uniform density.
    :param shapes: ``(n_out, n_in)`` of each layer.
    :param n_keep: Network total to keep.
    :param caps: Largest count of each layer (default: the layer size).
    :return: Integer counts summing to ``n_keep``.
    """
    sizes = [o * i for o, i in shapes]
    if caps is None:
        caps = sizes
    if criterion == "erk":
        targets = [d * s for d, s in zip(erk_densities(shapes, n_keep), sizes)]
    else:
        targets = [Fraction(n_keep * s, sum(sizes)) for s in sizes]
    return apportion(targets, n_keep, caps)


def _masked_scores(scores: torch.Tensor, within: torch.Tensor | None) -> torch.Tensor:
    if within is None:
        return scores
    return scores.masked_fill(~within.to(scores.device), -math.inf)


def _global_top_k(scores: Sequence[torch.Tensor], n_keep: int, generator: torch.Generator) -> list[torch.Tensor]:
    flat = torch.cat([s.flatten() for s in scores])
    keep = top_k_mask(flat, n_keep, generator)
    return [part.view_as(s) for part, s in zip(torch.split(keep, [s.numel() for s in scores]), scores)]


def _identity_if_same_shape(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
    """Forward hook that makes a parameter-free elementwise module the identity."""
    if inputs and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
        if inputs[0].shape == output.shape:
            return inputs[0]
    return None


class SynFlowProbe:
    """
    Scores weights by SynFlow saliency ``|w * dR/dw|`` (Tanaka et al. 2020) on a float64 copy.

    In the copy every sparsifiable weight is ``|w| * mask``, every bias is 0 and every
    parameter-free elementwise module (activations, clamps) is the identity, so
    ``R = sum(forward(copy, ones))`` is the path norm ``1^T (prod_l |W_l|) 1``.
    The network itself is never modified (signs are kept by construction).

    :param network: The network.
    :param layer_names: Qualified names of its sparsifiable ``nn.Linear`` layers.
    :param forward: How to feed the all-ones input through the network.
    """

    def __init__(self, network: nn.Module, layer_names: Sequence[str], forward: ForwardFn = default_forward) -> None:
        self.clone = copy.deepcopy(network).to(dtype=torch.float64, device="cpu")
        self.forward = forward
        modules = dict(self.clone.named_modules())
        self.layers: list[nn.Linear] = [modules[n] for n in layer_names]
        for p in self.clone.parameters():
            p.requires_grad_(False)
        self.abs_weights = [layer.weight.detach().abs().clone() for layer in self.layers]
        for layer in self.layers:
            if layer.bias is not None:
                layer.bias.zero_()
        for module in self.clone.modules():
            if not is_sparsifiable(module) and next(module.children(), None) is None:
                module.register_forward_hook(_identity_if_same_shape)

    def scores(self, masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """
        :param masks: Current mask of each layer.
        :return: Float64 score tensor per layer (pruned weights score 0).
        """
        for layer, w, mask in zip(self.layers, self.abs_weights, masks):
            layer.weight = nn.Parameter(torch.where(mask.to(device="cpu", dtype=torch.bool), w, 0.0))
        # a network whose first layer is a convolution needs a forward that builds its own input (x is (1, fan_in))
        x = torch.ones(1, matrix_shape(self.layers[0])[1], dtype=torch.float64)
        with torch.enable_grad():
            total = self.forward(self.clone, x).sum()
            grads = torch.autograd.grad(total, [layer.weight for layer in self.layers], allow_unused=True)
        return [
            torch.mul(layer.weight.detach(), g).abs_() if g is not None else torch.zeros_like(layer.weight.detach())
            for layer, g in zip(self.layers, grads)
        ]


def synflow_scores(
    network: nn.Module, layer_names: Sequence[str], masks: Sequence[torch.Tensor], forward: ForwardFn = default_forward
) -> list[torch.Tensor]:
    """
    One round of SynFlow scores (see :class:`SynFlowProbe`).

    :param network: The network (not modified).
    :param layer_names: Qualified names of its sparsifiable layers.
    :param masks: Current mask of each layer.
    :param forward: How to feed the all-ones input through the network.
    :return: Float64 score tensor per layer.
    """
    return SynFlowProbe(network, layer_names, forward).scores(masks)


def synflow_masks(
    network: nn.Module,
    layer_names: Sequence[str],
    n_keep: int,
    generator: torch.Generator,
    *,
    iters: int = 100,
    forward: ForwardFn = default_forward,
    within: Sequence[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """
    Iterative SynFlow pruning with the exponential schedule ``density_k = d0 * (d / d0)^(k / R)``.

    From a dense start (``d0 = 1``) it runs ``R = iters`` rounds: ``density_k = d^(k / iters)``, the
    schedule of ``docs/method.md``. Each round re-scores the weights under the current mask and keeps
    the ``round(density_k * N)`` best-scored of the currently kept ones (the last round keeps
    exactly ``n_keep``).

    Started ``within`` masks of density ``d0 < 1`` (reserve mode: the static baseline's mask
    made by this same schedule), the schedule *continues* at the same per-round rate
    ``d0^(1 / iters)``: ``R = ceil(iters * ln(d / d0) / ln(d0))`` more rounds (for example 5
    rounds from density 0.10 to 0.09 with ``iters=100``), never fewer than one.

    :param network: The network (not modified).
    :param layer_names: Qualified names of its sparsifiable layers.
    :param n_keep: Weights to keep at the end.
    :param generator: Seeded generator for ties.
    :param iters: Number of rounds from a dense start (``synflow_iters``).
    :param forward: How SynFlow feeds its all-ones input through the network.
    :param within: Masks to start from; the result is their subset.
    :return: One boolean mask per layer.
    """
    check_int("iters", iters, 1)
    probe = SynFlowProbe(network, layer_names, forward)
    weights = probe.abs_weights
    masks = [torch.ones_like(w, dtype=torch.bool) for w in weights] if within is None else [m.cpu().bool() for m in within]
    n_total = sum(w.numel() for w in weights)
    n_start = sum(int(m.sum()) for m in masks)
    if n_keep > n_start:
        raise ValueError(f"Cannot keep {n_keep} weights within masks that keep {n_start}")
    d0, d = n_start / n_total, n_keep / n_total
    rounds = iters
    if within is not None and 0 < d <= d0 < 1:
        rounds = max(1, math.ceil(iters * math.log(d / d0) / math.log(d0) - 1e-9))
    for k in range(1, rounds + 1):
        if k == rounds:
            n_k = n_keep
        else:
            n_k = n_keep if d == 0 else max(n_keep, min(n_start, round(d0 * (d / d0) ** (k / rounds) * n_total)))
        scores = probe.scores(masks)
        masks = _global_top_k([s.masked_fill_(~m, -math.inf) for s, m in zip(scores, masks)], n_k, generator)
    return masks


def static_masks(
    network: nn.Module,
    layer_names: Sequence[str],
    n_keep: int,
    criterion: str,
    generator: torch.Generator,
    *,
    magnitude_scope: str = "global",
    synflow_iters: int = 100,
    forward: ForwardFn = default_forward,
    within: Sequence[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """
    Masks that keep exactly ``n_keep`` of the network's sparsifiable weights by one criterion.

    :param network: The network (its weights are read, never written).
    :param layer_names: Qualified names of its sparsifiable ``nn.Linear`` layers.
    :param n_keep: Number of weights to keep over the network.
    :param criterion: ``"random"``, ``"erk"``, ``"magnitude"`` or ``"synflow"``.
    :param generator: Seeded CPU generator (random scores and ties).
    :param magnitude_scope: ``"global"`` or ``"layer"`` for the magnitude criterion.
    :param synflow_iters: SynFlow rounds.
    :param forward: SynFlow's forward function.
    :param within: Optional masks the result must be a subset of.
    :return: One boolean CPU mask per layer, together keeping exactly ``n_keep`` weights.
    """
    check_choice("criterion", criterion, CRITERIA)
    check_choice("magnitude_scope", magnitude_scope, MAGNITUDE_SCOPES)
    modules = dict(network.named_modules())
    unknown = [n for n in layer_names if n not in modules or not is_sparsifiable(modules[n])]
    if unknown or len(layer_names) == 0:
        valid = [n for n, m in modules.items() if is_sparsifiable(m)]
        raise ValueError(f"layer_names {list(layer_names)}: {unknown or 'none given'}; the sparsifiable layers are {valid}")
    weights = [modules[n].weight.detach().cpu() for n in layer_names]
    if within is not None:
        check_lengths(layer_names=layer_names, within=within)
    n_total = sum(w.numel() for w in weights)
    if not 0 <= n_keep <= n_total:
        raise ValueError(f"n_keep={n_keep} is outside the allowed range [0, {n_total}]")
    if criterion == "synflow":
        return synflow_masks(network, layer_names, n_keep, generator, iters=synflow_iters, forward=forward, within=within)
    if criterion == "magnitude":
        scores = [w.abs().to(torch.float64) for w in weights]
    else:  # random and erk: uniformly random within each layer
        scores = [torch.rand(w.shape, generator=generator, dtype=torch.float64) for w in weights]
    if within is not None:
        scores = [_masked_scores(s, m) for s, m in zip(scores, within)]
    if criterion == "magnitude" and magnitude_scope == "global":
        return _global_top_k(scores, n_keep, generator)
    shapes = [matrix_shape(w) for w in weights]
    caps = None if within is None else [int(m.sum()) for m in within]
    counts = layer_counts("erk" if criterion == "erk" else "uniform", shapes, n_keep, caps)
    return [top_k_mask(s, c, generator) for s, c in zip(scores, counts)]
