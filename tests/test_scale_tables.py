"""The rr and width tables of the report (sb3_tar.experiments.scale_tables), checked against hand computations on
per-run results written out by hand (no training here: the numbers are what a sweep's runs would hold)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from sb3_tar.experiments.scale_tables import (
    dense_cost_ratio,
    format_gain_difference,
    format_rr_pairs_table,
    format_rr_table,
    format_wide_against_narrow_dense,
    format_width_table,
    gain_difference,
    gain_difference_table,
    has_rr_axis,
    has_width_axis,
    rr_pairs_table,
    rr_table,
    wide_against_narrow_dense,
    width_table,
)


def _run(method: str, criterion, sparsity, rr, width: int, seed: int, value: float, **extra) -> dict:
    return {
        "algo": "sac",
        "env": "HalfCheetah-v4",
        "method": method,
        "criterion": criterion,
        "sparsity": sparsity,
        "rr": rr,
        "width": width,
        "seed": seed,
        "final_return": value,
        "dead_before": extra.get("dead_before", math.nan),
        "dead_after": extra.get("dead_after", math.nan),
        "train_flops": extra.get("train_flops", math.nan),
        "cell_dir": "/nonexistent",
    }


def _rr_runs() -> pd.DataFrame:
    rows = []
    # sparsity 0.8: Original 100, 200, 300; TAR rr 0.01: 150, 250, 350; TAR rr 0.02: 50, 400, 400
    for seed, value in enumerate((100.0, 200.0, 300.0)):
        rows.append(_run("static", "magnitude", 0.8, 0.0, 256, seed, value, dead_before=40, dead_after=40))
    for seed, value in enumerate((150.0, 250.0, 350.0)):
        rows.append(_run("tar", "magnitude", 0.8, 0.01, 256, seed, value, dead_before=44 + seed, dead_after=4))
    for seed, value in enumerate((50.0, 400.0, 400.0)):
        rows.append(_run("tar", "magnitude", 0.8, 0.02, 256, seed, value, dead_before=50, dead_after=1))
    # sparsity 0.9: Original -100, -100; TAR rr 0.01: -50, -150
    for seed, value in enumerate((-100.0, -100.0)):
        rows.append(_run("static", "magnitude", 0.9, 0.0, 256, seed, value))
    for seed, value in enumerate((-50.0, -150.0)):
        rows.append(_run("tar", "magnitude", 0.9, 0.01, 256, seed, value))
    return pd.DataFrame(rows)


def test_rr_table_against_hand_computation():
    table = rr_table(_rr_runs(), reps=200, seed=0)
    assert list(zip(table["sparsity"], table["method"], table["rr"])) == [
        (0.8, "static", 0.0),
        (0.8, "tar", 0.01),
        (0.8, "tar", 0.02),
        (0.9, "static", 0.0),
        (0.9, "tar", 0.01),
    ]
    row = table.iloc[1]  # TAR rr 0.01 at 0.8: mean 250, s.e. 100/sqrt(3), +25% over Original's 200
    assert row["mean"] == 250.0 and row["se"] == pytest.approx(100.0 / math.sqrt(3))
    assert row["vs_original_pct"] == pytest.approx(25.0)
    # P(TAR > Original): pairs (150|100,200,300) -> 1, (250|...) -> 2, (350|...) -> 3: 6 of 9
    assert row["probability"] == pytest.approx(6 / 9)
    assert row["ci_low"] <= row["probability"] <= row["ci_high"]
    assert row["dead_before"] == pytest.approx(45.0) and row["dead_after"] == 4.0
    row = table.iloc[2]  # rr 0.02: 50 beats none, 400 beats all three twice: 6 of 9; mean 850/3
    assert row["probability"] == pytest.approx(6 / 9) and row["mean"] == pytest.approx(850 / 3)
    assert row["vs_original_pct"] == pytest.approx(100 * (850 / 3 - 200) / 200)
    row = table.iloc[4]  # sparsity 0.9, negative returns: -100 vs -100 ties count a half: (0.5 + 0.5 + 1 + 1 ... )
    # TAR -50 beats both Originals (2), TAR -150 beats none (0): 2 of 4
    assert row["probability"] == pytest.approx(0.5) and row["vs_original_pct"] == pytest.approx(0.0)
    original = table.iloc[0]
    assert math.isnan(original["probability"]) and math.isnan(original["vs_original_pct"])
    text = format_rr_table(table)
    assert list(text["Method"]) == ["Original", "TAR", "TAR", "Original", "TAR"]
    assert text["vs Original"].iloc[1] == "+25.0%" and text["P(TAR > Original) [95% CI]"].iloc[1].startswith("0.67 [")
    assert text["Final return"].iloc[1] == f"250.0 ± {100 / math.sqrt(3):.1f}"
    assert text["Dead units before revival"].iloc[1] == "45.0" and text["Dead units after revival"].iloc[3] == "–"


def test_rr_axis_needs_two_sparsities_or_two_tar_rrs():
    runs = _rr_runs()
    assert has_rr_axis(runs)
    one = runs[(runs["sparsity"] == 0.9)]  # Original and one TAR rr at one sparsity: the main table's business
    assert not has_rr_axis(one)
    two_rrs = runs[runs["sparsity"] == 0.8]
    assert has_rr_axis(two_rrs)
    assert not has_rr_axis(runs[runs["method"] == "static"])


def _width_runs() -> pd.DataFrame:
    rows = []
    values = {
        ("static", 256): (100.0, 100.0),
        ("tar", 256): (110.0, 110.0),
        ("static", 1024): (200.0, 200.0),
        ("tar", 1024): (260.0, 260.0),
    }
    for (method, width), pair in values.items():
        rr = 0.0 if method == "static" else 0.01
        for seed, value in enumerate(pair):
            rows.append(_run(method, "magnitude", 0.8, rr, width, seed, value, train_flops=0.25))
    for seed, value in enumerate((300.0, 320.0)):
        rows.append(_run("rigl", "erk", 0.8, None, 1024, seed, value, train_flops=0.3))
        rows.append(_run("dense", None, None, None, 1024, seed, value + 100, train_flops=1.0))
        rows.append(_run("dense", None, None, None, 256, seed, value - 50, train_flops=1.0))
    return pd.DataFrame(rows)


def test_gain_difference_of_constant_groups_is_exact():
    """Original 100 -> TAR 110 (+10%) at the narrow width, 200 -> 260 (+30%) at the wide one: the gain grows by
    20 points, and every bootstrap replication gives exactly that."""
    out = gain_difference([100, 100], [110, 110], [200, 200], [260, 260], reps=50, seed=0)
    assert out["gain_narrow"] == pytest.approx(10.0) and out["gain_wide"] == pytest.approx(30.0)
    assert out["difference"] == pytest.approx(20.0)
    assert out["ci_low"] == pytest.approx(20.0) and out["ci_high"] == pytest.approx(20.0) and out["p_positive"] == 1.0


def test_gain_difference_interval_lies_in_the_bootstrap_support():
    """Groups of two: each resampled mean is the low value, the mid-point or the high value, so every replication's
    difference is one of 3^4 values computed here by hand; the interval's ends are among them (percentiles
    interpolate, so they lie between the smallest and the largest) and the point estimate uses the plain means."""
    on, tn, ow, tw = [100.0, 300.0], [250.0, 250.0], [-100.0, -300.0], [-100.0, -100.0]
    out = gain_difference(on, tn, ow, tw, reps=500, seed=3)
    # means 200, 250, -200, -100: gains +25% and 100 (-100 + 200) / 200 = +50%
    assert out["gain_narrow"] == pytest.approx(25.0) and out["gain_wide"] == pytest.approx(50.0)
    assert out["difference"] == pytest.approx(25.0)

    def means(pair):
        return {pair[0], (pair[0] + pair[1]) / 2, pair[1]}

    support = [
        100 * (d - c) / abs(c) - 100 * (b - a) / abs(a)
        for a, b, c, d in itertools.product(means(on), means(tn), means(ow), means(tw))
    ]
    assert min(support) <= out["ci_low"] <= out["difference"] <= out["ci_high"] <= max(support)
    again = gain_difference(on, tn, ow, tw, reps=500, seed=3)
    assert again == out  # seeded: the same interval every time
    with pytest.raises(ValueError, match=r"reps=0 is outside the allowed range \[1, inf\)"):
        gain_difference(on, tn, ow, tw, reps=0)
    empty = gain_difference([], tn, ow, tw, reps=10)
    assert all(math.isnan(v) for v in empty.values())


def test_width_table_and_gain_difference_table():
    runs = _width_runs()
    assert has_width_axis(runs) and not has_width_axis(runs[runs["width"] == 1024])
    table = width_table(runs, reps=100, seed=0)
    assert list(table["width"]) == [256, 1024]
    narrow, wide = table.iloc[0], table.iloc[1]
    assert narrow["gain_pct"] == pytest.approx(10.0) and wide["gain_pct"] == pytest.approx(30.0)
    assert narrow["probability"] == 1.0 and wide["probability"] == 1.0  # every TAR run above every Original run
    assert narrow["rigl_n"] == 0 and wide["rigl_n"] == 2 and wide["rigl_mean"] == 310.0
    assert wide["dense_mean"] == 410.0 and narrow["dense_mean"] == 260.0
    assert narrow["tar_flops"] == 0.25 and narrow["dense_flops"] == 1.0
    assert math.isnan(wide["tar_flops"])  # no layer shapes recorded for these hand-written runs
    text = format_width_table(table)
    assert list(text["TAR vs Original"]) == ["+10.0%", "+30.0%"]
    assert text["RigL"].iloc[0] == "–" and text["Dense"].iloc[1] == "410.0 ± 10.0"
    # one FLOPs column for the four methods, in the header's order; the width-1024 cells recorded no layer shapes
    flops = text["Training FLOPs vs dense w256 (Original / TAR / RigL / Dense)"]
    assert list(flops) == ["0.250x / 0.250x / – / 1.000x", "– / – / – / –"]
    assert not [c for c in text.columns if c.startswith("FLOPs")]
    gains = gain_difference_table(runs, reps=100, seed=0)
    assert len(gains) == 1
    row = gains.iloc[0]
    assert (row["narrow"], row["wide"], row["n"]) == (256, 1024, "2/2/2/2")
    assert [row[c] for c in ("n_original_narrow", "n_tar_narrow", "n_original_wide", "n_tar_wide")] == [2, 2, 2, 2]
    assert row["difference"] == pytest.approx(20.0) and row["ci_low"] == pytest.approx(20.0)
    text = format_gain_difference(gains)
    assert text["Wide − narrow (points) [95% CI]"].iloc[0] == "+20.0 [+20.0, +20.0]"
    assert text["Widths"].iloc[0] == "256 → 1024"


def test_wide_sparse_against_narrow_dense_counted_by_hand():
    """Dense at width 256 ran 250 and 270; at width 1024 Original ran 200, 200 (below both: 0 of 4 pairs), TAR 260,
    260 (each above 250, below 270: 2 of 4), RigL 300, 320 and dense 400, 420 (above both: 4 of 4)."""
    runs = _width_runs()
    table = wide_against_narrow_dense(runs, reps=200, seed=0)
    got = {row["comparison"]: row for _, row in table.iterrows()}
    assert list(got) == [
        "Original w1024 > dense w256",
        "TAR w1024 > dense w256",
        "RigL w1024 > dense w256",
        "Dense w1024 > dense w256",
    ]
    assert [got[c]["probability"] for c in got] == [0.0, pytest.approx(2 / 4), 1.0, 1.0]
    assert all((r["n_x"], r["n_y"], r["width"], r["narrow"]) == (2, 2, 1024, 256) for r in got.values())
    assert all(r["ci_low"] <= r["probability"] <= r["ci_high"] for r in got.values())
    assert all(math.isnan(r["flops"]) for r in got.values())  # no layer shapes recorded for these hand-written runs
    text = format_wide_against_narrow_dense(table)
    assert list(text["P(X > Y) [95% CI]"].str[:4]) == ["0.00", "0.50", "1.00", "1.00"]
    assert list(text["Runs (X, Y)"]) == ["2, 2"] * 4 and list(text["Training FLOPs of X vs Y"]) == ["–"] * 4
    # without dense at the narrowest width there is nothing to compare with; without a width axis, no rows
    assert wide_against_narrow_dense(runs[~((runs["method"] == "dense") & (runs["width"] == 256))]).empty
    assert wide_against_narrow_dense(runs[runs["width"] == 1024]).empty


def test_width_rows_are_the_configurations_that_ran_at_two_widths(tmp_path):
    """TAR rr 0.02 (width 256 only), sparsity 0.9 (TAR at 256 only, Original at both) and TAR rr 0.005 (1024 only)
    are the rr table's business: the width tables and the width plot's lines leave them out, and a sparsity with no
    configuration at two widths gets no plot."""
    from sb3_tar.experiments import plots
    from sb3_tar.experiments.scale_tables import width_groups

    extra = [
        _run("tar", "magnitude", 0.8, 0.02, 256, 0, 500.0),
        _run("tar", "magnitude", 0.8, 0.005, 1024, 0, 600.0),
        _run("static", "magnitude", 0.9, 0.0, 256, 0, 50.0),
        _run("static", "magnitude", 0.9, 0.0, 1024, 0, 60.0),
        _run("tar", "magnitude", 0.9, 0.01, 256, 0, 70.0),
    ]
    runs = pd.concat([_width_runs(), pd.DataFrame(extra)], ignore_index=True)
    table = width_table(runs, reps=50, seed=0)
    assert list(zip(table["sparsity"], table["rr"], table["width"])) == [(0.8, 0.01, 256), (0.8, 0.01, 1024)]
    assert table["original_mean"].tolist() == [100.0, 200.0]  # Original of sparsity 0.8 only
    gains = gain_difference_table(runs, reps=50, seed=0)
    assert list(zip(gains["sparsity"], gains["rr"])) == [(0.8, 0.01)]
    assert [key for key, _ in width_groups(runs)] == [("sac", "HalfCheetah-v4", "magnitude", 0.8)]
    at = runs[np.isclose(runs["sparsity"].astype(float), 0.8) | (runs["method"] == "dense")]
    assert [label for label, _ in plots.width_lines(at)] == ["Original", "TAR rr=0.01", "Dense"]
    at = runs[np.isclose(runs["sparsity"].astype(float), 0.9) | (runs["method"] == "dense")]
    assert [label for label, _ in plots.width_lines(at)] == ["Dense", "Original"]  # in the order the runs come
    written, _ = plots.width_scaling(runs, tmp_path)
    assert [p.name for p in written] == ["width_scaling_sac_sp0.8.png", "width_scaling_sac_sp0.9.png"]
    one_width = runs[~(np.isclose(runs["sparsity"].astype(float), 0.9) & (runs["width"] == 1024))]
    (tmp_path / "one").mkdir()
    written, _ = plots.width_scaling(one_width, tmp_path / "one")
    assert [p.name for p in written] == ["width_scaling_sac_sp0.8.png"]  # no line of sparsity 0.9 spans two widths


def test_width_axis_needs_one_tar_rr_at_two_widths():
    """TAR at rr 0.005 on width 256 and at rr 0.02 on width 1024 is not TAR at two widths."""
    rows = [_run("static", "magnitude", 0.8, 0.0, w, 0, 100.0) for w in (256, 1024)]
    rows += [_run("tar", "magnitude", 0.8, 0.005, 256, 0, 110.0), _run("tar", "magnitude", 0.8, 0.02, 1024, 0, 120.0)]
    runs = pd.DataFrame(rows)
    assert not has_width_axis(runs)
    assert width_table(runs, reps=10).empty and gain_difference_table(runs, reps=10).empty
    assert has_width_axis(pd.concat([runs, pd.DataFrame([_run("tar", "magnitude", 0.8, 0.02, 256, 0, 1.0)])]))


def test_width_sections_warn_below_five_runs_on_a_side():
    """The report's width and gain sections carry the few-runs warning while a side has under 5 runs, and drop
    it at 5."""
    from sb3_tar.experiments.report import _scale_frames, _scale_sections
    from sb3_tar.experiments.tables import improvement_table

    def sections(runs: pd.DataFrame) -> str:
        frames = _scale_frames(runs, 50, 0, improvement_table(runs, reps=50, seed=0))
        return "\n".join(_scale_sections(frames, "####"))

    text = sections(_width_runs())  # two runs on each side
    width_part = text[text.index("Width: Original, TAR") : text.index("Does TAR's gain")]
    gain_part = text[text.index("Does TAR's gain") :]
    assert "not a result yet**: their P(TAR > Original) takes only a few values" in width_part
    assert "not a result yet**: a bootstrap of so few runs cannot show" in gain_part
    five = pd.concat([_width_runs().assign(seed=lambda r, k=k: r["seed"] + 2 * k) for k in range(3)])
    five = five.groupby(["method", "width"], dropna=False, group_keys=False).head(5)
    assert "not a result yet" not in sections(five)
    # one side short (TAR at width 1024: 4 runs) brings the gain warning back
    five = five.reset_index(drop=True)
    short = five.drop(five[(five["method"] == "tar") & (five["width"] == 1024)].index[:1])
    assert len(short) == len(five) - 1
    assert "not a result yet**: a bootstrap of so few runs cannot show" in sections(short)


def test_dense_cost_ratio_by_hand():
    """SAC on HalfCheetah (17 observations, 6 actions): the actor's four layers and two Q-networks' three, at
    width 1024 against 256; each layer costs 2 n_out n_in + n_out."""
    w = 1024
    shapes = [(w, 17), (w, w), (6, w), (6, w)] + 2 * [(w, 23), (w, w), (1, w)]
    wide = (2 * w * 17 + w) + (2 * w * w + w) + 2 * (2 * 6 * w + 6) + 2 * ((2 * w * 23 + w) + (2 * w * w + w) + (2 * w + 1))
    n = 256
    narrow = (2 * n * 17 + n) + (2 * n * n + n) + 2 * (2 * 6 * n + 6) + 2 * ((2 * n * 23 + n) + (2 * n * n + n) + (2 * n + 1))
    assert dense_cost_ratio(shapes, w, n) == pytest.approx(wide / narrow)
    assert 14 < wide / narrow < 16  # the hidden layer dominates: about (1024/256)^2 = 16
    assert math.isnan(dense_cost_ratio([], w, n))
    assert np.isclose(dense_cost_ratio(shapes, w, w), 1.0)


def test_rr_and_width_tables_reuse_the_reports_improvement_table() -> None:
    """P(TAR > Original) is read from ``improvement_table`` (the report computes it once): the same numbers as the
    tables' own computation, and a value that only the given table holds shows up in both tables."""
    from sb3_tar.experiments.tables import improvement_table

    runs = _rr_runs()
    improvement = improvement_table(runs, reps=200, seed=0)
    computed = rr_table(runs, reps=200, seed=0)
    reused = rr_table(runs, reps=200, seed=0, improvement=improvement)
    pd.testing.assert_frame_equal(computed, reused)
    tar = reused[reused["method"] == "tar"]
    # by hand, sparsity 0.8 rr 0.01: TAR (150, 250, 350) over Original (100, 200, 300): 6 of 9 pairs greater
    assert tar["probability"].iloc[0] == pytest.approx(6 / 9)
    doctored = improvement.assign(probability=0.123)
    assert (rr_table(runs, reps=200, seed=0, improvement=doctored).query("method == 'tar'")["probability"] == 0.123).all()
    wide = pd.concat([runs, runs.assign(width=1024)], ignore_index=True)
    improvement = improvement_table(wide, reps=100, seed=0)
    pd.testing.assert_frame_equal(width_table(wide, reps=100, seed=0), width_table(wide, 100, 0, improvement))
    assert (width_table(wide, 100, 0, improvement.assign(probability=0.321))["probability"] == 0.321).all()


def test_the_plots_and_the_tables_share_one_rr_and_width_grouping(tmp_path) -> None:
    from sb3_tar.experiments import plots
    from sb3_tar.experiments.scale_tables import rr_groups, width_groups

    runs = _rr_runs()
    assert [key for key, _ in rr_groups(runs)] == [("sac", "HalfCheetah-v4", "magnitude", 256)] and has_rr_axis(runs)
    one = runs[np.isclose(runs["sparsity"], 0.9)]  # one sparsity, one TAR rr: the main table's business
    assert rr_groups(one) == [] and not has_rr_axis(one)
    wide = pd.concat([runs, runs.assign(width=1024)], ignore_index=True)
    assert [key for key, _ in width_groups(wide)] == [
        ("sac", "HalfCheetah-v4", "magnitude", 0.8),
        ("sac", "HalfCheetah-v4", "magnitude", 0.9),
    ]
    assert [p.name for p, _ in plots.scale_files(wide, tmp_path)] == [
        "rr_by_sparsity_sac_HalfCheetah-v4_magnitude_w256.png",
        "rr_by_sparsity_sac_HalfCheetah-v4_magnitude_w1024.png",
        "width_scaling_sac_sp0.8.png",
        "width_scaling_sac_sp0.9.png",
    ]
    assert [p.name for p, _ in plots.scale_files(runs, tmp_path)] == ["rr_by_sparsity_sac_HalfCheetah-v4_magnitude_w256.png"]


def test_rr_pairs_table_against_hand_computation():
    """TAR's rr values against each other and against dense of the same width, counted pair by pair by hand."""
    dense = [_run("dense", None, None, None, 256, seed, 300.0) for seed in range(2)]
    dense.append(_run("dense", None, None, None, 1024, 0, -1000.0))  # another width: never compared
    runs = pd.DataFrame(_rr_runs().to_dict("records") + dense)
    table = rr_pairs_table(runs, reps=200, seed=0)
    got = {(row["sparsity"], row["comparison"]): row for _, row in table.iterrows()}
    assert list(got) == [
        (0.8, "TAR rr 0.02 > TAR rr 0.01"),
        (0.8, "TAR rr 0.01 > dense"),
        (0.8, "TAR rr 0.02 > dense"),
        (0.9, "TAR rr 0.01 > dense"),
    ]
    # rr 0.02 (50, 400, 400) over rr 0.01 (150, 250, 350): 50 beats none, each 400 beats three: 6 of 9
    assert got[(0.8, "TAR rr 0.02 > TAR rr 0.01")]["probability"] == pytest.approx(6 / 9)
    # rr 0.01 over dense (300, 300): only 350 beats both: 2 of 6; rr 0.02: the two 400s: 4 of 6
    assert got[(0.8, "TAR rr 0.01 > dense")]["probability"] == pytest.approx(2 / 6)
    assert got[(0.8, "TAR rr 0.02 > dense")]["probability"] == pytest.approx(4 / 6)
    assert got[(0.9, "TAR rr 0.01 > dense")]["probability"] == 0.0  # -50 and -150 beat no 300
    assert [(r["n_x"], r["n_y"]) for r in got.values()] == [(3, 3), (3, 2), (3, 2), (2, 2)]
    assert all(r["ci_low"] <= r["probability"] <= r["ci_high"] for r in got.values())
    text = format_rr_pairs_table(table)
    assert list(text["Runs (X, Y)"]) == ["3, 3", "3, 2", "3, 2", "2, 2"]
    assert text["P(X > Y) [95% CI]"].iloc[0].startswith("0.67 [") and list(text["Sparsity"]) == ["0.8"] * 3 + ["0.9"]
    assert rr_pairs_table(runs[runs["method"] != "tar"]).empty


def test_dense_reference_of_the_rr_plot_is_dense_of_the_same_width():
    """The rr plot's dashed line: dense runs of the plot's algo, env and width only (mean, s.e., count by hand)."""
    from sb3_tar.experiments.plots import dense_reference

    rows = _rr_runs().to_dict("records")
    rows += [_run("dense", None, None, None, 256, seed, value) for seed, value in enumerate((300.0, 340.0))]
    rows.append(_run("dense", None, None, None, 1024, 0, -1000.0))
    runs = pd.DataFrame(rows)
    mean, se, n = dense_reference(runs, "sac", "HalfCheetah-v4", 256)
    assert (mean, n) == (320.0, 2) and se == pytest.approx(math.sqrt(800.0) / math.sqrt(2))  # std of (300, 340)
    assert dense_reference(runs, "sac", "HalfCheetah-v4", 1024) == (-1000.0, pytest.approx(math.nan, nan_ok=True), 1)
    assert dense_reference(runs, "sac", "Hopper-v4", 256) is None
    assert dense_reference(runs, "td3", "HalfCheetah-v4", 256) is None


def test_rigl_from_several_starting_criteria_is_never_pooled():
    """RigL from ERK (300, 320) and from global magnitude (1000, 1000) at width 1024: the magnitude row of the width
    table shows RigL from magnitude, and the improvement table compares TAR with each start on its own (pooled, the
    width table said 655 and P(TAR > RigL) was 0.5)."""
    from sb3_tar.experiments.tables import improvement_table

    magnitude_rigl = pd.DataFrame([_run("rigl", "magnitude", 0.8, math.nan, 1024, s, 1000.0) for s in (0, 1)])
    runs = pd.concat([_width_runs(), magnitude_rigl], ignore_index=True)
    wide = width_table(runs, reps=50, seed=0).set_index("width").loc[1024]
    assert (wide["rigl_n"], wide["rigl_mean"]) == (2, 1000.0)
    wide = width_table(_width_runs(), reps=50, seed=0).set_index("width").loc[1024]
    assert wide["rigl_mean"] == 310.0  # one start (ERK): that one, whatever the TAR row's criterion
    table = improvement_table(runs, reps=100, seed=0)
    table = table[table["width"] == 1024].set_index("comparison")
    # TAR at 1024 is 260, 260: below every RigL run of either start
    assert sorted(table.index) == ["RigL > dense", "RigL > dense", "TAR > Original", "TAR > RigL (erk)",
                                   "TAR > RigL (magnitude)"]  # fmt: skip
    assert table.loc["TAR > RigL (magnitude)", "n_y"] == 2 and table.loc["TAR > RigL (erk)", "n_y"] == 2
    assert table.loc["TAR > RigL (magnitude)", "probability"] == 0.0
    # with one start, the comparison keeps its plain name
    names = set(improvement_table(_width_runs(), reps=50, seed=0)["comparison"])
    assert names == {"TAR > Original", "TAR > RigL", "RigL > dense"}
