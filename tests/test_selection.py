"""Exact integer selection: apportion, top_k_mask, sample_positions."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
import torch

from sb3_tar.core.selection import apportion, sample_positions, top_k_mask


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- apportion


def test_apportion_breaks_exact_ties_by_index_not_by_float_rounding() -> None:
    """654 units over [197, 666, 2331, 1562, 1130]: shares 21 8/9, 74, 259, 173 5/9, 125 5/9.

    Floors sum to 652; the 2 units left go to 8/9 (entry 0) and then to the tie 5/9 between
    entries 3 and 4: the lower index wins. In floats 654*1562/5886 = 173.55555555555554 and
    654*1130/5886 = 125.55555555555556, which handed the unit to entry 4.
    """
    room = [197, 666, 2331, 1562, 1130]
    assert apportion([Fraction(654 * h, sum(room)) for h in room], 654, room) == [22, 74, 259, 174, 125]
    # a float share is taken at its exact value: the same inputs as floats give the float answer
    assert apportion([654 * h / sum(room) for h in room], 654, room) == [22, 74, 259, 173, 126]


@pytest.mark.parametrize("case", range(300))
def test_apportion_sums_exactly_and_respects_caps(case: int) -> None:
    rng = random.Random(case)
    n = rng.randint(1, 8)
    caps = [rng.randint(0, 50) for _ in range(n)]
    total = rng.randint(0, sum(caps))
    # Arbitrary non-negative shares: summing to the total, below it, or above it.
    scale = rng.choice([0.0, 0.5, 1.0, 1.0, 1.0, 2.0])
    weights = [rng.random() for _ in range(n)]
    targets = [total * scale * w / sum(weights) for w in weights]
    counts = apportion(targets, total, caps)
    assert sum(counts) == total
    assert all(0 <= c <= cap for c, cap in zip(counts, caps))
    assert all(isinstance(c, int) for c in counts)


@pytest.mark.parametrize("case", range(200))
def test_apportion_is_within_quota_when_shares_fit(case: int) -> None:
    """Largest remainder: each count is its share rounded down or up (|c - t| < 1)."""
    rng = random.Random(1000 + case)
    n = rng.randint(1, 8)
    caps = [rng.randint(1, 10_000) for _ in range(n)]
    total = rng.randint(0, sum(caps))
    # Shares proportional to the caps never exceed them.
    targets = [total * c / sum(caps) for c in caps]
    counts = apportion(targets, total, caps)
    assert sum(counts) == total
    for c, t, cap in zip(counts, targets, caps):
        assert math.floor(t) <= c <= min(cap, math.ceil(t))


def test_apportion_gives_remainders_to_largest_fractions() -> None:
    # floors 1, 2, 0 (sum 3); 2 units left go to fractions .9 and .6, not .1
    assert apportion([1.6, 2.1, 0.9], 5, [10, 10, 10]) == [2, 2, 1]
    # a capped entry is skipped even with the largest fraction
    assert apportion([1.6, 2.1, 0.9], 5, [10, 10, 0]) == [2, 3, 0]
    # exact integers are kept as they are
    assert apportion([3.0, 0.0, 7.0], 10, [3, 5, 7]) == [3, 0, 7]


def test_apportion_fills_when_shares_fall_short_and_trims_when_they_overshoot() -> None:
    counts = apportion([0.0, 0.0, 0.0], 4, [1, 5, 5])
    assert sum(counts) == 4 and counts[0] <= 1
    counts = apportion([10.0, 10.0, 10.0], 6, [20, 20, 20])
    assert sum(counts) == 6 and all(0 <= c <= 20 for c in counts)


@pytest.mark.parametrize("total", [-1, 11])
def test_apportion_refuses_impossible_totals(total: int) -> None:
    with pytest.raises(ValueError, match=f"total={total}"):
        apportion([1.0, 1.0], total, [5, 5])


def test_apportion_refuses_length_mismatch() -> None:
    with pytest.raises(ValueError, match="targets"):
        apportion([1.0, 1.0], 2, [5])


# ---------------------------------------------------------------- top_k_mask


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [0, 1, 17, 250, 999, 1000])
def test_top_k_mask_keeps_exactly_the_largest(seed: int, k: int) -> None:
    scores = torch.rand(20, 50, generator=gen(seed), dtype=torch.float64)
    keep = top_k_mask(scores, k, gen(seed))
    assert keep.shape == scores.shape and keep.dtype == torch.bool
    assert int(keep.sum()) == k
    if 0 < k < scores.numel():
        assert scores[keep].min() > scores[~keep].max()


@pytest.mark.parametrize("k", [1, 5, 50, 99])
def test_top_k_mask_breaks_ties_at_random_with_the_seed(k: int) -> None:
    scores = torch.ones(100)
    masks = [top_k_mask(scores, k, gen(s)) for s in range(6)]
    assert all(int(m.sum()) == k for m in masks)
    assert torch.equal(top_k_mask(scores, k, gen(3)), masks[3])
    assert len({tuple(m.nonzero().flatten().tolist()) for m in masks}) > 1


def test_top_k_mask_ties_only_at_the_threshold() -> None:
    scores = torch.tensor([5.0, 1.0, 3.0, 3.0, 3.0, 0.0, 4.0])
    for seed in range(10):
        keep = top_k_mask(scores, 4, gen(seed))
        assert keep[0] and keep[6] and not keep[1] and not keep[5]
        assert int(keep[2:5].sum()) == 2


def test_top_k_mask_never_picks_minus_inf() -> None:
    scores = torch.tensor([-math.inf, 0.0, -math.inf, -1.0, 2.0])
    keep = top_k_mask(scores, 3, gen(0))
    assert keep.tolist() == [False, True, False, True, True]
    with pytest.raises(ValueError, match="finite"):
        top_k_mask(scores, 4, gen(0))


@pytest.mark.parametrize("k", [-1, 11])
def test_top_k_mask_refuses_k_out_of_range(k: int) -> None:
    with pytest.raises(ValueError, match=rf"k={k} is outside the allowed range \[0, 10\]"):
        top_k_mask(torch.rand(10), k, gen(0))


# ---------------------------------------------------------------- sample_positions


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [0, 1, 30, 123])
def test_sample_positions_draws_k_candidates_without_replacement(seed: int, k: int) -> None:
    candidates = torch.rand(16, 32, generator=gen(100 + seed)) < 0.4
    assert int(candidates.sum()) >= k
    drawn = sample_positions(candidates, k, gen(seed))
    assert drawn.shape == candidates.shape
    assert int(drawn.sum()) == k
    assert not bool((drawn & ~candidates).any())
    assert torch.equal(sample_positions(candidates, k, gen(seed)), drawn)


def test_sample_positions_differs_across_seeds_and_is_roughly_uniform() -> None:
    candidates = torch.ones(200, dtype=torch.bool)
    hits = torch.zeros(200)
    draws = set()
    for seed in range(400):
        d = sample_positions(candidates, 10, gen(seed))
        hits += d.float()
        draws.add(tuple(d.nonzero().flatten().tolist()))
    assert len(draws) == 400
    # each position is drawn with probability 0.05: 20 hits expected out of 400 draws
    assert hits.min() >= 4 and hits.max() <= 40


def test_sample_positions_refuses_too_many() -> None:
    with pytest.raises(ValueError, match="k=4"):
        sample_positions(torch.tensor([True, False, True, True]), 4, gen(0))
