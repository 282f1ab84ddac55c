"""Exact integer selection: apportioning counts and choosing exactly k entries (pure PyTorch)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch


def apportion(targets: Sequence[numbers.Real], total: int, caps: Sequence[int]) -> list[int]:
    """
    Round real-valued shares to integers that sum to ``total`` exactly (largest remainder).

    Each share is floored (and clipped to its cap); the units still missing go one by one to
    the entries with the largest fractional parts (ties: lower index first) that are below
    their cap, repeating while units remain. No entry ever exceeds its cap.

    The arithmetic is exact: shares are converted to :class:`fractions.Fraction` (a float is
    taken at its exact binary value), so ties between fractional parts are real ties, not float
    rounding. Pass shares as ``Fraction(numerator, denominator)`` when they are ratios of integers.

    :param targets: Real-valued share of each entry (``>= 0``): ints, floats or Fractions.
    :param total: Integer total to reach.
    :param caps: Largest allowed count of each entry.
    :return: Integer counts, ``0 <= counts[i] <= caps[i]``, ``sum(counts) == total``.
    :raises ValueError: If ``total`` is negative or larger than ``sum(caps)``.
    """
    if len(targets) != len(caps):
        raise ValueError(f"Got {len(targets)} targets for {len(caps)} caps")
    if total < 0 or total > sum(caps):
        raise ValueError(f"Cannot apportion total={total} over caps summing to {sum(caps)}")
    shares = [max(Fraction(t), Fraction(0)) for t in targets]
    remainders = [s - math.floor(s) for s in shares]
    counts = [min(math.floor(s), int(c)) for s, c in zip(shares, caps)]
    left = total - sum(counts)
    if left < 0:  # the floored shares overshoot: take back from the smallest fractional parts
        order = sorted(range(len(counts)), key=lambda i: (remainders[i], -i))
        while left < 0:
            for i in order:
                if left == 0:
                    break
                if counts[i] > 0:
                    counts[i] -= 1
                    left += 1
        return counts
    order = sorted(range(len(counts)), key=lambda i: (-remainders[i], i))
    while left > 0:
        progressed = False
        for i in order:
            if left == 0:
                break
            if counts[i] < caps[i]:
                counts[i] += 1
                left -= 1
                progressed = True
        if not progressed:  # pragma: no cover - excluded by the total <= sum(caps) check
            raise RuntimeError("apportion could not place all units")
    return counts


def top_k_mask(scores: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """
    Select exactly ``k`` entries with the largest scores; ties at the threshold are broken
    uniformly at random with ``generator``.

    Entries scored ``-inf`` are never selected (they must number at most ``numel - k``).

    :param scores: Scores of any shape.
    :param k: Number of entries to keep, ``0 <= k <= scores.numel()``.
    :param generator: Seeded CPU generator for tie-breaking.
    :return: Boolean tensor of ``scores``' shape with exactly ``k`` ``True`` entries.
    """
    flat = scores.detach().flatten()
    n = flat.numel()
    if not 0 <= k <= n:
        raise ValueError(f"k={k} is outside the allowed range [0, {n}]")
    if k == 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    # Selection runs in numpy on the CPU: np.partition and numpy's boolean ops are several times
    # faster than torch.kthvalue and torch's boolean indexing there. Entries at -inf (or NaN)
    # never compete.
    host = flat.cpu()
    values = (host if host.dtype in (torch.float32, torch.float64) else host.double()).numpy()
    finite = values[values > -np.inf]  # a copy, partitioned in place below
    if finite.size < k:
        raise ValueError(f"Cannot keep k={k} entries: only {finite.size} entries have a finite score")
    finite.partition(finite.size - k)
    threshold = finite[finite.size - k]  # the k-th largest finite score
    keep = values > threshold
    need = k - int(np.count_nonzero(keep))
    if need > 0:  # ties at the threshold: draw the missing ones uniformly with the generator
        tied = torch.from_numpy(np.flatnonzero(values == threshold))
        keep[tied[torch.randperm(tied.numel(), generator=generator)[:need]].numpy()] = True
    keep = torch.from_numpy(keep).to(flat.device)
    return keep.view_as(scores)


def sample_positions(candidates: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """
    Draw ``k`` of the ``True`` positions of ``candidates`` uniformly at random without replacement.

    :param candidates: Boolean tensor of the positions that may be drawn.
    :param k: Number of positions to draw, at most ``candidates.sum()``.
    :param generator: Seeded CPU generator.
    :return: Boolean tensor of ``candidates``' shape with exactly ``k`` drawn positions.
    """
    flat = candidates.flatten()
    idx = torch.nonzero(flat, as_tuple=False).flatten()
    if not 0 <= k <= idx.numel():
        raise ValueError(f"Cannot draw k={k} positions from {idx.numel()} candidates")
    drawn = torch.zeros_like(flat, dtype=torch.bool)
    drawn[idx[torch.randperm(idx.numel(), generator=generator)[:k].to(idx.device)]] = True
    return drawn.view_as(candidates)
