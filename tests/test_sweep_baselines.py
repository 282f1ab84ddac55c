"""`sb3-tar sweep --methods gmp small_dense tar+rigl` end to end on a tiny grid (real RL-Zoo3 trainings), then `sb3-tar
report`: the saved GMP model holds the final kept counts, the small-dense model has the solved widths, the per-role
model has a TAR actor and RigL critics, and the report's training-FLOPs column carries the hand-computed ratios."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from cli_utils import run_cli
from stable_baselines3 import SAC

ENV = "Pendulum-v1"


@pytest.fixture
def swept(baselines_sweep) -> tuple[Path, str, str]:
    """The session's sweep (and report) of four cells at width 64 (conftest.py, :func:`sweep_utils.run_baselines`):
    GMP, small dense and a per-role TAR actor + RigL critic with two prune criteria (magnitude, mest) in one results
    directory.

    :return: The results directory and the sweep's and the report's standard output.
    """
    return baselines_sweep


def test_sweep_runs_gmp_and_small_dense_and_reports_training_flops(swept) -> None:
    from stable_baselines3.common.save_util import load_from_zip_file

    root, sweep, _ = swept
    assert "4 ran" in sweep

    gmp = root / "sac" / ENV / "gmp_magnitude_sp0.9_w64_update_interval=50" / "seed_0"
    data, params, _ = load_from_zip_file(gmp / "sac" / f"{ENV}_1" / f"{ENV}.zip", device="cpu", print_system_info=False)
    state = data["sb3_tar_gmp_state"]
    assert (state["step"], state["total_steps"], state["interval"]) == (200, 200, 50)  # env steps 101-300
    for network in ("actor", "critic.qf0", "critic.qf1"):  # N = 4416 each (width 64): round(441.6) = 442 kept
        prefix = network + "."
        masks = [v for k, v in params["policy"].items() if k.startswith(prefix) and k.endswith("weight_mask")]
        assert sum(int(m.sum()) for m in masks) == 442 and sum(m.numel() for m in masks) == 4416, network
    summary = json.loads((gmp / "summary.json").read_text())
    assert summary["training_flops"] == state["flops_sum"] / (state["flops_steps"] * state["flops_dense"])
    assert 0.1 < summary["training_flops"] < 1

    small = root / "sac" / ENV / "small_dense_sp0.9_w64" / "seed_0"
    data, params, _ = load_from_zip_file(small / "sac" / f"{ENV}_1" / f"{ENV}.zip", device="cpu", print_system_info=False)
    assert data["policy_kwargs"]["net_arch"] == {"pi": [19, 18], "qf": [19, 18]}
    record = json.loads((small / "summary.json").read_text())["config"]["small_dense"]
    assert {n: (r["target"], r["model_weights"]) for n, r in record.items()} == {
        "actor": (442, 3 * 19 + 19 * 18 + 18 * 2),  # 435
        "critic.qf0": (442, 4 * 19 + 19 * 18 + 18),  # 436
        "critic.qf1": (442, 436),
    }
    # Training FLOPs (2 * weights + biases, summed over networks) against the dense width-64 networks:
    # small: actor 2*435 + 39, each Q 2*436 + 38; dense: actor 2*4416 + 130, each Q 2*4416 + 129.
    expected_small = (2 * 435 + 39 + 2 * (2 * 436 + 38)) / (2 * 4416 + 130 + 2 * (2 * 4416 + 129))

    runs = pd.read_csv(root / "report" / "runs.csv").set_index("method")
    assert runs.loc["small_dense", "train_flops"] == pytest.approx(expected_small, rel=1e-12)  # through the CSV
    assert runs.loc["gmp", "train_flops"] == pytest.approx(summary["training_flops"], rel=1e-12)
    text = (root / "report" / "report.md").read_text()
    assert "Training FLOPs vs dense" in text
    assert f"{expected_small:.3f}x" in text and f"{summary['training_flops']:.3f}x" in text
    assert "GMP (magnitude)" in text and "Small dense" in text
    section = text[text.index("## Small dense: widths and weight counts") :].split("\n## ")[0]  # up to the next section
    rows = [line for line in section.splitlines() if line.startswith("| SAC ")]
    assert len(rows) == 3 and all("442 of 4416" in row and "[19, 18]" in row for row in rows)
    assert "| 435 " in rows[0] and "-1.58%" in rows[0]  # actor: (435 - 442) / 442

    # neither draws a mask at initialization: both are skipped, and nothing is left to check
    verify = run_cli("verify-masks", str(root), "--cells", str(gmp), str(small), timeout=120)
    assert verify.returncode != 0 and "No finished sparse cell" in verify.stderr + verify.stdout
    assert f"skipped: {gmp} prunes during training (no mask to draw)" in verify.stdout
    assert f"skipped: {small} is dense (no mask to draw)" in verify.stdout


def test_sweep_runs_a_per_role_cell_and_reports_it(swept) -> None:
    """``sb3-tar sweep --methods tar+rigl``: the saved model has a TAR actor and RigL Q-networks at exactly 10% density,
    the schedule ran with the per-role methods stored; ``sb3-tar report`` names the method. (What each role's mask
    does during training is checked step by step in test_role_methods.py.)"""
    root = swept[0]
    (cell,) = root.glob("sac/Pendulum-v1/tar+rigl_magnitude_sp0.9_rr0.01_w64_update_interval=50/seed_0")
    model = SAC.load(cell / "sac" / "Pendulum-v1_1" / "Pendulum-v1.zip", device="cpu")
    state = model.sb3_tar_dst_state
    assert state["role_methods"] == {"actor": "tar", "critic": "rigl"} and state["step"] == 200
    reports = model.sb3_tar_reports
    for name, module in [
        ("actor", model.policy.actor),
        *((f"critic.qf{i}", q) for i, q in enumerate(model.policy.critic.q_networks)),
    ]:
        layers = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
        total = sum(layer.weight.numel() for layer in layers)
        final = [layer.weight_mask.bool() for layer in layers]
        assert sum(int(m.sum()) for m in final) == round(0.1 * total), name  # exact count of each role's density
        assert all((layer.weight[~m] == 0).all() for layer, m in zip(layers, final)), name
    assert (reports["actor"]["revival"], reports["critic.qf0"]["revival"]) == ("tar", "none")
    assert reports["actor"]["budget"] > 0 and reports["critic.qf0"]["criterion"] == "magnitude"
    summary = json.loads((cell / "summary.json").read_text())
    assert summary["final_sparsity"]["actor"]["nonzero"] <= round(0.1 * summary["final_sparsity"]["actor"]["total"])
    assert "TAR actor + RigL critic" in (root / "report" / "report.md").read_text()


def test_grid_expands_gmp_by_magnitude_criteria_and_small_dense_by_sparsity() -> None:
    from sb3_tar.experiments.grid import GridSpec

    grid = GridSpec(
        methods=("gmp", "small_dense"),
        criteria=("random", "magnitude", "erk"),
        magnitude_scopes=("global", "layer"),
        sparsities=(0.8, 0.9),
        widths=(256,),
        seeds=(0,),
        gmp_kwargs={"update_interval": 500},
    )
    cells = {c.label: c for c in grid.expand()}
    assert sorted(cells) == sorted(
        [f"gmp_{c}_sp{s}_w256_update_interval=500" for c in ("magnitude", "magnitude_layer", "erk") for s in (0.8, 0.9)]
        + ["small_dense_sp0.8_w256", "small_dense_sp0.9_w256"]
    )
    scopes = {c.criterion: c.callback()[0]["sb3_tar.baselines.GMPCallback"] for c in cells.values() if c.method == "gmp"}
    assert {k: (v["magnitude_scope"], v["update_interval"]) for k, v in scopes.items()} == {
        "magnitude": ("global", 500),
        "magnitude_layer": ("layer", 500),
        "erk": ("erk", 500),
    }
    small = cells["small_dense_sp0.8_w256"].callback()[0]["sb3_tar.baselines.SmallDenseCallback"]
    assert small == {"reference_width": 256, "sparsity": 0.8, "verbose": 1}
    with pytest.raises(ValueError, match="Method 'gmp' ranks by magnitude"):
        GridSpec(methods=("gmp",), criteria=("random", "synflow")).validate()


def test_two_prune_criteria_share_a_results_directory_and_report_apart(swept) -> None:
    """``--prune-criteria magnitude mest``: one folder per criterion (the default one without the suffix), each cell's
    RigL critic ran its own criterion, and the report keeps them in separate rows."""
    import pandas as pd

    root = swept[0]
    labels = {
        "magnitude": "tar+rigl_magnitude_sp0.9_rr0.01_w64_update_interval=50",
        "mest": "tar+rigl_magnitude_sp0.9_rr0.01_w64_prune_criterion=mest_update_interval=50",
    }
    for criterion, label in labels.items():
        (cell,) = root.glob(f"sac/{ENV}/{label}/seed_0")
        model = SAC.load(cell / "sac" / f"{ENV}_1" / f"{ENV}.zip", device="cpu")
        assert model.sb3_tar_dst_state["prune_criterion"] == criterion
    summary = pd.read_csv(root / "report" / "summary.csv")
    rows = summary[summary["method"] == "tar+rigl"]
    assert sorted(rows["label"]) == sorted(labels.values()) and list(rows["n"]) == [1, 1]
    text = (root / "report" / "report.md").read_text()
    assert "[prune_criterion=mest_update_interval=50]" in text and "[update_interval=50]" in text
