"""The DST prune criteria of Nowak et al. 2023: each drops exactly the active positions its formula ranks lowest.

The expected positions are computed here independently, in numpy, from the formulas written out in
docs/method.md, and compared with what SET and RigL drop (sb3_tar.core.dynamic.rewire_masks).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback

from sb3_tar.callbacks import DSTCallback
from sb3_tar.core.dynamic import DSTConfig, rewire_masks
from sb3_tar.core.prune_criteria import GRADIENT_CRITERIA, PRUNE_CRITERIA, drop_positions, needs_gradient
from sb3_tar.core.selection import sample_positions, top_k_mask
from sb3_tar.sb3.execution.enforcement import attached_enforcer
from sb3_tar.sb3.methods.rewiring import STATE_ATTRIBUTE, attached_rewirer
from sb3_tar.sb3.reporting.model_masks import sparsity_summary

EPS = 1e-8  # the sensitivity criteria's eps, docs/method.md


def formula(criterion: str, w: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The scores of docs/method.md's table, in numpy (lowest dropped)."""
    return {
        "magnitude": lambda: np.abs(w),
        "mest": lambda: np.abs(w) + 1.0 * np.abs(g),
        "snip": lambda: np.abs(w * g),
        "sensitivity": lambda: np.abs(g) / (np.abs(w) + EPS),
        "reciprocal_sensitivity": lambda: np.abs(w) / (np.abs(g) + EPS),
    }[criterion]()


def lowest_active(scores: np.ndarray, mask: np.ndarray, k: int) -> set[int]:
    active = np.flatnonzero(mask)
    order = active[np.argsort(scores.ravel()[active], kind="stable")]
    return set(order[:k].tolist())


def layer(
    seed: int, shape: tuple[int, int] = (12, 9), density: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(shape, generator=gen, dtype=torch.float64).float()
    grad = torch.randn(shape, generator=gen, dtype=torch.float64).float() * 0.1
    mask = torch.rand(shape, generator=gen) < density
    weight = weight * mask  # inactive weights are exactly 0, as in training
    return weight, mask, grad


def positions(t: torch.Tensor) -> set[int]:
    return set(np.flatnonzero(t.flatten().numpy()).tolist())


@pytest.mark.parametrize("criterion", ["magnitude", "mest", "snip", "sensitivity", "reciprocal_sensitivity"])
@pytest.mark.parametrize("method", ["set", "rigl"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_score_criterion_drops_the_lowest_scored_active_weights(criterion: str, method: str, seed: int) -> None:
    weights, masks, grads = zip(*(layer(seed * 10 + i, shape) for i, shape in enumerate([(12, 9), (7, 12), (3, 7)])))
    fraction = 0.3
    result = rewire_masks(
        list(weights), list(masks), fraction, method, torch.Generator().manual_seed(5), list(grads), criterion
    )
    for w, m, g, dropped, grown, new in zip(weights, masks, grads, result.dropped, result.grown, result.masks):
        kept = int(m.sum())
        k = min(round(fraction * kept), kept, m.numel() - kept)
        assert k > 0
        expected = lowest_active(formula(criterion, w.double().numpy(), g.double().numpy()), m.numpy(), k)
        assert positions(dropped) == expected
        assert int(new.sum()) == kept and not (grown & m).any()  # growth is untouched by the criterion


def test_set_criterion_drops_smallest_positive_and_largest_negative_halves() -> None:
    w, m, _ = layer(7, (20, 20))
    wn, mn = w.double().numpy().ravel(), m.numpy().ravel()
    for k in (1, 2, 7, 30):
        dropped = drop_positions("sign_balanced_magnitude", w, m, k, torch.Generator().manual_seed(0))
        pos = [i for i in np.argsort(wn) if mn[i] and wn[i] > 0]  # ascending: smallest positive first
        neg = [i for i in np.argsort(-wn) if mn[i] and wn[i] <= 0]  # descending: closest to zero first
        expected = set(pos[: math.ceil(k / 2)]) | set(neg[: k // 2])
        assert positions(dropped) == expected and len(expected) == k


def test_set_criterion_takes_the_missing_quota_from_the_other_sign() -> None:
    w = torch.tensor([[0.5, 0.1, -0.2, -0.3, -0.05, -0.9]])
    m = torch.tensor([[True, False, True, True, True, True]])  # one active positive weight (0.5)
    dropped = drop_positions("sign_balanced_magnitude", w, m, 4, torch.Generator().manual_seed(0))
    # 4 -> 2 positive + 2 negative; only 1 positive is active, so 3 negatives: -0.05, -0.2, -0.3.
    assert positions(dropped) == {0, 4, 2, 3}


def test_random_criterion_draws_k_active_positions_uniformly_and_reproducibly() -> None:
    w, m, _ = layer(3, (6, 6))
    k = 4
    first = drop_positions("random", w, m, k, torch.Generator().manual_seed(11))
    again = drop_positions("random", w, m, k, torch.Generator().manual_seed(11))
    assert torch.equal(first, again) and int(first.sum()) == k and not (first & ~m).any()
    counts = torch.zeros(m.shape)
    runs = 600
    for s in range(runs):
        counts += drop_positions("random", w, m, k, torch.Generator().manual_seed(s)).float()
    expected = runs * k / int(m.sum())
    assert (counts[~m] == 0).all()
    assert ((counts[m] - expected).abs() < 5 * math.sqrt(expected)).all()  # every active position about equally often
    assert set(counts[m].tolist()) != {expected}  # not a fixed pattern


def test_magnitude_default_is_the_previous_drop_step_bit_for_bit() -> None:
    """The default drop consumes the generator exactly as before, so existing SET/RigL runs are unchanged."""
    for seed in range(5):
        w, m, _ = layer(seed, (16, 16))
        w = torch.round(w * 4) / 4 * m  # many ties, broken by the generator
        kept, k = int(m.sum()), 20
        gen_old, gen_new = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        magnitude = w.abs().double().masked_fill(~m, -math.inf)
        old = m & ~top_k_mask(magnitude, kept - k, gen_old)
        new = drop_positions("magnitude", w, m, k, gen_new)
        assert torch.equal(old, new)
        assert torch.equal(sample_positions(~m, k, gen_old), sample_positions(~m, k, gen_new))  # same draws after


def test_gradient_criteria_refuse_a_missing_gradient_and_bad_names() -> None:
    w, m, _ = layer(0)
    assert set(GRADIENT_CRITERIA) == {c for c in PRUNE_CRITERIA if needs_gradient(c)}
    for criterion in GRADIENT_CRITERIA:
        with pytest.raises(ValueError, match="needs the dense gradient"):
            drop_positions(criterion, w, m, 3, torch.Generator().manual_seed(0), None)
    with pytest.raises(ValueError, match="prune_criterion"):
        drop_positions("largest", w, m, 3, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="prune_criterion"):
        DSTConfig("set", 10, 0.3, prune_criterion="grasp")
    with pytest.raises(ValueError, match="outside the allowed range"):
        drop_positions("magnitude", w, m, int(m.sum()) + 1, torch.Generator().manual_seed(0))


# -- in real SAC/TD3 runs: the gradient criteria read the dense gradient in the optimizer's pre-step hook ----------


class DropProbe(BaseCallback):
    """Snapshots weights and gradients in the pre-step hook (before the rewirer) and checks every drop against them."""

    def __init__(self, criterion: str) -> None:
        super().__init__()
        self.criterion = criterion
        self.seen: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.checked = 0

    def _on_training_start(self) -> None:
        self.rewirer = attached_rewirer(self.model.policy)
        self.enforcer = attached_enforcer(self.model.policy)
        self.enforcer.pre_step_listeners.insert(0, self.snapshot)
        self.rewirer.update_listeners.append(self.check)

    def snapshot(self, role: str, optimizer: torch.optim.Optimizer) -> None:
        for net in self.enforcer.role_networks(role):
            self.seen[net.name] = [
                (layer.weight.detach().double().numpy().copy(), layer.weight.grad.detach().double().numpy().copy())
                for layer in net.linears
            ]

    def check(self, update: Any, net: Any, result: Any) -> None:
        for (w, g), dropped, previous in zip(self.seen[net.name], result.dropped, result.previous):
            scores = formula(self.criterion, w, g)
            d, kept = dropped.numpy(), (previous & ~dropped).numpy()
            if d.any() and kept.any():
                assert scores[d].max() <= scores[kept].min()  # every dropped weight ranks at or below every survivor
                self.checked += 1
        assert update.dropped == [int(d.sum()) for d in result.dropped] == update.grown

    def _on_step(self) -> bool:
        return True


@pytest.mark.parametrize(
    "algo, method, criterion",
    [(SAC, "set", "snip"), (SAC, "rigl", "sensitivity"), (TD3, "rigl", "mest"), (TD3, "set", "reciprocal_sensitivity")],
)
def test_gradient_criteria_in_training_read_the_pre_step_gradient(algo: type, method: str, criterion: str) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only add overhead
    try:
        _run_gradient_criterion(algo, method, criterion)
    finally:
        torch.set_num_threads(threads)


def _run_gradient_criterion(algo: type, method: str, criterion: str) -> None:
    model = algo("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=64, seed=0, policy_kwargs=dict(net_arch=[32, 32]))
    # The masked path, where each layer's .grad is the dense gradient the probe reads; on the sparse kernel the same
    # gradient is formed from the layer's recorded inputs and output gradients (tests/test_dst_kernel.py: same masks).
    callback = DSTCallback(
        method=method, sparsity=0.8, update_interval=25, prune_criterion=criterion, seed=1, sparse_execution=False
    )
    probe = DropProbe(criterion)
    model.learn(200, callback=[callback, probe])
    networks = {u.network for u in callback.rewirer.history}
    assert networks == {"actor", "critic.qf0", "critic.qf1"} and probe.checked >= 3 * len(networks)
    assert getattr(model, STATE_ATTRIBUTE)["prune_criterion"] == criterion
    assert all(s["pruned_nonzero"] == 0 for s in sparsity_summary(model).values())


@pytest.mark.parametrize("criterion", PRUNE_CRITERIA)
@pytest.mark.parametrize("method", ["set", "rigl"])
def test_every_prune_criterion_runs_real_mask_updates_with_set_and_rigl(method: str, criterion: str) -> None:
    """SET and RigL with each prune criterion, as a user runs them (default sparse execution): SAC on Pendulum-v1,
    100 gradient steps, an update every 20 until T_end = 80 (updates at 20, 40 and 60): each network drops and
    grows weights at every update, keeps its exact count, and pruned weights stay 0.0."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = SAC(
            "MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=64, seed=0, policy_kwargs=dict(net_arch=[32, 32])
        )
        callback = DSTCallback(method=method, sparsity=0.8, update_interval=20, prune_criterion=criterion, seed=1)
        model.learn(150, callback=callback)
    finally:
        torch.set_num_threads(threads)
    history = callback.rewirer.history
    for name in ("actor", "critic.qf0", "critic.qf1"):
        updates = [u for u in history if u.network == name]
        assert [u.step for u in updates] == [20, 40, 60], name
        assert all(sum(u.dropped) > 0 and u.dropped == u.grown for u in updates), name
    assert getattr(model, STATE_ATTRIBUTE)["prune_criterion"] == criterion
    summary = sparsity_summary(model)
    assert all(s["pruned_nonzero"] == 0 for s in summary.values())
    assert {name: s["kept"] for name, s in summary.items()} == {"actor": 237, "critic.qf0": 237, "critic.qf1": 237}
