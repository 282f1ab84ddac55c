"""The report's plots keep apart cells that differ only in extra callback options (``_<name>=<value>`` in their
label), as its tables do: a line, an rr plot of their own, named with their options."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sb3_tar.experiments import plots, tables


def _run(method: str, sparsity: float, rr: float, seed: int, value: float, options: str) -> dict:
    label = f"{method}_magnitude_sp{sparsity:g}" + (f"_rr{rr:g}" if method == "tar" else "") + "_w256"
    return {
        **dict(algo="sac", env="Pendulum-v1", method=method, criterion="magnitude", sparsity=sparsity, rr=rr, width=256),
        **dict(seed=seed, final_return=value, options=options, label=label + (f"_{options}" if options else "")),
        "cell_dir": f"/cells/{label}_{options}/seed_{seed}",
    }


def _runs() -> pd.DataFrame:
    rows = []
    for options, shift in (("", 0.0), ("budget_mode=extra", 1000.0)):
        for sparsity in (0.8, 0.9):
            for seed, value in enumerate((100.0, 300.0)):
                rows.append(_run("static", sparsity, 0.0, seed, value + shift, options))
                rows.append(_run("tar", sparsity, 0.01, seed, 2 * value + shift, options))
                rows.append(_run("tar", sparsity, 0.02, seed, 3 * value + shift, options))
    return pd.DataFrame(rows)


def test_lines_keep_apart_cells_that_differ_only_in_options() -> None:
    runs = _runs()
    panel = runs[runs["sparsity"] == 0.8]
    lines = plots.line_configs(panel)
    assert [label for label, _ in lines] == [
        "Original",
        "TAR rr=0.01",
        "TAR rr=0.02",
        "Original [budget_mode=extra]",
        "TAR rr=0.01 [budget_mode=extra]",
        "TAR rr=0.02 [budget_mode=extra]",
    ]
    # by hand: TAR rr 0.02 is 3 x (100, 300) -> mean 600; with the option, + 1000 -> 1600; 2 seeds each
    means = {label: float(config["final_return"].mean()) for label, config in lines}
    assert means["TAR rr=0.02"] == 600.0 and means["TAR rr=0.02 [budget_mode=extra]"] == 1600.0
    assert all(len(config) == 2 for _, config in lines)
    # the tables keep them apart the same way (one row per label)
    summary = tables.summarize(runs)
    assert len(summary) == 12 and len(summary) == len(plots.line_configs(runs[runs["sparsity"] == 0.8])) * 2
    # without the options column (a grid without extra options), the lines are the configurations
    assert [label for label, _ in plots.line_configs(panel[panel["options"] == ""].drop(columns="options"))] == [
        "Original",
        "TAR rr=0.01",
        "TAR rr=0.02",
    ]


def test_rr_plots_of_cells_with_options_are_files_of_their_own(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    runs = _runs()
    files = [p.name for p, _ in plots.scale_files(runs, tmp_path)]
    assert files == [
        "rr_by_sparsity_sac_Pendulum-v1_magnitude_w256.png",
        "rr_by_sparsity_sac_Pendulum-v1_magnitude_w256_budget_mode_extra.png",
    ]
    written, _ = plots.rr_by_sparsity(runs, tmp_path)
    assert sorted(p.name for p in written) == sorted(files)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    assert not math.isnan(runs["final_return"].sum())
