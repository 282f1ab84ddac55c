"""The sweep runner end to end, with real RL-Zoo3 trainings: the smoke preset through the CLI (table,
CSV, PNGs, numbers checked against the raw evaluation files, RL-Zoo's own all_plots reading the
layout), and a sweep killed mid-cell that resumes without redoing finished cells."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_utils import REPO, cli_env, run_cli
from sweep_utils import SMOKE_ENV


@pytest.fixture
def smoke(smoke_sweep) -> tuple[Path, subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """The session's smoke sweep (conftest.py): results directory, sweep and report commands."""
    return smoke_sweep


def test_smoke_preset_runs_every_cell_in_rl_zoo_layout(smoke):
    root, sweep, _ = smoke
    assert "12 cells (1 finished, 1 partial" in sweep.stdout and "11 ran, 1 already finished, 0 failed" in sweep.stdout
    cells = sorted(root.glob("sac/Pendulum-v1/*/seed_*"))
    assert len(cells) == 12
    for cell in cells:
        config = json.loads((cell / "cell.json").read_text())
        run = cell / "sac" / f"{SMOKE_ENV}_1"
        assert (cell / "done.json").is_file() and (run / f"{SMOKE_ENV}.zip").is_file()
        with np.load(run / "evaluations.npz") as data:
            assert data["timesteps"].tolist() == list(range(100, 601, 100))
            assert data["results"].shape == (6, config["eval_episodes"])
        assert (run / SMOKE_ENV / "config.yml").is_file()  # RL-Zoo's saved hyperparameters
    assert json.loads((root / "sweep.json").read_text())["grid"]["n_timesteps"] == 600


def test_smoke_set_and_rigl_models_load_sparse_with_exact_counts(smoke):
    """The SET/RigL cells' saved models, loaded with SAC.load: each network keeps exactly round(0.1 N) weights
    (weight_mask in the file), every pruned weight is 0 online and in critic_target, and the schedule ran."""
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.save_util import load_from_zip_file

    root, _, _ = smoke
    cells = sorted(root.glob(f"sac/{SMOKE_ENV}/set_*/seed_*")) + sorted(root.glob(f"sac/{SMOKE_ENV}/rigl_*/seed_*"))
    assert len(cells) == 4
    for cell in cells:
        path = cell / "sac" / f"{SMOKE_ENV}_1" / f"{SMOKE_ENV}.zip"
        data, params, _ = load_from_zip_file(path, device="cpu", print_system_info=False)
        assert data["sb3_tar_dst_state"]["step"] > 0
        model = SAC.load(path, device="cpu")
        policy = model.policy
        networks = {"actor": (policy.actor, None)}
        for i, (q, qt) in enumerate(zip(policy.critic.q_networks, policy.critic_target.q_networks)):
            networks[f"critic.qf{i}"] = (q, qt)
        for name, (online, target) in networks.items():
            layers = [m for m in online.modules() if isinstance(m, torch.nn.Linear)]
            targets = [m for m in target.modules() if isinstance(m, torch.nn.Linear)] if target is not None else []
            total = sum(layer.weight.numel() for layer in layers)
            assert sum(int(layer.weight_mask.sum()) for layer in layers) == round(0.1 * total), (cell, name)
            for layer in layers:
                assert int((layer.weight != 0)[layer.weight_mask == 0].sum()) == 0, (cell, name)
            for layer, t in zip(layers, targets, strict=target is not None):
                assert (
                    torch.equal(t.weight_mask, layer.weight_mask) and int((t.weight != 0)[layer.weight_mask == 0].sum()) == 0
                )
        summary = json.loads((cell / "summary.json").read_text())
        for name, entry in summary["final_sparsity"].items():
            assert entry["nonzero"] <= round(0.1 * entry["total"]), (cell, name)
            layers = [m for m in networks[name][0].modules() if isinstance(m, torch.nn.Linear)]
            digest = hashlib.sha256(b"".join((layer.weight != 0).numpy().tobytes() for layer in layers)).hexdigest()
            assert entry["pattern_sha256"] == digest, (cell, name)


def test_smoke_report_files_and_printed_table(smoke):
    root, _, report = smoke
    out = root / "report"
    for name in ("report.md", "runs.csv", "summary.csv", "table.csv", "iqm.csv"):
        assert (out / name).is_file(), name
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [
        "curves_sac_Pendulum-v1_w64.png",
        "diagnostics_sac_Pendulum-v1_w64.png",
        "rr_sensitivity_sac_sp0.9_w64.png",
    ]
    for png in out.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"
    assert "width-scaling plot skipped" in report.stdout
    header = next(line for line in report.stdout.splitlines() if line.startswith("| Algo"))
    for column in ("Original", "TAR", "TAR vs Original", "Uniform", "Best SET/RigL", "TAR vs best DST", "Dense"):
        assert f" {column} " in header
    assert (out / "report.md").read_text().count("![") == 3


def test_smoke_cells_store_their_diagnostics_and_the_report_plots_them(smoke):
    """Every cell (dense and sparse) has a diagnostics.csv from the callback the sweep attached: every 30 steps
    (a twentieth of the 600-step budget) from the first at which the buffer holds its 256-transition batch."""
    root, _, report = smoke
    for cell in sorted(root.glob("sac/Pendulum-v1/*/seed_*")):
        assert "sb3_tar.diagnostics.DiagnosticsCallback" in (cell / "train.log").read_text().splitlines()[0]
        frame = pd.read_csv(cell / "diagnostics.csv")
        assert frame["timesteps"].tolist() == list(range(270, 601, 30))
        for network in ("actor", "critic/qf0", "critic/qf1"):
            for tau in ("0", "0.1"):
                assert frame[f"diagnostics/{network}/dormant_{tau}"].between(0, 1).all()
            srank = frame[f"diagnostics/{network}/srank"]
            assert ((srank >= 1) & (srank <= 64) & (srank == srank.round())).all()
            assert (frame[f"diagnostics/{network}/weight_norm"] > 0).all()
    # a 90%-sparse network's weights: far smaller norm than dense at the same init scale
    dense = pd.read_csv(next(root.glob("sac/Pendulum-v1/dense_*/seed_0")) / "diagnostics.csv")
    static = pd.read_csv(next(root.glob("sac/Pendulum-v1/static_*/seed_0")) / "diagnostics.csv")
    assert static["diagnostics/critic/qf0/weight_norm"].iloc[0] < dense["diagnostics/critic/qf0/weight_norm"].iloc[0]
    assert (root / "report" / "diagnostics_sac_Pendulum-v1_w64.png").stat().st_size > 10_000
    assert (
        "![diagnostics_sac_Pendulum-v1_w64](diagnostics_sac_Pendulum-v1_w64.png)"
        in (root / "report" / "report.md").read_text()
    )


def test_smoke_table_numbers_come_from_the_raw_evaluation_files(smoke):
    root, _, report = smoke
    table = pd.read_csv(root / "report" / "table.csv")
    assert len(table) == 1
    row = table.iloc[0]

    def finals(label: str) -> list[float]:
        values = []
        for npz in sorted(root.glob(f"sac/{SMOKE_ENV}/{label}/seed_*/sac/{SMOKE_ENV}_1/evaluations.npz")):
            per_eval = np.load(npz)["results"].mean(axis=1)  # each evaluation: mean of its episodes
            values.append(per_eval[-math.ceil(0.1 * len(per_eval)) :].mean())  # last 10% of evaluations
        assert len(values) == 2
        return values

    tar, original = finals("tar_magnitude_sp0.9_rr0.01_w64"), finals("static_magnitude_sp0.9_w64")
    dst = {m: np.mean(finals(f"{m}_erk_sp0.9_w64_update_interval=100")) for m in ("set", "rigl")}
    assert row["tar_mean"] == pytest.approx(np.mean(tar))
    assert row["tar_se"] == pytest.approx(np.std(tar, ddof=1) / math.sqrt(2))
    assert row["original_mean"] == pytest.approx(np.mean(original))
    change = 100 * (np.mean(tar) - np.mean(original)) / abs(np.mean(original))
    assert row["tar_vs_original_pct"] == pytest.approx(change)
    assert row["best_dst_mean"] == pytest.approx(max(dst.values()))
    assert f"{np.mean(tar):.1f} ± {row['tar_se']:.1f}" in report.stdout
    assert f"{change:+.1f}%" in report.stdout


def test_rl_zoo_all_plots_reads_the_results(smoke, tmp_path):
    # RL-Zoo's own aggregation over seeds, from the zoo/ view (its plots package needs the rliable import shim here)
    root, _, _ = smoke
    code = (
        "import sys; from sb3_tar.experiments.tables import import_rliable; import_rliable();"
        "from rl_zoo3.plots.all_plots import all_plots; sys.argv = sys.argv[:1] + sys.argv[2:]; all_plots()"
    )
    folders = [str(root / "zoo" / name) for name in ("static_magnitude_sp0.9_w64", "tar_magnitude_sp0.9_rr0.01_w64")]
    args = ["-a", "sac", "-e", SMOKE_ENV, "-f", *folders, "-l", "static", "tar", "--no-display", "-o", str(tmp_path / "zoo")]
    done = subprocess.run(
        [sys.executable, "-c", code, "--", *args],
        cwd=REPO,
        env=dict(cli_env(), MPLBACKEND="Agg"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    import pickle

    with open(tmp_path / "zoo.pkl", "rb") as f:
        results = pickle.load(f)[SMOKE_ENV]
    expected = [
        np.load(npz)["results"][-1].mean()  # all_plots: the last evaluation of each seed
        for npz in root.glob(f"sac/{SMOKE_ENV}/tar_*/seed_*/sac/{SMOKE_ENV}_1/evaluations.npz")
    ]
    np.testing.assert_allclose(sorted(results["SAC-tar"]["last_evals"]), sorted(expected))
    runs = pd.read_csv(root / "report" / "runs.csv")
    assert len(runs) == 12


def test_killed_sweep_resumes_without_redoing_finished_cells(killed_sweep):
    """The smoke sweep killed with SIGKILL while its second cell trained: run again, it redoes that cell from a clean
    folder and the ten it never started, and leaves the finished one untouched; run once more, it runs nothing."""
    killed, finished = killed_sweep["killed"], killed_sweep["finished"]
    assert len(killed["done"]) == len(killed["partial"]) == 1  # one cell at a time: no other was started
    assert killed["present"] == sorted(killed["done"] + killed["partial"])
    assert finished and killed_sweep["mtimes"][0] == finished  # untouched, nothing added
    (partial,) = killed["partial"]
    cells = sorted(killed_sweep["root"].glob(f"sac/{SMOKE_ENV}/*/seed_*"))
    assert len(cells) == 12 and partial in cells
    for cell in cells:
        assert (cell / "done.json").is_file()
        assert [p.name for p in (cell / "sac").iterdir()] == [f"{SMOKE_ENV}_1"]  # a redone cell starts clean
    assert not (partial / "leftover_from_killed_run").exists()
    assert "0 ran, 12 already finished" in killed_sweep["again"].stdout
    assert killed_sweep["mtimes"][1] == finished


def test_overwrite_reruns_a_cell_finished_with_another_budget(killed_sweep, tmp_path: Path) -> None:
    root = tmp_path / "over"
    shutil.copytree(killed_sweep["root"], root, ignore=shutil.ignore_patterns("report"))  # the smoke cells, 600 steps
    cell = root / "sac" / SMOKE_ENV / "dense_w64" / "seed_0"
    assert json.loads((cell / "cell.json").read_text())["n_timesteps"] == 600
    args = ["sweep", "--preset", "smoke", "--methods", "dense", "--seeds", "0", "-n", "700", "--jobs", "1"]
    args += ["--no-progress", "-o", str(root)]
    refused = run_cli(*args)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    assert json.loads((cell / "cell.json").read_text())["n_timesteps"] == 600
    again = run_cli(*args, "--overwrite")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((cell / "cell.json").read_text())["n_timesteps"] == 700
    with np.load(cell / "sac" / f"{SMOKE_ENV}_1" / "evaluations.npz") as data:
        assert int(data["timesteps"][-1]) == 700
    done = json.loads((cell / "done.json").read_text())
    assert len(done["package"]["commit"] or "x" * 40) == 40  # the package commit is recorded


def test_changed_budget_is_refused_not_overwritten(tmp_path):
    # a finished cell is never silently replaced by a run with another configuration
    from sb3_tar.experiments.grid import GridSpec
    from sb3_tar.experiments.runner import CELL_FILE, DONE_FILE, cell_dir, run_sweep

    grid = GridSpec(envs=[SMOKE_ENV], methods=["dense"], widths=[32], seeds=[0], n_timesteps=300)  # nothing runs
    cell = grid.expand()[0]
    folder = cell_dir(tmp_path, cell)
    folder.mkdir(parents=True)
    (folder / CELL_FILE).write_text(json.dumps(cell.to_dict()))
    (folder / DONE_FILE).write_text("{}")
    grid.n_timesteps = 600
    with pytest.raises(ValueError, match="n_timesteps.*300, 600.*--overwrite"):
        run_sweep(grid, tmp_path, jobs=1, progress=False)


def test_dry_run_prints_the_commands_the_cells_ran(smoke, capsys):
    """``sb3-tar sweep --dry-run`` on the finished smoke sweep prints, for every cell, the command its train.log starts
    with (the sparse callback, the diagnostics callback and the checkpoint callback included)."""
    import shlex

    from sb3_tar.cli import main

    root, _, _ = smoke
    assert main(["sweep", "--preset", "smoke", "--dry-run", "-o", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("12 cells (12 finished")
    for head, line in zip(lines[1::2], lines[2::2]):
        assert head.startswith("[done] ")
        words = shlex.split(line)
        command = words[words.index(sys.executable) :]  # after the environment variables
        ran = (root / head.removeprefix("[done] ") / "train.log").read_text().splitlines()[0]
        assert " ".join(command) == ran
        assert "sb3_tar.diagnostics.DiagnosticsCallback" in ran


def test_docs_name_the_methods_the_smoke_preset_runs():
    """docs/experiments.md's presets table names exactly the methods of the ``smoke`` preset and those it leaves out
    (every method of the package is one or the other), and its cell count."""
    import re

    from sb3_tar.experiments.grid import METHODS, get_preset

    grid = get_preset("smoke")
    row = next(line for line in (REPO / "docs" / "experiments.md").read_text().splitlines() if line.startswith("| `smoke` |"))
    ran, left_out = re.search(r"methods \(([^;]+); not (.+?), which `--methods` adds\)", row).groups()
    assert re.findall(r"`(\w+)`", ran) == list(grid.methods)
    assert sorted(re.findall(r"`(\w+)`", left_out) + list(grid.methods)) == sorted(METHODS)
    assert f"{len(grid.methods)} of the {len(METHODS)} methods (" in row
    assert row.rstrip(" |").endswith(f"| {len(grid.expand())}")
