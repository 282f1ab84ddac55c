"""Exploitation-exploration (IEECallback) on real SAC/TD3/TQC runs: during an exploration phase the active weights,
biases and their Adam moments are bit for bit what they were before it and only reactivated weights move (from
zero); the target networks stay masked with the active mask; after every phase each layer keeps exactly its count,
the largest |w| over active and explored weights; exploitation runs on the sparse kernel; FLOPs by hand."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from sb3_utils import ALGOS
from test_cyclic import Listen

from sb3_tar.baselines import IEECallback
from sb3_tar.core.iee import IEEConfig
from sb3_tar.core.masks import is_compressed
from sb3_tar.sb3.execution.enforcement import attached_enforcer
from sb3_tar.sb3.networks import sparse_networks

torch.set_num_threads(1)

# Every run: Pendulum-v1, net_arch [64, 64], learning_starts=100, learn(400): T = 300 gradient steps; interval 100,
# explore_steps 10, end_fraction 0.8 (end step 240): exploration phases at gradient steps 91..100 and 191..200, each
# followed by a prune-and-grow step (in each optimizer's first step after the phase). No update at 300 (> 240).
IEE = dict(sparsity=0.9, criterion="magnitude", update_interval=100, explore_steps=10, seed=0)
WINDOWS = [(91, 100), (191, 200)]


def make(algo: str) -> Any:
    kwargs = dict(learning_starts=100, batch_size=32, buffer_size=2_000, seed=0, device="cpu")
    policy_kwargs = dict(net_arch=[64, 64], **(dict(n_critics=2, n_quantiles=5) if algo == "tqc" else {}))
    return ALGOS[algo]("MlpPolicy", "Pendulum-v1", policy_kwargs=policy_kwargs, **kwargs)


def test_schedule_by_hand() -> None:
    config = IEEConfig(interval=100, explore_steps=10)
    explored = [t for t in range(1, 301) if config.explores(t, 300)]
    assert explored == [*range(91, 101), *range(191, 201)]
    assert config.window(95, 300) == (91, 100) and config.window(101, 300) is None
    assert config.updates_until(199, 300) == 1 and config.updates_until(300, 300) == 2
    with pytest.raises(ValueError, match=r"explore_steps=100 is outside the allowed range \[1, 99\]"):
        IEEConfig(interval=100, explore_steps=100)
    with pytest.raises(ValueError, match=r"interval=1 is outside"):
        IEEConfig(interval=1, explore_steps=1)
    with pytest.raises(ValueError, match="end_fraction"):
        IEECallback(end_fraction=0.0)


def _state_of(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in optimizer.state[param].items() if isinstance(v, torch.Tensor)}


@pytest.mark.parametrize("algo", ["sac", "td3", "tqc"])
def test_exploration_freezes_the_active_part_and_keeps_counts(algo: str) -> None:
    model = make(algo)
    clock = {"step": 0}
    snap: dict[str, dict[str, Any]] = {}  # per network, taken at its role's last pre-step before each phase
    counts: dict[str, list[int]] = {}
    checked = {"frozen": 0, "targets": 0, "moved": 0}
    after_phase: dict[str, list[torch.Tensor]] = {}  # weights at the end of each phase (restored), per network
    updates: list[tuple[str, list[int], list[int]]] = []

    def in_window(step: int) -> tuple[int, int] | None:
        return next((w for w in WINDOWS if w[0] <= step <= w[1]), None)

    def before(role: str, optimizer: torch.optim.Optimizer) -> None:  # before the explorer
        if role == "critic":
            clock["step"] += 1
        step = max(clock["step"], 1)
        enforcer = attached_enforcer(model.policy)
        for net in enforcer.role_networks(role):
            masks = [m.bool().clone() for m in enforcer.store.get(net.name)]
            counts.setdefault(net.name, [int(m.sum()) for m in masks])
            window = in_window(step)
            if window is not None and net.name not in snap:  # the role's first step of a phase: the state before it
                assert not any(is_compressed(layer) for layer in net.linears)  # exploration on the masked dense path
                snap[net.name] = {
                    "masks": masks,
                    "weights": [layer.weight.detach().clone() for layer in net.linears],
                    "bias": [layer.bias.detach().clone() for layer in net.linears],
                    "opt": [_state_of(optimizer, layer.weight) for layer in net.linears],
                    "opt_bias": [_state_of(optimizer, layer.bias) for layer in net.linears],
                    "end": window[1],
                }
            elif window is not None:  # inside a phase: targets were masked with the active mask when read
                for layer, mask in zip(net.target_layers, snap[net.name]["masks"]):
                    assert torch.all(layer.weight[~mask] == 0.0)
                    checked["targets"] += 1
            elif net.name in snap and step > snap[net.name]["end"]:  # the phase's end, before the prune-and-grow
                s = snap.pop(net.name)
                after_phase[net.name] = [layer.weight.detach().clone() for layer in net.linears]
                updates.append((net.name, [int(m.sum()) for m in s["masks"]], []))

    def after(role: str, optimizer: torch.optim.Optimizer) -> None:  # after the explorer restored the active part
        enforcer = attached_enforcer(model.policy)
        for net in enforcer.role_networks(role):
            s = snap.get(net.name)
            if s is None:
                continue
            for i, layer in enumerate(net.linears):
                active = s["masks"][i]
                w = layer.weight.detach()
                assert torch.equal(w[active], s["weights"][i][active])  # active weights: the same bits
                assert torch.equal(layer.bias.detach(), s["bias"][i])
                for key, value in _state_of(optimizer, layer.weight).items():
                    old = s["opt"][i][key]
                    if value.shape == active.shape:
                        assert torch.equal(value[active], old[active]), key  # Adam's moments at active positions
                    else:
                        assert torch.equal(value, old), key  # the step count
                for key, value in _state_of(optimizer, layer.bias).items():
                    assert torch.equal(value, s["opt_bias"][i][key]), key
                checked["frozen"] += 1
                if bool((w[~active] != 0).any()):
                    checked["moved"] += 1

    callback = IEECallback(**IEE)
    model.learn(400, callback=[callback, Listen(before, index=0, post=after)])
    runner = callback.runner
    assert checked["frozen"] > 0 and checked["targets"] > 0 and checked["moved"] > 0, checked
    enforcer = attached_enforcer(model.policy)
    names = [n.name for n in enforcer.networks]
    # every network: two prune-and-grow steps, each keeping every layer's count exactly
    assert sorted(n for _, n, _, _ in runner.history) == sorted(names * 2)
    for _end, name, kept, _grown in runner.history:
        assert kept == counts[name], name
    assert model.sb3_tar_schedule_state["updates"] == 2 and model.sb3_tar_schedule_state["exploring"] == {
        "actor": 0,
        "critic": 0,
    }
    for net in enforcer.networks:
        masks = [m.bool() for m in enforcer.store.get(net.name)]
        assert [int(m.sum()) for m in masks] == counts[net.name]
        for layers in (net.linears, net.target_layers):
            for layer, mask in zip(layers, masks):
                assert torch.all(layer.weight[~mask] == 0.0), net.name
    # SB3's logger (not yet dumped: 2 episodes < SAC/TD3's log_interval of 4): the last update's grown count under the
    # networks' logger names, as every other sb3-tar key has them
    last = {name: grown for _end, name, _kept, grown in runner.history}  # history in order: the last update wins
    logged = {k: v for k, v in model.logger.name_to_value.items() if k.startswith("iee/")}
    assert logged == {
        "iee/actor/grown": last["actor"],
        "iee/critic/qf0/grown": last["critic.qf0"],
        "iee/critic/qf1/grown": last["critic.qf1"],
    }
    # exploitation runs on the kernel: the sparse layers are converted back after the last phase
    assert any(is_compressed(layer) for net in enforcer.networks for layer in net.linears)


def test_prune_and_grow_keeps_the_largest_and_reactivated_start_from_zero() -> None:
    """SAC: at the first step of the phase every reactivated weight is 0.0 with zero Adam moments; after it, each
    layer's new mask is its count of largest |w| of the weights at the end of the phase (by hand, no ties)."""
    model = make("sac")
    clock = {"step": 0}
    seen: dict[str, Any] = {}

    def before(role: str, optimizer: torch.optim.Optimizer) -> None:  # before the explorer
        if role != "critic":
            return
        clock["step"] += 1
        net = attached_enforcer(model.policy).role_networks("critic")[0]
        if clock["step"] == 101:  # the critic's phase ended at 100; the explorer prunes and grows in this hook
            seen["weights"] = [layer.weight.detach().clone() for layer in net.linears]
            seen["counts"] = [int(m.sum()) for m in seen["active"]]

    def first_step(role: str, optimizer: torch.optim.Optimizer) -> None:  # after the explorer, before the step
        if role != "critic":
            return
        net = attached_enforcer(model.policy).role_networks("critic")[0]
        if clock["step"] == 91:
            seen["active"] = [m.bool().clone() for m in model.sb3_tar_schedule_state["active"][net.name]]
            for layer, active in zip(net.linears, seen["active"]):
                assert bool(layer.weight_mask.bool().all())  # online: every weight reactivated
                assert torch.all(layer.weight[~active] == 0.0)
                for key, value in optimizer.state[layer.weight].items():
                    if isinstance(value, torch.Tensor) and value.shape == active.shape:
                        assert torch.all(value[~active] == 0.0), key
        if clock["step"] == 101:
            for layer, w, k in zip(net.linears, seen["weights"], seen["counts"]):
                scores = w.abs().flatten()
                top = torch.zeros_like(scores, dtype=torch.bool)
                top[torch.topk(scores, k).indices] = True
                assert scores[top].min() > scores[~top].max()
                assert torch.equal(layer.weight_mask.bool().flatten(), top)
                seen["checked"] = seen.get("checked", 0) + 1

    callback = IEECallback(**IEE, sparse_execution=False)
    model.learn(400, callback=[callback, Listen(before, index=0), Listen(first_step)])
    assert seen.get("checked") == 3


def test_flops_count_exploration_dense() -> None:
    """SAC: 20 exploration steps at the dense cost, 280 at the mask's (counts constant)."""
    model = make("sac")
    callback = IEECallback(**IEE, sparse_execution=False)
    model.learn(400, callback=callback)
    nets = sparse_networks(model.policy)
    total = sum(
        2 * sum(layer.weight.numel() for layer in n.linears) + sum(layer.out_features for layer in n.linears) for n in nets
    )
    sparse = sum(
        2 * sum(int(layer.weight_mask.sum()) for layer in n.linears) + sum(layer.out_features for layer in n.linears)
        for n in nets
    )
    assert callback.training_flops == pytest.approx((20 * total + 280 * sparse) / (300 * total), rel=1e-12)
