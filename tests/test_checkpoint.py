"""Checkpoints inside a run and exact resume: sweep cells (the smoke preset's TAR and RigL cells, checkpointed every
200 steps) killed with SIGKILL after a checkpoint and resumed by running the same ``sb3-tar sweep`` command end with
the same evaluations and weights as the smoke preset's uninterrupted cells (no checkpoint inside their run), bit for
bit, and so does a cell on the Ray backend whose worker dies; the SB3 callback does the same for a user's script (TD3 + SET,
killed for real); bad checkpoints are refused with the file named and the run starts from step 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_utils import REPO, cli_env, run_cli
from kill_script import assert_same_bits, run_killed_and_resumed
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.save_util import load_from_zip_file

from sb3_tar import ExactCheckpointCallback as TopLevel
from sb3_tar.callbacks import TARCallback
from sb3_tar.diagnostics import read_diagnostics_csv
from sb3_tar.sb3.persistence.checkpoint import (
    META_FILE,
    MODEL_FILE,
    CheckpointError,
    ExactCheckpointCallback,
    latest_checkpoint,
    load_checkpoint,
)

ENV = "Pendulum-v1"
# the smoke preset's TAR and RigL cells of seed 0 (width 64, 600 steps, learning from step 200), with checkpoints
SWEEP = ["sweep", "--preset", "smoke", "--methods", "tar", "rigl", "--seeds", "0", "--jobs", "2", "--no-progress"]
SWEEP += ["--checkpoint-every", "200"]


def _cells(root: Path) -> list[Path]:
    return sorted(root.glob(f"sac/{ENV}/*/seed_0"))


def _evaluations(cell: Path) -> dict[str, np.ndarray]:
    with np.load(cell / "sac" / f"{ENV}_1" / "evaluations.npz") as data:
        return {key: data[key] for key in data.files}


def _policy(cell: Path) -> dict[str, torch.Tensor]:
    return load_from_zip_file(cell / "sac" / f"{ENV}_1" / f"{ENV}.zip", device="cpu", print_system_info=False)[1]["policy"]


@pytest.fixture
def uninterrupted(smoke_sweep) -> Path:
    """The session's smoke sweep (conftest.py): its cells ran without a checkpoint inside their 600 steps."""
    return smoke_sweep[0]


def test_sweep_cells_killed_after_a_checkpoint_resume_bit_for_bit(uninterrupted, tmp_path):
    root = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sb3_tar.cli", *SWEEP, "-o", str(root)],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    killed: dict[str, int] = {}
    try:
        deadline = time.time() + 300
        while len(killed) < 2:
            assert proc.poll() is None and time.time() < deadline, f"sweep ended or hung before both kills: {killed}"
            for cell in _cells(root):
                if cell.parent.name not in killed and latest_checkpoint(cell / "checkpoints") is not None:
                    zoo = _zoo_child_of(cell)
                    assert zoo is not None, f"{cell} has a checkpoint but no RL-Zoo process"
                    os.kill(zoo[0], signal.SIGKILL)  # kill -9 the cell's training, mid-run
                    killed[cell.parent.name] = zoo[0]
            time.sleep(0.05)
        assert proc.wait(timeout=120) == 1  # the sweep reports both cells as failed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    cells = _cells(root)
    assert [c.name for c in cells] == ["seed_0", "seed_0"] and not any((c / "done.json").exists() for c in cells)
    steps = {c.parent.name: int(latest_checkpoint(c / "checkpoints").name.split("_")[1]) for c in cells}
    assert all(200 <= s < 600 for s in steps.values()), steps

    resumed = run_cli(*SWEEP, "-o", str(root), timeout=400)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "2 cells (0 finished, 2 partial" in resumed.stdout
    reference = {c.parent.name: c for c in _cells(uninterrupted)}
    assert sorted(c.parent.name for c in cells) == ["rigl_erk_sp0.9_w64_update_interval=100", "tar_magnitude_sp0.9_rr0.01_w64"]
    for cell in cells:
        log = (cell / "train.log").read_text()
        assert f"resumed from {cell / 'checkpoints'}" in log and f"at step {steps[cell.parent.name]}" in log
        assert (cell / "done.json").is_file() and not (cell / "checkpoints").exists()  # removed when finished
        # both attempts are on record (the killed first run and the resume), each with its commit and hardware
        attempts = json.loads((cell / "done.json").read_text())["attempts"]
        assert [a["resumed"] for a in attempts] == [False, True]
        lines = (cell / "runs.jsonl").read_text().splitlines()
        assert [json.loads(line)["package"] for line in lines] == [a["package"] for a in attempts]
        assert attempts[0]["hardware"]["cpu_model"] and attempts[0]["hardware"] == attempts[1]["hardware"]
        evaluations = _evaluations(cell)
        assert list(evaluations["timesteps"]) == [100, 200, 300, 400, 500, 600]
        assert_same_bits(evaluations, _evaluations(reference[cell.parent.name]))
        assert_same_bits(_policy(cell), _policy(reference[cell.parent.name]))  # weights, masks, targets
        pair = (cell, reference[cell.parent.name])
        sparsity = [json.loads((c / "summary.json").read_text())["final_sparsity"] for c in pair]
        assert sparsity[0] == sparsity[1]  # the same masks (pattern fingerprints), online and target
        # the plasticity diagnostics continue on the same fixed batch: equal but for the measurement's own duration
        rows = [read_diagnostics_csv(c / "diagnostics.csv") for c in pair]
        assert [r["timesteps"] for r in rows[0]] == [r["timesteps"] for r in rows[1]] and len(rows[0]) >= 4
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in rows[0]] == [
            {k: v for k, v in r.items() if k != "seconds"} for r in rows[1]
        ]


TD3_SET = """
    from stable_baselines3 import TD3
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.noise import NormalActionNoise
    from sb3_tar import DSTCallback

    env = make_vec_env("Pendulum-v1", n_envs=1, seed=3, monitor_dir=out)
    noise = NormalActionNoise(np.zeros(1), 0.1 * np.ones(1))
    model = TD3("MlpPolicy", env, learning_starts=100, action_noise=noise, policy_kwargs=dict(net_arch=[32, 32]), seed=3)
    callbacks = [
        ExactCheckpointCallback(os.path.join(out, "checkpoints"), save_freq=200, config={"run": "td3-set"}),
        DSTCallback("set", sparsity=0.8, update_interval=50),
        EvalCallback(make_vec_env("Pendulum-v1", n_envs=1, seed=4), eval_freq=150, n_eval_episodes=2, log_path=out),
        Kill(),
    ]
    model.learn(600, callback=callbacks)
    model.save(os.path.join(out, "final"))
"""


def test_callback_resumes_a_killed_td3_set_script_exactly(tmp_path):
    def left_by_the_kill(run: Path) -> None:
        assert latest_checkpoint(run / "checkpoints").name == "step_000000000400"

    runs = run_killed_and_resumed(tmp_path, TD3_SET, kill_at=450, after_kill=left_by_the_kill)
    assert "resumed from" in runs.resumed_stdout and "at step 400" in runs.resumed_stdout
    with np.load(runs.reference / "evaluations.npz") as a, np.load(runs.run / "evaluations.npz") as b:
        assert list(a["timesteps"]) == [150, 300, 450, 600]
        assert_same_bits(dict(a), dict(b))
    ref_params = load_from_zip_file(runs.reference / "final.zip", device="cpu", print_system_info=False)
    run_params = load_from_zip_file(runs.run / "final.zip", device="cpu", print_system_info=False)
    assert_same_bits(ref_params[1]["policy"], run_params[1]["policy"])
    assert_same_bits(ref_params[1]["actor.optimizer"]["state"][0], run_params[1]["actor.optimizer"]["state"][0])
    assert ref_params[0]["sb3_tar_dst_state"] == run_params[0]["sb3_tar_dst_state"]  # schedule position
    assert ref_params[0]["sb3_tar_dst_state"]["step"] == 500  # one gradient step per env step after 100
    monitor = [(folder / "0.monitor.csv").read_text().splitlines()[2:] for folder in (runs.reference, runs.run)]
    assert [line.split(",")[:2] for line in monitor[0]] == [line.split(",")[:2] for line in monitor[1]]  # r, l


def _zoo_child_of(folder: Path) -> tuple[int, int] | None:
    """:return: ``(pid, parent pid)`` of the RL-Zoo process training in ``folder``, if one runs."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if b"rl_zoo3.train" in cmdline and str(folder).encode() in b" ".join(cmdline):
                return int(proc.name), int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the Ray worker through /proc")
def test_ray_task_retried_after_its_worker_dies_resumes_from_the_checkpoint(uninterrupted, tmp_path, monkeypatch):
    """The Ray backend on a local Ray instance runs a cell to the end (done.json, summary.json), and when the cell's
    worker dies the retried task resumes from the cell's checkpoint, bit for bit."""
    import threading

    import ray

    from sb3_tar.experiments.grid import get_preset
    from sb3_tar.experiments.runner import cell_dir, run_sweep

    grid = get_preset("smoke")  # its TAR cell of seed 0, with checkpoints
    grid.methods, grid.seeds = ("tar",), (0,)
    (cell,) = grid.expand()
    folder = cell_dir(tmp_path / "ray", cell)
    monkeypatch.setenv("PYTHONPATH", cli_env()["PYTHONPATH"])  # Ray workers import sb3_tar from this checkout
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    outcome: dict = {}
    sweep = threading.Thread(
        target=lambda: outcome.update(s=run_sweep(grid, tmp_path / "ray", backend="ray", progress=False, checkpoint_every=200))
    )
    try:
        sweep.start()
        deadline = time.time() + 300
        while latest_checkpoint(folder / "checkpoints") is None:
            assert sweep.is_alive() and time.time() < deadline, "the cell ended or hung before its first checkpoint"
            time.sleep(0.1)
        zoo, worker = _zoo_child_of(folder)
        os.kill(worker, signal.SIGKILL)  # the Ray worker dies; its RL-Zoo child dies with it
        sweep.join(timeout=400)
    finally:
        ray.shutdown()
    assert not sweep.is_alive() and outcome["s"].count("done") == 1, [r.__dict__ for r in outcome["s"].results]
    assert not outcome["s"].failed and (folder / "done.json").is_file() and (folder / "summary.json").is_file()
    assert not Path(f"/proc/{zoo}").exists() or "Z" in Path(f"/proc/{zoo}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert "resumed from" in (folder / "train.log").read_text()
    (reference,) = [c for c in _cells(uninterrupted) if c.parent.name == cell.label]
    assert_same_bits(_evaluations(folder), _evaluations(reference))
    assert_same_bits(_policy(folder), _policy(reference))


# -- bad input ---------------------------------------------------------------------------------------------
def _tiny_run(folder: Path, steps: int = 150, save_freq: int = 100, config=None, checkpoints: bool = True) -> SAC:
    env = make_vec_env(ENV, n_envs=1, seed=0)
    model = SAC("MlpPolicy", env, learning_starts=50, batch_size=32, policy_kwargs=dict(net_arch=[16, 16]), seed=0)
    callbacks = [TARCallback(sparsity=0.8, sparse_execution=False)]
    callbacks.append(EvalCallback(make_vec_env(ENV, n_envs=1, seed=1), eval_freq=75, n_eval_episodes=1, log_path=str(folder)))
    if checkpoints:
        callbacks.insert(0, ExactCheckpointCallback(folder / "ck", save_freq=save_freq, config=config, verbose=0))
    model.learn(steps, callback=callbacks)
    return model


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("written")
    _tiny_run(folder, config={"budget": 150})
    return folder


def _copy(written: Path, tmp_path: Path) -> Path:
    """A copy of the written run as a kill would have left it (its end not reached: ``step_<n>``, not ``finished_``)."""
    import shutil

    shutil.copytree(written, tmp_path / "w")
    for finished in (tmp_path / "w" / "ck").glob("finished_step_*"):
        finished.rename(finished.with_name(finished.name.removeprefix("finished_")))
    return latest_checkpoint(tmp_path / "w" / "ck")


def _fresh_model() -> SAC:
    env = make_vec_env(ENV, n_envs=1, seed=0)
    return SAC("MlpPolicy", env, learning_starts=50, batch_size=32, policy_kwargs=dict(net_arch=[16, 16]), seed=0)


def test_truncated_file_is_refused_naming_it(written, tmp_path):
    path = _copy(written, tmp_path)
    assert path.name == "step_000000000100"
    model_file = path / MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[:-100])
    model = _fresh_model()
    model._setup_learn(150)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    with pytest.raises(CheckpointError, match=f"{model_file}.*truncated"):
        load_checkpoint(model, path, config={"budget": 150})
    assert model.num_timesteps == 0 and all(torch.equal(before[k], v) for k, v in model.policy.state_dict().items())


def test_other_configuration_and_other_versions_are_refused_naming_the_file(written, tmp_path):
    path = _copy(written, tmp_path)
    model = _fresh_model()
    model._setup_learn(150)
    with pytest.raises(CheckpointError, match=rf"{path / META_FILE}.*another configuration.*'budget': \(150, 300\)"):
        load_checkpoint(model, path, config={"budget": 300})
    meta = json.loads((path / META_FILE).read_text())
    meta["versions"]["stable_baselines3"] = "1.0.0"
    (path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=rf"{path / META_FILE}.*stable_baselines3 1.0.0 \(this run: "):
        load_checkpoint(model, path, config={"budget": 150})


def test_refused_checkpoint_restarts_from_step_0_as_a_fresh_run(written, tmp_path):
    path = _copy(written, tmp_path)
    (path / "replay_buffer.pkl").write_bytes(b"not a buffer")
    with pytest.warns(UserWarning, match=f"{path / 'replay_buffer.pkl'}.*training starts from step 0"):
        resumed = _tiny_run(tmp_path / "w", config={"budget": 150}, save_freq=0)
    assert (tmp_path / "w" / "ck" / "refused_step_000000000100").is_dir() and latest_checkpoint(tmp_path / "w" / "ck") is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = _tiny_run(tmp_path / "fresh", checkpoints=False)
    assert_same_bits(resumed.policy.state_dict(), fresh.policy.state_dict())  # from step 0, random state untouched
    with np.load(tmp_path / "w" / "evaluations.npz") as a, np.load(tmp_path / "fresh" / "evaluations.npz") as b:
        assert_same_bits(dict(a), dict(b))


def test_replay_buffer_is_stored_compact_and_restored_whole(tmp_path):
    from sb3_tar.sb3.persistence.checkpoint import save_checkpoint

    model = _tiny_run(tmp_path, steps=120, checkpoints=False)
    path = save_checkpoint(model, tmp_path / "ck")
    original = model.replay_buffer
    row_bytes = sum(getattr(original, k)[0].nbytes for k in ("observations", "next_observations", "actions", "rewards"))
    assert original.buffer_size == 1_000_000 and original.pos == 120
    assert (path / "replay_buffer.pkl").stat().st_size < 120 * row_bytes * 2 + 100_000  # not the 1M allocated rows
    fresh = _fresh_model()
    fresh._setup_learn(120)
    load_checkpoint(fresh, path)
    restored = fresh.replay_buffer
    assert restored is not original and (restored.pos, restored.full) == (120, False)
    for key in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        a, b = getattr(original, key), getattr(restored, key)
        assert a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b), key  # every row, zeros included
    assert float(np.abs(restored.observations[:120]).sum()) > 0 and not restored.observations[120:].any()
    assert_same_bits(fresh.policy.state_dict(), model.policy.state_dict())


def test_callback_arguments_and_order_are_checked(tmp_path):
    assert TopLevel is ExactCheckpointCallback
    with pytest.raises(ValueError, match=r"save_freq=-1 is outside the allowed range \[0, inf\)"):
        ExactCheckpointCallback(tmp_path, save_freq=-1)
    with pytest.raises(ValueError, match=r"keep=0 is outside"):
        ExactCheckpointCallback(tmp_path, keep=0)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        ExactCheckpointCallback(tmp_path, config={"x": object()})
    from stable_baselines3.common.vec_env import SubprocVecEnv

    remote = SAC("MlpPolicy", make_vec_env(ENV, n_envs=1, vec_env_cls=SubprocVecEnv), learning_starts=5)
    try:
        with pytest.raises(TypeError, match="DummyVecEnv.*got SubprocVecEnv"):  # before any step, not at the first save
            remote.learn(10, callback=ExactCheckpointCallback(tmp_path / "remote"))
        assert remote.num_timesteps == 0
    finally:
        remote.env.close()
    model = _fresh_model()
    with pytest.raises(ValueError, match="ExactCheckpointCallback must come before TARCallback"):
        model.learn(10, callback=[TARCallback(sparsity=0.8, sparse_execution=False), ExactCheckpointCallback(tmp_path / "ck")])


def test_sweep_refuses_a_negative_checkpoint_interval(tmp_path, capsys):
    from sb3_tar.cli import main

    assert main(["sweep", "--preset", "smoke", "--checkpoint-every", "-5", "-o", str(tmp_path / "r")]) == 2
    assert "checkpoint_every=-5 is outside the allowed range [0, inf)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cell_checkpoints_are_ignored_by_git():
    path = "benchmarks/results/cpu/sac/HalfCheetah-v4/tar_magnitude_sp0.9_rr0.01_w256/seed_0/checkpoints/step_1/meta.json"
    git = ["git", "-C", str(REPO), "check-ignore", "--no-index", "-q"]
    check = subprocess.run([*git, path], capture_output=True)
    assert check.returncode == 0, check.stderr  # ignored, although committed results live under benchmarks/results
    assert subprocess.run([*git, path.replace("checkpoints", "x")]).returncode == 1
