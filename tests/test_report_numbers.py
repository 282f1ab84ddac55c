"""Report numbers against hand computations on results whose final returns are set exactly: IQM with 8 seeds
(with 3 seeds the IQM equals the mean, so it would not catch an IQM replaced by a mean), the aggregate IQM
normalised by dense, percent changes of TAR and Uniform (negative returns included) and the probability
of improvement."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sb3_tar.experiments.grid import GridSpec
from sb3_tar.experiments.results import load_results
from sb3_tar.experiments.runner import CELL_FILE, DONE_FILE, cell_dir, run_dir
from sb3_tar.experiments.tables import aggregate_iqm_table, comparison_table, improvement_table, iqm_table, summarize

# Final returns per (env, method), one per seed; every evaluation of a run returns its final value,
# so the final return (mean of the last evaluations) is exactly that value.
SEEDS = list(range(8))
FINALS = {
    "HalfCheetah-v4": {
        "dense": [1000, 1010, 990, 1020, 980, 1005, 995, 1000],
        "static": [100, 400, 250, 50, 900, 300, 200, 350],
        "tar": [500, 700, 650, 100, 1200, 600, 550, 800],
        "uniform": [200, 450, 300, 120, 950, 330, 260, 390],
    },
    "Hopper-v4": {
        "dense": [2000] * 8,
        "static": [-100, -400, -250, -50, -900, -300, -200, -350],  # negative returns
        "tar": [-50, -200, -100, -40, -300, -150, -100, -175],
        "uniform": [-100, -400, -250, -50, -900, -300, -200, -350],
    },
}


def iqm_by_hand(values: list[float]) -> float:
    """Interquartile mean of a multiple of 4 values: drop the lowest and highest quarter, average the rest."""
    ordered = sorted(values)
    quarter = len(ordered) // 4
    middle = ordered[quarter : len(ordered) - quarter]
    return sum(middle) / len(middle)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("numbers")
    grid = GridSpec(envs=list(FINALS), methods=["dense", "static", "tar", "uniform"], rrs=[0.01], seeds=SEEDS)
    for cell in grid.expand():
        run = run_dir(root, cell)
        run.mkdir(parents=True)
        (cell_dir(root, cell) / CELL_FILE).write_text(json.dumps(cell.to_dict()))
        value = FINALS[cell.env][cell.method][cell.seed]
        np.savez(
            run / "evaluations.npz",
            timesteps=np.arange(1, 5) * 1000,
            results=np.full((4, 2), float(value)),
            ep_lengths=np.full((4, 2), 1000),
        )
        (cell_dir(root, cell) / DONE_FILE).write_text("{}")
    return load_results(root).runs


def test_final_returns_are_the_values_written(runs: pd.DataFrame) -> None:
    for (env, method, seed), value in runs.set_index(["env", "method", "seed"])["final_return"].items():
        assert value == FINALS[env][method][seed]


def test_iqm_with_eight_seeds_is_the_interquartile_mean_not_the_mean(runs: pd.DataFrame) -> None:
    table = iqm_table(runs, reps=200)
    row = table[(table["env"] == "HalfCheetah-v4") & table["method"].str.startswith("TAR")].iloc[0]
    values = FINALS["HalfCheetah-v4"]["tar"]
    assert row["n"] == 8
    assert row["iqm"] == pytest.approx(iqm_by_hand(values))  # sorted: 100 500 [550 600 650 700] 800 1200 -> 625
    assert iqm_by_hand(values) == 625.0 and np.mean(values) == 637.5
    assert row["ci_low"] <= row["iqm"] <= row["ci_high"]


def test_aggregate_iqm_is_normalised_by_the_dense_mean_of_each_env(runs: pd.DataFrame) -> None:
    table, message = aggregate_iqm_table(runs, reps=200)
    assert message == ""
    row = table[table["method"].str.startswith("TAR")].iloc[0]
    normalised = [v / np.mean(FINALS[env]["dense"]) for env in FINALS for v in FINALS[env]["tar"]]
    assert row["n_envs"] == 2 and row["n_runs"] == 8
    assert row["iqm"] == pytest.approx(iqm_by_hand(normalised))


def test_percent_changes_of_tar_and_uniform_use_the_original_as_baseline(runs: pd.DataFrame) -> None:
    table = comparison_table(summarize(runs)).set_index("env")
    for env in FINALS:
        original = np.mean(FINALS[env]["static"])
        tar = np.mean(FINALS[env]["tar"])
        uniform = np.mean(FINALS[env]["uniform"])
        assert table.loc[env, "tar_vs_original_pct"] == pytest.approx(100 * (tar - original) / abs(original))
        assert table.loc[env, "uniform_vs_original_pct"] == pytest.approx(100 * (uniform - original) / abs(original))
    # Hopper: returns are negative; TAR's mean -139.375 against Original's -318.75 is an improvement of +56.3%
    assert table.loc["Hopper-v4", "tar_vs_original_pct"] == pytest.approx(100 * (318.75 - 139.375) / 318.75)
    assert table.loc["Hopper-v4", "tar_vs_original_pct"] > 0
    assert table.loc["HalfCheetah-v4", "uniform_vs_original_pct"] == pytest.approx(100 * (375.0 - 318.75) / 318.75)


def test_probability_of_improvement_counts_pairs(runs: pd.DataFrame) -> None:
    table = improvement_table(runs, reps=200)
    for env in FINALS:
        for other, name in (("static", "TAR > Original"), ("uniform", "TAR > Uniform")):
            x, y = FINALS[env]["tar"], FINALS[env][other]
            pairs = [(a > b) + 0.5 * (a == b) for a in x for b in y]
            row = table[(table["env"] == env) & (table["comparison"] == name)].iloc[0]
            assert row["probability"] == pytest.approx(sum(pairs) / len(pairs)), (env, name)
            assert row["ci_low"] <= row["probability"] <= row["ci_high"]


def test_connectivity_and_layer_tables_from_summary_files(tmp_path) -> None:
    """Dead units are summed over layers and networks of a cell's report, averaged over seeds by hand."""
    from sb3_tar.experiments.results import dead_units
    from sb3_tar.experiments.runner import SUMMARY_FILE
    from sb3_tar.experiments.tables import connectivity_table, layer_table

    def layer(name, dead_before, dead_after, revived):
        return dict(name=name, shape=[4, 3], threshold=6, kept_before=2, need=4, floor=1, revived=revived,
                    density=0.5, dead_before=dead_before, dead_after=dead_after)  # fmt: skip

    folders = []
    for seed, (a, b) in enumerate([((5, 1), (7, 0)), ((3, 3), (1, 1))]):
        folder = tmp_path / f"seed_{seed}"
        folder.mkdir()
        reports = {"actor": {"layers": [layer("l0", *a, 2)]}, "critic.qf0": {"layers": [layer("0", *b, 3)]}}
        (folder / SUMMARY_FILE).write_text(json.dumps({"reports": reports}))
        folders.append(folder)
    # 5 + 7 and 1 + 0 dead, among (4 + 3) + (4 + 3) units
    assert dead_units(folders[0]) == {"dead_before": 12.0, "dead_after": 1.0, "units": 14.0}
    assert dead_units(folders[1]) == {"dead_before": 4.0, "dead_after": 4.0, "units": 14.0}
    empty = tmp_path / "dense"
    empty.mkdir()
    assert all(np.isnan(v) for v in dead_units(empty).values())
    runs = pd.DataFrame(
        [
            dict(
                algo="sac",
                env="E",
                method="tar",
                criterion="magnitude",
                sparsity=0.9,
                rr=0.01,
                width=256,
                seed=s,
                label="tar",
                **dead_units(f),
            )  # fmt: skip
            for s, f in enumerate(folders)
        ]
    )
    table = connectivity_table(runs)
    assert table.loc[0, "n"] == 2 and table.loc[0, "dead_before"] == 8.0 and table.loc[0, "dead_after"] == 2.5
    rows = layer_table(json.loads((folders[0] / SUMMARY_FILE).read_text())["reports"])
    assert rows["B_l"].tolist() == [2, 3] and rows["network"].tolist() == ["actor", "critic.qf0"]


def test_package_commit_of_a_cell(tmp_path) -> None:
    from sb3_tar.experiments.results import package_commit_of

    (tmp_path / "done.json").write_text(
        json.dumps({"package": {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": True}, "wall_s": 90.5})
    )
    assert package_commit_of(tmp_path) == "0123456789ab+dirty"
    from sb3_tar.experiments.results import _done_record, _number

    assert _number(_done_record(tmp_path), "wall_s") == 90.5  # what load_results puts in the wall_s column
    (tmp_path / "done.json").write_text("{}")
    assert package_commit_of(tmp_path) == "unknown"


def test_runs_carry_the_commit_column(runs: pd.DataFrame) -> None:
    assert set(runs["commit"]) == {"unknown"}  # the synthetic cells record none
    assert runs["wall_s"].isna().all()


def test_probability_of_improvement_over_set_and_rigl_ignores_their_criterion() -> None:
    """SET/RigL start from ERK, TAR from magnitude: they are compared at the same algo, env, sparsity and width."""

    def run(method: str, criterion: str, seed: int, value: float, rr: float = float("nan")) -> dict:
        return dict(algo="sac", env="E", method=method, criterion=criterion, sparsity=0.9, rr=rr, width=256,
                    seed=seed, final_return=value)  # fmt: skip

    tar = [300.0, 500.0, 700.0]
    set_ = [400.0, 600.0]
    rigl = [100.0, 200.0, 800.0]
    rows = [run("tar", "magnitude", s, v, rr=0.01) for s, v in enumerate(tar)]
    rows += [run("set", "erk", s, v) for s, v in enumerate(set_)]
    rows += [run("rigl", "erk", s, v) for s, v in enumerate(rigl)]
    rows.append({**run("set", "erk", 0, 1e9), "sparsity": 0.95})  # another sparsity: not compared
    table = improvement_table(pd.DataFrame(rows), reps=200).set_index("comparison")
    assert set(table.index) == {"TAR > SET", "TAR > RigL"}  # no Original or Uniform runs
    # TAR > SET: pairs (300,400) no, (300,600) no, (500,400) yes, (500,600) no, (700,400) yes, (700,600) yes -> 3/6
    assert table.loc["TAR > SET", "probability"] == pytest.approx(3 / 6)
    assert table.loc["TAR > SET", "n_y"] == 2
    # TAR > RigL: 300 beats 100, 200; 500 beats 100, 200; 700 beats 100, 200 -> 6/9
    assert table.loc["TAR > RigL", "probability"] == pytest.approx(6 / 9)


def test_grid_wall_clock_is_the_union_of_cell_intervals() -> None:
    from sb3_tar.experiments.results import wall_clock_seconds

    # intervals [0, 100], [50, 150] (side by side: union 150 s), a gap, then [1000, 1060] and a cell without times
    runs = pd.DataFrame({"wall_s": [100.0, 100.0, 60.0, float("nan")], "finished": [100.0, 150.0, 1060.0, 5000.0]})
    assert wall_clock_seconds(runs) == 150.0 + 60.0
    assert wall_clock_seconds(runs.iloc[3:]) == 0.0
    nested = pd.DataFrame({"wall_s": [100.0, 10.0], "finished": [100.0, 50.0]})  # [0, 100] holds [40, 50]
    assert wall_clock_seconds(nested) == 100.0


def test_connectivity_counts_units_and_formats_them(tmp_path) -> None:
    from sb3_tar.experiments.results import dead_units
    from sb3_tar.experiments.runner import SUMMARY_FILE
    from sb3_tar.experiments.tables import connectivity_table, format_connectivity

    layers = [
        dict(name="0", shape=[4, 3], dead_before=2, dead_after=0),
        dict(name="1", shape=[1, 4], dead_before=1, dead_after=1),
    ]
    (tmp_path / SUMMARY_FILE).write_text(json.dumps({"reports": {"actor": {"layers": layers}}}))
    units = dead_units(tmp_path)
    assert units == {"dead_before": 3.0, "dead_after": 1.0, "units": 12.0}  # (4 + 3) + (1 + 4) outputs plus inputs
    runs = pd.DataFrame([dict(algo="sac", env="E", method="static", criterion="magnitude", sparsity=0.9, rr=float("nan"),
                              width=256, seed=0, label="static", **units)])  # fmt: skip
    text = format_connectivity(connectivity_table(runs))
    assert text.loc[0, "Algo"] == "SAC"
    assert text.loc[0, "Dead units before revival"] == "3.0 of 12"
    assert text.loc[0, "Dead units after revival"] == "1.0 of 12"


def test_connectivity_after_training_reads_the_final_masks(tmp_path) -> None:
    """A GMP cell has no pruning report, only the final mask the sweep recorded: its row shows the dead units after
    training alone; a TAR cell with both shows all three columns; a dense cell is not a row."""
    from sb3_tar.experiments.results import dead_units, final_dead_units
    from sb3_tar.experiments.runner import SUMMARY_FILE
    from sb3_tar.experiments.tables import connectivity_table, format_connectivity

    actor = [
        dict(name="0", shape=[4, 3], kept=5, dead_out=1, dead_in=0),
        dict(name="1", shape=[1, 4], kept=2, dead_out=0, dead_in=2),
    ]
    final = {"actor": actor, "critic.qf0": [dict(name="0", shape=[2, 2], kept=4, dead_out=0, dead_in=0)]}
    rows = []
    for method, reports in (
        ("gmp", None),
        ("tar", {"actor": {"layers": [dict(name="0", shape=[4, 3], dead_before=5, dead_after=2)]}}),
    ):
        folder = tmp_path / method
        folder.mkdir()
        (folder / SUMMARY_FILE).write_text(json.dumps({"reports": reports, "final_masks": final}))
        record = {**dead_units(folder), **final_dead_units(folder)}
        rows.append(dict(algo="sac", env="E", method=method, criterion="magnitude", sparsity=0.9, rr=0.01, width=256, seed=0,
                         label=method, **record))  # fmt: skip
    # 1 + 0 + 0 + 2 + 0 + 0 = 3 dead among (4 + 3) + (1 + 4) + (2 + 2) = 16 units
    assert final_dead_units(tmp_path / "gmp") == {"dead_final": 3.0, "units_final": 16.0}
    rows.append(dict(rows[0], method="dense", label="dense"))
    text = format_connectivity(connectivity_table(pd.DataFrame(rows)))
    assert list(text["Configuration"]) == ["gmp", "tar"]
    assert list(text["Dead units before revival"]) == ["–", "5.0 of 7"]
    assert list(text["Dead units after revival"]) == ["–", "2.0 of 7"]
    assert list(text["Dead units after training"]) == ["3.0 of 16", "3.0 of 16"]


def test_connectivity_after_training_needs_every_seed_and_the_section_says_what_a_dash_means() -> None:
    """A configuration whose seeds did not all record a final mask (cells of an older sb3-tar beside new ones) shows
    "–" after training rather than a mean over some seeds beside a seed count naming them all; the section says why."""
    from sb3_tar.experiments.report import _layer_sections
    from sb3_tar.experiments.tables import connectivity_table, format_connectivity

    base = dict(algo="sac", env="E", criterion="magnitude", sparsity=0.9, width=256, units=12.0, dead_after=1.0,
                cell_dir="/nonexistent", units_final=12.0)  # fmt: skip
    nan = float("nan")
    rows = [
        dict(base, method="tar", rr=0.01, label="tar", seed=0, dead_before=3.0, dead_final=1.0),
        dict(base, method="tar", rr=0.01, label="tar", seed=1, dead_before=5.0, dead_final=nan, units_final=nan),
        dict(base, method="static", rr=nan, label="static", seed=0, dead_before=4.0, dead_final=2.0),
        dict(base, method="static", rr=nan, label="static", seed=1, dead_before=6.0, dead_final=4.0),
    ]
    runs = pd.DataFrame(rows)
    table = connectivity_table(runs)
    text = format_connectivity(table)
    assert list(text["Configuration"]) == ["tar", "static"]
    assert list(text["Seeds"]) == [2, 2]
    assert list(text["Dead units before revival"]) == ["4.0 of 12", "5.0 of 12"]  # (3 + 5) / 2, (4 + 6) / 2
    assert list(text["Dead units after training"]) == ["–", "3.0 of 12"]  # TAR: seed 1 recorded none; (2 + 4) / 2
    intro = _layer_sections(runs, table)[2]
    assert "*After training* counts the final mask each cell recorded" in intro
    assert '"–" marks configurations with cells run by an sb3-tar version that did not record it yet.' in intro
    complete = runs[runs["method"] == "static"]
    intro = _layer_sections(complete, connectivity_table(complete))[2]
    assert "recorded (for SET, RigL and GMP, the mask their schedule left)." in intro and "–" not in intro


def test_digest_shows_the_budget_table_of_global_magnitude_before_other_criteria(tmp_path) -> None:
    """ERK sorts before magnitude, but the README's one per-layer table is the paper's default criterion's; SAC
    and TD3 cells of one configuration get a table each, named by their algorithm."""
    from sb3_tar.experiments.report import make_report
    from sb3_tar.experiments.runner import SUMMARY_FILE

    grid = GridSpec(
        algos=["sac", "td3"],
        envs=["HalfCheetah-v4"],
        methods=["static", "tar"],
        criteria=["erk", "magnitude"],
        rrs=[0.01],
        seeds=[0, 1],
    )
    for cell in grid.expand():
        run = run_dir(tmp_path, cell)
        run.mkdir(parents=True)
        folder = cell_dir(tmp_path, cell)
        (folder / CELL_FILE).write_text(json.dumps(cell.to_dict()))
        np.savez(run / "evaluations.npz", timesteps=np.arange(1, 5) * 1000, results=np.full((4, 2), 1.0 + cell.seed),
                 ep_lengths=np.full((4, 2), 1000))  # fmt: skip
        revived = (7 if cell.criterion == "magnitude" else 3) + (2 if cell.algo == "td3" else 0)
        layer = dict(name="mu", shape=[6, 256], threshold=730, kept_before=72, need=658, floor=37, revived=revived,
                     density=0.2, dead_before=192, dead_after=45)  # fmt: skip
        (folder / SUMMARY_FILE).write_text(json.dumps({"reports": {"actor": {"layers": [layer]}}}))
        (folder / DONE_FILE).write_text("{}")
    report = make_report(tmp_path, reps=100, make_plots=False, progress=False, echo=lambda _: None)
    assert report.digest.count("Where TAR put its budget") == 1
    assert "Where TAR put its budget: SAC HalfCheetah-v4 tar_magnitude_sp0.9_rr0.01_w256, seed 0" in report.digest
    assert "| actor   | mu    | 6x256 | 730 | 72  | 658 | 37  | 7   |" in report.digest
    full = report.markdown.read_text()
    assert full.count("Where TAR put its budget") == 4  # the full report shows every algorithm and criterion
    assert "Where TAR put its budget: TD3 HalfCheetah-v4 tar_magnitude_sp0.9_rr0.01_w256, seed 0" in full
    assert "| actor   | mu    | 6x256 | 730 | 72  | 658 | 37  | 9   |" in full


def test_static_stage_check_reads_the_reports_of_each_seed(tmp_path) -> None:
    """Seed 0 pairs up (TAR and Uniform share a stage of 20 kept weights, within Original's 22); seed 1's Uniform
    was drawn from another stage and its TAR keeps more than its Original."""
    from sb3_tar.experiments.runner import SUMMARY_FILE
    from sb3_tar.experiments.tables import static_stage_check

    def cell(method: str, seed: int, kept: int, dead: int) -> dict:
        folder = tmp_path / f"{method}_{seed}"
        folder.mkdir()
        layer = dict(name="mu", shape=[6, 256], kept_before=kept, dead_before=dead)
        (folder / SUMMARY_FILE).write_text(json.dumps({"reports": {"actor": {"layers": [layer]}}}))
        rr = float("nan") if method == "static" else 0.01
        return dict(algo="sac", env="E", method=method, criterion="magnitude", sparsity=0.9, rr=rr, width=256,
                    seed=seed, cell_dir=str(folder))  # fmt: skip

    good = [cell("static", 0, 22, 180), cell("tar", 0, 20, 190), cell("uniform", 0, 20, 190)]
    checked, problems = static_stage_check(pd.DataFrame(good))
    assert (checked, problems) == (1, [])
    bad = [cell("static", 1, 22, 180), cell("tar", 1, 23, 190), cell("uniform", 1, 23, 185)]
    checked, problems = static_stage_check(pd.DataFrame(good + bad))
    assert checked == 2
    assert problems == [
        "sac E magnitude 0.9 256 seed 1 rr 0.01: actor mu dead_before is 190 for TAR but 185 for Uniform "
        "(their static stages differ)",
        "sac E magnitude 0.9 256 seed 1 rr 0.01: actor mu keeps 23 before revival, more than Original's 22",
    ]


@pytest.mark.parametrize("counts, warned", [([5, 4, 7], True), ([5, 5], False), ([1], True), ([], False)])
def test_scale_tables_warn_below_five_runs_on_a_side(counts, warned) -> None:
    """The rr sections warn when a row has fewer than 5 runs on a side, naming the probability they show."""
    from sb3_tar.experiments.report import _few_runs_caveat

    lines = _few_runs_caveat(pd.Series(counts, dtype=int), "P(X > Y)")
    expected = "**Rows with fewer than 5 runs on a side are not a result yet**: their P(X > Y) takes only a few values"
    assert lines == ([f"{expected} and its interval is no guide.\n"] if warned else [])
