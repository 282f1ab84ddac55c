"""Gradual magnitude pruning (GMPCallback) on real SAC/TD3/TQC runs: the exact kept count of every network at every
gradient step against hand-computed numbers, the magnitude ranking of each prune, pruned weights at 0.0 online
and in the targets, a fixed mask after t1, the sparse kernel after t1, the integrated training FLOPs (SAC), and a run
saved mid-schedule resumed in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from typing import Any

import pytest
import torch
from cli_utils import cli_env
from sb3_utils import ALGOS
from stable_baselines3.common.callbacks import BaseCallback

from sb3_tar.baselines import GMPCallback
from sb3_tar.callbacks import TARCallback
from sb3_tar.core.gmp import cubic_progress, is_prune_step, kept_at, last_prune_step

torch.set_num_threads(1)

# The setting of every run here: Pendulum-v1, net_arch [32, 32], learning_starts=100 and learn(400):
# T = 300 gradient steps, t0 = round(0.2 * 300) = 60, t1 = round(0.8 * 300) = 240, interval 50.
# Prune steps: 110, 160, 210 (60 + k * 50 < 240) and 240.
# c_t = 1 - (1 - (t - 60) / 180)^3:  c_110 = 1 - (13/18)^3 = 3635/5832,  c_160 = 1 - (4/9)^3 = 665/729,
#                                    c_210 = 1 - (1/6)^3 = 215/216,      c_240 = 1.
# Weights N per network (3 observations, 1 action):
#   SAC actor  3*32 + 32*32 + 32*1 (mu) + 32*1 (log_std) = 1184;  Q-network 4*32 + 32*32 + 32*1 = 1184;
#   TD3 actor  3*32 + 32*32 + 32*1 = 1152;  TQC Q-network (5 quantiles) 4*32 + 32*32 + 32*5 = 1312.
# K_f = round(0.1 N): 118 (N = 1184), 115 (N = 1152), 131 (N = 1312). K_t = N - floor(c_t (N - K_f) + 1/2):
#   N = 1184, N - K_f = 1066: 3635*1066/5832 = 664.42 -> 520;  665*1066/729 = 972.41 -> 212;
#                             215*1066/216 = 1061.06 -> 123;   1066 -> 118.
#   N = 1152, N - K_f = 1037: 3635*1037/5832 = 646.35 -> 506;  665*1037/729 = 945.96 -> 206;
#                             215*1037/216 = 1032.20 -> 120;   1037 -> 115.
#   N = 1312, N - K_f = 1181: 3635*1181/5832 = 736.10 -> 576;  665*1181/729 = 1077.30 -> 235;
#                             215*1181/216 = 1175.53 -> 136;   1181 -> 131.
SCHEDULE = {
    1184: {110: 520, 160: 212, 210: 123, 240: 118},
    1152: {110: 506, 160: 206, 210: 120, 240: 115},
    1312: {110: 576, 160: 235, 210: 136, 240: 131},
}
GMP = dict(sparsity=0.9, update_interval=50, seed=3)


def make(algo: str) -> Any:
    """A fresh model of the setting above (SB3 adds keys to the policy_kwargs it is given: never share them)."""
    kwargs = dict(learning_starts=100, batch_size=32, buffer_size=2_000, seed=0, device="cpu")
    policy_kwargs = dict(net_arch=[32, 32], **(dict(n_critics=2, n_quantiles=5) if algo == "tqc" else {}))
    return ALGOS[algo]("MlpPolicy", "Pendulum-v1", policy_kwargs=policy_kwargs, **kwargs)


def expected_kept(n_total: int, step: int) -> int:
    """Hand schedule above: the count of the latest prune step <= step (N before the first)."""
    due = [t for t in SCHEDULE[n_total] if t <= step]
    return SCHEDULE[n_total][max(due)] if due else n_total


class Observer(BaseCallback):
    """Records, after every optimizer step, each network's mask counts, whether its pruned weights are 0.0 online
    and in its target, and checks each prune against the weights the network had just before it."""

    def __init__(self) -> None:
        super().__init__()
        self.step = 0
        self.records: list[dict[str, Any]] = []
        self.ranking_checks = 0
        self.problems: list[str] = []

    def _networks(self) -> dict[str, tuple[str, list, list]]:
        policy = self.model.policy
        out = {}
        actor_target = getattr(policy, "actor_target", None)
        linears = lambda m: [x for x in m.modules() if isinstance(x, torch.nn.Linear)]  # noqa: E731
        out["actor"] = ("actor", linears(policy.actor), linears(actor_target) if actor_target is not None else [])
        for i, (q, qt) in enumerate(zip(policy.critic.q_networks, policy.critic_target.q_networks)):
            out[f"critic.qf{i}"] = ("critic", linears(q), linears(qt))
        return out

    def _on_training_start(self) -> None:
        nets = self._networks()
        self.before = {name: [layer.weight.detach().clone() for layer in online] for name, (_, online, _) in nets.items()}
        self.masks = {name: [layer.weight_mask.bool().clone() for layer in online] for name, (_, online, _) in nets.items()}
        for role in ("critic", "actor"):
            getattr(self.model.policy, role).optimizer.register_step_post_hook(lambda *a, role=role: self._after(role))

    def _after(self, role: str) -> None:
        if role == "critic":
            self.step += 1
        for name, (net_role, online, target) in self._networks().items():
            if net_role != role:
                continue
            masks = [layer.weight_mask.bool().clone() for layer in online]
            old = self.masks[name]
            if not all(torch.equal(m & o, m) for m, o in zip(masks, old)):
                self.problems.append(f"{name}: mask grew at step {self.step}")
            if sum(int(m.sum()) for m in masks) != sum(int(m.sum()) for m in old):  # a prune happened: check the ranking
                kept = torch.cat([w.abs()[m] for w, m in zip(self.before[name], masks)])
                dropped = torch.cat([w.abs()[o & ~m] for w, m, o in zip(self.before[name], masks, old)])
                if kept.min() < dropped.max():
                    self.problems.append(f"{name}: a pruned |w| beats a kept one at step {self.step}")
                self.ranking_checks += 1
            bad = sum(int((layer.weight[~m] != 0).sum()) for layers in (online, target) for layer, m in zip(layers, masks))
            if target and not all(torch.equal(t.weight_mask.bool(), m) for t, m in zip(target, masks)):
                self.problems.append(f"{name}: target mask differs at step {self.step}")
            self.records.append({"step": self.step, "network": name, "kept": sum(int(m.sum()) for m in masks), "bad": bad})
            self.masks[name] = masks
            self.before[name] = [layer.weight.detach().clone() for layer in online]

    def _on_step(self) -> bool:
        return True


@pytest.mark.parametrize("algo", ["sac", "td3", "tqc"])
def test_gmp_kept_counts_follow_the_hand_computed_schedule(algo: str) -> None:
    model = make(algo)
    observer = Observer()
    gmp = GMPCallback(**GMP, sparse_execution=False)
    model.learn(400, callback=[gmp, observer])
    assert observer.step == 300 and model.sb3_tar_gmp_state["step"] == 300
    assert observer.problems == []
    q_total = 1312 if algo == "tqc" else 1184
    totals = {"actor": 1152 if algo == "td3" else 1184, "critic.qf0": q_total, "critic.qf1": q_total}
    seen = {name: set() for name in totals}
    for record in observer.records:
        assert record["kept"] == expected_kept(totals[record["network"]], record["step"]), record
        assert record["bad"] == 0, record
        seen[record["network"]].add(record["kept"])
    for name, n_total in totals.items():  # every count of the schedule was met, dense included
        assert seen[name] == {n_total, *SCHEDULE[n_total].values()}, name
    assert observer.ranking_checks == 3 * 4  # each network pruned at the 4 prune steps, each checked
    # fixed after t1: every record from step 240 on has the final mask of its network
    final = {name: [m.clone() for m in masks] for name, masks in observer.masks.items()}
    assert all(r["kept"] == SCHEDULE[totals[r["network"]]][240] for r in observer.records if r["step"] >= 241)
    for name, masks in final.items():
        assert sum(int(m.sum()) for m in masks) == SCHEDULE[totals[name]][240]
    if algo == "sac":
        # Training FLOPs integrated over the run. Per step and sample a network costs 2K + B, with B = 32 + 32 + 1 + 1
        # = 66 (actor) and 65 (Q-network): dense 3 * 2 * 1184 + 66 + 65 + 65 = 7300 per step. Gradient steps 1-109
        # are dense, 110-159 at K = 520, 160-209 at 212, 210-239 at 123, 240-300 at 118 (all three networks).
        cost = {k: 6 * k + 196 for k in (1184, 520, 212, 123, 118)}
        expected = (109 * cost[1184] + 50 * cost[520] + 50 * cost[212] + 30 * cost[123] + 61 * cost[118]) / (300 * 7300)
        assert gmp.training_flops == pytest.approx(expected, rel=1e-12)  # 1118064 / 2190000 = 0.5105


def test_gmp_pure_schedule_matches_the_hand_numbers() -> None:
    t0, t1 = 60, 240
    assert [t for t in range(1, 301) if is_prune_step(t, t0, t1, 50)] == [110, 160, 210, 240]
    assert [last_prune_step(t, t0, t1, 50) for t in (1, 109, 110, 159, 160, 239, 240, 300)] == [
        0,
        0,
        110,
        110,
        160,
        210,
        240,
        240,
    ]
    assert cubic_progress(110, t0, t1) == Fraction(3635, 5832) and cubic_progress(160, t0, t1) == Fraction(665, 729)
    for n_total, counts in SCHEDULE.items():
        n_final = round(0.1 * n_total)
        assert {t: kept_at(cubic_progress(t, t0, t1), n_total, n_final) for t in counts} == counts
        assert kept_at(cubic_progress(t0, t0, t1), n_total, n_final) == n_total


def _layers(policy) -> dict[str, tuple[torch.nn.Linear, torch.nn.Linear | None]]:
    """``{"<network>/<layer>": (online layer, target layer or None)}`` of a SAC policy."""
    out = {f"actor/{n}": (m, None) for n, m in policy.actor.named_modules() if isinstance(m, torch.nn.Linear)}
    for i, (q, qt) in enumerate(zip(policy.critic.q_networks, policy.critic_target.q_networks)):
        targets = dict(qt.named_modules())
        out |= {f"critic.qf{i}/{n}": (m, targets[n]) for n, m in q.named_modules() if isinstance(m, torch.nn.Linear)}
    return out


def test_gmp_moves_layers_onto_the_sparse_kernel_below_the_threshold_and_prunes_them_there(tmp_path) -> None:
    """A layer moves onto the kernel right after the prune that takes it below density 0.3 (by the prune at 160 at the
    latest: 212 kept weights are below 0.3 of the 1024 of the hidden layer), later prunes shrink it there with its Adam
    state, the final counts stay exact, and the saved model loads with the same layers on the kernel."""
    from stable_baselines3 import SAC

    from sb3_tar.kernels import SparseLinear

    model = make("sac")
    converted: dict[str, Any] = {}

    class Watch(BaseCallback):
        def _on_step(self) -> bool:
            if self.model.policy.sparse_layers and not converted:
                converted["step"] = self.model.sb3_tar_gmp_state["step"]
                layers = _layers(self.model.policy)
                converted["nnz"] = {name: int(layers[name][0].weight_mask.sum()) for name in self.model.policy.sparse_layers}
            return True

    model.learn(400, callback=[GMPCallback(**GMP, sparse_execution=True), Watch()])
    assert 110 <= converted["step"] <= 161  # right after the prune at 110 or at 160, long before t1 = 240
    policy = model.policy
    layers = _layers(policy)
    assert any(int(layers[name][0].weight_mask.sum()) < nnz for name, nnz in converted["nnz"].items())  # pruned there
    kept: dict[str, int] = {}
    for name, (layer, target) in layers.items():
        mask = layer.weight_mask.bool()
        density = float(mask.float().mean())
        assert isinstance(layer, SparseLinear) == (density < 0.3) == (name in policy.sparse_layers), (name, density)
        assert int((layer.weight[~mask] != 0).sum()) == 0
        if target is not None:
            assert torch.equal(target.weight_mask.bool(), mask) and int((target.weight[~mask] != 0).sum()) == 0
            assert isinstance(target, SparseLinear) == isinstance(layer, SparseLinear)
        if isinstance(layer, SparseLinear):
            optimizer = (policy.actor if name.startswith("actor") else policy.critic).optimizer
            assert layer.values.numel() == int(mask.sum()) == optimizer.state[layer.values]["exp_avg"].numel()
        network = name.split("/")[0]
        kept[network] = kept.get(network, 0) + int(mask.sum())
    assert kept == {"actor": 118, "critic.qf0": 118, "critic.qf1": 118}
    masks = {k: v.clone() for k, v in policy.state_dict().items() if k.endswith("weight_mask")}
    model.save(tmp_path / "gmp.zip")
    loaded = SAC.load(tmp_path / "gmp.zip", device="cpu")
    assert sorted(loaded.policy.sparse_layers) == sorted(policy.sparse_layers)
    for key, mask in masks.items():
        assert torch.equal(loaded.policy.state_dict()[key], mask), key
    for role in ("actor", "critic"):  # Adam's moments of layers pruned on the kernel survive the file, in place
        saved, back = (getattr(m.policy, role).optimizer.state_dict()["state"] for m in (model, loaded))
        assert saved.keys() == back.keys()
        for index, entry in saved.items():
            for key in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(entry[key], back[index][key]), (role, index, key)


RESUME = r"""
import json, sys, torch
from stable_baselines3 import SAC
from sb3_tar.baselines import GMPCallback
torch.set_num_threads(1)
import gymnasium as gym
model = SAC.load(sys.argv[1], env=gym.make("Pendulum-v1"), device="cpu")
online = lambda k: k.endswith("weight_mask") and "target" not in k
masks = lambda: {k: int(v.sum()) for k, v in model.policy.state_dict().items() if online(k)}
loaded, kernel = masks(), list(model.policy.sparse_layers)
step = model.sb3_tar_gmp_state["step"]
model.learn(int(sys.argv[2]), reset_num_timesteps=False, callback=GMPCallback(sparsity=0.9, update_interval=50, seed=3))
out = {"loaded": loaded, "kernel": kernel, "step": step, "state": model.sb3_tar_gmp_state, "final": masks()}
print(json.dumps(out | {"final_kernel": list(model.policy.sparse_layers)}))
"""


@pytest.mark.parametrize("stop, kernel", [(280, True)])  # (250, False): before the kernel, the masked path only
def test_gmp_saved_mid_schedule_resumes_in_a_fresh_process(tmp_path, stop: int, kernel: bool) -> None:
    """Stop at 280 env steps (gradient step 179, after the prune at 160 and layers moved onto the kernel), save, load
    in a new process and train the remaining steps: the schedule keeps T = 300, prunes at 210 and 240 on the kernel
    and ends at the final counts. (With (250, False) it resumes after the prune at 110 on the masked path.)"""

    class Stop(BaseCallback):
        def _on_step(self) -> bool:
            return self.model.num_timesteps < stop

    model = make("sac")
    model.learn(400, callback=[GMPCallback(**GMP, sparse_execution=kernel), Stop()])
    assert model.sb3_tar_gmp_state["step"] == stop - 101  # env steps 101 to stop - 1 each took one
    model.save(tmp_path / "mid.zip")
    args = [sys.executable, "-c", RESUME, str(tmp_path / "mid.zip"), str(400 - stop)]
    out = subprocess.run(args, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["step"] == stop - 101
    expected = 520 if stop == 250 else 212  # pruned at 110, or at 160
    assert _network_sums(result["loaded"]) == {"actor": expected, "critic.qf0": expected, "critic.qf1": expected}
    assert _network_sums(result["final"]) == {"actor": 118, "critic.qf0": 118, "critic.qf1": 118}
    assert bool(result["kernel"]) == kernel and bool(result["final_kernel"]) == kernel
    # the env step at `stop` was collected when Stop ended the run, without a gradient step: 299 in all
    assert result["state"]["step"] == 299 and result["state"]["total_steps"] == 300  # the plan was kept
    assert result["state"]["actor_step"] == 240


def _network_sums(masks: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, kept in masks.items():
        net = "actor" if key.startswith("actor.") else ".".join(key.split(".")[:2])
        out[net] = out.get(net, 0) + kept
    return out


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(start_fraction=0.5, end_fraction=0.4), ValueError, r"end_fraction=0.4 is outside the allowed range"),
        (dict(start_fraction=0.0, end_fraction=0.0), ValueError, r"end_fraction=0.0 is outside the allowed range \(0, 1\]"),
        (dict(update_interval=0), ValueError, r"update_interval=0 is outside the allowed range"),
        (dict(magnitude_scope="random"), ValueError, r"Unknown magnitude_scope 'random'"),
        (dict(interval=5, update_interval=7), TypeError, r"interval is the former name of update_interval"),
        (dict(sparsity=1.0), ValueError, r"outside the allowed range \[0, 1\)"),
    ],
)
def test_gmp_callback_refuses_bad_values(kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        GMPCallback(**kwargs)


def test_gmp_refuses_a_model_that_already_has_masks() -> None:
    model = make("sac")
    model.learn(120, callback=TARCallback(sparsity=0.9))
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    with pytest.raises(ValueError, match="already has masks"):
        model.learn(10, reset_num_timesteps=False, callback=GMPCallback(**GMP))
    after = model.policy.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_gmp_layer_budgets_keep_hand_computed_counts_of_the_largest_weights() -> None:
    """Two layers of 12 and 8 weights (N = 20), s_f = 0.5: K_f = 10; at c = 1/2 the network keeps
    K = 20 - floor(5 + 1/2) = 15.
    layer: final counts 12*10/20 = 6 and 8*10/20 = 4; shares 12 - 6/2 = 9 and 8 - 4/2 = 6.
    erk: (4+3)/12 = 7/12 and (2+4)/8 = 3/4; eps = 10 / (7 + 6) gives 12*eps*7/12 = 5.38 and 8*eps*3/4 = 4.62,
    largest remainder: 5 and 5; shares 12 - 7/2 = 8.5 and 8 - 3/2 = 6.5, floors 8 + 6, the tie goes to the
    first layer: 9 and 6. global: the 15 largest of all 20."""
    from sb3_tar.core.gmp import final_layer_counts, prune_step_masks

    torch.manual_seed(0)
    weights = [torch.randn(4, 3), torch.randn(2, 4)]
    masks = [torch.ones(4, 3, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)]
    shapes = [(4, 3), (2, 4)]
    assert kept_at(Fraction(1, 2), 20, 10) == 15
    assert final_layer_counts("layer", shapes, 10) == [6, 4] and final_layer_counts("erk", shapes, 10) == [5, 5]
    for scope, counts in (("layer", [9, 6]), ("erk", [9, 6])):
        finals = final_layer_counts(scope, shapes, 10)
        new = prune_step_masks(weights, masks, 15, Fraction(1, 2), finals, torch.Generator().manual_seed(0))
        assert [int(m.sum()) for m in new] == counts
        for w, m, k in zip(weights, new, counts):  # the k largest |w| of each layer
            assert torch.equal(m.flatten(), w.abs().flatten() >= w.abs().flatten().sort(descending=True).values[k - 1])
    new = prune_step_masks(weights, masks, 15, Fraction(1, 2), None, torch.Generator().manual_seed(0))
    flat = torch.cat([w.abs().flatten() for w in weights])
    assert torch.equal(torch.cat([m.flatten() for m in new]), flat >= flat.sort(descending=True).values[14])
    # nested: a further prune keeps a subset of the weights kept now
    again = prune_step_masks(weights, new, 12, Fraction(4, 5), None, torch.Generator().manual_seed(0))
    assert all(torch.equal(a & b, a) for a, b in zip(again, new)) and sum(int(m.sum()) for m in again) == 12


def test_td3_gmp_with_odd_prune_steps_ends_every_network_at_its_exact_layer_counts() -> None:
    """TD3 steps its actor at even gradient steps only (policy_delay=2). With odd t0, t1 and interval the last prune
    step t1 = 237 is odd, so the actor must be pruned at its next step (238) to the count of t1; read from the weights,
    every layer of the actor, actor_target and each Q-network and its target ends at its final count exactly.
    T = 400 - 100 = 300: t0 = round(0.21 * 300) = 63, t1 = round(0.79 * 300) = 237, interval 25: prune steps 88, 113,
    ..., 213 and 237. magnitude_scope="layer": each layer ends at density 0.1 of its own weights, largest remainder:
    actor 32x3, 32x32, 1x32: 9.6, 102.4, 3.2 -> 10, 102, 3 (115 = round(0.1 * 1152));
    Q-network 32x4, 32x32, 1x32: 12.8, 102.4, 3.2 -> 13, 102, 3 (118 = round(0.1 * 1184))."""
    model = make("td3")
    schedule = dict(start_fraction=0.21, end_fraction=0.79, update_interval=25, magnitude_scope="layer")
    gmp = GMPCallback(sparsity=0.9, **schedule, seed=1)
    model.learn(400, callback=[gmp])
    assert gmp.pruner.window == (63, 237) and gmp.pruner.step == 300
    policy = model.policy

    def counts(module: torch.nn.Module) -> list[int]:
        return [int((m.weight != 0).sum()) for m in module.modules() if isinstance(m, torch.nn.Linear)]

    assert counts(policy.actor) == counts(policy.actor_target) == [10, 102, 3]
    for q, q_target in zip(policy.critic.q_networks, policy.critic_target.q_networks):
        assert counts(q) == counts(q_target) == [13, 102, 3]
    prune_steps = [88, 113, 138, 163, 188, 213, 237]
    for name in ("actor", "critic.qf0", "critic.qf1"):  # the actor too, at its next (even) step after each
        assert [step for step, network, _ in gmp.pruner.history if network == name] == prune_steps, name
    assert model.sb3_tar_gmp_state["actor_step"] == 237  # the actor reached t1's count (at its step 238)
