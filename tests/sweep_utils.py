"""Sweeps shared by several tests, run once per session through the ``sb3-tar`` CLI: the smoke preset, a small grid of
the baselines (GMP, small dense, a per-role cell with two prune criteria); the smoke sweep is killed mid-cell first and
resumed.

The session starts them in the background, one after the other, as soon as its first test begins
(:class:`SessionSweeps`, from conftest.py), and the tests that read them run last: their cells train on the core that
the rest of the suite, mostly one process computing in place, leaves idle, instead of after it. Under pytest-xdist
(the default, two workers) the tests that read them are one group, run by one worker, which starts the sweeps at its
first such test while the other worker runs the rest of the suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from cli_utils import REPO, cli_env

SMOKE_ENV = "Pendulum-v1"

#: ``run(*args, timeout=...)``: runs ``python -m sb3_tar.cli <args>`` to its end (:func:`cli_utils.run_cli` or
#: :meth:`SessionSweeps.run`).
Runner = Callable[..., subprocess.CompletedProcess]


def failed_logs(root: Path) -> str:
    """:return: The tail of the RL-Zoo log of every cell under ``root`` that did not finish (for assertion messages)."""
    logs = []
    for log in root.glob("*/*/*/seed_*/train.log"):
        if not (log.parent / "done.json").exists():
            logs.append(f"--- {log}\n" + log.read_text()[-3000:])
    return "\n".join(logs)


def run_smoke(root: Path, run: Runner, jobs: int = 2, popen: Callable[..., subprocess.Popen] | None = None) -> dict:
    """
    ``sb3-tar sweep --preset smoke -o root`` (12 cells: dense, static, tar, uniform, set and rigl, seeds 0 and 1, 600
    steps) killed with SIGKILL (the sweep and its RL-Zoo child) while its second cell trains (``--jobs 1``), run again
    to its end (``--jobs <jobs>``) and once more (nothing left to run); then ``sb3-tar report root``.

    :param root: The results directory.
    :param run: Runs one CLI command.
    :param jobs: Cells side by side in the resumed run (the cells' results do not depend on it: one thread each).
    :param popen: Starts ``python -m sb3_tar.cli <args>`` in a new session, output discarded (default: here).
    :return: ``root``; the resumed sweep (``sweep``), the run after it (``again``) and the report (``report``); at the
        kill, the finished and the partial cell and every cell folder present (``killed``) and the files of the finished
        cell with their mtimes (``finished``); those mtimes after each later run (``mtimes``).
    """
    args = ["sweep", "--preset", "smoke", "-o", str(root), "--jobs", "1", "--no-progress"]
    proc = (popen or _popen)(*args)
    try:
        deadline = time.time() + 240
        while True:
            done = sorted(p.parent for p in root.glob("*/*/*/seed_*/done.json"))
            started = [p.parent for p in root.glob("*/*/*/seed_*/train.log") if p.parent not in done]
            if done and started:
                break
            assert proc.poll() is None and time.time() < deadline, "sweep ended or hung before the kill"
            time.sleep(0.2)
        time.sleep(1.5)  # let the second cell's RL-Zoo process start writing
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the sweep and its RL-Zoo child
        proc.wait()
    present = sorted(p.parent for p in root.glob("*/*/*/seed_*/cell.json"))
    done = sorted(p.parent for p in root.glob("*/*/*/seed_*/done.json"))
    killed = {"done": done, "partial": [cell for cell in present if cell not in done], "present": present}
    finished = _mtimes(done)
    for cell in killed["partial"]:
        (cell / "leftover_from_killed_run").write_text("x")

    args[args.index("--jobs") + 1] = str(jobs)
    sweep = run(*args)
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr + failed_logs(root)
    after_resume = _mtimes(done)
    again = run(*args, timeout=120)
    after_again = _mtimes(done)
    report = run("report", str(root), "--reps", "50", "--no-progress", timeout=180)
    assert report.returncode == 0, report.stdout + report.stderr
    mtimes = [after_resume, after_again]
    return dict(root=root, sweep=sweep, again=again, report=report, killed=killed, finished=finished, mtimes=mtimes)


def _mtimes(cells: list[Path]) -> dict[Path, int]:
    """:return: Every file and folder under ``cells`` with its modification time (ns)."""
    return {p: p.stat().st_mtime_ns for cell in cells for p in cell.rglob("*")}


def run_baselines(root: Path, run: Runner, jobs: int = 2) -> tuple[Path, str, str]:
    """
    One sweep (and its report) of four cells at width 64 on Pendulum-v1, 300 steps: GMP, small dense and a per-role
    TAR actor + RigL critic with two prune criteria (magnitude, mest) in one results directory (test_sweep_baselines.py).

    :param root: The results directory (``<root>/baselines``).
    :param run: Runs one CLI command.
    :param jobs: Cells side by side.
    :return: The results directory and the sweep's and the report's standard output.
    """
    root = root / "baselines"
    sweep = run(
        *("sweep", "--algos", "sac", "--envs", SMOKE_ENV, "--methods", "gmp", "small_dense", "tar+rigl"),
        *("--criteria", "magnitude", "--sparsities", "0.9", "--recovery-ratios", "0.01", "--widths", "64", "--seeds", "0"),
        *("-n", "300", "--eval-freq", "150", "--eval-episodes", "1", "--params", "learning_starts:100"),
        *("--gmp-kwargs", "update_interval:50", "--dst-kwargs", "update_interval:50", "--prune-criteria", "magnitude", "mest"),
        *("-o", str(root), "--jobs", str(jobs), "--no-progress"),
    )
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr + failed_logs(root)
    report = run("report", str(root), "--reps", "50", "--no-progress", timeout=180)
    assert report.returncode == 0, report.stdout + report.stderr
    return root, sweep.stdout, report.stdout


def _popen(*args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sb3_tar.cli", *args]
    out = subprocess.DEVNULL
    return subprocess.Popen(cmd, cwd=REPO, env=cli_env(), stdout=out, stderr=out, start_new_session=True)


#: The session's sweeps by the name of the fixture that returns them, in the order they run (that of their readers).
SWEEPS: dict[str, Callable[..., object]] = {
    "smoke_sweep": run_smoke,
    "baselines_sweep": run_baselines,
}


class SessionSweeps:
    """
    The session's sweeps (:data:`SWEEPS`), run one after the other on a background thread; each fixture waits for its
    own (:meth:`result`), which raises what the sweep raised.

    :param mktemp: ``tmp_path_factory.mktemp``.
    :param jobs: ``--jobs`` of every sweep: 1 while other tests run beside them, 2 when little else is selected.
    """

    def __init__(self, mktemp: Callable[[str], Path], jobs: int) -> None:
        self._mktemp = mktemp
        self.jobs = jobs
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-sweeps")
        self._futures: dict[str, Future] = {}
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._on_first_result: list[str] = []

    def start(self, name: str) -> None:
        """Queue the sweep ``name`` (once)."""
        if name not in self._futures:
            root = self._mktemp(name.removesuffix("_sweep"))
            kwargs = {"popen": self.popen} if name == "smoke_sweep" else {}
            self._futures[name] = self._pool.submit(SWEEPS[name], root, self.run, self.jobs, **kwargs)

    def start_on_first_result(self, names: list[str]) -> None:
        """Queue the sweeps ``names`` (in this order) when a test first asks for a sweep's :meth:`result`, not now (a
        pytest-xdist worker: it does not know yet whether it will run their readers)."""
        self._on_first_result = list(names)

    def result(self, name: str):
        """:return: What the sweep ``name`` returned, once it has finished (queued now if it was not)."""
        pending, self._on_first_result = self._on_first_result, []
        for other in pending:
            self.start(other)
        self.start(name)
        return self._futures[name].result()

    def run(self, *args: str, timeout: float = 540) -> subprocess.CompletedProcess:
        """:func:`cli_utils.run_cli` in its own process group, so :meth:`close` can end it with its RL-Zoo children."""
        cmd = [sys.executable, "-m", "sb3_tar.cli", *args]
        with self._lock:
            if self._closed:
                raise RuntimeError("the session is over")
            proc = subprocess.Popen(
                cmd, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
            )
            self._running.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        finally:
            with self._lock:
                self._running.discard(proc)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def popen(self, *args: str) -> subprocess.Popen:
        """Start ``python -m sb3_tar.cli <args>`` in its own process group (output discarded), ended by :meth:`close`."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the session is over")
            proc = _popen(*args)
            self._running.add(proc)
        return proc

    def close(self) -> None:
        """End what still runs (a session stopped early) and the thread."""
        with self._lock:
            self._closed = True
            for proc in self._running:
                if proc.poll() is not None:
                    continue
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._pool.shutdown(wait=True, cancel_futures=True)
