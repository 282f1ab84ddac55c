"""Training FLOPs of dynamic sparse training: RigL's dense gradient at its mask updates is counted.

The expected numbers are computed by hand from the saved model's own masks and SB3's own gradient-step
counter (``_n_updates``), and, for a committed 60k RigL cell, from its committed summary and RL-Zoo config.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ENV = "Pendulum-v1"
REPO = Path(__file__).resolve().parents[1]


def test_dense_gradient_flops_by_hand() -> None:
    from sb3_tar.core.dynamic import dense_gradient_flops

    # U = 3 updates, T = 200 steps, P = 900 pruned weights, D = 2 * 1000 + 50 per sample: 3 * 1800 / (3 * 200 * 2050)
    assert dense_gradient_flops(3, 200, 900, 2050) == 5400 / 1230000
    assert dense_gradient_flops(0, 200, 900, 2050) == 0.0
    with pytest.raises(ValueError, match=r"gradient_steps=0 is outside the allowed range \[1, inf\)"):
        dense_gradient_flops(3, 0, 900, 2050)
    with pytest.raises(TypeError, match="updates must be an int"):
        dense_gradient_flops(1.5, 200, 900, 2050)


def _train(method: str, tmp_path: Path, role_methods: dict[str, str] | None = None) -> tuple[Path, int]:
    import torch
    from stable_baselines3 import SAC

    from sb3_tar import DSTCallback

    torch.set_num_threads(1)
    model = SAC("MlpPolicy", ENV, learning_starts=100, policy_kwargs={"net_arch": [32, 32]}, seed=0)
    callback = DSTCallback(method=method, sparsity=0.9, update_interval=50, seed=0, role_methods=role_methods)
    model.learn(300, callback=callback)
    path = tmp_path / f"{method}.zip"
    model.save(path)
    return path, model._n_updates


def _networks(params: dict) -> dict[str, tuple[int, int, int]]:
    """(weights, kept weights, biases) per online network, read from the saved state dict."""
    out: dict[str, list[int]] = {}
    for key, value in params["policy"].items():
        parts = key.split(".")
        if parts[0] == "actor":
            name = "actor"
        elif parts[0] == "critic" and parts[1].startswith("qf"):
            name = "critic." + parts[1]
        else:
            continue
        entry = out.setdefault(name, [0, 0, 0])
        if key.endswith(".weight"):
            mask = params["policy"][key[: -len("weight")] + "weight_mask"]
            entry[0] += value.numel()
            entry[1] += int(mask.sum())
        elif key.endswith(".bias"):
            entry[2] += value.numel()
    return {k: tuple(v) for k, v in out.items()}


@pytest.mark.parametrize(("method", "role_methods"), [("rigl", {"actor": "tar"}), ("set", None)])
def test_saved_dst_model_counts_the_dense_gradient_of_rigl_updates(method, role_methods, tmp_path) -> None:
    from stable_baselines3.common.save_util import load_from_zip_file

    from sb3_tar.experiments.flops import dst_state, training_flops

    path, n_updates = _train(method, tmp_path, role_methods)
    data, params, _ = load_from_zip_file(path, device="cpu", print_system_info=False)
    networks = _networks(params)
    assert n_updates == 200  # env steps 101..300, one gradient step each
    sparse = sum(2 * kept + bias for _, kept, bias in networks.values())
    dense = sum(2 * total + bias for total, _, bias in networks.values())
    # T_end = 0.8 * 200 = 160: updates at gradient steps 50, 100, 150
    grown_by_gradient = [n for n in networks if method == "rigl" and not (role_methods and n == "actor")]
    pruned = sum(networks[n][0] - networks[n][1] for n in grown_by_gradient)
    expected = sparse / dense + 3 * 2 * pruned / (3 * n_updates * dense)
    assert training_flops(data, params) == pytest.approx(expected, rel=1e-12)
    assert (method == "rigl") == (pruned > 0)
    state = dst_state(data, params)
    assert (state["step"], state["total_steps"], state["config"]["method"]) == (200, 200, method)

    # the sweep's summary records the state, and the report then takes the recorded ratio as it is
    from sb3_tar.experiments.flops import cell_training_flops
    from sb3_tar.experiments.grid import Cell
    from sb3_tar.experiments.runner import run_dir, write_cell_summary

    cell = Cell("sac", ENV, method, "erk", 0.9, None, 32, 0, n_timesteps=300)
    run_dir(tmp_path / "grid", cell).mkdir(parents=True)
    path.rename(run_dir(tmp_path / "grid", cell) / f"{ENV}.zip")
    write_cell_summary(tmp_path / "grid", cell, commit={})
    summary = json.loads((tmp_path / "grid" / cell.cell_id / "summary.json").read_text())
    assert summary["dst_state"]["step"] == 200 and summary["training_flops"] == pytest.approx(expected, rel=1e-12)
    assert cell_training_flops(summary, method, run_dir(tmp_path / "grid", cell), 300) == summary["training_flops"]


def test_committed_rigl_cell_without_recorded_state_gets_the_planned_updates() -> None:
    from sb3_tar.experiments.flops import cell_training_flops

    cell = REPO / "benchmarks/results/cpu60k/sac/HalfCheetah-v4/rigl_erk_sp0.9_w256/seed_0"
    summary = json.loads((cell / "summary.json").read_text())
    assert "dst_state" not in summary and "training_flops" not in summary
    assert summary["config"]["dst"]["update_interval"] == 1000
    # HalfCheetah SAC, width 256: actor 17-256-256-(6+6), Q 23-256-256-1; 90% sparse masks (committed counts)
    totals = {"actor": 17 * 256 + 256 * 256 + 2 * 256 * 6, "critic.qf0": 23 * 256 + 256 * 256 + 256}
    totals["critic.qf1"] = totals["critic.qf0"]
    kept = {n: summary["final_sparsity"][n]["nonzero"] for n in totals}
    biases = {"actor": 256 + 256 + 12, "critic.qf0": 256 + 256 + 1, "critic.qf1": 256 + 256 + 1}
    dense = sum(2 * totals[n] + biases[n] for n in totals)
    steps = 60000 - 5000  # learning_starts 5000, train_freq 1, gradient_steps 1 (the run's config.yml)
    updates = 43  # 1000, 2000, ..., 43000 < T_end = 0.8 * 55000 = 44000
    extra = updates * 2 * sum(totals[n] - kept[n] for n in totals) / (3 * steps * dense)
    static = sum(2 * kept[n] + biases[n] for n in totals) / dense  # the mask's own cost, from the same counts
    run = cell / "sac" / "HalfCheetah-v4_1"
    assert cell_training_flops(summary, "rigl", run, 60000) == pytest.approx(static + extra, rel=1e-9)
    assert 1e-4 < extra < 1e-3
    assert cell_training_flops(summary, "rigl") == pytest.approx(static, rel=1e-9)  # no run folder: nothing to plan from
