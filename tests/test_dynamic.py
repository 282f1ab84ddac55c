"""SET/RigL mask updates and their schedule (pure PyTorch, no SB3): sb3_tar.core.dynamic."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from sb3_tar.core.dynamic import (
    DST_DEFAULTS,
    DSTConfig,
    cosine_drop_fraction,
    drop_count,
    dst_config,
    end_step,
    is_update_step,
    last_update_step,
    planned_gradient_steps,
    rewire_layer,
    rewire_masks,
    update_generator,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_layer(shape: tuple[int, int], density: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A weight with distinct magnitudes and a mask of exactly round(density * N) kept entries."""
    g = gen(seed)
    n = shape[0] * shape[1]
    weight = (torch.randperm(n, generator=g).to(torch.float32) + 1.0) / n
    weight = weight * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=g)[: round(density * n)]] = True
    return weight.view(shape), mask.view(shape)


# -- schedule ---------------------------------------------------------------------------------


@pytest.mark.parametrize("zeta", [0.3, 0.5])
def test_cosine_drop_fraction_values(zeta: float) -> None:
    t_end = 800.0
    assert cosine_drop_fraction(0, zeta, t_end) == pytest.approx(zeta)
    assert cosine_drop_fraction(400, zeta, t_end) == pytest.approx(zeta / 2)
    assert cosine_drop_fraction(200, zeta, t_end) == pytest.approx(zeta / 2 * (1 + math.sqrt(2) / 2))
    assert cosine_drop_fraction(800 / 3, zeta, t_end) == pytest.approx(0.75 * zeta)
    assert cosine_drop_fraction(800, zeta, t_end) == 0.0
    assert cosine_drop_fraction(1000, zeta, t_end) == 0.0
    values = [cosine_drop_fraction(t, zeta, t_end) for t in range(0, 801, 50)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_dst_config_schedule_uses_end_fraction_of_total() -> None:
    config = dst_config("rigl", update_interval=100, end_fraction=0.8)
    assert config.end_step(1000) == end_step(1000, 0.8) == pytest.approx(800)
    assert config.fraction(400, 1000) == pytest.approx(0.25)  # zeta/2 at T_end/2
    assert config.is_update_step(700, 1000) and not config.is_update_step(800, 1000)
    assert not config.is_update_step(750, 1000) and not config.is_update_step(0, 1000)


@pytest.mark.parametrize("interval", [1, 7, 20, 25])
@pytest.mark.parametrize("t_end", [0.0, 0.5, 20.0, 200.0, 200.8, 199.2])
def test_last_update_step_matches_is_update_step(interval: int, t_end: float) -> None:
    due = 0
    for step in range(0, 260):
        if is_update_step(step, interval, t_end):
            due = step
            assert step % interval == 0 and 0 < step < t_end
        assert last_update_step(step, interval, t_end) == due


def test_drop_count_rounds_and_caps() -> None:
    assert drop_count(0.3, 100, 500) == 30
    assert drop_count(0.3, 101, 500) == round(30.3) == 30
    assert drop_count(0.5, 7, 500) == round(3.5) == 4  # Python's round: half to even
    assert drop_count(0.5, 100, 120) == 20  # at most N - K inactive positions to grow into
    assert drop_count(0.5, 100, 100) == 0  # a dense layer is never rewired
    assert drop_count(0.5, 0, 100) == 0
    assert drop_count(0.0, 100, 500) == 0


def test_dst_config_defaults() -> None:
    assert DST_DEFAULTS["set"] == {"update_interval": 250, "drop_fraction": 0.3}
    assert DST_DEFAULTS["rigl"] == {"update_interval": 1000, "drop_fraction": 0.5}
    assert dst_config("set") == DSTConfig("set", 250, 0.3, 0.8)
    assert dst_config("rigl") == DSTConfig("rigl", 1000, 0.5, 0.8)
    assert dst_config("set", update_interval=10, drop_fraction=0.1, end_fraction=1.0) == DSTConfig("set", 10, 0.1, 1.0)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(method="snip"), ValueError, r"method 'snip'.*\['set', 'rigl'\]"),
        (dict(method=None), TypeError, "method must be a string"),
        (dict(method="set", update_interval=0), ValueError, r"update_interval=0 .*\[1, inf\)"),
        (dict(method="set", update_interval=2.5), TypeError, "update_interval must be an int"),
        (dict(method="set", drop_fraction=0.0), ValueError, r"drop_fraction=0.0 .*\(0, 1\)"),
        (dict(method="set", drop_fraction=1.0), ValueError, r"drop_fraction=1.0 .*\(0, 1\)"),
        (dict(method="set", end_fraction=0.0), ValueError, r"end_fraction=0.0 .*\(0, 1\]"),
        (dict(method="set", end_fraction=1.5), ValueError, r"end_fraction=1.5 .*\(0, 1\]"),
        (dict(method="rigl", end_fraction="0.8"), TypeError, "end_fraction must be a number"),
    ],
)
def test_dst_config_refuses_bad_values(kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        dst_config(**kwargs)


# -- one update -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["set", "rigl"])
@pytest.mark.parametrize("density", [0.05, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("fraction", [0.5, 0.3, 0.01])
def test_update_keeps_every_layer_count_exactly(method: str, density: float, fraction: float) -> None:
    shapes = [(32, 19), (32, 32), (1, 32), (4, 4)]
    layers = [random_layer(s, density, seed=i) for i, s in enumerate(shapes)]
    weights, masks = [w for w, _ in layers], [m for _, m in layers]
    grads = [torch.randn(s, generator=gen(10 + i)) for i, s in enumerate(shapes)]
    result = rewire_masks(weights, masks, fraction, method, gen(3), grads)
    for old, new, dropped, grown in zip(masks, result.masks, result.dropped, result.grown):
        k = drop_count(fraction, int(old.sum()), old.numel())
        assert int(new.sum()) == int(old.sum())
        assert int(dropped.sum()) == int(grown.sum()) == k
        assert not (dropped & ~old).any() and not (grown & old).any()  # drop active, grow inactive
        assert torch.equal(new, (old & ~dropped) | grown)
    assert result.kept_counts == [int(m.sum()) for m in masks]
    assert result.dropped_counts == result.grown_counts
    assert all(torch.equal(p, m) for p, m in zip(result.previous, masks))


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_drop_removes_the_smallest_magnitude_active_weights(method: str) -> None:
    weight, mask = random_layer((16, 16), 0.4, seed=5)
    weight = weight.masked_fill(~mask, 100.0)  # inactive entries are not candidates, whatever |w|
    k = 20
    new, dropped, _ = rewire_layer(weight, mask, k, method, gen(0), grad=torch.ones_like(weight))
    active = torch.nonzero(mask.flatten()).flatten()
    smallest = active[weight.abs().flatten()[active].argsort()[:k]]
    expected = torch.zeros(weight.numel(), dtype=torch.bool)
    expected[smallest] = True
    assert torch.equal(dropped.flatten(), expected)
    assert weight.abs()[dropped].max() < weight.abs()[mask & ~dropped].min()


def test_rigl_grows_exactly_the_largest_gradient_inactive_positions() -> None:
    # 3x4 layer, 6 active weights; drop k=2 (zeta=1/3 of 6) and grow 2.
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    weight = torch.tensor([[0.9, 0.01, 0.0, 0.0], [0.8, 0.7, 0.0, 0.0], [0.02, 0.6, 0.0, 0.0]])
    grad = torch.tensor(
        [
            [50.0, 99.0, 0.3, 3.0],  # active positions carry the largest gradients: never grown
            [40.0, 30.0, 2.0, 0.1],
            [98.0, 20.0, 0.2, 5.0],  # (2, 0) and (0, 1) are dropped: not regrown at the same update
        ]
    )
    result = rewire_masks([weight], [mask], 1 / 3, "rigl", gen(0), [grad])
    dropped, grown = result.dropped[0], result.grown[0]
    expected_dropped = torch.zeros(3, 4, dtype=torch.bool)
    expected_dropped[0, 1] = expected_dropped[2, 0] = True  # |w| = 0.01 and 0.02
    expected_grown = torch.zeros(3, 4, dtype=torch.bool)
    expected_grown[2, 3] = expected_grown[0, 3] = True  # |grad| = 5.0 and 3.0: largest among inactive
    assert torch.equal(dropped, expected_dropped)
    assert torch.equal(grown, expected_grown)
    assert torch.equal(result.masks[0], (mask & ~expected_dropped) | expected_grown)


def test_rigl_grows_by_absolute_gradient_and_breaks_ties_with_the_seed() -> None:
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, :3] = True
    weight = torch.where(mask, torch.tensor(1.0), torch.tensor(0.0))
    weight[0, 0] = 0.1
    grad = torch.tensor([[0.0, 0.0, 0.0, -7.0, 1.0], [1.0, 1.0, -6.5, 1.0, 0.5]])
    grown = [rewire_layer(weight, mask, 1, "rigl", gen(s), grad)[2] for s in range(3)]
    assert all(bool(g[0, 3]) and int(g.sum()) == 1 for g in grown)  # |-7| wins
    ties = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    draws = [rewire_layer(weight, mask, 2, "rigl", gen(s), ties)[2] for s in range(20)]
    assert all(int(d.sum()) == 2 and not (d & mask).any() for d in draws)
    assert torch.equal(draws[0], rewire_layer(weight, mask, 2, "rigl", gen(0), ties)[2])
    assert len({tuple(d.flatten().tolist()) for d in draws}) > 1


def test_set_is_reproducible_from_its_seed_and_grows_uniformly() -> None:
    weight, mask = random_layer((32, 32), 0.2, seed=1)
    a = rewire_masks([weight], [mask], 0.3, "set", gen(7))
    b = rewire_masks([weight], [mask], 0.3, "set", gen(7))
    c = rewire_masks([weight], [mask], 0.3, "set", gen(8))
    assert torch.equal(a.masks[0], b.masks[0]) and torch.equal(a.grown[0], b.grown[0])
    assert not torch.equal(a.grown[0], c.grown[0])
    assert torch.equal(a.dropped[0], c.dropped[0])  # the drop is deterministic (distinct magnitudes)
    # Growth is uniform over the inactive positions: each is drawn with probability k / (N - K).
    small_w, small_m = random_layer((4, 5), 0.5, seed=2)
    counts = torch.zeros(4, 5)
    trials = 3000
    for s in range(trials):
        counts += rewire_layer(small_w, small_m, 3, "set", gen(s))[2].float()
    assert counts[small_m].sum() == 0
    p = 3 / 10
    assert torch.allclose(counts[~small_m] / trials, torch.full((10,), p), atol=4 * math.sqrt(p * (1 - p) / trials))


def test_dense_and_empty_layers_are_left_alone() -> None:
    weights = [torch.randn(3, 3), torch.randn(3, 3)]
    masks = [torch.ones(3, 3, dtype=torch.bool), torch.zeros(3, 3, dtype=torch.bool)]
    result = rewire_masks(weights, masks, 0.5, "set", gen(0))
    assert result.dropped_counts == result.grown_counts == [0, 0]
    assert all(torch.equal(a, b) for a, b in zip(result.masks, masks))


def test_rewire_refuses_bad_inputs() -> None:
    weight, mask = random_layer((4, 4), 0.5, seed=0)
    with pytest.raises(ValueError, match=r"k=9 is outside the allowed range \[0, 8\]"):
        rewire_layer(weight, mask, 9, "set", gen(0))
    with pytest.raises(ValueError, match="method"):
        rewire_layer(weight, mask, 1, "prune", gen(0))
    with pytest.raises(ValueError, match=r"fraction=1.5 .*\[0, 1\]"):
        rewire_masks([weight], [mask], 1.5, "set", gen(0))
    with pytest.raises(ValueError, match="does not match"):
        rewire_masks([weight], [mask.T[:2]], 0.5, "set", gen(0))


def test_update_generator_depends_on_seed_step_and_network_only() -> None:
    def draw(seed: int, step: int, network: str) -> list[int]:
        return torch.randperm(1000, generator=update_generator(seed, step, network))[:5].tolist()

    names = ("actor", "critic.qf0", "critic.qf1")
    assert draw(0, 250, "critic.qf0") == draw(0, 250, "critic.qf0")
    assert len({tuple(draw(s, t, n)) for s in (0, 1) for t in (250, 500) for n in names}) == 12


# -- planned gradient steps (T) -----------------------------------------------------------------


def simulate_sb3(total: int, n0: int, learning_starts: int, freq: int, gradient_steps: int, n_envs: int) -> int:
    """OffPolicyAlgorithm.learn with train_freq in steps, replayed step by step."""
    steps, n = 0, n0
    while n < total:
        for _ in range(freq):  # collect_rollouts: freq steps of every env
            n += n_envs
        if n > 0 and n > learning_starts:
            steps += gradient_steps if gradient_steps >= 0 else freq * n_envs
    return steps


@pytest.mark.parametrize("total", [0, 1, 99, 100, 101, 1000, 1003])
@pytest.mark.parametrize("n0", [0, 40, 150])
@pytest.mark.parametrize("learning_starts", [0, 100])
@pytest.mark.parametrize("freq, gradient_steps, n_envs", [(1, 1, 1), (1, -1, 1), (4, 2, 1), (3, -1, 2), (1, 1, 4), (8, 0, 1)])
def test_planned_gradient_steps_replays_sb3_learn(
    total: int, n0: int, learning_starts: int, freq: int, gradient_steps: int, n_envs: int
) -> None:
    expected = simulate_sb3(total, n0, learning_starts, freq, gradient_steps, n_envs)
    assert planned_gradient_steps(total, n0, learning_starts, freq, "step", gradient_steps, n_envs) == expected


def test_planned_gradient_steps_formula_examples() -> None:
    assert planned_gradient_steps(1_000_000, 0, 10_000, 1, "step", 1) == 990_000  # total - learning_starts
    assert planned_gradient_steps(300, 0, 50, 1, "step", 1) == 250
    assert planned_gradient_steps(1000, 0, 100, 1, "episode", -1) == 900  # estimate for episodic -1
    with pytest.raises(ValueError, match="episode"):
        planned_gradient_steps(1000, 0, 100, 1, "episode", 1)


def test_dynamic_module_does_not_import_sb3() -> None:
    code = "import sys, sb3_tar.core.dynamic; sys.exit(int('stable_baselines3' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
