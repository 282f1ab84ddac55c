"""A GMP run killed mid-schedule (after layers moved onto the sparse kernel) and resumed from its exact checkpoint
ends bit for bit where the uninterrupted run ends: weights, masks, optimizer state and the schedule's position."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from cli_utils import cli_env
from stable_baselines3.common.save_util import load_from_zip_file

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from sb3_tar.baselines import GMPCallback
    from sb3_tar.sb3.checkpoint import ExactCheckpointCallback

    out, kill_at = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)

    class Kill(BaseCallback):
        def _on_step(self):
            if self.num_timesteps == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return True

    env = make_vec_env("Pendulum-v1", n_envs=1, seed=3)
    model = SAC("MlpPolicy", env, learning_starts=100, batch_size=32, policy_kwargs=dict(net_arch=[32, 32]), seed=3)
    callbacks = [
        ExactCheckpointCallback(os.path.join(out, "checkpoints"), save_freq=50, config={"run": "sac-gmp"}, verbose=0),
        GMPCallback(sparsity=0.9, interval=50, seed=3, sparse_execution=True),
        Kill(),
    ]
    model.learn(400, callback=callbacks)
    model.save(os.path.join(out, "final"))
    """
)


def _same_bits(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), key


def test_gmp_run_killed_on_the_kernel_resumes_bit_for_bit(tmp_path: Path) -> None:
    """T = 300 gradient steps, prunes at gradient steps 110, 160, 210, 240 (env steps 210, 260, 310, 340); killed at
    env step 280, after the prune at 160 moved layers onto the kernel; resumed from the checkpoint of env step 250
    (gradient step 149), it prunes at 160, 210 and 240 again, on the kernel."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)

    def run(out: Path, kill_at: int) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(script), str(out), str(kill_at)]
        return subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=300)

    reference = run(tmp_path / "ref", -1)
    assert reference.returncode == 0, reference.stderr[-3000:]
    killed = run(tmp_path / "run", 280)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = run(tmp_path / "run", -1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ref = load_from_zip_file(tmp_path / "ref" / "final.zip", device="cpu", print_system_info=False)
    got = load_from_zip_file(tmp_path / "run" / "final.zip", device="cpu", print_system_info=False)
    _same_bits(ref[1]["policy"], got[1]["policy"])
    for role in ("actor", "critic"):
        for index, entry in ref[1][f"{role}.optimizer"]["state"].items():
            _same_bits(entry, got[1][f"{role}.optimizer"]["state"][index])
    assert ref[0]["sb3_tar_gmp_state"] == got[0]["sb3_tar_gmp_state"]
    assert got[0]["sb3_tar_gmp_state"]["step"] == 300 and got[0]["sb3_tar_gmp_state"]["actor_step"] == 240
    masks = {k: int(v.sum()) for k, v in got[1]["policy"].items() if k.endswith("weight_mask") and "target" not in k}
    assert sum(v for k, v in masks.items() if k.startswith("actor.")) == 118  # round(0.1 * 1184)
