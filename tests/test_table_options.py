"""The report's comparison tables keep apart cells that differ only in extra callback options (a TAR variant such as
``budget_mode=extra``), as its main table and plots do: each variant is a row of its own, compared with the runs of
the other method that have its options or, where none has, with the plain ones. Numbers are hand computations on
per-run results written out by hand (merging the variants gives other numbers, noted beside each check)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sb3_tar.experiments import scale_tables, tables

EXTRA = "budget_mode=extra"  # a TAR-only variant: no Original ran with it
WARM = "warmup=1"  # a variant that Original ran too
SNIP = "prune_criterion=snip"  # a RigL variant (DSTCallback's option)


def _run(method: str, sparsity, rr, seed: int, value: float, options: str = "", width: int = 256) -> dict:
    criterion = None if method == "dense" else "magnitude"
    label = f"{method}_{criterion}_sp{sparsity}_rr{rr}_w{width}" + (f"_{options}" if options else "")
    return {
        **dict(algo="sac", env="Pendulum-v1", method=method, criterion=criterion, sparsity=sparsity, rr=rr),
        **dict(width=width, seed=seed, final_return=value, options=options, label=label),
        **dict(dead_before=math.nan, dead_after=math.nan, train_flops=math.nan, cell_dir="/nonexistent"),
    }


def _runs(width: int = 256, shift: float = 0.0) -> pd.DataFrame:
    rows = []
    for seed, value in enumerate((100.0, 200.0, 300.0)):
        rows.append(_run("static", 0.8, 0.0, seed, value + shift, width=width))
    for seed, value in enumerate((150.0, 250.0, 350.0)):
        rows.append(_run("tar", 0.8, 0.01, seed, value + shift, width=width))
    for seed, value in enumerate((400.0, 500.0, 600.0)):
        rows.append(_run("tar", 0.8, 0.01, seed, value + shift, EXTRA, width=width))
    for seed, value in enumerate((10.0, 20.0, 30.0)):
        rows.append(_run("static", 0.8, 0.0, seed, value + shift, WARM, width=width))
    for seed, value in enumerate((5.0, 25.0, 45.0)):
        rows.append(_run("tar", 0.8, 0.01, seed, value + shift, WARM, width=width))
    for seed in range(3):
        rows.append(_run("rigl", 0.8, math.nan, seed, 1000.0 + seed + shift, width=width))
        rows.append(_run("rigl", 0.8, math.nan, seed, 240.0 + 10 * seed + shift, SNIP, width=width))
        rows.append(_run("dense", None, None, seed, 50.0 + shift, width=width))
    return pd.DataFrame(rows)


def _by(table: pd.DataFrame, options: str, comparison: str) -> pd.Series:
    found = table[(table["options"] == options) & (table["comparison"] == comparison)]
    assert len(found) == 1, (options, comparison, found)
    return found.iloc[0]


def test_improvement_table_compares_each_variant_with_its_own_baseline() -> None:
    table = tables.improvement_table(_runs(), reps=200, seed=0)
    # plain TAR over plain Original: 150 beats 100; 250 beats 100, 200; 350 beats all three: 6 of 9
    assert _by(table, "", "TAR > Original")["probability"] == pytest.approx(6 / 9)
    # TAR with budget_mode=extra has no Original of its own: the plain Original (all 9 pairs won; merged: 15/18)
    row = _by(table, EXTRA, "TAR > Original")
    assert (row["n_x"], row["n_y"], row["probability"]) == (3, 3, 1.0)
    # warmup=1 against Original with warmup=1 (10, 20, 30): 5 beats none, 25 two, 45 three: 5 of 9
    # (against the plain Original it would be 0)
    assert _by(table, WARM, "TAR > Original")["probability"] == pytest.approx(5 / 9)
    # RigL's variants are comparisons of their own for every TAR variant: plain RigL (1000+) beats all;
    # RigL with prune_criterion=snip is 240, 250, 260: plain TAR 150, 250, 350 wins 0 + (1 + 0.5) + 3 of 9 pairs
    # (ties count one half; merged with plain RigL: 4.5 of 36)
    assert all(_by(table, o, "TAR > RigL")["probability"] == 0.0 for o in ("", EXTRA, WARM))
    assert _by(table, "", f"TAR > RigL [{SNIP}]")["probability"] == pytest.approx(4.5 / 9)
    assert _by(table, EXTRA, f"TAR > RigL [{SNIP}]")["probability"] == 1.0
    assert _by(table, "", "RigL > dense")["probability"] == 1.0
    assert _by(table, SNIP, "RigL > dense")["n_x"] == 3 and _by(table, SNIP, "RigL > dense")["n_y"] == 3
    assert len(table) == 11
    text = tables.format_improvement(table)
    assert list(text.columns[:7]) == ["Algo", "Env", "Criterion", "Sparsity", "Width", "rr", "Options"]
    assert sorted(set(text["Options"])) == sorted({"–", EXTRA, WARM, SNIP})  # SNIP: its RigL > dense row


def test_comparison_table_has_a_row_per_variant() -> None:
    table = tables.comparison_table(tables.summarize(_runs())).set_index("options")
    assert sorted(table.index) == sorted(["", EXTRA, WARM])
    # each row's TAR is its own variant (before, every row showed the first TAR found)
    assert table.loc["", "tar_mean"] == 250.0 and table.loc[EXTRA, "tar_mean"] == 500.0
    assert table.loc[WARM, "tar_mean"] == 25.0
    # and its Original: the plain one for budget_mode=extra (mean 200, +150%), its own for warmup=1 (20, +25%)
    assert table.loc[EXTRA, "original_mean"] == 200.0 and table.loc[EXTRA, "tar_vs_original_pct"] == pytest.approx(150.0)
    assert table.loc[WARM, "original_mean"] == 20.0 and table.loc[WARM, "tar_vs_original_pct"] == pytest.approx(25.0)
    assert table.loc["", "tar_vs_original_pct"] == pytest.approx(25.0)
    # the best of SET/RigL is the best of all their variants: plain RigL (mean 1001), named with no options
    assert (table["best_dst_mean"] == 1001.0).all() and (table["best_dst_options"] == "").all()
    text = tables.format_comparison(tables.comparison_table(tables.summarize(_runs())))
    assert "Options" in text.columns and set(text["Options"]) == {"–", EXTRA, WARM}
    assert set(text["Best SET/RigL"]) == {"1001.0 ± 0.6 (RigL)"}
    # without plain RigL, the best is the snip variant, named so
    runs = _runs()
    runs = runs[~((runs["method"] == "rigl") & (runs["options"] == ""))]
    text = tables.format_comparison(tables.comparison_table(tables.summarize(runs)))
    assert set(text["Best SET/RigL"]) == {f"250.0 ± 5.8 (RigL [{SNIP}])"}


def test_rr_table_keeps_variants_apart() -> None:
    table = scale_tables.rr_table(_runs(), reps=200, seed=0)
    tar = table[table["method"] == "tar"].set_index("options")
    assert tar.loc["", "mean"] == 250.0 and tar.loc["", "vs_original_pct"] == pytest.approx(25.0)
    assert tar.loc["", "probability"] == pytest.approx(6 / 9)
    assert tar.loc[EXTRA, "mean"] == 500.0 and tar.loc[EXTRA, "vs_original_pct"] == pytest.approx(150.0)
    assert tar.loc[EXTRA, "probability"] == 1.0
    assert tar.loc[WARM, "vs_original_pct"] == pytest.approx(25.0)
    assert tar.loc[WARM, "probability"] == pytest.approx(5 / 9)
    # the rows are the runs: two Originals (plain, warmup=1) and three TAR variants, 3 seeds each
    assert len(table) == 5 and (table["n"] == 3).all()
    assert set(scale_tables.format_rr_table(table)["Options"]) == {"–", EXTRA, WARM}


def test_width_tables_keep_variants_apart() -> None:
    # the same runs at width 1024, every return + 100: gains there are 100 (T - O) / (O + 100)
    runs = pd.concat([_runs(), _runs(width=1024, shift=100.0)], ignore_index=True)
    table = scale_tables.width_table(runs, reps=200, seed=0)
    assert sorted(set(table["options"])) == sorted(["", EXTRA, WARM]) and len(table) == 6
    row = table[(table["options"] == EXTRA) & (table["width"] == 1024)].iloc[0]
    assert (row["original_mean"], row["tar_mean"]) == (300.0, 600.0)  # plain Original; merged TAR would be 475
    assert row["gain_pct"] == pytest.approx(100.0) and row["probability"] == 1.0
    row = table[(table["options"] == WARM) & (table["width"] == 1024)].iloc[0]
    assert (row["original_mean"], row["tar_mean"], row["gain_pct"]) == (120.0, 125.0, pytest.approx(500 / 120))
    # RigL of its defaults (the plain variant, not the snip one) and dense, beside every TAR variant
    assert (row["rigl_n"], row["rigl_mean"], row["dense_n"]) == (3, 1101.0, 3)
    gains = scale_tables.gain_difference_table(runs, reps=200, seed=0).set_index("options")
    assert gains.loc[EXTRA, "gain_narrow"] == pytest.approx(150.0) and gains.loc[EXTRA, "gain_wide"] == pytest.approx(100.0)
    assert gains.loc[EXTRA, "difference"] == pytest.approx(-50.0)
    assert gains.loc[WARM, "difference"] == pytest.approx(500 / 120 - 25.0)
    assert gains.loc["", "n"] == "3/3/3/3"
    assert "Options" in scale_tables.format_width_table(table).columns
    assert set(scale_tables.format_gain_difference(gains.reset_index())["Options"]) == {"–", EXTRA, WARM}


def test_tables_without_options_have_no_options_column() -> None:
    runs = _runs()
    plain = runs[runs["options"] == ""].drop(columns="options")
    improvement = tables.improvement_table(plain, reps=100, seed=0)
    assert "options" not in improvement and "Options" not in tables.format_improvement(improvement)
    assert "Options" not in tables.format_comparison(tables.comparison_table(tables.summarize(plain)))
    assert "Options" not in scale_tables.format_rr_table(scale_tables.rr_table(plain, reps=100, seed=0))
    # the same numbers as the plain variant's rows of the table with options
    with_options = tables.improvement_table(runs, reps=100, seed=0)
    with_options = with_options[(with_options["options"] == "") & ~with_options["comparison"].str.contains(SNIP)]
    with_options = with_options.drop(columns="options").reset_index(drop=True)
    pd.testing.assert_frame_equal(improvement.reset_index(drop=True), with_options)


def test_static_stage_check_pairs_tar_with_the_uniform_of_its_options(tmp_path) -> None:
    """In extra mode TAR's static stage is Original's (22 kept weights), in reserve mode it is pruned further (20):
    TAR with ``budget_mode=extra`` beside a plain (reserve) Uniform is not a broken pairing, and is paired with the
    Uniform of its own options."""
    import json

    from sb3_tar.experiments.runner import SUMMARY_FILE

    def cell(method: str, kept: int, options: str = "") -> dict:
        folder = tmp_path / f"{method}_{options or 'plain'}"
        folder.mkdir()
        layer = dict(name="mu", shape=[6, 256], kept_before=kept, dead_before=200 - kept)
        (folder / SUMMARY_FILE).write_text(json.dumps({"reports": {"actor": {"layers": [layer]}}}))
        rr = 0.0 if method == "static" else 0.01
        return {**_run(method, 0.9, rr, 0, 1.0, options), "cell_dir": str(folder)}

    plain = [cell("static", 22), cell("tar", 20), cell("uniform", 20)]
    extra = [cell("tar", 22, EXTRA)]
    checked, problems = tables.static_stage_check(pd.DataFrame(plain + extra))
    assert (checked, problems) == (1, [])  # one group (the seed); the extra TAR met Original (22 <= 22), no Uniform
    checked, problems = tables.static_stage_check(pd.DataFrame(plain + extra + [cell("uniform", 21, EXTRA)]))
    assert problems == [
        "sac Pendulum-v1 magnitude 0.9 256 seed 0 rr 0.01: actor mu kept_before is 22 for TAR but 21 for Uniform "
        "(their static stages differ)",
        "sac Pendulum-v1 magnitude 0.9 256 seed 0 rr 0.01: actor mu dead_before is 178 for TAR but 179 for Uniform "
        "(their static stages differ)",
    ]


def test_diagnostics_curves_keep_variants_apart() -> None:
    from sb3_tar.experiments.diagnostics import _label, configurations

    runs = _runs()
    curves = configurations(runs[runs["method"] == "tar"])
    assert [(_label(config.iloc[0]), len(config)) for _, config in curves] == [
        ("TAR rr=0.01 [magnitude] s=0.8", 3),
        (f"TAR rr=0.01 [magnitude] s=0.8 [{EXTRA}]", 3),
        (f"TAR rr=0.01 [magnitude] s=0.8 [{WARM}]", 3),
    ]
    assert len(configurations(runs[runs["method"] == "tar"].drop(columns="options"))) == 1


def test_the_written_report_shows_each_variant(tmp_path) -> None:
    """Two sweeps into one folder, plain and with ``--tar-kwargs budget_mode:extra`` (Original runs in both: the
    option names its folder), and a RigL sweep from two prune criteria: the report file, as a user opens it, has a
    row per variant in the main table and in the probability of improvement, each against its own Original."""
    import json

    import numpy as np

    from sb3_tar.experiments.grid import GridSpec
    from sb3_tar.experiments.report import make_report
    from sb3_tar.experiments.runner import CELL_FILE, DONE_FILE, cell_dir, run_dir

    root = tmp_path / "results"
    common = dict(envs=["Pendulum-v1"], criteria=["magnitude"], sparsities=[0.9], rrs=[0.01], widths=[64], seeds=[0, 1])
    grids = [
        GridSpec(methods=["dense", "static", "tar"], **common),
        GridSpec(methods=["static", "tar"], tar_kwargs={"budget_mode": "extra"}, **common),
        GridSpec(methods=["rigl"], prune_criteria=["magnitude", "snip"], **common),
    ]
    # final returns by folder: the extra variant's TAR is above the plain Original but below its own
    level = {"dense_w64": 900.0, "static_magnitude_sp0.9_w64": 500.0, "tar_magnitude_sp0.9_rr0.01_w64": 600.0,
             "static_magnitude_sp0.9_w64_budget_mode=extra": 580.0,
             "tar_magnitude_sp0.9_rr0.01_w64_budget_mode=extra": 550.0,
             "rigl_erk_sp0.9_w64": 700.0, "rigl_erk_sp0.9_w64_prune_criterion=snip": 300.0}  # fmt: skip
    for cell in (c for grid in grids for c in grid.expand()):
        folder, run = cell_dir(root, cell), run_dir(root, cell)
        run.mkdir(parents=True)
        (folder / CELL_FILE).write_text(json.dumps(cell.to_dict()))
        results = np.full((4, 2), level[cell.label] + cell.seed)
        np.savez(run / "evaluations.npz", timesteps=np.arange(1, 5) * 100, results=results, ep_lengths=np.full((4, 2), 200))
        (folder / DONE_FILE).write_text(json.dumps({"wall_s": 10.0}))
    report = make_report(root, tmp_path / "report", reps=100, progress=False, make_plots=False, echo=lambda s: None)
    text = report.markdown.read_text()
    main = text[text.index("## Original (static) vs TAR") : text.index("## IQM")]
    rows = [line for line in main.splitlines() if "| Pendulum" in line]
    assert len(rows) == 2
    plain, extra = (next(r for r in rows if ("budget_mode=extra" in r) == want) for want in (False, True))
    # plain: TAR 600.5 over Original 500.5 (+20.0%); extra: TAR 550.5 against its own Original 580.5 (-5.2%)
    assert "600.5 ± 0.5" in plain and "500.5 ± 0.5" in plain and "+20.0%" in plain
    assert "550.5 ± 0.5" in extra and "580.5 ± 0.5" in extra and "-5.2%" in extra
    assert "700.5 ± 0.5 (RigL)" in plain and "700.5 ± 0.5 (RigL)" in extra  # the best of RigL's two variants
    improvement = text[text.index("## Probability of improvement") :]
    improvement = improvement[: improvement.index("\n## ")]
    lines = [line for line in improvement.splitlines() if "| Pendulum" in line]
    by_name = {tuple(c.strip() for c in line.split("|")[7:9]): line for line in lines}
    assert set(by_name) == {
        ("–", "TAR > Original"),
        ("–", "TAR > RigL"),
        ("–", "TAR > RigL [prune_criterion=snip]"),
        ("budget_mode=extra", "TAR > Original"),
        ("budget_mode=extra", "TAR > RigL"),
        ("budget_mode=extra", "TAR > RigL [prune_criterion=snip]"),
        ("–", "RigL > dense"),
        ("prune_criterion=snip", "RigL > dense"),
    }
    assert "| 2, 2" in by_name[("budget_mode=extra", "TAR > Original")]
    assert "0.00 [0.00, 0.00]" in by_name[("budget_mode=extra", "TAR > Original")]  # pooled Originals: 0.50
    assert "1.00 [1.00, 1.00]" in by_name[("–", "TAR > Original")]
    assert "0.00 [0.00, 0.00]" in by_name[("–", "TAR > RigL")]


def test_width_axis_and_width_tables_agree_on_a_variant_without_its_own_original() -> None:
    """Only TAR with budget_mode=extra ran at both widths, beside the plain Original: the width tables measure it
    against that Original, and the report's width axis (which lists the width plot) agrees."""
    runs = pd.concat([_runs(), _runs(width=1024, shift=100.0)], ignore_index=True)
    runs = runs[(runs["method"] == "static") & (runs["options"] == "") | (runs["options"] == EXTRA)]
    assert set(scale_tables.width_table(runs, reps=50, seed=0)["options"]) == {EXTRA}
    assert scale_tables.has_width_axis(runs)
    assert [key for key, _ in scale_tables.width_groups(runs)] == [("sac", "Pendulum-v1", "magnitude", 0.8, EXTRA)]
