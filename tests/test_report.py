"""``sb3-tar report`` on a results directory in the sweep's exact layout, with evaluation files written in
SB3 EvalCallback's format (``timesteps``, ``results``, ``ep_lengths``). Every number checked here is
recomputed from the raw ``evaluations.npz`` files, independently of the report's own loader."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import trim_mean

from sb3_tar.cli import main
from sb3_tar.experiments.grid import GridSpec
from sb3_tar.experiments.report import block_markers, make_report
from sb3_tar.experiments.results import final_return, load_evaluations
from sb3_tar.experiments.runner import CELL_FILE, DONE_FILE, cell_dir, run_dir
from sb3_tar.experiments.tables import import_rliable, pct_change, pct_text

N_EVALS = 25  # last 10% -> the last ceil(2.5) = 3 evaluations
REPS = 50  # bootstrap replications: enough to check the intervals against rliable's; their cost grows with the count
BASE = {"dense": 1000.0, "static": 500.0, "tar": 700.0, "uniform": 600.0, "set": 650.0, "rigl": 680.0}
ENV_SCALE = {"HalfCheetah-v4": 1.0, "Hopper-v4": 2.0}


def _write_cell(root: Path, cell, rng: np.random.Generator, done: bool = True) -> None:
    """One finished cell as the runner leaves it: cell.json, RL-Zoo's evaluations.npz, done.json."""
    folder = cell_dir(root, cell)
    run = run_dir(root, cell)
    run.mkdir(parents=True)
    (folder / CELL_FILE).write_text(json.dumps(cell.to_dict()))
    level = BASE[cell.method] * ENV_SCALE[cell.env] * (1 + cell.width / 1024) * (1 + (cell.rr or 0) * 10)
    if cell.criterion == "erk" and cell.method in ("static", "tar", "uniform"):
        level *= 0.9
    timesteps = np.arange(1, N_EVALS + 1) * 1000
    results = level * timesteps[:, None] / timesteps[-1] + rng.normal(0, 50, size=(N_EVALS, 3)) + 10 * cell.seed
    np.savez(run / "evaluations.npz", timesteps=timesteps, results=results, ep_lengths=np.full((N_EVALS, 3), 1000))
    if done:
        (folder / DONE_FILE).write_text("{}")


def _raw_final(folder: Path) -> float:
    """Final return straight from a cell's npz: mean of the last 10% (ceil) of per-evaluation episode means."""
    with np.load(next(folder.glob("*/*_1/evaluations.npz"))) as data:
        per_eval = data["results"].mean(axis=1)
    n_last = math.ceil(0.1 * len(per_eval))
    return float(per_eval[-n_last:].mean())


def _raw_finals(root: Path, **config) -> list[float]:
    finals = []
    for cell_file in sorted(root.glob(f"*/*/*/seed_*/{CELL_FILE}")):
        cell = json.loads(cell_file.read_text())
        if (cell_file.parent / DONE_FILE).exists() and all(cell[k] == v for k, v in config.items()):
            finals.append(_raw_final(cell_file.parent))
    return finals


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    grid = GridSpec(
        algos=["sac"],
        envs=list(ENV_SCALE),
        methods=["dense", "static", "tar", "uniform", "set", "rigl"],
        criteria=["magnitude", "erk"],
        sparsities=[0.9],
        rrs=[0.005, 0.01],
        widths=[256, 1024],
        seeds=[0, 1, 2],
    )
    rng = np.random.default_rng(0)
    for cell in grid.expand():
        _write_cell(root, cell, rng)
    # an interrupted cell: files but no done marker; the report must leave it out
    extra = GridSpec(envs=["HalfCheetah-v4"], methods=["tar"], rrs=[0.01], widths=[256], seeds=[7]).expand()[0]
    _write_cell(root, extra, rng, done=False)
    return root


@pytest.fixture(scope="module")
def report(results_dir, tmp_path_factory):
    return make_report(results_dir, tmp_path_factory.mktemp("report"), reps=REPS, progress=False, echo=lambda s: None)


def test_final_return_is_the_mean_of_the_last_tenth():
    assert final_return(np.arange(10.0)) == 9.0
    assert final_return(np.arange(25.0)) == np.mean([22.0, 23.0, 24.0])
    assert final_return(np.array([5.0, 7.0])) == 7.0
    assert final_return(np.arange(20.0), last_fraction=0.5) == np.mean(np.arange(10.0, 20.0))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        final_return(np.arange(3.0), last_fraction=0.0)


def test_load_evaluations_averages_episodes(results_dir):
    run = next(results_dir.glob("sac/HalfCheetah-v4/dense_w256/seed_0/sac/HalfCheetah-v4_1"))
    timesteps, returns = load_evaluations(run)
    raw = np.load(run / "evaluations.npz")
    np.testing.assert_array_equal(timesteps, raw["timesteps"])
    np.testing.assert_allclose(returns, raw["results"].mean(axis=1))


def test_table_numbers_match_the_raw_evaluation_files(results_dir, report):
    table = pd.read_csv(report.csv["table"])
    # 2 envs x 2 widths x 2 criteria x 2 rr values of TAR
    assert len(table) == 16
    for _, row in table.iterrows():
        config = {"algo": "sac", "env": row["env"], "width": int(row["width"]), "criterion": row["criterion"], "sparsity": 0.9}
        tar = _raw_finals(results_dir, method="tar", rr=row["rr"], **config)
        original = _raw_finals(results_dir, method="static", **config)
        uniform = _raw_finals(results_dir, method="uniform", rr=row["rr"], **config)
        same_net = {"algo": "sac", "env": row["env"], "width": int(row["width"])}
        dst = {m: _raw_finals(results_dir, method=m, **same_net) for m in ("set", "rigl")}
        assert len(tar) == len(original) == 3  # the unfinished seed 7 is left out
        assert row["tar_mean"] == pytest.approx(np.mean(tar))
        assert row["tar_se"] == pytest.approx(np.std(tar, ddof=1) / math.sqrt(3))
        assert row["original_mean"] == pytest.approx(np.mean(original))
        assert row["uniform_mean"] == pytest.approx(np.mean(uniform))
        assert row["tar_vs_original_pct"] == pytest.approx(100 * (np.mean(tar) - np.mean(original)) / abs(np.mean(original)))
        best = max(dst, key=lambda m: np.mean(dst[m]))
        assert row["best_dst"] == best == "rigl"
        assert row["tar_vs_best_dst_pct"] == pytest.approx(pct_change(np.mean(tar), np.mean(dst[best])))
        assert row["dense_mean"] == pytest.approx(np.mean(_raw_finals(results_dir, method="dense", **same_net)))
    # the printed markdown shows the same numbers, rounded
    first = table.iloc[0]
    assert f"{first['tar_mean']:.1f} ± {first['tar_se']:.1f}" in report.table_text
    assert f"{first['tar_vs_original_pct']:+.1f}%" in report.table_text


def test_iqm_matches_rliable_on_the_raw_files(results_dir, report):
    iqm = pd.read_csv(report.csv["iqm"])
    row = iqm[(iqm["env"] == "Hopper-v4") & (iqm["width"] == 1024) & (iqm["method"] == "TAR (magnitude, rr=0.01)")].iloc[0]
    finals = _raw_finals(results_dir, method="tar", env="Hopper-v4", width=1024, criterion="magnitude", rr=0.01)
    assert row["n"] == 3
    assert row["iqm"] == pytest.approx(trim_mean(finals, 0.25))
    assert row["ci_low"] <= row["iqm"] <= row["ci_high"]
    library, metrics = import_rliable()
    np.random.seed(0)  # rliable 1.2 bootstraps with NumPy's global generator; the report seeds it per method
    _, interval = library.get_interval_estimates(
        {"x": np.array(finals)[:, None]}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=REPS
    )
    assert [row["ci_low"], row["ci_high"]] == pytest.approx(interval["x"][:, 0].tolist())
    aggregate = pd.read_csv(report.csv["iqm_aggregate"])
    assert set(aggregate["n_envs"]) == {2} and "Dense" in set(aggregate["method"])
    dense = aggregate[(aggregate["method"] == "Dense") & (aggregate["width"] == 256)].iloc[0]
    assert dense["ci_low"] <= dense["iqm"] <= dense["ci_high"]


def test_plots_and_files(report):
    names = sorted(p.name for p in report.plots)
    assert names == [
        "curves_sac_HalfCheetah-v4_w1024.png",
        "curves_sac_HalfCheetah-v4_w256.png",
        "curves_sac_Hopper-v4_w1024.png",
        "curves_sac_Hopper-v4_w256.png",
        *(
            f"rr_by_sparsity_sac_{env}_{criterion}_w{width}.png"
            for env in ("HalfCheetah-v4", "Hopper-v4")
            for criterion in ("erk", "magnitude")
            for width in (1024, 256)
        ),
        "rr_sensitivity_sac_sp0.9_w1024.png",
        "rr_sensitivity_sac_sp0.9_w256.png",
        "width_scaling_sac_sp0.9.png",
    ]
    for path in report.plots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    text = report.markdown.read_text()
    assert "TAR vs Original" in text and "IQM [95% CI]" in text and "![width_scaling_sac_sp0.9]" in text
    assert any("1 unfinished cell" in m for m in report.messages)
    for name in ("runs", "summary", "table", "iqm", "iqm_aggregate"):
        assert report.csv[name].is_file()


def test_rr_and_width_tables_match_the_raw_evaluation_files(results_dir, report):
    """The scale tables (rr.csv, width.csv, width_gain.csv) recomputed from the raw evaluation files: TAR at each
    rr against Original, and TAR's gain over Original at 256 and 1024 with the difference of the two gains."""
    rr = pd.read_csv(report.csv["rr"])
    # 2 envs x 2 criteria x 2 widths, each Original and TAR at two rr values
    assert len(rr) == 2 * 2 * 2 * 3 and set(rr["rr"]) == {0.0, 0.005, 0.01}
    for _, row in rr[rr["method"] == "tar"].iterrows():
        config = {"env": row["env"], "width": int(row["width"]), "criterion": row["criterion"], "sparsity": 0.9}
        tar = _raw_finals(results_dir, method="tar", rr=row["rr"], **config)
        original = _raw_finals(results_dir, method="static", **config)
        assert row["mean"] == pytest.approx(np.mean(tar)) and row["n"] == 3
        assert row["vs_original_pct"] == pytest.approx(100 * (np.mean(tar) - np.mean(original)) / abs(np.mean(original)))
        pairs = [(t > o) + 0.5 * (t == o) for t in tar for o in original]
        assert row["probability"] == pytest.approx(sum(pairs) / 9)
    pairs = pd.read_csv(report.csv["rr_pairs"])  # per env, criterion and width: rr 0.01 > rr 0.005, each rr > dense
    assert len(pairs) == 2 * 2 * 2 * 3
    for _, row in pairs.iterrows():
        config = {"env": row["env"], "width": int(row["width"])}
        match = re.fullmatch(r"TAR rr ([\d.]+) > (?:TAR rr ([\d.]+)|dense)", row["comparison"])
        tar = {"method": "tar", "criterion": row["criterion"], "sparsity": 0.9, **config}
        x = _raw_finals(results_dir, rr=float(match[1]), **tar)
        if match[2] is None:
            y = _raw_finals(results_dir, method="dense", **config)
        else:
            assert (match[1], match[2]) == ("0.01", "0.005")
            y = _raw_finals(results_dir, rr=float(match[2]), **tar)
        assert (row["n_x"], row["n_y"]) == (3, 3)
        assert row["probability"] == pytest.approx(sum((a > b) + 0.5 * (a == b) for a in x for b in y) / 9)
    gains = pd.read_csv(report.csv["width_gain"])
    assert len(gains) == 2 * 2 * 2  # env x criterion x TAR's rr
    for _, row in gains.iterrows():
        config = {"env": row["env"], "criterion": row["criterion"], "sparsity": 0.9}
        gain = {}
        for width in (256, 1024):
            tar = np.mean(_raw_finals(results_dir, method="tar", rr=row["rr"], width=width, **config))
            original = np.mean(_raw_finals(results_dir, method="static", width=width, **config))
            gain[width] = 100 * (tar - original) / abs(original)
        assert (row["narrow"], row["wide"], row["n"]) == (256, 1024, "3/3/3/3")
        assert row["gain_narrow"] == pytest.approx(gain[256]) and row["gain_wide"] == pytest.approx(gain[1024])
        assert row["difference"] == pytest.approx(gain[1024] - gain[256])
        assert row["ci_low"] <= row["ci_high"]
    width = pd.read_csv(report.csv["width"])
    row = width[
        (width["env"] == "Hopper-v4") & (width["criterion"] == "erk") & (width["rr"] == 0.01) & (width["width"] == 1024)
    ]
    row = row.iloc[0]
    same_net = {"env": "Hopper-v4", "width": 1024}
    assert row["rigl_mean"] == pytest.approx(np.mean(_raw_finals(results_dir, method="rigl", **same_net)))
    assert row["dense_mean"] == pytest.approx(np.mean(_raw_finals(results_dir, method="dense", **same_net)))
    text = report.markdown.read_text()
    assert (
        "## Final return against the recovery ratio rr" in text and "## Does TAR's gain over Original grow with width?" in text
    )
    assert "## TAR's recovery ratios against each other and against dense" in text


def test_missing_axes_skip_their_plots_with_a_message(results_dir, tmp_path, capsys):
    # a grid with one width and one rr value: the width and rr plots are skipped, the rest is written
    subset = tmp_path / "subset"
    for folder in results_dir.glob("sac/HalfCheetah-v4/*_w256"):
        if "rr0.005" not in folder.name:
            (subset / "sac/HalfCheetah-v4").mkdir(parents=True, exist_ok=True)
            shutil.copytree(folder, subset / "sac/HalfCheetah-v4" / folder.name)
    assert main(["report", str(subset), "--reps", str(REPS), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "width-scaling plot skipped: the grid has a single width (256)" in out
    assert "aggregate IQM skipped: the grid has a single env" in out
    assert "| SAC  | HalfCheetah-v4 |" in out  # the table is printed
    written = sorted(p.name for p in (subset / "report").glob("*.png"))
    assert written == ["curves_sac_HalfCheetah-v4_w256.png", "rr_sensitivity_sac_sp0.9_w256.png"]
    # static only at one rr: no rr axis at all
    only = tmp_path / "only"
    for folder in results_dir.glob("sac/HalfCheetah-v4/dense_w256"):
        shutil.copytree(folder, only / "sac/HalfCheetah-v4" / folder.name)
    assert main(["report", str(only), "--reps", str(REPS), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "rr-sensitivity plot skipped" in out and "Original-vs-TAR table skipped" in out


def test_readme_block_is_rewritten_between_its_markers_only(results_dir, tmp_path, capsys):
    from sb3_tar.experiments.report import DIGEST_BEGIN, DIGEST_END, readme_block

    subset = tmp_path / "subset"
    shutil.copytree(results_dir / "sac/HalfCheetah-v4", subset / "sac/HalfCheetah-v4")
    readme = tmp_path / "docs" / "RESULTS.md"
    readme.parent.mkdir()
    readme.write_text(f"# Title\n\nprose before\n\n{DIGEST_BEGIN}\nstale numbers\n{DIGEST_END}\n\nprose after\n")
    assert main(["report", str(subset), "--reps", str(REPS), "--no-progress", "--no-plots", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nprose before\n\n" + DIGEST_BEGIN) and text.endswith(DIGEST_END + "\n\nprose after\n")
    block = readme_block(readme)
    assert "stale numbers" not in block
    assert block == (subset / "report" / "digest.md").read_text().replace("](", "](../subset/report/")  # every plot link
    # the main table's TAR cell at width 256, checked against the raw evaluation files
    finals = _raw_finals(subset, method="tar", width=256, rr=0.01, criterion="magnitude")
    assert f"{np.mean(finals):.1f} ± {np.std(finals, ddof=1) / math.sqrt(len(finals)):.1f}" in block
    assert "](../subset/report/curves_sac_HalfCheetah-v4_w256.png)" in block  # relative to the file's folder
    # a file without markers: exit 2, a message naming the markers, the file unchanged
    plain = tmp_path / "plain.md"
    plain.write_text("no markers here\n")
    assert main(["report", str(subset), "--reps", str(REPS), "--no-progress", "--readme", str(plain)]) == 2
    assert "has no generated block" in capsys.readouterr().err
    assert plain.read_text() == "no markers here\n"


def _raw_curve(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(next(folder.glob("*/*_1/evaluations.npz"))) as data:
        return data["timesteps"], data["results"].mean(axis=1)


def test_ranking_at_steps_reads_each_run_as_if_stopped_there(results_dir, tmp_path):
    """`--at-steps`: each configuration's mean over seeds of the mean of the last ceil(10%) of the evaluations
    made up to the step, ranked within algo/env/width, recomputed here from the raw files."""
    subset = tmp_path / "subset"
    shutil.copytree(results_dir / "sac/HalfCheetah-v4", subset / "sac/HalfCheetah-v4")
    report = make_report(subset, reps=REPS, progress=False, make_plots=False, echo=lambda s: None, at_steps=[10_000, 25_000])
    ranking = pd.read_csv(report.csv["ranking"])
    expected = {}
    for cell_file in sorted(subset.glob(f"*/*/*/seed_*/{CELL_FILE}")):
        cell = json.loads(cell_file.read_text())
        if not (cell_file.parent / DONE_FILE).exists():
            continue
        timesteps, returns = _raw_curve(cell_file.parent)
        for step in (10_000, 25_000):
            upto = returns[timesteps <= step]  # 10 evaluations at 10k -> the last 1; 25 at 25k -> the last 3
            n_last = {10_000: 1, 25_000: 3}[step]
            key = (cell["width"], cell["method"], cell["criterion"], cell["rr"], step)
            expected.setdefault(key, []).append(upto[-n_last:].mean())
    assert len(ranking) == len(expected)
    label_of = {}
    for _, row in pd.read_csv(report.csv["runs"]).iterrows():
        rr = None if pd.isna(row["rr"]) else row["rr"]
        criterion = None if pd.isna(row["criterion"]) else row["criterion"]
        label_of[(row["width"], row["method"], criterion, rr)] = row["label"]
    for (width, method, criterion, rr, step), values in expected.items():
        row = ranking[(ranking["width"] == width) & (ranking["label"] == label_of[(width, method, criterion, rr)])]
        row = row[row["step"] == step].iloc[0]
        assert row["n"] == len(values) == 3
        assert row["mean"] == pytest.approx(np.mean(values), rel=1e-12)
        assert row["se"] == pytest.approx(np.std(values, ddof=1) / math.sqrt(3), rel=1e-9)
        same = [np.mean(v) for (w, *_, s), v in expected.items() if w == width and s == step]
        assert row["rank"] == 1 + sum(m > np.mean(values) for m in same)
    text = report.markdown.read_text()
    assert "## Ranking at 10,000, 25,000 steps" in text and "(#1)" in text
    with pytest.raises(ValueError, match="strictly increasing"):
        make_report(subset, reps=REPS, progress=False, make_plots=False, echo=lambda s: None, at_steps=[25_000, 10_000])


def test_named_readme_block_is_rewritten_and_the_other_block_kept(results_dir, tmp_path, capsys):
    from sb3_tar.experiments.report import DIGEST_BEGIN, DIGEST_END, block_markers, readme_block

    subset = tmp_path / "subset"
    shutil.copytree(results_dir / "sac/HalfCheetah-v4", subset / "sac/HalfCheetah-v4")
    begin, end = block_markers("cpu300k")
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\n{DIGEST_BEGIN}\nfirst block\n{DIGEST_END}\n\nmiddle\n\n{begin}\nstale\n{end}\n\nlast\n")
    args = ["report", str(subset), "--reps", str(REPS), "--no-progress", "--no-plots", "--readme", str(readme)]
    assert main([*args, "--block", "cpu300k", "--at-steps", "10000", "25000"]) == 0
    assert readme_block(readme) == "first block\n"
    block = readme_block(readme, "cpu300k")
    assert "stale" not in block and "#### Ranking at 10,000, 25,000 steps" in block
    assert readme.read_text().endswith(f"{end}\n\nlast\n")
    assert main([*args, "--block", "other"]) == 2
    assert "no generated block named 'other'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="block name"):
        block_markers("two words")


def test_rigl_over_dense_is_the_mann_whitney_fraction_of_pairs(report, results_dir):
    """P(RigL > dense) per RigL configuration: the fraction of (RigL run, dense run) pairs that RigL wins."""
    table = pd.read_csv(report.csv["improvement"])
    rows = table[table["comparison"] == "RigL > dense"]
    assert len(rows) == 4  # 2 envs x 2 widths, RigL from ERK only
    for _, row in rows.iterrows():
        rigl = _raw_finals(results_dir, env=row["env"], width=row["width"], method="rigl")
        dense = _raw_finals(results_dir, env=row["env"], width=row["width"], method="dense")
        wins = [(x > y) + 0.5 * (x == y) for x in rigl for y in dense]
        assert (row["n_x"], row["n_y"]) == (3, 3)
        assert row["probability"] == pytest.approx(np.mean(wins))


def test_near_zero_baselines_print_a_bound_and_notes_name_each_configuration(tmp_path):
    """A static baseline near zero makes TAR's percent change huge and meaningless: the tables print the bound and
    a note gives the baseline's mean; a seed mismatch names the configuration's width and rr, one note each."""
    root = tmp_path / "results"
    grid = GridSpec(
        algos=["sac"],
        envs=["HalfCheetah-v4"],
        methods=["static", "tar"],
        criteria=["magnitude"],
        sparsities=[0.8, 0.95],
        rrs=[0.005, 0.02],
        widths=[256],
        seeds=[0, 1, 2],
    )
    # constant evaluations, so a run's final return is its level: static at 0.95 near zero (-0.5, 0.5, 1.5: mean
    # 0.5), TAR at 0.95 800 + seed; at 0.8 static 400 + seed, TAR 500 + seed
    levels = {("static", 0.8): 400.0, ("tar", 0.8): 500.0, ("static", 0.95): -0.5, ("tar", 0.95): 800.0}
    for cell in grid.expand():
        if cell.method == "tar" and cell.rr == 0.02 and cell.seed == 2:
            continue  # TAR at rr 0.02 has seeds 0 and 1 only
        folder, run = cell_dir(root, cell), run_dir(root, cell)
        run.mkdir(parents=True)
        (folder / CELL_FILE).write_text(json.dumps(cell.to_dict()))
        timesteps = np.arange(1, N_EVALS + 1) * 1000
        results = np.full((N_EVALS, 2), levels[(cell.method, cell.sparsity)] + cell.seed)
        np.savez(run / "evaluations.npz", timesteps=timesteps, results=results, ep_lengths=np.full((N_EVALS, 2), 1000))
        (folder / DONE_FILE).write_text("{}")
    readme = tmp_path / "README.md"
    readme.write_text("\n".join(block_markers(None)) + "\n")
    out = make_report(root, tmp_path / "report", reps=20, make_plots=False, progress=False, echo=lambda s: None, readme=readme)
    header, *rows = [line for line in readme.read_text().splitlines() if line.startswith("| Algo") or line.startswith("| SAC")]
    column = [c.strip() for c in header.split("|")].index("TAR vs Original")
    tar_vs_original = [[c.strip() for c in row.split("|")][column] for row in rows[:4]]  # 0.8 at each rr, then 0.95
    # 0.8: 100 * (501 - 401) / 401 = 24.94 at rr 0.005, 100 * (500.5 - 401) / 401 = 24.81 at rr 0.02 (seeds 0, 1)
    assert tar_vs_original == ["+24.9%", "+24.8%", ">+1000%", ">+1000%"], rows
    near_zero = [m for m in out.messages if "near zero" in m]
    # 100 * (801 - 0.5) / 0.5 = 160100 at rr 0.005 (TAR seeds 0-2); 100 * (800.5 - 0.5) / 0.5 = 160000 at rr 0.02
    assert near_zero == [
        "sac HalfCheetah-v4 magnitude sparsity 0.95, width 256, rr 0.005: Original's mean final return is 0.5, near "
        "zero, so a percent change over it (here +160100%) says nothing; the tables print it as >+1000%: compare the "
        "returns",
        "sac HalfCheetah-v4 magnitude sparsity 0.95, width 256, rr 0.02: Original's mean final return is 0.5, near "
        "zero, so a percent change over it (here +160000%) says nothing; the tables print it as >+1000%: compare the "
        "returns",
    ]
    mismatches = [m for m in out.messages if "not a paired comparison" in m]
    assert mismatches == [
        f"sac HalfCheetah-v4 magnitude sparsity {s}, width 256, rr 0.02: Original seeds [0 1 2] differ from TAR seeds "
        "[0 1] (not a paired comparison)"
        for s in ("0.8", "0.95")
    ]
    assert len(set(out.messages)) == len(out.messages)
    assert all(m in readme.read_text() for m in near_zero + mismatches)


@pytest.mark.parametrize(
    "value, text",
    [
        (0.0, "+0.0%"),
        (-12.34, "-12.3%"),
        (1000.0, "+1000.0%"),
        (-1000.0, "-1000.0%"),
        (1000.01, ">+1000%"),
        (-1000.01, "<-1000%"),
        (math.inf, "–"),
        (math.nan, "–"),
    ],
)
def test_percent_text_prints_a_bound_beyond_a_thousand_percent(value, text):
    assert pct_text(value) == text
