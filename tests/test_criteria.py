"""Static criteria: exact counts, ERK densities, magnitude, SynFlow scores and iterative pruning, nesting."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import (
    CRITERIA,
    SPARSITIES,
    TwoHeadActor,
    assert_same_state,
    largest_remainder,
    mlp,
    ref_erk_densities,
    state_copy,
    subset,
    two_head_forward,
)
from torch import nn

from sb3_tar.core.criteria import erk_densities, layer_counts, static_masks, synflow_masks, synflow_scores
from sb3_tar.core.masks import linear_layers

pytestmark = pytest.mark.usefixtures("single_thread")

NETWORKS = ("actor", "critic", "two_head_actor", "actor_1024", "critic_1024")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def names_shapes(network: nn.Module) -> tuple[list[str], list[tuple[int, int]], int]:
    layers = linear_layers(network)
    shapes = [tuple(m.weight.shape) for _, m in layers]
    return [n for n, _ in layers], shapes, sum(o * i for o, i in shapes)


def forward_of(key: str):
    return two_head_forward if key == "two_head_actor" else (lambda net, x: net(x))


def masks_for(network: nn.Module, key: str, criterion: str, sparsity: float, seed: int = 0, **kw) -> list[torch.Tensor]:
    names, _, n = names_shapes(network)
    if criterion == "synflow":
        kw.setdefault("synflow_iters", 3 if key.endswith("1024") else 10)
    return static_masks(network, names, round((1 - sparsity) * n), criterion, gen(seed), forward=forward_of(key), **kw)


# ---------------------------------------------------------------- exact counts


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("key", NETWORKS)
def test_every_criterion_keeps_exactly_round_density_times_n(
    humanoid_networks: dict[str, nn.Module], key: str, criterion: str, sparsity: float
) -> None:
    network = humanoid_networks[key]
    names, shapes, n = names_shapes(network)
    before = state_copy(network)
    masks = masks_for(network, key, criterion, sparsity)
    assert [tuple(m.shape) for m in masks] == shapes
    assert all(m.dtype == torch.bool for m in masks)
    assert sum(int(m.sum()) for m in masks) == round((1 - sparsity) * n)
    assert_same_state(network, before)  # criteria only read the weights
    if criterion in ("random", "erk"):
        # per-layer counts are the apportioned targets of the layer budget
        expected = layer_counts(criterion, shapes, round((1 - sparsity) * n))
        assert [int(m.sum()) for m in masks] == expected


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("key", ["actor", "critic", "critic_1024"])
def test_random_layer_counts_are_the_uniform_density(humanoid_networks, key: str, sparsity: float) -> None:
    _, shapes, n = names_shapes(humanoid_networks[key])
    n_keep = round((1 - sparsity) * n)
    sizes = [o * i for o, i in shapes]
    targets = [n_keep * s / n for s in sizes]
    counts = layer_counts("random", shapes, n_keep)
    assert counts == largest_remainder(targets, n_keep, sizes)
    assert all(abs(c - t) < 1 for c, t in zip(counts, targets))


# ---------------------------------------------------------------- ERK


ERK_CASES = [
    # (shapes (n_out, n_in), sparsity, indices of layers that must be dense-capped)
    ([(256, 376), (256, 256), (17, 256)], 0.5, {2}),
    ([(256, 376), (256, 256), (17, 256)], 0.9, set()),
    ([(256, 393), (256, 256), (1, 256)], 0.9, {2}),
    ([(256, 393), (256, 256), (1, 256)], 0.99, {2}),
    ([(1024, 393), (1024, 1024), (1, 1024)], 0.95, {2}),
    ([(256, 3), (256, 256), (1, 256)], 0.5, {0, 2}),  # tiny input layer capped
    ([(256, 3), (256, 256), (256, 256), (2, 256)], 0.8, {0, 3}),
    ([(64, 3), (64, 64), (8, 64)], 0.1, {0, 2}),
    ([(30, 20), (30, 30)], 0.0, {0, 1}),
]


@pytest.mark.parametrize("shapes, sparsity, capped", ERK_CASES)
def test_erk_densities_match_an_independent_solver(shapes, sparsity: float, capped: set[int]) -> None:
    sizes = [o * i for o, i in shapes]
    n_keep = round((1 - sparsity) * sum(sizes))
    got = erk_densities(shapes, n_keep)
    want = ref_erk_densities(shapes, n_keep)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert {i for i, d in enumerate(got) if d == 1.0} == capped
    assert sum(d * s for d, s in zip(got, sizes)) == pytest.approx(n_keep, rel=1e-12)
    # uncapped layers share one eps: density_l / raw_l is the same for all of them
    ratios = [d * o * i / (o + i) for (o, i), d in zip(shapes, got) if d < 1.0]
    assert all(r == pytest.approx(ratios[0], rel=1e-12) for r in ratios)
    assert all(0.0 <= d <= 1.0 for d in got)


@pytest.mark.parametrize("shapes, sparsity, capped", ERK_CASES)
def test_erk_layer_counts_are_the_apportioned_densities(shapes, sparsity: float, capped: set[int]) -> None:
    sizes = [o * i for o, i in shapes]
    n_keep = round((1 - sparsity) * sum(sizes))
    targets = [d * s for d, s in zip(ref_erk_densities(shapes, n_keep), sizes)]
    counts = layer_counts("erk", shapes, n_keep)
    assert sum(counts) == n_keep
    assert all(abs(c - t) < 1 for c, t in zip(counts, targets))
    assert all(counts[i] == sizes[i] for i in capped)
    assert counts == largest_remainder(targets, n_keep, sizes)


def test_erk_mask_of_a_capped_network() -> None:
    net = mlp((3, 256, 256, 1), seed=0)
    names, shapes, n = names_shapes(net)
    masks = static_masks(net, names, round(0.5 * n), "erk", gen(0))
    assert bool(masks[0].all()) and bool(masks[2].all())  # 3->256 and 256->1 are dense
    assert int(masks[1].sum()) == round(0.5 * n) - 768 - 256


# ---------------------------------------------------------------- magnitude


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("key", ["actor", "critic", "two_head_actor", "critic_1024"])
def test_global_magnitude_keeps_the_largest_weights(humanoid_networks, key: str, sparsity: float) -> None:
    network = humanoid_networks[key]
    masks = masks_for(network, key, "magnitude", sparsity)
    weights = [m.weight.detach().abs() for _, m in linear_layers(network)]
    kept = torch.cat([w[m] for w, m in zip(weights, masks)])
    pruned = torch.cat([w[~m] for w, m in zip(weights, masks)])
    # float32 |w| values repeat at this size, so equality is possible only at the threshold itself
    assert kept.min() >= pruned.max()
    assert int((torch.cat([w.flatten() for w in weights]) > kept.min()).sum()) < kept.numel()


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("key", ["actor", "critic_1024"])
def test_layer_magnitude_keeps_the_largest_weights_of_each_layer(humanoid_networks, key: str, sparsity: float) -> None:
    network = humanoid_networks[key]
    _, shapes, n = names_shapes(network)
    masks = masks_for(network, key, "magnitude", sparsity, magnitude_scope="layer")
    assert [int(m.sum()) for m in masks] == layer_counts("uniform", shapes, round((1 - sparsity) * n))
    for (_, layer), m in zip(linear_layers(network), masks):
        w = layer.weight.detach().abs()
        assert w[m].min() >= w[~m].max()


def test_magnitude_ties_are_broken_by_the_seed() -> None:
    net = mlp((10, 10, 10), seed=0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.weight.fill_(0.5)
        net[0].weight[0, :5] = 2.0
    names, _, n = names_shapes(net)
    masks = {s: static_masks(net, names, 50, "magnitude", gen(s)) for s in range(4)}
    for m in masks.values():
        assert sum(int(x.sum()) for x in m) == 50
        assert bool(m[0][0, :5].all())  # the five large weights always stay
    assert all(torch.equal(a, b) for a, b in zip(static_masks(net, names, 50, "magnitude", gen(2)), masks[2]))
    assert len({tuple(torch.cat([x.flatten() for x in m]).nonzero().flatten().tolist()) for m in masks.values()}) > 1


# ---------------------------------------------------------------- SynFlow scores


def tiny_net() -> nn.Sequential:
    """2 -> 3 -> 2 -> 1 with chosen weights, nonzero biases and ReLUs (both must be ignored)."""
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 1.0], [-1.0, 3.0]]))
        net[2].weight.copy_(torch.tensor([[2.0, -1.0, 0.5], [1.0, 1.0, -2.0]]))
        net[4].weight.copy_(torch.tensor([[-1.0, 2.0]]))
        for m in (net[0], net[2], net[4]):
            m.bias.fill_(-5.0)  # would zero every ReLU if biases or activations were kept
    return net


def test_synflow_scores_on_a_tiny_net_equal_the_hand_derived_values() -> None:
    # R = 1^T |W3| |W2| |W1| 1. With A_l = |W_l|: A1 1 = [3, 1.5, 4], A2 A1 1 = [9.5, 12.5], R = 34.5;
    # 1^T A3 = [1, 2], 1^T A3 A2 = [4, 3, 4.5]. score(W_l[i, j]) = A_l[i, j] * (1^T A_L..A_{l+1})_i * (A_{l-1}..A_1 1)_j.
    net = tiny_net()
    before = state_copy(net)
    names = ["0", "2", "4"]
    ones = [torch.ones(3, 2, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool)]
    s1, s2, s3 = synflow_scores(net, names, ones)
    assert s1.dtype == torch.float64
    assert torch.equal(s1, torch.tensor([[4.0, 8.0], [1.5, 3.0], [4.5, 13.5]], dtype=torch.float64))
    assert torch.equal(s2, torch.tensor([[6.0, 1.5, 2.0], [6.0, 3.0, 16.0]], dtype=torch.float64))
    assert torch.equal(s3, torch.tensor([[9.5, 25.0]], dtype=torch.float64))
    assert_same_state(net, before)  # signs, biases untouched


def test_synflow_scores_under_a_mask_equal_the_hand_derived_values() -> None:
    # Pruning W1[2, 1] (|w| = 3): A1 1 = [3, 1.5, 1], A2 A1 1 = [8, 6.5], R = 21.
    net = tiny_net()
    masks = [torch.ones(3, 2, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool)]
    masks[0][2, 1] = False
    s1, s2, s3 = synflow_scores(net, ["0", "2", "4"], masks)
    assert torch.equal(s1, torch.tensor([[4.0, 8.0], [1.5, 3.0], [4.5, 0.0]], dtype=torch.float64))
    assert torch.equal(s2, torch.tensor([[6.0, 1.5, 0.5], [6.0, 3.0, 4.0]], dtype=torch.float64))
    assert torch.equal(s3, torch.tensor([[8.0, 13.0]], dtype=torch.float64))


def chain_scores(weights: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """Reference SynFlow scores of a chain: A_l * outer(1^T A_L..A_{l+1}, A_{l-1}..A_1 1), float64."""
    a = [w.detach().abs().double() * m.double() for w, m in zip(weights, masks)]
    scores = []
    for l, al in enumerate(a):
        right = torch.ones(a[0].shape[1], dtype=torch.float64)
        for prev in a[:l]:
            right = prev @ right
        left = torch.ones(a[-1].shape[0], dtype=torch.float64)
        for nxt in reversed(a[l + 1 :]):
            left = left @ nxt
        scores.append(al * torch.outer(left, right))
    return scores


@pytest.mark.parametrize("seed", range(3))
def test_synflow_scores_match_the_path_norm_formula_and_conserve_per_layer(seed: int) -> None:
    net = mlp((12, 9, 7, 4), seed=seed, activation=nn.Tanh)
    names, _, _ = names_shapes(net)
    weights = [m.weight for _, m in linear_layers(net)]
    masks = [torch.rand(w.shape, generator=gen(seed)) < 0.6 for w in weights]
    got = synflow_scores(net, names, masks)
    want = chain_scores(weights, masks)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=0.0)
    # Tanaka et al.: every layer's scores sum to R
    sums = [float(g.sum()) for g in got]
    assert all(s == pytest.approx(sums[0], rel=1e-12) for s in sums)


def test_synflow_scores_of_a_two_head_actor_with_a_custom_forward() -> None:
    actor = TwoHeadActor(obs_dim=6, act_dim=3, width=5, seed=1)
    names = [n for n, _ in linear_layers(actor)]
    assert names == ["latent_pi.0", "latent_pi.2", "mu", "log_std"]
    w1, w2, wmu, wls = (m.weight for _, m in linear_layers(actor))
    ones = [torch.ones_like(w, dtype=torch.bool) for w in (w1, w2, wmu, wls)]
    got = synflow_scores(actor, names, ones, forward=two_head_forward)
    mu_chain = chain_scores([w1, w2, wmu], ones[:3])
    ls_chain = chain_scores([w1, w2, wls], ones[:2] + ones[3:])
    # R = R_mu + R_log_std: trunk scores add up, each head scores its own chain
    torch.testing.assert_close(got[0], mu_chain[0] + ls_chain[0], rtol=1e-12, atol=0.0)
    torch.testing.assert_close(got[1], mu_chain[1] + ls_chain[1], rtol=1e-12, atol=0.0)
    torch.testing.assert_close(got[2], mu_chain[2], rtol=1e-12, atol=0.0)
    torch.testing.assert_close(got[3], ls_chain[2], rtol=1e-12, atol=0.0)
    # the default forward (mu only) gives log_std no score at all
    mu_only = synflow_scores(actor, names, ones)
    assert float(mu_only[3].abs().sum()) == 0.0
    torch.testing.assert_close(mu_only[0], mu_chain[0], rtol=1e-12, atol=0.0)


# ---------------------------------------------------------------- SynFlow iterative pruning


def ref_iterative_synflow(weights: list[torch.Tensor], n_keep: int, iters: int) -> list[torch.Tensor]:
    """SynFlow as docs/method.md states it: iters rounds, density_k = d^(k/iters), re-scored under the current mask."""
    n = sum(w.numel() for w in weights)
    masks = [torch.ones_like(w, dtype=torch.bool) for w in weights]
    d = n_keep / n
    for k in range(1, iters + 1):
        n_k = n_keep if k == iters else round(d ** (k / iters) * n)
        scores = torch.cat([s.flatten() for s in chain_scores(weights, masks)])
        alive = torch.cat([m.flatten() for m in masks])
        scores[~alive] = -1.0
        order = torch.argsort(scores, descending=True)
        sorted_scores = scores[order]
        assert sorted_scores[n_k - 1] > sorted_scores[n_k], "reference hit a tie: pick another case"
        keep = torch.zeros(n, dtype=torch.bool)
        keep[order[:n_k]] = True
        masks = [p.view_as(w) for p, w in zip(torch.split(keep, [w.numel() for w in weights]), weights)]
    return masks


@pytest.mark.parametrize(
    "sizes, sparsity, iters", [((8, 6, 5, 3), 0.6, 4), ((10, 8, 8, 2), 0.5, 10), ((20, 16, 16, 4), 0.7, 25)]
)
@pytest.mark.parametrize("seed", range(2))
def test_iterative_synflow_matches_a_reference_implementation(sizes, sparsity: float, iters: int, seed: int) -> None:
    net = mlp(sizes, seed=seed)
    names, _, n = names_shapes(net)
    weights = [m.weight for _, m in linear_layers(net)]
    n_keep = round((1 - sparsity) * n)
    got = synflow_masks(net, names, n_keep, gen(seed), iters=iters)
    want = ref_iterative_synflow(weights, n_keep, iters)
    assert all(torch.equal(g, w) for g, w in zip(got, want))


def test_synflow_with_one_round_is_one_shot_top_k() -> None:
    net = mlp((30, 20, 10), seed=4)
    names, _, n = names_shapes(net)
    ones = [torch.ones_like(m.weight, dtype=torch.bool) for _, m in linear_layers(net)]
    scores = torch.cat([s.flatten() for s in synflow_scores(net, names, ones)])
    got = torch.cat([m.flatten() for m in synflow_masks(net, names, 100, gen(0), iters=1)])
    assert torch.equal(got, scores >= scores.topk(100).values[-1])


def test_synflow_default_100_rounds_on_the_humanoid_critic_avoids_layer_collapse(humanoid_networks) -> None:
    network = humanoid_networks["critic"]
    names, _, n = names_shapes(network)
    masks = static_masks(network, names, round(0.01 * n), "synflow", gen(0))  # synflow_iters=100 by default
    assert sum(int(m.sum()) for m in masks) == round(0.01 * n)
    assert all(int(m.sum()) > 0 for m in masks)
    # SynFlow keeps the narrow output layer far better connected than one-shot global magnitude
    magnitude = static_masks(network, names, round(0.01 * n), "magnitude", gen(0))
    assert int(magnitude[2].sum()) < int(masks[2].sum())


def test_synflow_does_not_modify_the_network_and_restores_signs() -> None:
    net = TwoHeadActor(obs_dim=20, act_dim=4, width=16, seed=3)
    before = state_copy(net)
    names = [n for n, _ in linear_layers(net)]
    masks = synflow_masks(net, names, 100, gen(0), iters=20, forward=two_head_forward)
    assert sum(int(m.sum()) for m in masks) == 100
    assert_same_state(net, before)


# ---------------------------------------------------------------- determinism and nesting


@pytest.mark.parametrize("criterion", ["random", "erk"])
@pytest.mark.parametrize("key", ["actor", "two_head_actor", "critic"])
def test_random_criteria_same_seed_same_mask_other_seed_other_mask(humanoid_networks, key: str, criterion: str) -> None:
    network = humanoid_networks[key]
    a = masks_for(network, key, criterion, 0.9, seed=0)
    b = masks_for(network, key, criterion, 0.9, seed=0)
    c = masks_for(network, key, criterion, 0.9, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(not torch.equal(x, z) for x, z in zip(a, c) if not bool(x.all()))  # ERK may make a layer dense
    assert any(not bool(x.all()) for x in a)
    assert [int(x.sum()) for x in a] == [int(z.sum()) for z in c]


@pytest.mark.parametrize("criterion", ["magnitude", "synflow"])
def test_data_free_rank_criteria_are_deterministic(humanoid_networks, criterion: str) -> None:
    network = humanoid_networks["actor"]
    a = masks_for(network, "actor", criterion, 0.9, seed=0)
    b = masks_for(network, "actor", criterion, 0.9, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("criterion", ["random", "erk", "magnitude"])
@pytest.mark.parametrize("key", ["actor", "two_head_actor", "critic", "critic_1024"])
@pytest.mark.parametrize("seed", range(2))
def test_masks_nest_across_sparsities(humanoid_networks, key: str, criterion: str, seed: int) -> None:
    network = humanoid_networks[key]
    masks = [masks_for(network, key, criterion, s, seed=seed) for s in SPARSITIES]
    for denser, sparser in zip(masks, masks[1:]):
        assert subset(sparser, denser)


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("key", ["actor", "two_head_actor", "critic"])
def test_masks_computed_within_a_mask_nest_inside_it(humanoid_networks, key: str, criterion: str) -> None:
    """``within`` is how reserve mode nests its static stage in the Original mask (SynFlow included)."""
    network = humanoid_networks[key]
    names, _, n = names_shapes(network)
    outer = masks_for(network, key, criterion, 0.9)
    for rr in (0.005, 0.02, 0.1):
        n_inner = round(0.1 * n) - round(rr * n)
        inner = static_masks(
            network, names, n_inner, criterion, gen(0), forward=forward_of(key), synflow_iters=10, within=outer
        )
        assert sum(int(m.sum()) for m in inner) == n_inner
        assert subset(inner, outer)


def test_static_masks_refuses_bad_counts_and_names() -> None:
    net = mlp((4, 3, 2))
    names, _, n = names_shapes(net)
    with pytest.raises(ValueError, match=rf"n_keep={n + 1} is outside the allowed range \[0, {n}\]"):
        static_masks(net, names, n + 1, "random", gen(0))
    with pytest.raises(ValueError, match=r"n_keep=-1"):
        static_masks(net, names, -1, "magnitude", gen(0))
    with pytest.raises(ValueError, match=r"Unknown criterion 'snip'.*'random', 'erk', 'magnitude', 'synflow'"):
        static_masks(net, names, 3, "snip", gen(0))
    with pytest.raises(ValueError, match=r"Unknown magnitude_scope 'local'.*'global', 'layer'"):
        static_masks(net, names, 3, "magnitude", gen(0), magnitude_scope="local")
    with pytest.raises(ValueError, match="Cannot keep"):
        synflow_masks(net, names, 7, gen(0), within=[torch.zeros(3, 4, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool)])


def test_criteria_follow_the_network_copy_not_a_shared_state() -> None:
    """Two identical copies give identical masks: nothing global leaks between calls."""
    a = mlp((16, 12, 4), seed=5)
    b = copy.deepcopy(a)
    names, _, n = names_shapes(a)
    for criterion in CRITERIA:
        ma = static_masks(a, names, 40, criterion, gen(9), synflow_iters=5)
        mb = static_masks(b, names, 40, criterion, gen(9), synflow_iters=5)
        assert all(torch.equal(x, y) for x, y in zip(ma, mb))


@pytest.mark.parametrize(
    "sparsity, rr, iters, expected_rounds", [(0.9, 0.01, 100, 5), (0.8, 0.02, 100, 7), (0.9, 0.01, 10, 1)]
)
def test_synflow_within_continues_the_schedule_at_the_same_rate(
    monkeypatch: pytest.MonkeyPatch, sparsity: float, rr: float, iters: int, expected_rounds: int
) -> None:
    from sb3_tar.core import criteria

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    names = [n for n, _ in linear_layers(net)]
    n_total = sum(m.weight.numel() for _, m in linear_layers(net))
    original = synflow_masks(net, names, round((1 - sparsity) * n_total), gen(0), iters=iters)
    calls = []
    real_scores = criteria.SynFlowProbe.scores
    monkeypatch.setattr(criteria.SynFlowProbe, "scores", lambda self, masks: calls.append(1) or real_scores(self, masks))
    n_keep = round((1 - sparsity) * n_total) - round(rr * n_total)
    nested = synflow_masks(net, names, n_keep, gen(0), iters=iters, within=original)
    # ceil(iters * ln(d / d0) / ln(d0)) rounds, d0 the Original density
    assert len(calls) == expected_rounds
    assert sum(int(m.sum()) for m in nested) == n_keep
    assert all(bool((n & ~o).sum() == 0) for n, o in zip(nested, original))
