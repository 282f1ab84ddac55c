"""prune_and_revive end to end: exact counts, budget modes, paired runs, revived_init, report, bad input."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from conftest import (
    CRITERIA,
    SPARSITIES,
    TwoHeadActor,
    assert_same_state,
    linears,
    mlp,
    state_copy,
    subset,
    two_head_forward,
    weight_count,
)
from torch import nn

from sb3_tar import LayerReport, NetworkReport, SparsityConfig, prune_and_revive
from sb3_tar.core.masks import dead_units, linear_layers

pytestmark = pytest.mark.usefixtures("single_thread")


def run(network: nn.Module, key: str = "", seed: int = 0, **kw) -> tuple[list[torch.Tensor], NetworkReport]:
    """prune_and_revive on ``network`` in place, with few SynFlow rounds unless asked otherwise."""
    if kw.get("criterion") == "synflow":
        kw.setdefault("synflow_iters", 2 if key.endswith("1024") else 10)
    forward = two_head_forward if isinstance(network, TwoHeadActor) else (lambda net, x: net(x))
    return prune_and_revive(network, SparsityConfig(**kw), seed, forward=forward, name=key or "network")


def static_of(network: nn.Module) -> list[torch.Tensor]:
    """With revived_init="zero" the static stage is exactly the nonzero weights (init weights are never 0.0)."""
    return [m.weight.detach() != 0 for m in linears(network)]


# ---------------------------------------------------------------- exact counts in both budget modes


# Humanoid sizes at every sparsity; width 1024 (10x slower) at three of them.
RESERVE_CASES = [(k, s) for k in ("actor", "critic", "two_head_actor") for s in SPARSITIES] + [
    (k, s) for k in ("actor_1024", "critic_1024") for s in (0.5, 0.9, 0.99)
]


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("key, sparsity", RESERVE_CASES)
def test_reserve_mode_ends_at_exactly_the_target_count(humanoid_networks, key: str, criterion: str, sparsity: float) -> None:
    rr = 0.01 if sparsity < 0.99 else 0.005
    network = copy.deepcopy(humanoid_networks[key])
    init = state_copy(network)
    n = weight_count(network)
    masks, report = run(network, key, criterion=criterion, sparsity=sparsity, recovery_ratio=rr, revived_init="zero")
    target, budget = round((1 - sparsity) * n), round(rr * n)
    assert sum(int(m.sum()) for m in masks) == target == report.kept
    assert report.budget == budget
    assert sum(layer.revived for layer in report.layers) == budget
    static = static_of(network)
    assert sum(int(s.sum()) for s in static) == target - budget == sum(layer.kept_before for layer in report.layers)
    assert [int(s.sum()) for s in static] == [layer.kept_before for layer in report.layers]
    assert subset(static, masks)
    # every weight outside the final mask is exactly 0.0; biases are untouched
    for (name, layer), m in zip(linear_layers(network), masks):
        assert torch.all(layer.weight[~m] == 0.0)
        assert torch.equal(layer.bias, init[f"{name}.bias"])


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("key", ["actor", "two_head_actor", "critic_1024"])
@pytest.mark.parametrize("revival", ["tar", "uniform"])
def test_extra_mode_ends_at_target_plus_rr(humanoid_networks, key: str, criterion: str, sparsity: float, revival: str) -> None:
    network = copy.deepcopy(humanoid_networks[key])
    n = weight_count(network)
    masks, report = run(
        network, key, criterion=criterion, sparsity=sparsity, recovery_ratio=0.01, budget_mode="extra", revival=revival
    )
    assert sum(int(m.sum()) for m in masks) == round((1 - sparsity) * n) + round(0.01 * n) == report.kept
    assert sum(layer.kept_before for layer in report.layers) == round((1 - sparsity) * n)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_revival_none_revives_nothing(humanoid_networks, criterion: str) -> None:
    network = copy.deepcopy(humanoid_networks["actor"])
    n = weight_count(network)
    # revival="none" ignores recovery_ratio (even one that TAR would refuse)
    masks, report = run(network, "actor", criterion=criterion, sparsity=0.95, revival="none", recovery_ratio=0.5)
    assert report.budget == 0
    assert [layer.revived for layer in report.layers] == [0, 0, 0]
    assert [layer.floor for layer in report.layers] == [0, 0, 0]
    assert sum(int(m.sum()) for m in masks) == round(0.05 * n)
    assert [layer.kept_before for layer in report.layers] == [int(m.sum()) for m in masks]


def test_sparsity_zero_keeps_everything() -> None:
    net = mlp((10, 8, 3))
    masks, report = prune_and_revive(net, SparsityConfig(sparsity=0.0, criterion="random", revival="none"), 0)
    assert all(bool(m.all()) for m in masks) and report.sparsity == 0.0


def test_synflow_with_the_default_100_rounds_on_the_two_head_actor(humanoid_networks) -> None:
    network = copy.deepcopy(humanoid_networks["two_head_actor"])
    n = weight_count(network)
    masks, report = prune_and_revive(
        network, SparsityConfig(sparsity=0.9, criterion="synflow"), 0, forward=two_head_forward, name="actor"
    )
    assert sum(int(m.sum()) for m in masks) == round(0.1 * n)
    assert all(layer.kept_before > 0 for layer in report.layers)  # log_std is scored through the custom forward


# ---------------------------------------------------------------- init values, determinism, paired runs


@pytest.mark.parametrize("budget_mode", ["reserve", "extra"])
@pytest.mark.parametrize("criterion", CRITERIA)
def test_revived_init_restores_the_init_value_or_zero(humanoid_networks, criterion: str, budget_mode: str) -> None:
    base = humanoid_networks["critic"]
    init = [m.weight.detach().clone() for m in linears(base)]
    kw = dict(criterion=criterion, sparsity=0.9, recovery_ratio=0.02, budget_mode=budget_mode)
    net_init, net_zero = copy.deepcopy(base), copy.deepcopy(base)
    masks_init, _ = run(net_init, "critic", seed=3, revived_init="init", **kw)
    masks_zero, report = run(net_zero, "critic", seed=3, revived_init="zero", **kw)
    assert all(torch.equal(a, b) for a, b in zip(masks_init, masks_zero))
    static = static_of(net_zero)
    n_revived = 0
    for w0, layer_i, layer_z, m, s in zip(init, linears(net_init), linears(net_zero), masks_init, static):
        revived = m & ~s
        n_revived += int(revived.sum())
        assert torch.equal(layer_i.weight[m], w0[m])  # "init": every kept or revived weight is its init value
        assert torch.all(layer_i.weight[~m] == 0.0)
        assert torch.all(layer_z.weight[revived] == 0.0)  # "zero": revived weights start at 0.0
        assert torch.equal(layer_z.weight[s], w0[s])
    assert n_revived == report.budget == round(0.02 * weight_count(base))


@pytest.mark.parametrize("revival", ["tar", "uniform"])
@pytest.mark.parametrize("criterion", CRITERIA)
def test_same_seed_same_mask(humanoid_networks, criterion: str, revival: str) -> None:
    kw = dict(criterion=criterion, sparsity=0.9, revival=revival)
    a, ra = run(copy.deepcopy(humanoid_networks["two_head_actor"]), seed=11, **kw)
    b, rb = run(copy.deepcopy(humanoid_networks["two_head_actor"]), seed=11, **kw)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert ra.to_dict() == rb.to_dict()


@pytest.mark.parametrize("revival", ["tar", "uniform"])
@pytest.mark.parametrize("budget_mode", ["reserve", "extra"])
def test_other_seed_other_revived_positions(humanoid_networks, revival: str, budget_mode: str) -> None:
    """Global magnitude's static mask does not depend on the seed, so only the revival draw differs."""
    kw = dict(criterion="magnitude", sparsity=0.9, revival=revival, budget_mode=budget_mode, revived_init="zero")
    runs = []
    for seed in (0, 1):
        net = copy.deepcopy(humanoid_networks["critic"])
        masks, _ = run(net, seed=seed, **kw)
        runs.append((static_of(net), masks))
    (static0, final0), (static1, final1) = runs
    assert all(torch.equal(x, y) for x, y in zip(static0, static1))
    revived0 = [f & ~s for f, s in zip(final0, static0)]
    revived1 = [f & ~s for f, s in zip(final1, static1)]
    assert [int(r.sum()) for r in revived0] != [0, 0, 0]
    assert any(not torch.equal(x, y) for x, y in zip(revived0, revived1))
    assert not all(torch.equal(x, y) for x, y in zip(final0, final1))


@pytest.mark.parametrize("criterion", ["random", "erk"])
def test_other_seed_other_static_mask(humanoid_networks, criterion: str) -> None:
    a, _ = run(copy.deepcopy(humanoid_networks["actor"]), seed=0, criterion=criterion, sparsity=0.9)
    b, _ = run(copy.deepcopy(humanoid_networks["actor"]), seed=1, criterion=criterion, sparsity=0.9)
    assert all(not torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("key", ["actor", "two_head_actor", "critic"])
def test_paired_runs_share_the_static_mask_in_extra_mode(humanoid_networks, key: str, criterion: str, seed: int) -> None:
    """Original, Uniform and TAR runs of one seed differ only by the revived connections."""
    base = humanoid_networks[key]
    n = weight_count(base)
    kw = dict(criterion=criterion, sparsity=0.9, recovery_ratio=0.02, budget_mode="extra", revived_init="zero")
    results = {}
    for revival in ("none", "uniform", "tar"):
        net = copy.deepcopy(base)
        masks, report = run(net, key, seed=seed, revival=revival, **kw)
        results[revival] = (static_of(net), masks, report)
    original = results["none"][1]
    for revival in ("uniform", "tar"):
        static, final, report = results[revival]
        assert all(torch.equal(s, o) for s, o in zip(static, original))  # the same static stage
        revived = [f & ~o for f, o in zip(final, original)]
        assert subset(original, final)
        assert sum(int(r.sum()) for r in revived) == round(0.02 * n)
        assert [int(r.sum()) for r in revived] == [layer.revived for layer in report.layers]


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("key", ["actor", "two_head_actor", "critic"])
@pytest.mark.parametrize("revival", ["tar", "uniform"])
def test_reserve_static_stage_is_a_subset_of_the_original_mask(
    humanoid_networks, key: str, criterion: str, revival: str
) -> None:
    base = humanoid_networks[key]
    n = weight_count(base)
    original, _ = run(copy.deepcopy(base), key, seed=5, criterion=criterion, sparsity=0.9, revival="none")
    net = copy.deepcopy(base)
    final, _ = run(
        net, key, seed=5, criterion=criterion, sparsity=0.9, revival=revival, recovery_ratio=0.02, revived_init="zero"
    )
    static = static_of(net)
    assert subset(static, original)
    assert sum(int(s.sum()) for s in static) == round(0.1 * n) - round(0.02 * n)
    assert sum(int(f.sum()) for f in final) == sum(int(o.sum()) for o in original)  # same parameter count


@pytest.mark.parametrize("budget_mode", ["reserve", "extra"])
def test_uniform_and_tar_spend_the_same_budget_differently(humanoid_networks, budget_mode: str) -> None:
    base = humanoid_networks["critic"]
    kw = dict(criterion="magnitude", sparsity=0.99, recovery_ratio=0.005, budget_mode=budget_mode)
    _, tar = run(copy.deepcopy(base), revival="tar", **kw)
    _, uni = run(copy.deepcopy(base), revival="uniform", **kw)
    assert tar.budget == uni.budget == round(0.005 * weight_count(base))
    assert sum(layer.revived for layer in tar.layers) == sum(layer.revived for layer in uni.layers) == tar.budget
    assert [layer.revived for layer in tar.layers] != [layer.revived for layer in uni.layers]
    assert all(layer.floor == 0 for layer in uni.layers)
    # TAR's floor reaches the 256-weight output layer; Uniform gives it ~256/166400 of the budget
    assert tar.layers[2].revived >= min(256 - tar.layers[2].kept_before, math.ceil(0.2 * tar.budget / 3))
    assert uni.layers[2].revived < tar.layers[2].revived


# ---------------------------------------------------------------- the report


def test_report_fields_on_a_hand_computed_case() -> None:
    """
    4 -> 8 -> 8 -> 2 (N = 32 + 64 + 16 = 112), random criterion, sparsity 0.5, rr 0.1, reserve:
    target 56, B = round(11.2) = 11, static 45 split uniformly: K = 13, 26, 6 (shares 12.86, 25.71, 6.43).
    E = 15, 23, 12; g = 2, 0, 6; f = 1, 1, 1; B_l = 3, 2, 6 (see test_revival's water-filling case).
    """
    net = mlp((4, 8, 8, 2), seed=0)
    config = SparsityConfig(sparsity=0.5, criterion="random", recovery_ratio=0.1, revived_init="zero")
    masks, report = prune_and_revive(net, config, 0, name="tiny")
    static = static_of(net)
    assert isinstance(report, NetworkReport) and all(isinstance(layer, LayerReport) for layer in report.layers)
    assert report.network == "tiny" and report.criterion == "random" and report.revival == "tar"
    assert report.target_sparsity == 0.5 and report.budget == 11
    assert [layer.name for layer in report.layers] == ["0", "2", "4"]
    assert [layer.shape for layer in report.layers] == [(8, 4), (8, 8), (2, 8)]
    assert [layer.threshold for layer in report.layers] == [15, 23, 12]
    assert [layer.kept_before for layer in report.layers] == [13, 26, 6]
    assert [layer.need for layer in report.layers] == [2, 0, 6]
    assert [layer.floor for layer in report.layers] == [1, 1, 1]
    assert [layer.revived for layer in report.layers] == [3, 2, 6]
    assert [layer.kept_after for layer in report.layers] == [16, 28, 12]
    assert [layer.density for layer in report.layers] == [16 / 32, 28 / 64, 12 / 16]
    assert [layer.dead_before for layer in report.layers] == [sum(dead_units(s)) for s in static]
    assert [layer.dead_after for layer in report.layers] == [sum(dead_units(m)) for m in masks]
    assert report.total == 112 and report.kept == 56
    assert report.density == 0.5 and report.sparsity == 0.5


def test_report_counts_dead_units_before_and_after_revival() -> None:
    """Magnitude on chosen weights: the static stage leaves units dead; revival can only reconnect."""
    net = mlp((6, 5, 4), seed=0)
    with torch.no_grad():
        net[0].weight.copy_(torch.arange(1, 31, dtype=torch.float32).view(5, 6) / 100)  # row 4 is the largest
        net[2].weight.copy_(torch.arange(1, 21, dtype=torch.float32).view(4, 5) / 100)  # column 4 the largest
    config = SparsityConfig(sparsity=0.8, criterion="magnitude", revival="none")
    _, report = prune_and_revive(net, config, 0)
    # keeps round(0.2 * 50) = 10: the weights 0.21..0.30 of layer 0 (rows 3 and 4) and nothing of layer 1
    assert [layer.kept_before for layer in report.layers] == [10, 0]
    assert report.layers[0].dead_before == 3 + 0  # outputs 0-2 dead, every input connected
    assert report.layers[1].dead_before == 4 + 5
    assert [layer.dead_after for layer in report.layers] == [layer.dead_before for layer in report.layers]
    _, revived = prune_and_revive(mlp((6, 5, 4), seed=0), SparsityConfig(sparsity=0.5, recovery_ratio=0.3), 0)
    assert all(layer.dead_after <= layer.dead_before for layer in revived.layers)


@pytest.mark.parametrize("revival", ["tar", "uniform", "none"])
def test_report_prints_a_table_and_converts_to_json(humanoid_networks, revival: str) -> None:
    net = copy.deepcopy(humanoid_networks["two_head_actor"])
    _, report = run(net, "actor", criterion="erk", sparsity=0.9, revival=revival)
    text = str(report)
    lines = text.splitlines()
    assert lines[0].startswith("actor: criterion=erk revival=" + revival)
    header = lines[1].split()
    for column in ("layer", "shape", "E_l", "K_l", "g_l", "f_l", "B_l", "density"):
        assert column in header
    assert "dead before" in lines[1] and "dead after" in lines[1]
    rows = lines[3:]
    assert len(rows) == len(report.layers) == 4
    for row, layer in zip(rows, report.layers):
        cells = row.split()
        assert cells[0] == layer.name and cells[1] == f"{layer.shape[0]}x{layer.shape[1]}"
        assert [int(c) for c in cells[2:7]] == [layer.threshold, layer.kept_before, layer.need, layer.floor, layer.revived]
        assert float(cells[7]) == pytest.approx(layer.density, abs=5e-5)
        assert [int(c) for c in cells[8:]] == [layer.dead_before, layer.dead_after]

    data = json.loads(json.dumps(report.to_dict()))
    assert data["network"] == "actor" and data["revival"] == revival and data["criterion"] == "erk"
    assert data["budget"] == report.budget and data["target_sparsity"] == 0.9
    assert data["total"] == report.total and data["kept"] == report.kept
    assert data["density"] == pytest.approx(report.density) and data["sparsity"] == pytest.approx(report.sparsity)
    assert data["flops_ratio"] == pytest.approx(report.flops_ratio)
    assert len(data["layers"]) == 4
    for d, layer in zip(data["layers"], report.layers):
        assert d["shape"] == list(layer.shape)
        for key in ("name", "threshold", "kept_before", "need", "floor", "revived", "density", "dead_before", "dead_after"):
            assert d[key] == getattr(layer, key)


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.99])
def test_flops_ratio_equals_density_for_bias_free_layers(sparsity: float) -> None:
    net = mlp((40, 64, 64, 3), seed=1, bias=False)
    _, report = prune_and_revive(net, SparsityConfig(sparsity=sparsity, criterion="erk"), 0)
    assert 0.0 < report.flops_ratio <= 1.0
    assert report.flops_ratio == pytest.approx(report.density, rel=1e-12)
    _, with_bias = prune_and_revive(mlp((40, 64, 64, 3), seed=1), SparsityConfig(sparsity=sparsity, criterion="erk"), 0)
    assert report.density < with_bias.flops_ratio <= 1.0  # dense biases cost a little


# ---------------------------------------------------------------- bad input


BAD_CONFIGS = [
    (dict(sparsity=-0.1), ValueError, r"sparsity=-0\.1 is outside the allowed range \[0, 1\)"),
    (dict(sparsity=1.0), ValueError, r"sparsity=1\.0 is outside the allowed range \[0, 1\)"),
    (dict(sparsity=1.5), ValueError, r"sparsity=1\.5 is outside the allowed range \[0, 1\)"),
    (dict(sparsity=float("nan")), ValueError, r"sparsity=nan is outside the allowed range \[0, 1\)"),
    (dict(sparsity="0.5"), TypeError, r"sparsity must be a number, got '0\.5' \(str\)"),
    (dict(sparsity=True), TypeError, r"sparsity must be a number, got True \(bool\)"),
    (dict(sparsity=None), TypeError, r"sparsity must be a number, got None"),
    (dict(recovery_ratio=-0.01), ValueError, r"recovery_ratio=-0\.01 is outside the allowed range \[0, 1\]"),
    (dict(recovery_ratio=-0.01, revival="none"), ValueError, r"recovery_ratio=-0\.01 is outside the allowed range \[0, 1\]"),
    (
        dict(sparsity=0.9, recovery_ratio=0.2),
        ValueError,
        r"recovery_ratio=0\.2 is outside the allowed range \[0, 0\.1\] for budget_mode='reserve' at sparsity=0\.9",
    ),
    (
        dict(sparsity=0.05, recovery_ratio=0.1, budget_mode="extra"),
        ValueError,
        r"recovery_ratio=0\.1 is outside the allowed range \[0, 0\.05\] for budget_mode='extra' at sparsity=0\.05",
    ),
    (dict(floor_fraction=-0.1), ValueError, r"floor_fraction=-0\.1 is outside the allowed range \[0, 1\]"),
    (dict(floor_fraction=1.01), ValueError, r"floor_fraction=1\.01 is outside the allowed range \[0, 1\]"),
    (
        dict(criterion="snip"),
        ValueError,
        r"Unknown criterion 'snip': valid values are \['random', 'erk', 'magnitude', 'synflow'\]",
    ),
    (dict(criterion="ERK"), ValueError, r"Unknown criterion 'ERK'"),
    (dict(criterion=None), TypeError, r"criterion must be a string, one of \['random', 'erk', 'magnitude', 'synflow'\]"),
    (dict(revival="rigl"), ValueError, r"Unknown revival 'rigl': valid values are \['tar', 'uniform', 'none'\]"),
    (dict(budget_mode="both"), ValueError, r"Unknown budget_mode 'both': valid values are \['reserve', 'extra'\]"),
    (dict(revived_init="random"), ValueError, r"Unknown revived_init 'random': valid values are \['init', 'zero'\]"),
    (dict(magnitude_scope="local"), ValueError, r"Unknown magnitude_scope 'local': valid values are \['global', 'layer'\]"),
    (dict(synflow_iters=0), ValueError, r"synflow_iters=0 is outside the allowed range \[1, inf\)"),
    (dict(synflow_iters=10.0), TypeError, r"synflow_iters must be an int, got 10\.0 \(float\)"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_CONFIGS)
def test_bad_config_is_refused_with_the_value_and_range(kwargs: dict, error: type[Exception], message: str) -> None:
    net = mlp((6, 5, 3))
    before = state_copy(net)
    with pytest.raises(error, match=message):
        prune_and_revive(net, SparsityConfig(**kwargs), 0)
    assert_same_state(net, before)


@pytest.mark.parametrize("seed", ["0", 1.5, None, True, torch.tensor(0)])
def test_non_int_seed_is_refused_and_the_network_untouched(seed) -> None:
    net = mlp((6, 5, 3))
    before = state_copy(net)
    with pytest.raises(TypeError, match=r"seed must be an int, got"):
        prune_and_revive(net, SparsityConfig(sparsity=0.5), seed)
    assert_same_state(net, before)


@pytest.mark.parametrize(
    "network", [nn.ConvTranspose2d(3, 4, 3), nn.Sequential(nn.LSTM(3, 8), nn.ReLU(), nn.Flatten()), nn.Sequential()]
)
def test_network_without_linear_is_refused(network: nn.Module) -> None:
    before = state_copy(network)
    with pytest.raises(TypeError, match=r"no nn\.Linear or convolution layer"):
        prune_and_revive(network, SparsityConfig(), 0)
    assert_same_state(network, before)


def test_empty_layer_list_and_dict_config_are_refused() -> None:
    net = mlp((6, 5, 3))
    before = state_copy(net)
    with pytest.raises(TypeError, match=r"no nn\.Linear layer"):
        prune_and_revive(net, SparsityConfig(), 0, layers=[])
    with pytest.raises(TypeError, match=r"config must be a SparsityConfig, got dict"):
        prune_and_revive(net, {"sparsity": 0.5}, 0)  # type: ignore[arg-type]
    assert_same_state(net, before)


def test_a_failing_synflow_forward_leaves_the_network_untouched() -> None:
    net = TwoHeadActor(obs_dim=8, act_dim=2, width=6)
    before = state_copy(net)

    def broken(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("forward failed")

    with pytest.raises(RuntimeError, match="forward failed"):
        prune_and_revive(net, SparsityConfig(criterion="synflow", synflow_iters=5), 0, forward=broken)
    assert_same_state(net, before)


def test_only_the_given_layers_are_sparsified() -> None:
    actor = TwoHeadActor(obs_dim=8, act_dim=2, width=16, seed=2)
    trunk = [(f"latent_pi.{n}", m) for n, m in linear_layers(actor.latent_pi)]
    head_before = {k: v.clone() for k, v in actor.mu.state_dict().items()}
    masks, report = prune_and_revive(actor, SparsityConfig(sparsity=0.75, criterion="random"), 0, layers=trunk)
    assert [layer.name for layer in report.layers] == ["latent_pi.0", "latent_pi.2"]
    assert sum(int(m.sum()) for m in masks) == round(0.25 * (8 * 16 + 16 * 16))
    assert all(torch.equal(actor.mu.state_dict()[k], v) for k, v in head_before.items())


@pytest.mark.parametrize("criterion", ["random", "erk", "magnitude", "synflow"])
def test_convolutional_network_keeps_an_exact_count(criterion: str) -> None:
    """Convolutions are pruned like linear layers: one global count, pruned kernel entries exactly zero."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 3))
    n_total = 4 * 2 * 9 + 4 * 4 * 9 + 3 * 16  # 72 + 144 + 48 = 264

    def forward(network: nn.Module, x: torch.Tensor) -> torch.Tensor:  # SynFlow's input is an image, not (1, fan_in)
        return network(torch.ones(1, 2, 6, 6, dtype=x.dtype))

    config = SparsityConfig(sparsity=0.8, criterion=criterion, revival="tar", recovery_ratio=0.05)
    masks, report = prune_and_revive(net, config, 0, forward=forward)
    assert [tuple(m.shape) for m in masks] == [(4, 2, 3, 3), (4, 4, 3, 3), (3, 16)]
    assert sum(int(m.sum()) for m in masks) == round(0.2 * n_total) == 53
    assert [layer.shape for layer in report.layers] == [(4, 18), (4, 36), (3, 16)]
    for layer, mask in zip([net[0], net[2], net[5]], masks):
        assert torch.all(layer.weight[~mask] == 0.0) and torch.count_nonzero(layer.weight) <= int(mask.sum())
