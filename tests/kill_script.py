"""A user's training script killed with SIGKILL at a chosen step and run again, for the exact-resume tests.

:data:`PREAMBLE` is what every such script starts with (imports, ``out`` and ``kill_at`` from the command line,
one thread, and a ``Kill`` callback that SIGKILLs the process when the run reaches ``kill_at`` steps; ``-1``:
never); a test appends the model, its callbacks (``Kill()`` last) and ``learn``. :func:`run_killed_and_resumed`
runs the script three times: killed in a process of its own and, side by side, uninterrupted in the test's process (the
reference); then resumed in a new process.
"""

from __future__ import annotations

import runpy
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cli_utils import cli_env

PREAMBLE = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from sb3_tar.sb3.persistence.checkpoint import ExactCheckpointCallback

    out, kill_at = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)

    class Kill(BaseCallback):
        def _on_step(self):
            if self.num_timesteps == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return True
    """
)


@dataclass
class KilledRuns:
    """Where the runs of one script wrote: ``reference`` (uninterrupted), ``run`` (killed, then resumed to the end),
    and what the resumed run printed."""

    reference: Path
    run: Path
    resumed_stdout: str
    resumed_stderr: str = ""


def _start(script: Path, out: Path, kill_at: int) -> subprocess.Popen:
    cmd = [sys.executable, str(script), str(out), str(kill_at)]
    return subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, out, err


def _run_here(script: Path, out: Path) -> None:
    """Run ``script`` to its end in this process, writing into ``out`` (as ``python script out -1`` would)."""
    argv = sys.argv
    sys.argv = [str(script), str(out), "-1"]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv


def run_killed_and_resumed(
    folder: Path, body: str, kill_at: int, after_kill: Callable[[Path], None] | None = None, timeout: float = 300
) -> KilledRuns:
    """
    Write ``PREAMBLE + body`` to ``folder/train.py`` and run it three times: into ``folder/run`` in a new process,
    killed with SIGKILL at step ``kill_at``, and meanwhile into ``folder/ref`` to the end in this process (the
    uninterrupted reference: a computation apart from the killed and the resumed processes, so that nothing they share
    could make them agree); then into ``folder/run`` again, in a new process, to the end (the script resumes from its
    checkpoints there).

    :param folder: Where the script and its two output folders go.
    :param body: The script after the preamble.
    :param kill_at: The step at which the second run is killed.
    :param after_kill: Called with ``folder/run`` between the kill and the resumed run (checks of what was left).
    :param timeout: Seconds allowed to each run.
    :return: The two output folders and the resumed run's standard output and error.
    """
    script = folder / "train.py"
    script.write_text(PREAMBLE + textwrap.dedent(body))
    killed = _start(script, folder / "run", kill_at)
    try:
        _run_here(script, folder / "ref")
    finally:
        killed_code, _, killed_err = _finish(killed, timeout)
    assert killed_code == -signal.SIGKILL, killed_err[-3000:]
    if after_kill is not None:
        after_kill(folder / "run")
    code, out, err = _finish(_start(script, folder / "run", -1), timeout)
    assert code == 0, err[-3000:]
    return KilledRuns(reference=folder / "ref", run=folder / "run", resumed_stdout=out, resumed_stderr=err)


def assert_same_bits(a: dict, b: dict) -> None:
    """The two dicts have the same keys and, for each, arrays of the same dtype, shape and bytes."""
    assert a.keys() == b.keys()
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), key


#: A SAC run on Pendulum with an exact checkpoint every ``save_freq`` env steps, one sparse callback, then ``Kill()``
#: (the body of :func:`run_killed_and_resumed`): ``.format()`` it with ``callback`` (its class in
#: :mod:`sb3_tar.baselines`), ``kwargs``, ``width`` and ``save_freq``; it ends with ``model.save(out/final)``.
SAC_SCRIPT = """
    from stable_baselines3 import SAC
    from sb3_tar.baselines import {callback}

    env = make_vec_env("Pendulum-v1", n_envs=1, seed=3)
    model = SAC("MlpPolicy", env, learning_starts=100, batch_size=32, policy_kwargs=dict(net_arch=[{width}, {width}]), seed=3)
    callbacks = [
        ExactCheckpointCallback(
            os.path.join(out, "checkpoints"), save_freq={save_freq}, config={{"run": "{callback}"}}, verbose=0
        ),
        {callback}({kwargs}),
        Kill(),
    ]
    model.learn(400, callback=callbacks)
    model.save(os.path.join(out, "final"))
"""


def assert_same_final_models(runs: KilledRuns, state_attribute: str) -> tuple[dict, dict]:
    """
    The two runs' ``final.zip`` hold the same bits: policy (weights, masks), every optimizer's state and learning
    rates, and the method's schedule state ``state_attribute``.

    :param runs: What :func:`run_killed_and_resumed` returned.
    :param state_attribute: The model attribute holding the schedule's state (``sb3_tar_gmp_state``, ...).
    :return: The resumed run's saved data and parameters (``load_from_zip_file``'s first two values).
    """
    from stable_baselines3.common.save_util import load_from_zip_file

    ref = load_from_zip_file(runs.reference / "final.zip", device="cpu", print_system_info=False)
    got = load_from_zip_file(runs.run / "final.zip", device="cpu", print_system_info=False)
    assert_same_bits(ref[1]["policy"], got[1]["policy"])
    for role in ("actor", "critic"):
        for index, entry in ref[1][f"{role}.optimizer"]["state"].items():
            assert_same_bits(entry, got[1][f"{role}.optimizer"]["state"][index])
        assert ref[1][f"{role}.optimizer"]["param_groups"] == got[1][f"{role}.optimizer"]["param_groups"]
    assert ref[0][state_attribute] == got[0][state_attribute]
    return got[0], got[1]
