"""TAR allocation, Uniform Revival and the revival draw (docs/method.md, TAR steps 1-5)."""

from __future__ import annotations

import math
import random

import pytest
import torch
from conftest import ref_tar_allocation, ref_threshold

from sb3_tar.core.revival import connectivity_threshold, revival_counts, revive, tar_allocation, uniform_counts

pytestmark = pytest.mark.usefixtures("single_thread")

ACTOR = [(256, 376), (256, 256), (17, 256)]
CRITIC = [(256, 393), (256, 256), (1, 256)]
ACTOR_1024 = [(1024, 376), (1024, 1024), (17, 1024)]
CRITIC_1024 = [(1024, 393), (1024, 1024), (1, 1024)]
SHAPES = {"actor": ACTOR, "critic": CRITIC, "actor_1024": ACTOR_1024, "critic_1024": CRITIC_1024}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def uniform_kept(shapes: list[tuple[int, int]], density: float) -> list[int]:
    return [round(density * o * i) for o, i in shapes]


def random_masks(shapes: list[tuple[int, int]], density: float, seed: int) -> list[torch.Tensor]:
    g = gen(seed)
    return [torch.rand(shape, generator=g) < density for shape in shapes]


# ---------------------------------------------------------------- topology proxy


@pytest.mark.parametrize(
    "n_in, n_out, expected",
    [
        (376, 256, math.ceil(632 * math.log(632) / 2)),
        (256, 256, math.ceil(512 * math.log(512) / 2)),
        (256, 17, math.ceil(273 * math.log(273) / 2)),
        (256, 1, 256),  # ceil(257 ln 257 / 2) = 714 > 256 weights: capped at the layer size
        (5, 1, 5),  # ceil(6 ln 6 / 2) = 6 > 5
        (2, 2, 3),  # ceil(4 ln 4 / 2) = ceil(2.77)
        (1, 1, 1),
        (1024, 1024, math.ceil(2048 * math.log(2048) / 2)),
    ],
)
def test_connectivity_threshold(n_in: int, n_out: int, expected: int) -> None:
    assert connectivity_threshold(n_in, n_out) == expected == ref_threshold(n_in, n_out)
    assert connectivity_threshold(n_in, n_out) <= n_in * n_out


# ---------------------------------------------------------------- TAR allocation


def random_case(rng: random.Random) -> tuple[list[tuple[int, int]], list[int], int, float]:
    n_layers = rng.randint(1, 5)
    shapes = [(rng.choice([1, 2, 3, 17, 40, 64, 256]), rng.choice([1, 3, 17, 64, 256, 376])) for _ in range(n_layers)]
    kept = [rng.randint(0, o * i) if rng.random() < 0.5 else rng.randint(0, max(0, (o * i) // 20)) for o, i in shapes]
    pruned = sum(o * i - k for (o, i), k in zip(shapes, kept))
    budget = rng.choice([0, 1, 2, rng.randint(0, pruned), rng.randint(0, max(0, pruned // 50)), pruned])
    budget = min(budget, pruned)
    phi = rng.choice([0.0, 0.2, 0.2, 0.5, 1.0, rng.random()])
    return shapes, kept, budget, phi


@pytest.mark.parametrize("case", range(400))
def test_tar_allocation_properties_and_reference(case: int) -> None:
    shapes, kept, budget, phi = random_case(random.Random(case))
    alloc = tar_allocation(shapes, kept, budget, phi)
    pruned = [o * i - k for (o, i), k in zip(shapes, kept)]
    revived = [a.revived for a in alloc]
    floors = [a.floor for a in alloc]
    assert sum(revived) == budget
    assert all(0 <= b <= p for b, p in zip(revived, pruned))
    assert all(0 <= f <= b for f, b in zip(floors, revived))
    floor = math.ceil(phi * budget / len(shapes))
    if sum(min(p, floor) for p in pruned) <= budget:
        assert floors == [min(p, floor) for p in pruned]
    else:  # documented edge: the ceilings overshoot B, so B itself is spread evenly (capped by P_l)
        assert sum(floors) == budget
        assert all(f >= min(p, budget // len(shapes)) for f, p in zip(floors, pruned))
        uncapped = [f for f, p in zip(floors, pruned) if f < p]
        assert not uncapped or max(uncapped) - min(uncapped) <= 1
    e, g, f, b = ref_tar_allocation(shapes, kept, budget, phi)
    assert [a.threshold for a in alloc] == e
    assert [a.need for a in alloc] == g
    assert floors == f
    assert revived == b


def test_tar_allocation_rounds_exact_ties_by_index() -> None:
    """
    Layers (n_out, n_in) = (64, 17), (17, 376), (17, 64); K = 100, 361, 19; B = 786; phi = 0.2.
    E = 178, 1174, 178; g = 78, 813, 159; f = ceil(0.2 * 786 / 3) = 53 each; R = 627;
    h = 25, 760, 106 (sum 891 >= R), so R splits as h * 627/891 = h * 19/27:
    17 16/27, 534 22/27, 74 16/27. Floors give 625; the 2 units left go to 22/27 (layer 1) and
    to the exact tie 16/27 between layers 0 and 2: the lower index, layer 0. B_l = 71, 588, 127.
    (In floats 25*627/891 rounds below 106*627/891's fractional part and layer 2 got the unit.)
    """
    alloc = tar_allocation([(64, 17), (17, 376), (17, 64)], [100, 361, 19], 786, 0.2)
    assert [a.threshold for a in alloc] == [178, 1174, 178]
    assert [a.floor for a in alloc] == [53, 53, 53]
    assert [a.revived for a in alloc] == [71, 588, 127]


def test_tar_allocation_hand_computed_water_filling() -> None:
    """
    Layers (n_out, n_in) = (8, 4), (8, 8), (2, 8); K = 13, 26, 6; B = 11; phi = 0.2.
    E = 15, 23, 12 (ceil(M ln M / 2) for M = 12, 16, 10); g = 2, 0, 6; P = 19, 38, 10.
    f = ceil(0.2 * 11 / 3) = 1 each; R = 8; h = 1, 0, 5 (sum 6 < R): needs met, 2 left over,
    split by still-pruned counts 17, 37, 4 -> shares 0.586, 1.276, 0.138 -> 1, 1, 0.
    """
    alloc = tar_allocation([(8, 4), (8, 8), (2, 8)], [13, 26, 6], 11, 0.2)
    assert [a.threshold for a in alloc] == [15, 23, 12]
    assert [a.need for a in alloc] == [2, 0, 6]
    assert [a.floor for a in alloc] == [1, 1, 1]
    assert [a.revived for a in alloc] == [3, 2, 6]


def test_tar_allocation_hand_computed_proportional_to_need() -> None:
    """
    Same layers with K = 5, 10, 2: g = 10, 13, 10; B = 10, phi = 0.3: f = ceil(1) = 1 each, R = 7,
    h = 9, 12, 9 (sum 30 >= R): shares 2.1, 2.8, 2.1 -> floors 2, 2, 2 + the largest remainder (.8) -> 2, 3, 2.
    """
    alloc = tar_allocation([(8, 4), (8, 8), (2, 8)], [5, 10, 2], 10, 0.3)
    assert [a.need for a in alloc] == [10, 13, 10]
    assert [a.floor for a in alloc] == [1, 1, 1]
    assert [a.revived for a in alloc] == [3, 4, 3]


@pytest.mark.parametrize("key", list(SHAPES))
@pytest.mark.parametrize("rr", [0.002, 0.005])
def test_tar_sparse_network_is_the_need_branch(key: str, rr: float) -> None:
    """At 99.8% sparsity the needs exceed the budget: every layer gets its floor plus a share of R by need."""
    shapes = SHAPES[key]
    n = sum(o * i for o, i in shapes)
    kept = uniform_kept(shapes, 0.002)
    budget = round(rr * n)
    alloc = tar_allocation(shapes, kept, budget, 0.2)
    needs = [a.need for a in alloc]
    floors = [a.floor for a in alloc]
    assert sum(max(0, g - f) for g, f in zip(needs, floors)) >= budget - sum(floors)  # R <= sum(h)
    assert sum(a.revived for a in alloc) == budget
    assert floors == [min(o * i - k, math.ceil(0.2 * budget / 3)) for (o, i), k in zip(shapes, kept)]
    assert all(a.revived <= max(a.floor, a.need) for a in alloc)  # nobody is filled past its need
    extra = [a.revived - a.floor for a in alloc]
    room = [min(max(0, g - f), o * i - k - f) for g, f, (o, i), k in zip(needs, floors, shapes, kept)]
    rest = budget - sum(floors)
    assert all(abs(x - rest * h / sum(room)) < 1 for x, h in zip(extra, room))


@pytest.mark.parametrize("key", list(SHAPES))
@pytest.mark.parametrize("density", [0.5, 0.2])
def test_tar_dense_network_is_the_spare_branch(key: str, density: float) -> None:
    """At low sparsity every hidden layer already exceeds E_l: the budget goes by still-pruned counts."""
    shapes = SHAPES[key]
    n = sum(o * i for o, i in shapes)
    kept = uniform_kept(shapes, density)
    budget = round(0.02 * n)
    alloc = tar_allocation(shapes, kept, budget, 0.2)
    room = [min(max(0, a.need - a.floor), o * i - k - a.floor) for a, (o, i), k in zip(alloc, shapes, kept)]
    assert budget - sum(a.floor for a in alloc) > sum(room)  # R > sum(h)
    spare = [o * i - k - a.floor - h for a, (o, i), k, h in zip(alloc, shapes, kept, room)]
    left = budget - sum(a.floor for a in alloc) - sum(room)
    for a, h, s in zip(alloc, room, spare):
        assert a.revived - a.floor - h == pytest.approx(left * s / sum(spare), abs=1)
        assert a.revived >= a.floor + h  # every need met


def test_larger_need_gets_more() -> None:
    # four identical layers at increasing kept counts: needs decrease, so revivals must not increase
    shapes = [(256, 256)] * 4
    kept = [100, 400, 800, 1200]
    alloc = tar_allocation(shapes, kept, 1000, 0.2)
    needs = [a.need for a in alloc]
    revived = [a.revived for a in alloc]
    assert needs == sorted(needs, reverse=True) and len(set(needs)) == 4
    assert revived == sorted(revived, reverse=True) and len(set(revived)) == 4
    # the Humanoid actor at 99.5% sparsity (every layer below E_l): revivals follow the needs
    kept = uniform_kept(ACTOR, 0.005)
    alloc = tar_allocation(ACTOR, kept, round(0.01 * sum(o * i for o, i in ACTOR)), 0.2)
    by_need = sorted(range(3), key=lambda l: alloc[l].need)
    assert [alloc[l].revived for l in by_need] == sorted(alloc[l].revived for l in by_need)


@pytest.mark.parametrize("budget", [1, 2, 5, 7])
def test_floors_that_overshoot_the_budget_are_spread_evenly(budget: int) -> None:
    shapes = [(8, 8)] * 8
    alloc = tar_allocation(shapes, [10] * 8, budget, 1.0)  # ceil(B / 8) = 1 each: 8 > B
    floors = [a.floor for a in alloc]
    assert sum(floors) == budget == sum(a.revived for a in alloc)
    assert max(floors) - min(floors) <= 1


def test_floor_is_capped_by_the_pruned_count() -> None:
    # the output layer has only 3 pruned weights left; its floor of ceil(0.5 * 60 / 2) = 15 is capped
    alloc = tar_allocation([(1, 16), (16, 16)], [13, 20], 60, 0.5)
    assert alloc[0].floor == 3 and alloc[0].revived == 3
    assert alloc[1].floor == 15 and alloc[1].revived == 57


def test_zero_budget_and_zero_floor_fraction() -> None:
    alloc = tar_allocation(ACTOR, uniform_kept(ACTOR, 0.1), 0, 0.2)
    assert [a.revived for a in alloc] == [0, 0, 0]
    alloc = tar_allocation(ACTOR, uniform_kept(ACTOR, 0.01), 500, 0.0)
    assert [a.floor for a in alloc] == [0, 0, 0] and sum(a.revived for a in alloc) == 500


@pytest.mark.parametrize("phi", [-0.1, 1.5, float("nan")])
def test_tar_allocation_refuses_bad_floor_fraction(phi: float) -> None:
    with pytest.raises(ValueError, match=r"floor_fraction=.* is outside the allowed range \[0, 1\]"):
        tar_allocation(ACTOR, uniform_kept(ACTOR, 0.1), 10, phi)


def test_tar_allocation_refuses_budget_above_the_pruned_count() -> None:
    with pytest.raises(ValueError, match=r"budget=11 is outside the allowed range \[0, 10\]"):
        tar_allocation([(2, 5)], [0], 11)
    with pytest.raises(ValueError, match=r"budget=-1"):
        tar_allocation([(2, 5)], [0], -1)


# ---------------------------------------------------------------- Uniform Revival and the draw


@pytest.mark.parametrize("key", list(SHAPES))
def test_uniform_revival_spreads_the_budget_over_all_pruned_positions(key: str) -> None:
    shapes = SHAPES[key]
    masks = random_masks(shapes, 0.05, 0)
    pruned = [int((~m).sum()) for m in masks]
    budget = round(0.02 * sum(o * i for o, i in shapes))
    p_total = sum(pruned)
    draws = set()
    for seed in range(3):
        counts = uniform_counts(masks, budget, gen(seed))
        draws.add(tuple(counts))
        assert sum(counts) == budget
        for c, p in zip(counts, pruned):
            mean = budget * p / p_total
            sd = math.sqrt(budget * (p / p_total) * (1 - p / p_total))
            assert abs(c - mean) <= 5 * sd + 1e-9  # hypergeometric: within five standard deviations
    assert len(draws) > 1  # the split is drawn position by position, not apportioned
    assert uniform_counts(masks, budget, gen(7)) == uniform_counts(masks, budget, gen(7))


def test_uniform_revival_has_no_floor() -> None:
    # a tiny layer among big ones usually gets nothing: TAR's floor always gives it something
    shapes = [(256, 256), (256, 256), (1, 4)]
    masks = random_masks(shapes, 0.05, 1)
    masks[2][:] = False
    budget = 12
    zero = sum(uniform_counts(masks, budget, gen(s))[2] == 0 for s in range(20))
    assert zero >= 15
    counts, alloc = revival_counts("tar", masks, budget, gen(0), 0.5)
    assert counts[2] >= min(4, math.ceil(0.5 * budget / 3)) and alloc is not None


@pytest.mark.parametrize("method", ["tar", "uniform", "none"])
@pytest.mark.parametrize("key", ["actor", "critic_1024"])
def test_revival_counts_per_method(method: str, key: str) -> None:
    shapes = SHAPES[key]
    masks = random_masks(shapes, 0.08, 2)
    budget = round(0.01 * sum(o * i for o, i in shapes))
    counts, alloc = revival_counts(method, masks, budget, gen(0), 0.2)
    if method == "none":
        assert counts == [0, 0, 0] and alloc is None
    else:
        assert sum(counts) == budget
        assert (alloc is not None) == (method == "tar")
    if method == "tar":
        assert counts == [a.revived for a in tar_allocation(shapes, [int(m.sum()) for m in masks], budget, 0.2)]


def test_revival_counts_refuses_unknown_method() -> None:
    with pytest.raises(ValueError, match=r"Unknown revival 'rigl': valid values are \['tar', 'uniform', 'none'\]"):
        revival_counts("rigl", random_masks(ACTOR, 0.1, 0), 10, gen(0))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("key", ["actor", "critic"])
def test_revive_draws_exactly_the_counts_from_pruned_positions(seed: int, key: str) -> None:
    shapes = SHAPES[key]
    masks = random_masks(shapes, 0.1, seed)
    counts = [a.revived for a in tar_allocation(shapes, [int(m.sum()) for m in masks], 1500, 0.2)]
    revived = revive(masks, counts, gen(seed))
    assert [int(r.sum()) for r in revived] == counts
    assert all(not bool((r & m).any()) for r, m in zip(revived, masks))  # revived positions were pruned
    again = revive(masks, counts, gen(seed))
    other = revive(masks, counts, gen(seed + 100))
    assert all(torch.equal(a, b) for a, b in zip(revived, again))
    # another seed draws other positions wherever there is a choice (0 < B_l < P_l)
    assert all(not torch.equal(a, b) for a, b, c, m in zip(revived, other, counts, masks) if 0 < c < int((~m).sum()))
