"""Grid expansion, axis collapsing, validation and the RL-Zoo command of a cell (no training here)."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from rl_zoo3.utils import StoreDict

from sb3_tar.cli import _build_parser, grid_from_args, main
from sb3_tar.experiments.grid import DST_CALLBACK, TAR_CALLBACK, Cell, GridSpec, get_preset
from sb3_tar.experiments.runner import CELL_FILE, DONE_FILE, cell_dir, cell_state, find_conf_dir, zoo_command

REPO = Path(__file__).resolve().parents[1]


def _zoo_params(cmd: list[str]) -> dict:
    """Parse a command's ``-params`` exactly as RL-Zoo does (StoreDict evals each value)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("-params", "--hyperparams", type=str, nargs="+", action=StoreDict)
    return parser.parse_args(cmd[cmd.index("-params") :]).hyperparams


def test_smoke_preset_has_every_method_once_per_seed():
    cells = get_preset("smoke").expand()
    assert len(cells) == 12
    assert Counter(c.method for c in cells) == {m: 2 for m in ("dense", "static", "tar", "uniform", "set", "rigl")}
    assert len({c.cell_id for c in cells}) == len(cells)


def test_cpu60k_phases_share_one_budget_and_never_share_a_cell():
    """The three phases of the one-CPU comparison write into one folder: same budget, disjoint cells, and
    phase 3 is TD3 with dense, Original and TAR (global magnitude), five seeds."""
    names = ("cpu60k", "cpu60k-criteria", "cpu60k-td3", "cpu60k-baselines")
    phases = {name: get_preset(name).expand() for name in names}
    assert {name: len(cells) for name, cells in phases.items()} == {
        "cpu60k": 30,
        "cpu60k-criteria": 30,
        "cpu60k-td3": 15,
        "cpu60k-baselines": 10,
    }
    every = [c for cells in phases.values() for c in cells]
    assert len({c.cell_id for c in every}) == 85
    baselines = phases["cpu60k-baselines"]
    assert Counter((c.algo, c.method, c.criterion, c.sparsity) for c in baselines) == {
        ("sac", "gmp", "magnitude", 0.9): 5,
        ("sac", "small_dense", None, 0.9): 5,
    }
    assert {(c.env, c.n_timesteps, c.eval_freq, c.eval_episodes, c.hyperparams) for c in every} == {
        ("HalfCheetah-v4", 60_000, 5_000, 5, (("learning_starts", "5000"),))
    }
    td3 = phases["cpu60k-td3"]
    assert {c.algo for c in td3} == {"td3"}
    assert Counter((c.method, c.criterion) for c in td3) == {
        ("dense", None): 5,
        ("static", "magnitude"): 5,
        ("tar", "magnitude"): 5,
    }
    conf = find_conf_dir(REPO / "hyperparams")
    tar = next(c for c in td3 if c.method == "tar")
    params = _zoo_params(zoo_command(tar, Path("/tmp/x"), conf / "td3.yml"))
    assert params["callback"] == tar.callback() and params["learning_starts"] == 5000


def _config(cell: Cell) -> tuple:
    return (cell.method, cell.criterion, cell.sparsity, cell.rr, cell.width)


def test_scale_presets_are_the_papers_rr_and_width_figures_at_the_60k_protocol():
    """cpu60k-rr (the paper's rr figure): global magnitude at sparsities 0.8, 0.9, 0.95, rr 0 (Original) and TAR
    (reserve) at 0.005, 0.01, 0.02, width 256. cpu60k-width (its width figure): sparsity 0.8 at widths 256 and
    1024, Original and TAR (rr 0.01) for global magnitude and ERK, RigL (ERK start, its defaults) and dense. Both
    use the cpu60k protocol (SAC, HalfCheetah-v4, 60k steps, learning_starts 5000, 5 episodes every 5,000 steps,
    seeds 0-4). The configurations the first four phases already ran are reused, never re-run: they are the only
    cells the presets share with them, and the counts of new cells are the issue's 50 + 15 + 30."""
    old = {c.cell_id for name in CPU60K_PHASES for c in get_preset(name).expand()}
    rr_cells = get_preset("cpu60k-rr").expand()
    width_cells = get_preset("cpu60k-width").expand()
    every = [*rr_cells, *width_cells]
    assert {(c.algo, c.env, c.n_timesteps, c.eval_freq, c.eval_episodes, c.hyperparams) for c in every} == {
        ("sac", "HalfCheetah-v4", 60_000, 5_000, 5, (("learning_starts", "5000"),))
    }
    for cells in (rr_cells, width_cells):
        seeds: dict[tuple, list[int]] = {}
        for c in cells:
            seeds.setdefault(_config(c), []).append(c.seed)
        assert all(sorted(s) == [0, 1, 2, 3, 4] for s in seeds.values()), seeds
    rr_configs = {_config(c) for c in rr_cells}
    expected_rr = {("static", "magnitude", sp, 0.0, 256) for sp in (0.8, 0.9, 0.95)}
    expected_rr |= {("tar", "magnitude", sp, rr, 256) for sp in (0.8, 0.9, 0.95) for rr in (0.005, 0.01, 0.02)}
    assert rr_configs == expected_rr
    width_configs = {_config(c) for c in width_cells}
    expected_width = {("dense", None, None, None, w) for w in (256, 1024)}
    for w in (256, 1024):
        expected_width |= {
            (m, crit, 0.8, rr, w) for crit in ("magnitude", "erk") for m, rr in (("static", 0.0), ("tar", 0.01))
        }
        expected_width.add(("rigl", "erk", 0.8, None, w))
    assert width_configs == expected_width
    # reused, not re-run: the phase-1 cells at 0.9 (Original, TAR rr 0.01) and dense at width 256
    reused_rr = {_config(c) for c in rr_cells if c.cell_id in old}
    assert reused_rr == {("static", "magnitude", 0.9, 0.0, 256), ("tar", "magnitude", 0.9, 0.01, 256)}
    reused_width = {_config(c) for c in width_cells if c.cell_id in old}
    assert reused_width == {("dense", None, None, None, 256)}
    for c in every:  # a reused cell is the very cell the phase ran (same configuration), so the sweep skips it
        if c.cell_id in old:
            committed = json.loads((REPO / "benchmarks/results/cpu60k" / c.cell_id / CELL_FILE).read_text())
            assert Cell.from_dict(committed) == c, c.cell_id
    rr_ids = {c.cell_id for c in rr_cells}
    new_rr = rr_ids - old
    new_width = {c.cell_id for c in width_cells} - old - rr_ids  # the width-256 magnitude cells are Part A's
    assert len(new_rr) == 50
    assert sum(1 for i in new_width if i.split("/")[2].endswith("_w256")) == 15
    assert sum(1 for i in new_width if i.split("/")[2].endswith("_w1024")) == 30
    tar = next(c for c in rr_cells if c.method == "tar" and c.sparsity == 0.95 and c.rr == 0.02)
    (kwargs,) = tar.callback()[0].values()
    assert (kwargs["criterion"], kwargs["revival"], kwargs["recovery_ratio"], kwargs["sparsity"]) == (
        "magnitude",
        "tar",
        0.02,
        0.95,
    )
    assert kwargs.get("budget_mode", "reserve") == "reserve" and kwargs.get("magnitude_scope", "global") == "global"
    rigl = next(c for c in width_cells if c.method == "rigl" and c.width == 1024)
    (kwargs,) = rigl.callback()[0].values()
    assert kwargs["method"] == "rigl" and kwargs["criterion"] == "erk" and kwargs["sparsity"] == 0.8
    conf = find_conf_dir(REPO / "hyperparams")
    params = _zoo_params(zoo_command(rigl, Path("/tmp/x"), conf / "sac.yml"))
    assert params["policy_kwargs"]["net_arch"] == [1024, 1024] and params["learning_starts"] == 5000


def test_cpu300k_preset_is_the_five_times_budget_grid():
    """cpu300k: SAC on HalfCheetah-v4, width 256, 90% sparsity, seeds 0-4, 300,000 steps with learning_starts
    5000 and 5 evaluation episodes every 10,000 steps (30 evaluations); dense, Original on ERK, TAR on ERK at
    rr 0.01 (reserve) and RigL from its default ERK start, no cell shared with the 60k grid's cells."""
    cells = get_preset("cpu300k").expand()
    assert {(c.algo, c.env, c.width, c.n_timesteps, c.eval_freq, c.eval_episodes, c.hyperparams) for c in cells} == {
        ("sac", "HalfCheetah-v4", 256, 300_000, 10_000, 5, (("learning_starts", "5000"),))
    }
    assert 300_000 // 10_000 == 30
    by_method = Counter((c.method, c.criterion, c.sparsity, c.rr) for c in cells)
    assert by_method == {
        ("dense", None, None, None): 5,
        ("static", "erk", 0.9, 0.0): 5,
        ("tar", "erk", 0.9, 0.01): 5,
        ("rigl", "erk", 0.9, None): 5,
    }
    for method in ("dense", "static", "tar", "rigl"):
        assert sorted(c.seed for c in cells if c.method == method) == [0, 1, 2, 3, 4]
    tar = next(c for c in cells if c.method == "tar")
    (kwargs,) = tar.callback()[0].values()
    assert (kwargs["criterion"], kwargs["revival"], kwargs["recovery_ratio"], kwargs["sparsity"]) == ("erk", "tar", 0.01, 0.9)
    assert kwargs.get("budget_mode", "reserve") == "reserve"
    rigl = next(c for c in cells if c.method == "rigl")
    (kwargs,) = rigl.callback()[0].values()
    assert kwargs["method"] == "rigl" and kwargs.get("criterion", "erk") == "erk"
    conf = find_conf_dir(REPO / "hyperparams")
    cmd = zoo_command(tar, Path("/tmp/x"), conf / "sac.yml")
    assert cmd[cmd.index("-n") + 1] == "300000" and cmd[cmd.index("--eval-freq") + 1] == "10000"
    assert _zoo_params(cmd)["learning_starts"] == 5000
    # GMP, the fifth method, in its own preset (global magnitude, its defaults), same budget and folder
    gmp = get_preset("cpu300k-gmp").expand()
    assert [(c.method, c.criterion, c.sparsity, c.seed) for c in gmp] == [("gmp", "magnitude", 0.9, s) for s in range(5)]
    assert {(c.algo, c.env, c.width, c.n_timesteps, c.eval_freq, c.eval_episodes, c.hyperparams) for c in gmp} == {
        ("sac", "HalfCheetah-v4", 256, 300_000, 10_000, 5, (("learning_starts", "5000"),))
    }
    (kwargs,) = gmp[0].callback()[0].values()
    assert (kwargs["sparsity"], kwargs["magnitude_scope"]) == (0.9, "global")
    assert not {"t0", "t1", "update_interval"} & set(kwargs)
    assert len({c.cell_id for c in [*cells, *gmp]}) == 25


def test_irrelevant_axes_are_collapsed():
    grid = GridSpec(
        envs=["Pendulum-v1"],
        methods=["dense", "static", "tar", "uniform", "set", "rigl"],
        criteria=["magnitude", "erk"],
        sparsities=[0.8, 0.9],
        rrs=[0.0, 0.005, 0.01],
        widths=[64],
        seeds=[0, 1],
    )
    cells = grid.expand()
    by_method = Counter(c.method for c in cells)
    # dense: one config; static: criteria x sparsities (tar/uniform at rr=0 fold into it);
    # tar/uniform: criteria x sparsities x the two rr > 0; set/rigl: sparsities (ERK start, no rr)
    expected = {"dense": 2, "static": 2 * 2 * 2, "tar": 2 * 2 * 2 * 2, "uniform": 2 * 2 * 2 * 2, "set": 2 * 2, "rigl": 2 * 2}
    assert by_method == expected
    for cell in cells:
        if cell.method == "dense":
            assert (cell.criterion, cell.sparsity, cell.rr) == (None, None, None)
            assert cell.callback() is None
        elif cell.method == "static":
            assert cell.rr == 0.0
        elif cell.method in ("set", "rigl"):
            assert cell.rr is None and cell.criterion == "erk"
        else:
            assert cell.rr > 0
    assert len({c.cell_id for c in cells}) == len(cells)


def test_tar_at_rr_zero_is_the_static_cell():
    only_tar = GridSpec(envs=["Pendulum-v1"], methods=["tar"], rrs=[0.0, 0.01], seeds=[0]).expand()
    with_static = GridSpec(envs=["Pendulum-v1"], methods=["static", "tar"], rrs=[0.0, 0.01], seeds=[0]).expand()
    assert [c.cell_id for c in only_tar] == [c.cell_id for c in with_static]
    assert sorted(c.method for c in only_tar) == ["static", "tar"]


def test_dst_criterion_same_follows_the_criteria_axis():
    cells = GridSpec(methods=["set"], criteria=["magnitude", "synflow"], dst_criterion="same", seeds=[0]).expand()
    assert sorted(c.criterion for c in cells) == ["magnitude", "synflow"]


def test_paper_preset_is_the_full_grid():
    grid = get_preset("paper")
    cells = grid.expand()
    # per (algo, env, width, seed): dense 1 + per (criterion, sparsity): static 1 + 3 TAR + 3 Uniform, + SET/RigL per sparsity
    per = 1 + 4 * 3 * 7 + 2 * 3
    assert len(cells) == 2 * 6 * 2 * 10 * per
    assert {c.n_timesteps for c in cells} == {1_000_000}
    assert {c.seed for c in cells} == set(range(10))
    assert {c.width for c in cells} == {256, 1024}
    assert get_preset("paper") is not get_preset("paper")  # copies: safe to modify


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"methods": ["tar", "prune"]}, ValueError, ["'prune'", "dense", "rigl"]),
        ({"criteria": ["snip"]}, ValueError, ["'snip'", "synflow"]),
        ({"algos": ["qrdqn"]}, ValueError, ["'qrdqn'", "sac", "ppo", "dqn"]),
        ({"algos": ["ppo"], "methods": ["tar", "cyclic"]}, ValueError, ["['cyclic']", "'ppo'", "'small_dense'"]),
        ({"sparsities": [1.0]}, ValueError, ["1.0", "(0, 1)"]),
        ({"sparsities": [0.9], "rrs": [0.2]}, ValueError, ["rr=0.2", "[0, 0.1]"]),
        ({"rrs": [-0.01]}, ValueError, ["-0.01", "[0, 1)"]),
        ({"seeds": [-1]}, ValueError, ["-1", "[0, inf)"]),
        ({"widths": [0]}, ValueError, ["0", "[1, inf)"]),
        ({"eval_freq": 0}, ValueError, ["eval_freq=0", "[1, inf)"]),
        ({"sparsities": "0.9"}, TypeError, ["sparsities"]),
        ({"seeds": [0.5]}, TypeError, ["0.5"]),
        ({"hyperparams": {"callback": "None"}}, ValueError, ["'callback'"]),
        ({"dst_criterion": "dense"}, ValueError, ["'dense'", "same"]),
    ],
)
def test_bad_values_are_named_with_the_allowed_range(kwargs, error, words):
    with pytest.raises(error) as info:
        GridSpec(**kwargs).expand()
    for word in words:
        assert word in str(info.value)


def test_extra_budget_mode_allows_rr_above_density():
    cells = GridSpec(sparsities=[0.95], rrs=[0.1], tar_kwargs={"budget_mode": "extra"}, seeds=[0]).expand()
    assert dict(cells[-1].callback()[0][TAR_CALLBACK])["budget_mode"] == "extra"


def test_callback_specs():
    base = {"algo": "sac", "env": "Pendulum-v1", "width": 256, "seed": 3}
    tar = Cell(method="tar", criterion="synflow", sparsity=0.95, rr=0.02, **base).callback()[0][TAR_CALLBACK]
    assert tar["revival"] == "tar" and tar["recovery_ratio"] == 0.02 and tar["sparsity"] == 0.95
    assert tar["criterion"] == "synflow" and tar["seed"] == 3
    static = Cell(method="static", criterion="erk", sparsity=0.9, rr=0.0, **base).callback()[0][TAR_CALLBACK]
    assert static["revival"] == "none" and static["recovery_ratio"] == 0.0
    uniform = Cell(method="uniform", criterion="erk", sparsity=0.9, rr=0.01, **base).callback()[0][TAR_CALLBACK]
    assert uniform["revival"] == "uniform"
    rigl = Cell(method="rigl", criterion="erk", sparsity=0.9, rr=None, callback_kwargs=(("update_interval", 500),), **base)
    kwargs = {"method": "rigl", "sparsity": 0.9, "criterion": "erk", "seed": 3, "verbose": 1, "update_interval": 500}
    assert rigl.callback() == [{DST_CALLBACK: kwargs}]


def test_zoo_command_is_parsed_by_rl_zoo():
    conf = find_conf_dir(REPO / "hyperparams")
    cell = get_preset("smoke").expand()[4]  # tar
    cmd = zoo_command(cell, Path("/tmp/x"), conf / "sac.yml")
    assert cmd[1:3] == ["-m", "rl_zoo3.train"]
    for flag, value in (("--algo", "sac"), ("--env", "Pendulum-v1"), ("-n", "600"), ("--eval-freq", "100")):
        assert cmd[cmd.index(flag) + 1] == value
    assert cmd[cmd.index("--seed") + 1] == str(cell.seed)
    params = _zoo_params(cmd)
    assert params["policy_kwargs"] == {"net_arch": [64, 64]}
    assert params["callback"] == cell.callback()
    assert params["learning_starts"] == 200


def test_width_keeps_the_env_policy_kwargs():
    conf = find_conf_dir(REPO / "hyperparams")
    cell = Cell("sac", "BipedalWalker-v3", "dense", None, None, None, 1024, 0, hyperparams=(("learning_starts", "100"),))
    params = _zoo_params(zoo_command(cell, Path("/tmp/x"), conf / "sac.yml"))
    assert params["policy_kwargs"] == {"log_std_init": -3, "net_arch": [1024, 1024], "use_expln": True}
    assert params["callback"] is None and params["learning_starts"] == 100


def test_cell_round_trips_through_json():
    for cell in get_preset("smoke").expand():
        assert Cell.from_dict(json.loads(json.dumps(cell.to_dict()))) == cell


def test_cell_state(tmp_path):
    cell = get_preset("smoke").expand()[0]
    assert cell_state(tmp_path, cell) == "new"
    folder = cell_dir(tmp_path, cell)
    folder.mkdir(parents=True)
    (folder / CELL_FILE).write_text(json.dumps(cell.to_dict()))
    assert cell_state(tmp_path, cell) == "partial"
    (folder / DONE_FILE).write_text("{}")
    assert cell_state(tmp_path, cell) == "done"
    other = Cell.from_dict({**cell.to_dict(), "n_timesteps": 5000})
    assert cell_state(tmp_path, other) == "stale"


def test_cli_overrides_the_preset():
    args = _build_parser().parse_args(
        [
            "sweep",
            "--preset",
            "smoke",
            "--methods",
            "static",
            "tar",
            "--n-seeds",
            "3",
            "-n",
            "500",
            "--recovery-ratios",
            "0.005",
            "0.02",
        ]
        + ["--params", "learning_starts:50", "--tar-kwargs", "budget_mode:extra", "floor_fraction:0.5"]
    )
    grid = grid_from_args(args)
    assert grid.seeds == (0, 1, 2) and grid.n_timesteps == 500 and grid.rrs == (0.005, 0.02)
    assert grid.hyperparams == {"learning_starts": "50"}
    assert grid.tar_kwargs == {"budget_mode": "extra", "floor_fraction": 0.5}
    assert len(grid.expand()) == 3 * (1 + 2)


def test_ray_backend_without_ray_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if Ray were not installed
    assert main(["sweep", "--preset", "smoke", "--backend", "ray", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'sb3-tar[ray]'" in err
    assert not (tmp_path / "r").exists()  # refused before touching the results directory


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["sweep", "--sparsities", "0.99", "--recovery-ratios", "0.02", "--dry-run"]) == 2
    assert "rr=0.02" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_dry_run_lists_commands(tmp_path, capsys):
    assert main(["sweep", "--preset", "smoke", "--dry-run", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("12 cells (0 finished")
    assert out.count("rl_zoo3.train") == 12
    assert not any(tmp_path.iterdir())


#: The 60k grid's first four phases (the README's "Results on one CPU" block reads exactly these cells).
CPU60K_PHASES = ("cpu60k", "cpu60k-criteria", "cpu60k-td3", "cpu60k-baselines")
#: The scale presets of issue 29, into the same folder (the README's "Width and revival ratio" block).
CPU60K_SCALE = ("cpu60k-rr", "cpu60k-width")

GRID_PRESETS = {
    "cpu60k": (*CPU60K_PHASES, *CPU60K_SCALE, "cpu60k-cyclic"),
    "cpu300k": ("cpu300k", "cpu300k-gmp"),
}


def _git_commits() -> set[str] | None:
    """Every commit reachable from HEAD in this checkout, or None where there is no full history to read."""
    if not (REPO / ".git").exists() or (REPO / ".git" / "shallow").exists() or shutil.which("git") is None:
        return None
    out = subprocess.run(["git", "-C", str(REPO), "rev-list", "HEAD"], capture_output=True, text=True)
    return set(out.stdout.split()) if out.returncode == 0 else None


@pytest.mark.parametrize("folder", sorted(GRID_PRESETS))
def test_committed_grid_cells_resume_as_finished(folder: str) -> None:
    """Every committed cell of benchmarks/results/<folder> is one of its presets' cells and counts as done, so
    the README's sweep commands skip it (no stale cell, nothing redone). Each names the clean package commit
    that ran it, and that commit is in this repository's history (where the checkout has it)."""
    root = REPO / "benchmarks" / "results" / folder
    committed = sorted(root.rglob(DONE_FILE))
    assert committed, "no committed cell"
    cells = {c.cell_id: c for name in GRID_PRESETS[folder] for c in get_preset(name).expand()}
    history = _git_commits()
    for done_path in committed:
        cell_id = done_path.parent.relative_to(root).as_posix()
        assert cell_id in cells, cell_id
        assert cell_state(root, cells[cell_id]) == "done", cell_id
        done = json.loads(done_path.read_text())
        assert done["returncode"] == 0 and done["cell_id"] == cell_id, cell_id
        summary = json.loads((done_path.parent / "summary.json").read_text())
        commit = summary["package"]["commit"]
        assert re.fullmatch(r"[0-9a-f]{40}", commit) and summary["package"]["dirty"] is False, cell_id
        assert done["package"]["commit"] == commit, cell_id
        if history is not None:
            assert commit in history, f"{cell_id}: commit {commit} is not in this repository's history"
        if "hardware" in done or "attempts" in done:  # cells run since the sweep records where they ran
            _check_provenance(cell_id, done, summary, history)


def _check_provenance(cell_id: str, done: dict, summary: dict, history: set[str] | None) -> None:
    """A cell that records its hardware names the CPU, its instruction set and torch, lists every attempt with a
    clean commit of this history (the last attempt's is the summary's) and records its final mask layer by layer,
    each layer's kept count adding up to the measured nonzero count of its network."""
    hardware = done["hardware"]
    assert hardware["cpu_model"] and isinstance(hardware["isa"], list) and hardware["torch"], cell_id
    assert hardware["threads"] == 1 and summary["hardware"] == hardware, cell_id
    attempts = done["attempts"]
    assert attempts and attempts[-1]["package"] == summary["package"], cell_id
    assert attempts[0]["resumed"] is False and all(a["resumed"] for a in attempts[1:]), cell_id
    for attempt in attempts:
        assert attempt["package"]["dirty"] is False, cell_id
        if history is not None:
            assert attempt["package"]["commit"] in history, cell_id
    for network, layers in summary["final_masks"].items():
        assert sum(layer["kept"] for layer in layers) == summary["final_sparsity"][network]["nonzero"], cell_id


@pytest.mark.parametrize(
    "option, typo, callback",
    [("--tar-kwargs", "floor_fractoin:0.5", "TARCallback"), ("--dst-kwargs", "update_intervall:100", "DSTCallback")]
    + [("--gmp-kwargs", "end_fracton:0.5", "GMPCallback")],
)
def test_a_typo_in_callback_kwargs_fails_before_any_cell_starts(tmp_path, capsys, option, typo, callback):
    root = tmp_path / "r"
    methods = {"--tar-kwargs": "tar", "--dst-kwargs": "rigl", "--gmp-kwargs": "gmp"}[option]
    assert main(["sweep", "--preset", "smoke", "--methods", methods, option, typo, "-o", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err
    name = typo.partition(":")[0]
    assert f"['{name}'] is not a parameter of {callback}: valid names are [" in err
    import inspect

    import sb3_tar.baselines
    import sb3_tar.callbacks

    cls = getattr(sb3_tar.callbacks, callback, None) or getattr(sb3_tar.baselines, callback)
    for valid in inspect.signature(cls.__init__).parameters:  # every valid name is listed
        assert valid == "self" or f"'{valid}'" in err
    assert not root.exists()  # nothing was started, not even the results directory
    with pytest.raises(ValueError, match=f"is not a parameter of {callback}"):
        GridSpec(**{option[2:].replace("-", "_"): {name: 1}}).validate()


@pytest.mark.parametrize(
    "option, pair, methods, message",
    [
        ("--tar-kwargs", "budget_mode:foo", "tar", "TARCallback refuses its arguments: Unknown budget_mode 'foo': valid"),
        ("--tar-kwargs", "floor_fraction:2", "tar", "floor_fraction=2.0 is outside the allowed range [0, 1]"),
        ("--tar-kwargs", "synflow_iters:0", "tar", "synflow_iters=0 is outside the allowed range [1, inf)"),
        ("--dst-kwargs", "update_interval:0", "rigl", "DSTCallback refuses its arguments: update_interval=0 is outside"),
        ("--dst-kwargs", "drop_fraction:2", "set", "drop_fraction=2.0 is outside the allowed range (0, 1)"),
        ("--gmp-kwargs", "end_fraction:0", "gmp", "GMPCallback refuses its arguments: end_fraction=0.0 is outside"),
    ],
)
def test_a_bad_callback_value_fails_before_any_cell_starts(tmp_path, capsys, option, pair, methods, message):
    """A valid option name with a value its callback refuses: the sweep says so, naming the first cell it would run
    and the callback's own message, and starts nothing (it used to start every cell, each failing in training)."""
    root = tmp_path / "r"
    assert main(["sweep", "--preset", "smoke", "--methods", methods, option, pair, "-o", str(root), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and f"cell sac/Pendulum-v1/{methods}_" in err, err
    assert not root.exists()
    dry = ["sweep", "--preset", "smoke", "--methods", methods, option, pair, "-o", str(root), "--dry-run"]
    assert main(dry) == 2
    assert message in capsys.readouterr().err and not root.exists()
    name, _, text = pair.partition(":")
    value = int(text) if text.isdigit() else text if text == "foo" else float(text)
    from sb3_tar.experiments.runner import run_sweep

    with pytest.raises(ValueError, match="refuses its arguments"):
        run_sweep(GridSpec(methods=(methods,), **{option[2:].replace("-", "_"): {name: value}}), tmp_path / "api")
    assert not (tmp_path / "api").exists()


@pytest.mark.parametrize(
    "option, pair, methods",
    [("--tar-kwargs", "sparsity:0.5", "tar"), ("--tar-kwargs", "recovery_ratio:0.05", "tar")]
    + [("--tar-kwargs", "seed:7", "static"), ("--dst-kwargs", "method:rigl", "set"), ("--gmp-kwargs", "sparsity:0.5", "gmp")],
)
def test_callback_kwargs_may_not_set_what_the_grid_sets(tmp_path, capsys, option, pair, methods):
    """``--tar-kwargs sparsity:0.5`` ran TARCallback(sparsity=0.5) in a cell whose folder said sp0.9: refused."""
    root = tmp_path / "r"
    assert main(["sweep", "--preset", "smoke", "--methods", methods, option, pair, "-o", str(root), "--no-progress"]) == 2
    name = pair.partition(":")[0]
    assert f"{option[2:].replace('-', '_')} may not set ['{name}']: the grid sets" in capsys.readouterr().err
    assert not root.exists()


def test_an_unknown_environment_id_fails_before_any_cell_starts(tmp_path, capsys):
    """A misspelt ``--envs`` id fell back to the hyperparameter file's ``default`` entry with a warning, passed the dry
    run and failed in every cell (rl_zoo3.train refuses ids missing from Gymnasium's registry): refused up front."""
    root = tmp_path / "r"
    message = "Environment 'HalfCheeta-v4' (did you mean 'HalfCheetah-v4'?) is not registered in Gymnasium"
    for extra in ([], ["--dry-run"]):
        argv = ["sweep", "--preset", "smoke", "--envs", "HalfCheeta-v4", "-o", str(root), "--no-progress", *extra]
        assert main(argv) == 2
        assert message in capsys.readouterr().err
        assert not root.exists()
    from sb3_tar.experiments.runner import run_sweep

    with pytest.raises(ValueError, match=r"'NoSuchTask-v0' is not registered"):
        run_sweep(GridSpec(envs=("Pendulum-v1", "NoSuchTask-v0"), seeds=(0,)), tmp_path / "api")
    assert not (tmp_path / "api").exists()


@pytest.mark.parametrize("jobs", ["0", "-3"])
def test_jobs_below_one_is_refused_before_the_dry_run_too(tmp_path, capsys, jobs):
    root = tmp_path / "r"
    assert main(["sweep", "--preset", "smoke", "--dry-run", "-j", jobs, "-o", str(root)]) == 2
    assert f"--jobs={jobs} is outside the allowed range [1, inf)" in capsys.readouterr().err
    assert not root.exists()


def test_extra_kwargs_and_prune_criteria_name_their_cells_and_leave_plain_ids_unchanged():
    plain = GridSpec(methods=("static", "tar", "set", "rigl", "gmp"), seeds=(0,))
    assert [c.label for c in plain.expand()] == [
        "static_magnitude_sp0.9_w256",
        "tar_magnitude_sp0.9_rr0.01_w256",
        "set_erk_sp0.9_w256",
        "rigl_erk_sp0.9_w256",
        "gmp_magnitude_sp0.9_w256",
    ]
    # the default prune criterion is the id of a cell without it
    same = GridSpec(methods=("set", "rigl"), seeds=(0,), prune_criteria=("magnitude",))
    assert [c.cell_id for c in same.expand()] == [c.cell_id for c in plain.expand()][2:4]
    axis = GridSpec(
        methods=("tar", "rigl"), seeds=(0,), prune_criteria=("magnitude", "snip", "mest"), dst_kwargs={"drop_fraction": 0.25}
    )
    cells = axis.expand()
    assert [c.label for c in cells] == [
        "tar_magnitude_sp0.9_rr0.01_w256",  # the axis does not apply to TAR
        "rigl_erk_sp0.9_w256_drop_fraction=0.25",
        "rigl_erk_sp0.9_w256_drop_fraction=0.25_prune_criterion=snip",
        "rigl_erk_sp0.9_w256_drop_fraction=0.25_prune_criterion=mest",
    ]
    assert len({c.cell_id for c in cells}) == len(cells)
    criteria = [c.callback()[0][DST_CALLBACK].get("prune_criterion", "magnitude") for c in cells[1:]]
    assert criteria == ["magnitude", "snip", "mest"]
    # on the command line
    args = ["sweep", "--methods", "set", "--prune-criteria", "random", "sign_balanced_magnitude", "--seeds", "0"]
    assert [c.label for c in grid_from_args(_build_parser().parse_args(args)).expand()] == [
        "set_erk_sp0.9_w256_prune_criterion=random",
        "set_erk_sp0.9_w256_prune_criterion=sign_balanced_magnitude",
    ]
    with pytest.raises(ValueError, match="prune_criteria"):
        GridSpec(methods=("set",), prune_criteria=("magnitud",)).validate()
    with pytest.raises(ValueError, match="set the prune criterion in one of them"):
        GridSpec(methods=("set",), prune_criteria=("snip",), dst_kwargs={"prune_criterion": "mest"}).validate()


def test_dry_run_prints_what_run_cell_runs(tmp_path, capsys):
    import shlex

    from sb3_tar.experiments.runner import DIAGNOSTICS_CALLBACK, cell_command, diagnostics_interval

    assert main(["sweep", "--preset", "smoke", "--seeds", "0", "--dry-run", "-o", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    conf = find_conf_dir() / "sac.yml"
    cells = get_preset("smoke").expand()[::2]  # seed 0
    assert len(lines) == 2 * len(cells)
    for cell, (head, line) in zip(cells, zip(lines[::2], lines[1::2])):
        assert head == f"[new] {cell.cell_id}"
        words = shlex.split(line)
        command, env = cell_command(cell, tmp_path, conf, checkpoint_every=50_000)
        assert words == [f"{k}={v}" for k, v in env.items()] + command
        diagnostics = {"every": diagnostics_interval(cell), "path": f"{cell_dir(tmp_path, cell)}/diagnostics.csv"}
        assert {DIAGNOSTICS_CALLBACK: diagnostics} in _zoo_params(command)["callback"]
