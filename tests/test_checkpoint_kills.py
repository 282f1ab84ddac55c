"""Exact resume after a real SIGKILL in two cases the other kill tests do not reach: TD3 + RigL on the sparse kernel
killed after a checkpoint that falls between the critic's and the actor's mask update, and a run whose replay buffer
has wrapped around (``full=True``) before its checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from kill_script import assert_same_bits, run_killed_and_resumed
from stable_baselines3.common.save_util import load_from_zip_file

from sb3_tar.sb3.persistence.checkpoint import BUFFER_FILE, latest_checkpoint

TD3_RIGL_KERNEL = """
    from stable_baselines3 import TD3
    from sb3_tar import DSTCallback

    env = make_vec_env("Pendulum-v1", n_envs=1, seed=5)
    model = TD3("MlpPolicy", env, learning_starts=100, batch_size=32, policy_kwargs=dict(net_arch=[64, 64]), seed=5)
    dst = DSTCallback("rigl", sparsity=0.9, update_interval=25, sparse_execution=True)
    callbacks = [ExactCheckpointCallback(os.path.join(out, "checkpoints"), save_freq=125, verbose=1), dst, Kill()]
    model.learn(300, callback=callbacks)
    model.save(os.path.join(out, "final"))
    print("updates:", " ".join(f"{u.network}@{u.clock}" for u in dst.rewirer.history))
"""


def _final(folder: Path) -> tuple[dict, dict]:
    return load_from_zip_file(folder / "final.zip", device="cpu", print_system_info=False)[:2]


def test_td3_rigl_on_the_kernel_resumed_between_critic_and_actor_update_is_exact(tmp_path):
    """One gradient step per env step after step 100; RigL updates at gradient steps 25, 50, ..., 150 (T = 200,
    T_end = 160). TD3's actor steps at even gradient steps only (policy_delay=2), so the critic is rewired at step 25
    and the actor at step 26. The checkpoint of env step 125 (gradient step 25) lies between the two; the run is killed
    at env step 200 and resumed from it: the actor's update at step 26 must read the dense gradient of its loss (armed
    again on resume) and the run end bit for bit as the uninterrupted one."""

    def left_by_the_kill(run: Path) -> None:
        path = latest_checkpoint(run / "checkpoints")
        assert path.name == "step_000000000125"
        state = load_from_zip_file(path / "model.zip", device="cpu", print_system_info=False)[0]["sb3_tar_dst_state"]
        assert (state["step"], state["actor_step"]) == (25, 0)  # the critic's update done, the actor's not yet

    runs = run_killed_and_resumed(tmp_path, TD3_RIGL_KERNEL, kill_at=200, after_kill=left_by_the_kill)
    assert "at step 125" in runs.resumed_stdout
    assert "no dense gradient" not in runs.resumed_stderr
    ref, got = _final(runs.reference), _final(runs.run)
    assert int(ref[1]["policy"]["sb3_tar_sparse_execution"]) == 1  # sparse_execution=True: the layers ran on the kernel
    assert ref[0]["sb3_tar_dst_state"] == got[0]["sb3_tar_dst_state"]
    assert got[0]["sb3_tar_dst_state"]["actor_step"] == 150 and got[0]["sb3_tar_dst_state"]["step"] == 200
    assert_same_bits(ref[1]["policy"], got[1]["policy"])  # weights, masks and targets
    for role in ("actor", "critic"):
        for index, entry in ref[1][f"{role}.optimizer"]["state"].items():
            assert_same_bits(entry, got[1][f"{role}.optimizer"]["state"][index])


SAC_WRAPPED_BUFFER = """
    from stable_baselines3 import SAC
    from sb3_tar import TARCallback

    KEYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")

    def dump(buffer, path):
        np.savez(path, pos=buffer.pos, full=buffer.full, **{key: getattr(buffer, key) for key in KEYS})

    class DumpAt350(BaseCallback):  # the buffer as the checkpoint of env step 350 must hold it
        def _on_rollout_start(self):
            if self.num_timesteps == 350 and kill_at < 0:
                dump(self.model.replay_buffer, os.path.join(out, "buffer_350.npz"))

        def _on_step(self):
            return True

    env = make_vec_env("Pendulum-v1", n_envs=1, seed=7)
    kwargs = dict(buffer_size=200, learning_starts=100, batch_size=32, policy_kwargs=dict(net_arch=[64, 64]), seed=7)
    model = SAC("MlpPolicy", env, **kwargs)
    callbacks = [
        ExactCheckpointCallback(os.path.join(out, "checkpoints"), save_freq=350, verbose=1),
        TARCallback(sparsity=0.8, sparse_execution=False),
        DumpAt350(),
        Kill(),
    ]
    model.learn(600, callback=callbacks)
    model.save(os.path.join(out, "final"))
    dump(model.replay_buffer, os.path.join(out, "buffer_final.npz"))
"""
BUFFER_KEYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def test_run_killed_after_its_replay_buffer_wrapped_resumes_exactly(tmp_path):
    """``buffer_size=200``: at the checkpoint of env step 350 the buffer has wrapped (``full=True``) and its next row to
    write is ``pos = 350 - 200 = 150``; rows 150..199 hold steps 151..200 and must be saved although they lie past
    ``pos``. Killed at step 450 and resumed from step 350, the run ends bit for bit as the uninterrupted one."""
    from sb3_tar.sb3.persistence.checkpoint import _load_buffer

    def left_by_the_kill(run: Path) -> None:
        path = latest_checkpoint(run / "checkpoints")
        assert path.name == "step_000000000350"
        restored = _load_buffer(path / BUFFER_FILE)  # what a resume reads
        assert (restored.pos, restored.full, restored.buffer_size) == (150, True, 200)
        with np.load(tmp_path / "ref" / "buffer_350.npz") as expected:  # the uninterrupted run's buffer at step 350
            assert (int(expected["pos"]), bool(expected["full"])) == (150, True)
            for key in BUFFER_KEYS:
                assert_same_bits({key: expected[key]}, {key: getattr(restored, key)})  # every one of the 200 rows
            assert np.abs(expected["observations"][150:]).sum() > 0  # the rows past pos are real transitions

    runs = run_killed_and_resumed(tmp_path, SAC_WRAPPED_BUFFER, kill_at=450, after_kill=left_by_the_kill)
    assert "at step 350" in runs.resumed_stdout
    ref, got = _final(runs.reference), _final(runs.run)
    assert_same_bits(ref[1]["policy"], got[1]["policy"])
    for role in ("actor", "critic"):
        for index, entry in ref[1][f"{role}.optimizer"]["state"].items():
            assert_same_bits(entry, got[1][f"{role}.optimizer"]["state"][index])
    with np.load(runs.reference / "buffer_final.npz") as a, np.load(runs.run / "buffer_final.npz") as b:
        assert (int(b["pos"]), bool(b["full"])) == (0, True)  # 600 = 3 * 200 transitions
        assert_same_bits(dict(a), dict(b))
