"""Revival of pruned connections right after static pruning (pure PyTorch, ``docs/method.md``).

- ``tar``: Topology-Aware Revival. The budget ``B`` is split over layers by a connectivity
  floor and a topology proxy (the edge count ``E_l`` at which a random bipartite graph of the
  layer's ``n_in + n_out`` nodes becomes connected), then revived uniformly at random inside
  each layer.
- ``uniform``: Uniform Revival ablation: the same ``B`` drawn uniformly over all pruned
  positions of the network (no proxy, no floor).
- ``none``: nothing is revived (the static baseline).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch

from sb3_tar.core.config import REVIVALS, check_choice, check_lengths, check_number
from sb3_tar.core.masks import matrix_shape
from sb3_tar.core.selection import apportion, sample_positions


def connectivity_threshold(n_in: int, n_out: int) -> int:
    """
    Topology proxy ``E_l = min(n_in * n_out, ceil(M * ln(M) / 2))`` with ``M = n_in + n_out``:
    the number of edges at which a random graph of ``M`` nodes becomes connected.

    :param n_in: Input units of the layer.
    :param n_out: Output units of the layer.
    :return: ``E_l``.
    """
    m = n_in + n_out
    return min(n_in * n_out, math.ceil(m * math.log(m) / 2))


@dataclass(frozen=True)
class LayerAllocation:
    """
    TAR's revival allocation for one layer.

    :param threshold: Topology proxy ``E_l``.
    :param need: ``g_l = max(0, E_l - K_l)``.
    :param floor: Connectivity floor ``f_l``.
    :param revived: Total revivals ``B_l`` (floor included).
    """

    threshold: int
    need: int
    floor: int
    revived: int


def tar_allocation(
    shapes: Sequence[tuple[int, int]], kept: Sequence[int], budget: int, floor_fraction: float = 0.2
) -> list[LayerAllocation]:
    """
    Split a revival budget over layers (``docs/method.md``, TAR steps 1-4).

    1. ``E_l`` and ``g_l = max(0, E_l - K_l)`` per layer.
    2. Floor: ``f_l = min(P_l, ceil(phi * B / L))``. If those floors sum to more than ``B``
       (possible through the ceiling), ``B`` itself is spread as evenly as possible instead,
       capped by each ``P_l``.
    3. ``R = B - sum(f)`` and ``h_l = min(max(0, g_l - f_l), P_l - f_l)``. If ``R <= sum(h)``, ``R``
       is split in proportion to ``h_l``; otherwise every layer gets ``h_l`` and the rest is
       split in proportion to the still-pruned counts ``P_l - f_l - h_l``.

    Proportional splits round by largest remainder in exact rational arithmetic and never exceed a
    layer's pruned count.

    :param shapes: ``(n_out, n_in)`` of each layer.
    :param kept: Kept count ``K_l`` of each layer after static pruning.
    :param budget: Revival budget ``B``, at most the total pruned count.
    :param floor_fraction: ``phi`` in ``[0, 1]``.
    :return: One :class:`LayerAllocation` per layer; the ``revived`` fields sum to ``budget``.
    """
    check_number("floor_fraction", floor_fraction, 0.0, 1.0)
    check_lengths(shapes=shapes, kept=kept)
    for (o, i), k in zip(shapes, kept):
        if not 0 <= k <= o * i:
            raise ValueError(f"kept={k} is outside the allowed range [0, {o * i}] of a {o}x{i} layer")
    n_layers = len(shapes)
    pruned = [o * i - k for (o, i), k in zip(shapes, kept)]
    if not 0 <= budget <= sum(pruned):
        raise ValueError(f"budget={budget} is outside the allowed range [0, {sum(pruned)}] (the pruned count)")
    thresholds = [connectivity_threshold(i, o) for o, i in shapes]
    needs = [max(0, e - k) for e, k in zip(thresholds, kept)]
    floors = [min(p, math.ceil(floor_fraction * budget / n_layers)) for p in pruned]
    if sum(floors) > budget:
        floors = apportion([Fraction(budget, n_layers)] * n_layers, budget, pruned)
    rest = budget - sum(floors)
    room = [max(0, min(g - f, p - f)) for g, f, p in zip(needs, floors, pruned)]
    if rest <= sum(room):
        extra = apportion([Fraction(rest * h, sum(room)) if rest else 0 for h in room], rest, room)
    else:
        spare = [p - f - h for p, f, h in zip(pruned, floors, room)]
        left = rest - sum(room)
        extra = [h + s for h, s in zip(room, apportion([Fraction(left * s, sum(spare)) for s in spare], left, spare))]
    return [
        LayerAllocation(threshold=e, need=g, floor=f, revived=f + x) for e, g, f, x in zip(thresholds, needs, floors, extra)
    ]


def uniform_counts(masks: Sequence[torch.Tensor], budget: int, generator: torch.Generator) -> list[int]:
    """
    Uniform Revival: draw ``budget`` positions uniformly over all pruned positions of the
    network and count how many fall in each layer.

    :param masks: Masks after static pruning.
    :param budget: Revival budget ``B``.
    :param generator: Seeded CPU generator.
    :return: Revivals per layer, summing to ``budget``.
    """
    pruned = torch.cat([(~m.bool()).flatten().cpu() for m in masks])
    drawn = sample_positions(pruned, budget, generator)
    return [int(part.sum()) for part in torch.split(drawn, [m.numel() for m in masks])]


def revive(masks: Sequence[torch.Tensor], counts: Sequence[int], generator: torch.Generator) -> list[torch.Tensor]:
    """
    Revive ``counts[l]`` pruned positions of each layer, drawn uniformly without replacement.

    :param masks: Masks after static pruning (not modified).
    :param counts: Revivals per layer.
    :param generator: Seeded CPU generator.
    :return: The revived positions of each layer (boolean; disjoint from ``masks``).
    """
    check_lengths(masks=masks, counts=counts)
    return [sample_positions(~m.bool().cpu(), c, generator).to(m.device) for m, c in zip(masks, counts)]


def revival_counts(
    method: str,
    masks: Sequence[torch.Tensor],
    budget: int,
    generator: torch.Generator,
    floor_fraction: float = 0.2,
) -> tuple[list[int], list[LayerAllocation] | None]:
    """
    Revivals per layer for a revival method.

    :param method: ``"tar"``, ``"uniform"`` or ``"none"``.
    :param masks: Masks after static pruning.
    :param budget: Revival budget ``B`` (ignored by ``"none"``).
    :param generator: Seeded CPU generator (``"uniform"`` draws its split with it).
    :param floor_fraction: TAR's floor fraction.
    :return: Revivals per layer, and TAR's allocation details (``None`` for other methods).
    """
    check_choice("revival", method, REVIVALS)
    if method == "none":
        return [0] * len(masks), None
    if method == "uniform":
        return uniform_counts(masks, budget, generator), None
    shapes = [matrix_shape(m) for m in masks]
    allocation = tar_allocation(shapes, [int(m.sum()) for m in masks], budget, floor_fraction)
    return [a.revived for a in allocation], allocation
