"""Plasticity diagnostics: the pure computations on hand-made networks with known dead units and known rank
(numbers worked out by hand below), and DiagnosticsCallback on real SAC/TD3/TQC runs: the keys read back from
SB3's csv output, values against an independent computation on the model's own state, training unchanged."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sb3_utils import ALGOS, small_kwargs
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure
from torch import nn

from sb3_tar.callbacks import TARCallback
from sb3_tar.core.diagnostics import dormant_count, dormant_ratio, hidden_activations, l2_norm, srank, unit_scores
from sb3_tar.diagnostics import DiagnosticsCallback, read_diagnostics_csv


def _kwargs(algo: str) -> dict:
    """small_kwargs with 32-unit layers (a fresh dict: SB3 adds keys to the policy_kwargs it is given)."""
    kwargs = small_kwargs(algo)
    kwargs["policy_kwargs"] = {**kwargs.get("policy_kwargs", {}), "net_arch": [32, 32]}
    return kwargs


# ---------------------------------------------------------------- pure computations


def test_unit_scores_and_dormant_counts_by_hand():
    # mean |h| per unit: [0, 2, 2]; layer mean 4/3; scores [0, 1.5, 1.5]
    h = torch.tensor([[0.0, 2.0, -4.0], [0.0, -2.0, 0.0]])
    assert unit_scores(h).tolist() == pytest.approx([0.0, 1.5, 1.5])
    assert dormant_count(h, 0.0) == 1
    # mean |h|: [1, 0.1, 2]; layer mean 3.1 / 3; scores [30/31, 3/31, 60/31]: 3/31 = 0.0968 <= 0.1
    h = torch.tensor([[1.0, 0.1, 3.0], [1.0, 0.1, 1.0]])
    assert unit_scores(h).tolist() == pytest.approx([30 / 31, 3 / 31, 60 / 31])
    assert dormant_count(h, 0.0) == 0 and dormant_count(h, 0.1) == 1 and dormant_count(h, 0.09) == 0
    # a silent layer: every unit dormant, at any tau
    assert dormant_count(torch.zeros(4, 5), 0.0) == 5
    # two layers: (1 + 1) dormant of 6 units at tau = 0.1
    assert dormant_ratio([h, torch.tensor([[0.0, 1.0, 1.0]])], 0.1) == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="tau=-0.1"):
        dormant_count(h, -0.1)
    with pytest.raises(ValueError, match="at least one"):
        dormant_ratio([], 0.1)


def test_srank_by_hand():
    # singular values 4, 3, 0.04 (sum 7.04): (1 - 0.01) * 7.04 = 6.9696 is reached at k = 2 (4 + 3 = 7)
    phi = torch.tensor([[3.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 0.04], [0.0, 0.0, 0.0]])
    assert srank(phi, 0.01) == 2
    # delta = 0.001: 7.03296 > 7, so all three are needed
    assert srank(phi, 0.001) == 3
    # a rank-1 matrix (outer product) and the zero matrix
    assert srank(torch.outer(torch.arange(1.0, 9.0), torch.tensor([1.0, -2.0, 0.5, 3.0]))) == 1
    assert srank(torch.zeros(8, 4)) == 0
    with pytest.raises(ValueError, match="delta=1"):
        srank(phi, 1)


def test_l2_norm_by_hand():
    assert l2_norm([torch.tensor([3.0]), torch.tensor([[0.0, 4.0]])]) == pytest.approx(5.0)
    assert l2_norm([]) == 0.0


def _hand_network() -> nn.Sequential:
    """2 inputs -> 4 ReLU units -> 3 ReLU units -> 1 output, weights set by hand (biases 0).

    Layer 1: u0 = x0, u1 = x1, u2 = -(x0 + x1) (dead on non-negative inputs), u3 = 0.01 x0 (tiny).
    Layer 2: v0 = u0 + u1, v1 = 2 (u0 + u1) (the same direction as v0), v2 = -u0 (dead)."""
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        for layer in (net[0], net[2], net[4]):
            layer.bias.zero_()
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [0.01, 0.0]]))
        net[2].weight.copy_(torch.tensor([[1.0, 1.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]]))
        net[4].weight.copy_(torch.tensor([[1.0, 1.0, 1.0]]))
    return net


def test_hand_made_network_dead_units_and_rank():
    net = _hand_network()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    hidden = hidden_activations([net[0], net[2], net[4]], lambda: net(x))
    assert [tuple(h.shape) for h in hidden] == [(4, 4), (4, 3)]
    # layer 1 on the batch: u0 = [1,0,1,2] (mean 1), u1 = [0,1,1,1] (0.75), u2 = 0, u3 = [.01,0,.01,.02] (0.01);
    # layer mean 0.44: scores 2.2727, 1.7045, 0, 0.0227 -> tau 0: {u2}; tau 0.1: {u2, u3}
    assert unit_scores(hidden[0]).tolist() == pytest.approx([1 / 0.44, 0.75 / 0.44, 0.0, 0.01 / 0.44])
    # layer 2: v0 = [1,1,2,3] (1.75), v1 = [2,2,4,6] (3.5), v2 = 0; layer mean 1.75: scores 1, 2, 0
    assert unit_scores(hidden[1]).tolist() == pytest.approx([1.0, 2.0, 0.0])
    assert dormant_ratio(hidden, 0.0) == pytest.approx(2 / 7)  # u2, v2
    assert dormant_ratio(hidden, 0.1) == pytest.approx(3 / 7)  # u2, u3, v2
    # the last hidden layer's features are [v0, 2 v0, 0]: rank 1
    assert srank(hidden[-1], 0.01) == 1
    # a shared input read by two heads (like an SAC actor's trunk) counts once
    trunk, head_a, head_b = net[:4], nn.Linear(3, 1), nn.Linear(3, 2)

    def two_heads():
        latent = trunk(x)
        return head_a(latent), head_b(latent)

    shared = hidden_activations([net[0], net[2], head_a, head_b], two_heads)
    assert len(shared) == 2 and torch.equal(shared[1], hidden[1])


# ---------------------------------------------------------------- DiagnosticsCallback on real models


def _scores(h: np.ndarray) -> np.ndarray:
    """Sokar et al.'s score, written out again: mean |h| per unit over the layer's mean of those."""
    mean_abs = np.abs(h).mean(axis=0)
    return mean_abs / mean_abs.mean() if mean_abs.mean() > 0 else np.zeros_like(mean_abs)


def _srank(h: np.ndarray, delta: float = 0.01) -> int:
    sigma = np.sort(np.linalg.svd(h.astype(np.float64), compute_uv=False))[::-1]
    return next(k + 1 for k in range(len(sigma)) if sigma[: k + 1].sum() >= (1 - delta) * sigma.sum())


def _expected(model, batch) -> dict[str, float]:
    """Every logged value, computed from the model's own modules by slicing its Sequentials by hand."""
    policy = model.policy
    obs = torch.as_tensor(batch.observations, dtype=torch.float32)
    act = torch.as_tensor(batch.actions, dtype=torch.float32)
    out: dict[str, float] = {}
    with torch.no_grad():
        if hasattr(policy.actor, "latent_pi"):  # SAC/TQC: trunk = latent_pi
            trunk = policy.actor.latent_pi
            actor_hidden = [trunk[:2](obs), trunk(obs)]
        else:  # TD3: mu = [Linear, ReLU, Linear, ReLU, Linear, Tanh]
            actor_hidden = [policy.actor.mu[:2](obs), policy.actor.mu[:4](obs)]
        nets = {"actor": (policy.actor, actor_hidden)}
        for i, qf in enumerate(policy.critic.q_networks):
            x = torch.cat([obs, act], dim=1)
            nets[f"critic/qf{i}"] = (qf, [qf[:2](x), qf[:4](x)])
    for name, (module, hidden) in nets.items():
        h = [t.numpy() for t in hidden]
        for tau in (0.0, 0.1):
            dormant = sum(int((_scores(layer) <= tau).sum()) for layer in h)
            out[f"diagnostics/{name}/dormant_{tau:g}"] = dormant / sum(layer.shape[1] for layer in h)
        out[f"diagnostics/{name}/srank"] = _srank(h[-1])
        squares = grad_squares = 0.0
        layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
        for layer in layers:
            mask = getattr(layer, "weight_mask", torch.ones_like(layer.weight)).bool()
            squares += float(layer.weight.detach().double()[mask].pow(2).sum() + layer.bias.detach().double().pow(2).sum())
            if hasattr(layer, "values"):  # on the sparse kernel: the kept weights' gradient only
                grad = layer.values.grad.double().pow(2).sum()
            else:
                grad = layer.weight.grad.double()[mask].pow(2).sum()
            grad_squares += float(grad + layer.bias.grad.double().pow(2).sum())
        out[f"diagnostics/{name}/weight_norm"] = math.sqrt(squares)
        out[f"diagnostics/{name}/grad_norm"] = math.sqrt(grad_squares)
    return out


@pytest.mark.parametrize("algo", ["sac", "td3", "tqc"])
def test_logged_keys_read_back_from_sb3_csv_match_an_independent_computation(algo, tmp_path):
    model = ALGOS[algo]("MlpPolicy", "Pendulum-v1", **_kwargs(algo))
    model.set_logger(configure(str(tmp_path), ["csv"]))
    callback = DiagnosticsCallback(every=100, batch_size=64, path=tmp_path / "diagnostics.csv")
    model.learn(300, callback=callback)
    progress = pd.read_csv(tmp_path / "progress.csv")
    rows = progress[progress["diagnostics/actor/srank"].notna()]
    assert rows["time/total_timesteps"].tolist() == [100, 200, 300]
    networks = ["actor", "critic/qf0", "critic/qf1"]
    metrics = ["dormant_0", "dormant_0.1", "srank", "weight_norm", "grad_norm"]
    keys = [f"diagnostics/{n}/{m}" for n in networks for m in metrics]
    assert sorted(c for c in progress.columns if c.startswith("diagnostics/")) == sorted(keys)
    # the last measurement is at the end of training: it describes the final model
    last = rows.iloc[-1]
    expected = _expected(model, callback.batch)
    for key in keys:
        assert last[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-9), key
    # the callback's own file holds the same rows
    stored = read_diagnostics_csv(tmp_path / "diagnostics.csv")
    assert [r["timesteps"] for r in stored] == [100, 200, 300]
    assert stored[-1]["diagnostics/critic/qf1/srank"] == last["diagnostics/critic/qf1/srank"]
    # the fixed batch is a set of distinct transitions of the buffer
    buffer = model.replay_buffer
    pairs = np.concatenate([buffer.observations[: buffer.size(), 0], buffer.actions[: buffer.size(), 0]], axis=1)
    drawn = np.concatenate([callback.batch.observations, callback.batch.actions], axis=1)
    assert len(np.unique(drawn, axis=0)) == 64
    assert all((pairs == row).all(axis=1).any() for row in drawn)


def test_sparse_model_on_the_kernel_and_a_resumed_file(tmp_path):
    model = ALGOS["sac"]("MlpPolicy", "Pendulum-v1", **_kwargs("sac"))
    path = tmp_path / "diagnostics.csv"
    callback = DiagnosticsCallback(every=100, batch_size=64, path=path)
    tar = TARCallback(sparsity=0.8, seed=0, sparse_execution=True)
    model.learn(200, callback=[tar, callback])
    assert tar.sparse_layers  # some layers run on the sparse kernel (the CI builds it; test_kernels asserts so)
    expected = _expected(model, callback.batch)
    for key, value in expected.items():
        assert callback.rows[-1][key] == pytest.approx(value, rel=1e-5, abs=1e-9), key
    # a run continued from timestep 200 with a new callback on the same file: rows after 200 would be dropped,
    # rows up to 200 kept, the new ones appended
    more = DiagnosticsCallback(every=100, batch_size=64, path=path)
    model.learn(100, reset_num_timesteps=False, callback=more)
    assert [r["timesteps"] for r in read_diagnostics_csv(path)] == [100, 200, 300]


def test_training_is_unchanged_by_the_callback():
    runs = []
    for callback in (None, DiagnosticsCallback(every=50, batch_size=64)):
        model = ALGOS["sac"]("MlpPolicy", "Pendulum-v1", **_kwargs("sac"))
        model.learn(200, callback=callback)
        runs.append(model.policy.state_dict())
    assert runs[0].keys() == runs[1].keys()
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key


def test_bad_arguments_and_unsupported_models_are_refused():
    import sb3_tar

    assert sb3_tar.DiagnosticsCallback is DiagnosticsCallback
    for kwargs, match in (
        (dict(every=0), "every=0"),
        (dict(batch_size=1), "batch_size=1"),
        (dict(taus=(0.1, -1.0)), "tau=-1.0"),
        (dict(taus=()), "taus=()"),
        (dict(delta=1.0), "delta=1.0"),
    ):
        with pytest.raises(ValueError, match=match):
            DiagnosticsCallback(**kwargs)
    for kwargs, match in (
        (dict(every=1.5), r"every must be an int, got 1.5 \(float\)"),
        (dict(batch_size="256"), r"batch_size must be an int, got '256' \(str\)"),
        (dict(delta="0.5"), r"delta must be a number, got '0.5' \(str\)"),
        (dict(seed=None), r"seed must be an int, got None"),
    ):
        with pytest.raises(TypeError, match=match):
            DiagnosticsCallback(**kwargs)
    with pytest.raises(TypeError, match="path"):
        DiagnosticsCallback(path=3)
    from sb3_contrib import RecurrentPPO

    model = RecurrentPPO("MlpLstmPolicy", "Pendulum-v1", n_steps=64, batch_size=64, device="cpu")
    with pytest.raises(
        TypeError, match="DiagnosticsCallback supports SAC, TD3, TQC and CrossQ .*PPO, A2C and DQN.*, got RecurrentPPO"
    ):
        model.learn(64, callback=DiagnosticsCallback())


def test_ppo_diagnostics_match_a_hand_computation_on_the_fixed_rollout_batch() -> None:
    """PPO (no replay buffer): the batch comes from the first full rollout; dormancy and srank of both branches equal
    a hand computation through the branch's layers (tanh MLP) on that batch."""
    model = PPO(
        "MlpPolicy",
        "CartPole-v1",
        n_steps=64,
        batch_size=32,
        n_epochs=2,
        seed=0,
        device="cpu",
        policy_kwargs=dict(net_arch=[16, 16]),
    )
    diagnostics = DiagnosticsCallback(every=64, batch_size=32, taus=(0.0, 0.5), seed=0)
    model.learn(256, callback=[TARCallback(sparsity=0.5, seed=0), diagnostics])
    assert diagnostics.batch is not None and len(diagnostics.batch) == 32
    assert [r["timesteps"] for r in diagnostics.rows] == [64, 128, 192, 256]  # from the 2nd rollout start on, and at the end
    obs = torch.as_tensor(diagnostics.batch.observations)
    policy = model.policy
    for name, body in (
        ("actor", policy.mlp_extractor.policy_net),
        ("critic", policy.mlp_extractor.value_net),
    ):
        with torch.no_grad():
            h1 = torch.tanh(obs @ body[0].weight.T + body[0].bias)
            h2 = torch.tanh(h1 @ body[2].weight.T + body[2].bias)
        scores = [h.abs().mean(0) / h.abs().mean(0).mean() for h in (h1, h2)]
        hand = {tau: sum(int((s.double() <= tau).sum()) for s in scores) / 32 for tau in (0.0, 0.5)}
        singular = torch.linalg.svdvals(h2.double())
        hand_srank = int((torch.cumsum(singular, 0) < 0.99 * singular.sum()).sum()) + 1
        row = diagnostics.rows[-1]
        for tau in (0.0, 0.5):
            assert row[f"diagnostics/{name}/dormant_{tau:g}"] == pytest.approx(hand[tau])
        assert row[f"diagnostics/{name}/srank"] == hand_srank
        assert row[f"diagnostics/{name}/weight_norm"] > 0


def test_short_rollout_of_several_envs_gives_a_batch_of_its_transitions() -> None:
    """A2C with 8 envs and n_steps=5 (RL-Zoo's CartPole entry): a rollout holds 5 steps per env, fewer than the batch's
    256, so the batch is all 40 transitions of the first rollout, each once; measured from the 2nd rollout start on
    (timesteps 40, 80, ..., 240) and at the end (280: the last rollout overshoots 256 by 24 steps)."""
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_tar.sb3.reporting.diagnostics import draw_fixed_batch, draw_rollout_batch

    env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    model = A2C("MlpPolicy", env, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16, 16]))
    diagnostics = DiagnosticsCallback(every=12)
    model.learn(256, callback=diagnostics)
    assert [r["timesteps"] for r in diagnostics.rows] == [40, 80, 120, 160, 200, 240, 280]
    assert len(diagnostics.batch) == 40
    rows = {tuple(o) for o in diagnostics.batch.observations.round(6).tolist()}
    assert len(rows) == 40  # 40 distinct transitions: every (step, env) pair once
    assert all(np.isfinite(r["diagnostics/actor/srank"]) for r in diagnostics.rows)
    # a batch the rollout holds per env (3 <= 5 steps): draw_fixed_batch's draw, unchanged
    buffer = model.rollout_buffer
    assert draw_rollout_batch(buffer, 3, 0).observations.tolist() == draw_fixed_batch(buffer, 3, 0).observations.tolist()
