"""Sweep paths a user hits when things go wrong: a failing cell, SIGTERM/Ctrl-C. Real RL-Zoo3 trainings on
Pendulum-v1 with tiny budgets. (--overwrite: test_sweep.py; the Ray backend on a local Ray instance, including a
worker that dies: test_checkpoint.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_utils import REPO, cli_env, run_cli

ENV = "Pendulum-v1"
TINY = ["--envs", ENV, "--widths", "32", "--eval-freq", "100", "--eval-episodes", "1", "--no-progress"]


def _children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (read from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_failing_cell_is_listed_with_its_log_and_exit_status_1(tmp_path: Path) -> None:
    root = tmp_path / "fail"
    # a hyperparameter that SB3 accepts and torch refuses when the model is built: the sweep starts the cell, which
    # fails (callback options are checked before any cell starts)
    args = ("--methods", "tar", "--seeds", "0", "-n", "200", *TINY, "-o", str(root), "--params", "learning_rate:-1")
    run = run_cli("sweep", *args)
    assert run.returncode == 1, run.stdout + run.stderr
    label = "tar_magnitude_sp0.9_rr0.01_w32"
    cell = root / "sac" / ENV / label / "seed_0"
    assert f"FAILED sac/{ENV}/{label}/seed_0 (exit code 1); log: {cell / 'train.log'}" in run.stderr
    assert "0 ran, 0 already finished, 1 failed" in run.stdout
    assert "Invalid learning rate: -1" in (cell / "train.log").read_text()  # the log says why
    assert not (cell / "done.json").exists()


def _inherit_sigint(handler: signal.Handlers) -> None:
    """Start the child with SIGINT set to ``handler``: a shell's background job (``nohup sb3-tar sweep ... &``)
    starts with SIGINT ignored, which Python keeps (it then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, handler)


@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN], ids=["sigint-default", "sigint-ignored"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_sweep_and_its_children_with_exit_130(
    tmp_path: Path, sig: signal.Signals, inherited: signal.Handlers
) -> None:
    root = tmp_path / "sig"
    args = ["sweep", "--methods", "dense", "--seeds", "0", "1", "-n", "20000", *TINY, "-o", str(root), "--jobs", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sb3_tar.cli", *args],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the test signals the sweep process alone, not a process group
        preexec_fn=lambda: _inherit_sigint(inherited),
    )
    try:
        deadline = time.time() + 120
        children: list[int] = []
        while len(children) < 2:
            assert proc.poll() is None and time.time() < deadline, "sweep ended or hung before the signal"
            time.sleep(0.3)
            children = _children(proc.pid)
        time.sleep(1.0)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out + err
    assert "Interrupted" in err
    deadline = time.time() + 15
    while any(_alive(c) for c in children) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(c) for c in children), "RL-Zoo children still running"
    assert not list(root.rglob("done.json"))


def test_a_cell_another_sweep_is_running_is_left_alone(tmp_path: Path) -> None:
    """Two sweeps into one folder never run the same cell: while another process holds a cell's lock (as a running
    sweep does), a second sweep leaves the cell's folder untouched, reports it, exits 0 and runs the other cells;
    once the lock is released the cell runs."""
    import fcntl

    root = tmp_path / "two"
    args = ("--methods", "dense", "--seeds", "0", "1", "-n", "200", *TINY, "-o", str(root), "--jobs", "1")
    held = root / "sac" / ENV / "dense_w32" / "seed_0"
    held.mkdir(parents=True)
    (held / "train.log").write_text("the other sweep's log\n")
    holder = subprocess.Popen(  # another process takes the cell's lock, as a sweep running the cell does
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
         "fcntl.flock(f.fileno(), fcntl.LOCK_EX); print('locked', flush=True); time.sleep(600)",
         str(held.parent / ".seed_0.lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        run = run_cli("sweep", *args)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "1 ran, 0 already finished, 0 failed, 1 left to the other sweep running them" in run.stdout
        assert (held / "train.log").read_text() == "the other sweep's log\n" and not (held / "done.json").exists()
        assert (held.parent / "seed_1" / "done.json").is_file()
        with open(held.parent / ".seed_0.lock", "a+") as probe:  # still the other process's
            with pytest.raises(BlockingIOError):
                fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        holder.kill()
        holder.wait()
    again = run_cli("sweep", *args)
    assert again.returncode == 0 and "1 ran, 1 already finished, 0 failed" in again.stdout, again.stdout + again.stderr
    assert (held / "done.json").is_file()
