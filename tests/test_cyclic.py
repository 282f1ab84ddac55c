"""Cyclic sparse training and SCULPT (CyclicCallback, SculptCallback) on real SAC/TD3/TQC runs: the learning rate of
the actor and critic optimizers at chosen gradient steps of a cycle against hand-computed values, SCULPT's single
prune at its step with the exact per-network and per-layer counts of a magnitude ranking (online and target), the
training FLOPs, and the settings' validation."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from sb3_utils import ALGOS
from stable_baselines3.common.callbacks import BaseCallback

from sb3_tar.baselines import CyclicCallback, SculptCallback
from sb3_tar.core.cyclic import CyclicSchedule, SculptPlan, sculpt_start_sparsity
from sb3_tar.core.masks import is_compressed
from sb3_tar.sb3.execution.enforcement import attached_enforcer
from sb3_tar.sb3.networks import sparse_networks

torch.set_num_threads(1)

# Every run: Pendulum-v1, net_arch [64, 64], learning_starts=100, learn(400): T = 300 gradient steps.
# cycles=3: cycle 1 = steps 1..100, cycle 2 = 101..200, cycle 3 = 201..300 (L = 100), warm-up W = round(0.1 * 100) = 10,
# min_factor 0: f_t = (p + 1) / 10 for p = t - start - 1 < 10, then (1 + cos(pi (p - 10) / 90)) / 2.
BASE_LR = {"sac": 3e-4, "td3": 1e-3}  # SB3's default learning rates
HAND_FACTORS = {
    1: 0.1,
    5: 0.5,
    10: 1.0,
    11: 1.0,  # p = 10: q = 0
    55: (1 + math.cos(math.pi * 44 / 90)) / 2,  # p = 54
    100: (1 + math.cos(math.pi * 89 / 90)) / 2,  # p = 99, the cycle's last step
    101: 0.1,  # the second cycle starts again
    146: (1 + math.cos(math.pi * 35 / 90)) / 2,  # p = 45
    201: 0.1,
    300: (1 + math.cos(math.pi * 89 / 90)) / 2,
}


def make(algo: str) -> Any:
    kwargs = dict(learning_starts=100, batch_size=32, buffer_size=2_000, seed=0, device="cpu")
    policy_kwargs = dict(net_arch=[64, 64], **(dict(n_critics=2, n_quantiles=5) if algo == "tqc" else {}))
    return ALGOS[algo]("MlpPolicy", "Pendulum-v1", policy_kwargs=policy_kwargs, **kwargs)


class Listen(BaseCallback):
    """Adds ``listener(role, optimizer)`` to the enforcer's pre-step listeners on training start, at ``index``
    (0: before the method's runner, which listens from the start of the method's callback), and ``post`` to its
    post-step listeners (after the method's)."""

    def __init__(self, listener: Any = None, index: int | None = None, post: Any = None) -> None:
        super().__init__()
        self.listener, self.index, self.post = listener, index, post

    def _on_training_start(self) -> None:
        enforcer = attached_enforcer(self.model.policy)
        if self.listener is not None:
            listeners = enforcer.pre_step_listeners
            listeners.insert(len(listeners) if self.index is None else self.index, self.listener)
        if self.post is not None:
            enforcer.post_step_listeners.append(self.post)

    def _on_step(self) -> bool:
        return True


def test_schedule_by_hand() -> None:
    schedule = CyclicSchedule(cycles=3)
    for step, factor in HAND_FACTORS.items():
        assert schedule.factor(step, 300) == pytest.approx(factor, rel=1e-12, abs=1e-15), step
    linear = CyclicSchedule(cycles=2, warmup_fraction=0.0, min_factor=0.5, shape="linear")  # L = 5, W = 0
    assert [linear.factor(t, 10) for t in range(1, 11)] == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6] * 2)
    assert CyclicSchedule(cycles=3).factor(400, 300) == CyclicSchedule(cycles=3).factor(300, 300)  # past the plan
    assert CyclicSchedule(cycles=5).factor(3, 4) == 1.0  # fewer steps than cycles: no schedule
    assert SculptPlan(CyclicSchedule(cycles=3), 2).prune_step(300) == 201
    assert sculpt_start_sparsity(0.9) == pytest.approx(0.8) and sculpt_start_sparsity(0.3) == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cycles=0), "cycles=0 is outside"),
        (dict(warmup_fraction=1.0), "warmup_fraction"),
        (dict(min_factor=1.5), "min_factor"),
        (dict(shape="step"), "Unknown shape"),
    ],
)
def test_cyclic_settings_are_checked(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CyclicCallback(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cycles=1), r"cycles=1 is outside the allowed range \[2, inf\)"),
        (dict(cycles=4, prune_cycle=4), r"prune_cycle=4 is outside the allowed range \[1, 3\]"),
        (dict(start_sparsity=0.95), r"start_sparsity=0.95 is outside the allowed range \[0, 0.9\]"),
        (dict(magnitude_scope="erk"), "Unknown scope"),
    ],
)
def test_sculpt_settings_are_checked(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SculptCallback(sparsity=0.9, **kwargs)
    with pytest.raises(TypeError, match=r"start_sparsity must be a number, got '0.5' \(str\)"):
        SculptCallback(sparsity=0.9, start_sparsity="0.5")


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_learning_rate_at_chosen_steps_of_a_cycle(algo: str) -> None:
    """The actor and critic optimizers' learning rate at every optimizer step is the model's own rate (SAC 3e-4, TD3
    1e-3) times the hand factor of that gradient step (TD3's actor steps every second gradient step); SAC's entropy
    coefficient keeps 3e-4."""
    base = BASE_LR[algo]
    seen: dict[str, dict[int, float]] = {"actor": {}, "critic": {}}
    clock = {"step": 0}

    def record(role: str, optimizer: torch.optim.Optimizer) -> None:  # after the runner: the rate the step uses
        if role == "critic":
            clock["step"] += 1
        seen[role][clock["step"]] = optimizer.param_groups[0]["lr"]
        assert all(group["lr"] == optimizer.param_groups[0]["lr"] for group in optimizer.param_groups)

    model = make(algo)
    callback = CyclicCallback(sparsity=0.9, cycles=3, seed=0)
    model.learn(400, callback=[callback, Listen(record)])
    assert len(seen["critic"]) == 300
    assert len(seen["actor"]) == (300 if algo == "sac" else 150)
    for step, factor in HAND_FACTORS.items():
        assert seen["critic"][step] == pytest.approx(base * factor, rel=1e-12, abs=1e-18), step
        if step in seen["actor"]:
            assert seen["actor"][step] == pytest.approx(base * factor, rel=1e-12, abs=1e-18), step
    for step, lr in seen["actor"].items():  # every actor step: the factor of its gradient step
        assert lr == pytest.approx(base * CyclicSchedule(cycles=3).factor(step, 300), rel=1e-12, abs=1e-18)
    if algo == "sac":
        assert model.ent_coef_optimizer.param_groups[0]["lr"] == base
    state = model.sb3_tar_schedule_state
    assert state["step"] == 300 and state["method"] == "cyclic"
    # a static mask: the training FLOPs are the mask's, sum_n (2 K_n + B_n) / sum_n (2 N_n + B_n)
    nets = sparse_networks(model.policy)
    kept = {n.name: sum(int(m.sum()) for m in (layer.weight_mask for layer in n.linears)) for n in nets}
    total = {n.name: sum(layer.weight_mask.numel() for layer in n.linears) for n in nets}
    bias = {n.name: sum(layer.out_features for layer in n.linears) for n in nets}
    expected = sum(2 * kept[k] + bias[k] for k in kept) / sum(2 * total[k] + bias[k] for k in kept)
    assert callback.training_flops == pytest.approx(expected, rel=1e-12)


def _expected_masks(weights: list[torch.Tensor], masks: list[torch.Tensor], n_keep: int) -> list[torch.Tensor]:
    """By hand: the n_keep largest |w| among the kept weights of the whole network."""
    scores = torch.cat([w.detach().abs().double().masked_fill(~m.bool(), -1.0).flatten() for w, m in zip(weights, masks)])
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    chosen[torch.topk(scores, n_keep).indices] = True
    assert scores[chosen].min() > scores[~chosen].max()  # no tie at the threshold
    return [part.view_as(w) for part, w in zip(torch.split(chosen, [w.numel() for w in weights]), weights)]


@pytest.mark.parametrize("algo, sparse_execution", [("sac", False), ("sac", True), ("td3", False), ("tqc", False)])
def test_sculpt_prunes_once_at_its_step_to_exact_counts(algo: str, sparse_execution: bool) -> None:
    """cycles=3, prune_cycle=2: the prune is at gradient step t_p = 2 * 300 // 3 + 1 = 201. Every network keeps
    round(0.2 N) weights before it (the starting mask at sparsity 0.8) and exactly round(0.1 N) from it on: the
    largest |w| among its kept weights just before the prune, read from the weights; the kept count changes once.
    With sparse_execution the layers are on the kernel from the start and shrink in place."""
    model = make(algo)
    networks = {n.name: n for n in sparse_networks(model.policy)}
    sizes = {name: sum(layer.weight.numel() for layer in n.linears) for name, n in networks.items()}
    kept_by_step: dict[str, dict[int, int]] = {name: {} for name in sizes}
    expected: dict[str, list[torch.Tensor]] = {}
    clock = {"step": 0}

    def dense_weights(net: Any) -> list[torch.Tensor]:
        return [layer.weight.detach().clone() for layer in net.linears]

    def before(role: str, optimizer: torch.optim.Optimizer) -> None:  # before the runner
        if role == "critic":
            clock["step"] += 1
        step = clock["step"]
        enforcer = attached_enforcer(model.policy)
        for net in enforcer.role_networks(role):
            masks = [m.bool().clone() for m in enforcer.store.get(net.name)]
            kept_by_step[net.name][step] = sum(int(m.sum()) for m in masks)
            if net.name not in expected and sum(int(m.sum()) for m in masks) == round(0.2 * sizes[net.name]) and step >= 201:
                expected[net.name] = _expected_masks(dense_weights(net), masks, round(0.1 * sizes[net.name]))

    callback = SculptCallback(sparsity=0.9, cycles=3, seed=0, sparse_execution=sparse_execution)
    model.learn(400, callback=[callback, Listen(before, index=0)])
    runner = callback.runner
    assert runner.prune_step == 201
    critic_steps = {name: [step for step, n, _ in runner.history if n == name] for name in sizes}
    actor_step = 202 if algo == "td3" else 201  # TD3's actor steps at even gradient steps
    for name, steps in critic_steps.items():
        assert steps == [actor_step if name == "actor" else 201], (name, runner.history)
    for name, total in sizes.items():
        counts = kept_by_step[name]
        first = actor_step if name == "actor" else 201
        assert {k for s, k in counts.items() if s < first} == {round(0.2 * total)}, name
    enforcer = attached_enforcer(model.policy)
    for net in enforcer.networks:
        masks = [m.bool() for m in enforcer.store.get(net.name)]
        want = expected[net.name]
        assert [int(m.sum()) for m in masks] == [int(w.sum()) for w in want], net.name  # per layer, by hand
        assert sum(int(m.sum()) for m in masks) == round(0.1 * sizes[net.name])
        for mask, w in zip(masks, want):
            assert torch.equal(mask.cpu(), w), net.name
        for layers in (net.linears, net.target_layers):
            for layer, mask in zip(layers, masks):
                assert torch.all(layer.weight[~mask] == 0.0), net.name
        for layer, mask in zip(net.target_layers, masks):
            assert torch.equal(layer.weight_mask.bool() if not is_compressed(layer) else layer.mask, mask), net.name
    for name, counts in kept_by_step.items():  # from the prune on, the target count at every step
        first = actor_step if name == "actor" else 201
        assert {k for s, k in counts.items() if s > first} == {round(0.1 * sizes[name])}, name
    if sparse_execution:
        assert callback.sparse_layers and any(is_compressed(layer) for net in enforcer.networks for layer in net.linears)
    # FLOPs: the starting mask's cost for 200 steps, the target's for 100 (the actor counted at the critic's step)
    state = model.sb3_tar_schedule_state
    assert state["flops_steps"] == 300 and state["critic_pruned"] == 201 and state["actor_pruned"] == actor_step
    # SB3's logger (recorded at the prune, not yet dumped: 2 episodes < SAC/TD3's log_interval of 4): the kept count
    # under the networks' logger names, as every other sb3-tar key has them (TensorBoard groups the Q-networks)
    logged = {k: v for k, v in model.logger.name_to_value.items() if k.startswith("sculpt/")}
    assert logged == {
        "sculpt/actor/kept": round(0.1 * sizes["actor"]),
        "sculpt/critic/qf0/kept": round(0.1 * sizes["critic.qf0"]),
        "sculpt/critic/qf1/kept": round(0.1 * sizes["critic.qf1"]),
    }


def test_sculpt_flops_by_hand() -> None:
    """SAC: 200 steps at the starting counts, 100 at the target counts (the actor's prune at 201 comes after the
    critic's hook has counted step 201 with the actor's starting count)."""
    model = make("sac")
    callback = SculptCallback(sparsity=0.9, cycles=3, seed=0, sparse_execution=False)
    model.learn(400, callback=callback)
    nets = sparse_networks(model.policy)
    total = {n.name: sum(layer.weight.numel() for layer in n.linears) for n in nets}
    bias = {n.name: sum(layer.out_features for layer in n.linears) for n in nets}
    start = {k: round(0.2 * v) for k, v in total.items()}
    end = {k: round(0.1 * v) for k, v in total.items()}

    def cost(kept: dict[str, int]) -> int:
        return sum(2 * kept[k] + bias[k] for k in kept)

    at_201 = cost({k: (start[k] if k == "actor" else end[k]) for k in total})
    flops = 200 * cost(start) + at_201 + 99 * cost(end)
    assert callback.training_flops == pytest.approx(flops / (300 * cost(total)), rel=1e-12)
