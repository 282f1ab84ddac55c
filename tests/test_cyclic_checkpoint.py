"""SCULPT and exploitation-exploration runs killed mid-schedule (SIGKILL of a subprocess) and resumed from their exact
checkpoints end bit for bit where the uninterrupted runs end: weights, masks, optimizer state (learning rates
included) and the schedule's position and cost."""

from __future__ import annotations

from pathlib import Path

from kill_script import assert_same_bits, run_killed_and_resumed
from stable_baselines3.common.save_util import load_from_zip_file

SCRIPT = """
    from stable_baselines3 import SAC
    from sb3_tar.baselines import {callback}

    env = make_vec_env("Pendulum-v1", n_envs=1, seed=3)
    model = SAC("MlpPolicy", env, learning_starts=100, batch_size=32, policy_kwargs=dict(net_arch=[64, 64]), seed=3)
    callbacks = [
        ExactCheckpointCallback(os.path.join(out, "checkpoints"), save_freq=65, config={{"run": "{callback}"}}, verbose=0),
        {callback}({kwargs}),
        Kill(),
    ]
    model.learn(400, callback=callbacks)
    model.save(os.path.join(out, "final"))
"""


def _same_runs(runs) -> dict:
    ref = load_from_zip_file(runs.reference / "final.zip", device="cpu", print_system_info=False)
    got = load_from_zip_file(runs.run / "final.zip", device="cpu", print_system_info=False)
    assert_same_bits(ref[1]["policy"], got[1]["policy"])
    for role in ("actor", "critic"):
        for index, entry in ref[1][f"{role}.optimizer"]["state"].items():
            assert_same_bits(entry, got[1][f"{role}.optimizer"]["state"][index])
        assert ref[1][f"{role}.optimizer"]["param_groups"] == got[1][f"{role}.optimizer"]["param_groups"]
    assert ref[0]["sb3_tar_schedule_state"] == got[0]["sb3_tar_schedule_state"]
    return got[0]["sb3_tar_schedule_state"]


def test_sculpt_killed_before_its_prune_resumes_bit_for_bit(tmp_path: Path) -> None:
    """T = 300 gradient steps, 3 cycles, prune at gradient step 201 (env step 301); checkpoints every 65 env steps
    (65, 130, 195, 260); killed at env step 280, resumed from env step 260 (gradient step 160, mid-cycle 2, on the
    kernel from the start: sparsity 0.8), it prunes at 201 and retrains the last cycle."""
    body = SCRIPT.format(callback="SculptCallback", kwargs="sparsity=0.9, cycles=3, seed=3, sparse_execution=True")
    runs = run_killed_and_resumed(tmp_path, body, kill_at=280)
    state = _same_runs(runs)
    assert state["step"] == 300 and state["critic_pruned"] == 201 and state["actor_pruned"] == 201


def test_iee_killed_inside_an_exploration_phase_resumes_bit_for_bit(tmp_path: Path) -> None:
    """interval 100, explore_steps 10: phases at gradient steps 91-100 and 191-200 (env steps 191-200, 291-300). The
    checkpoint of env step 195 is taken inside the first phase (gradient step 95: every weight reactivated, the active
    mask in the saved state, targets masked by hooks); killed at env step 198 and resumed from it, the run finishes
    the phase, prunes and grows, goes back to the kernel and explores again."""
    body = SCRIPT.format(callback="IEECallback", kwargs="sparsity=0.9, update_interval=100, explore_steps=10, seed=3")

    def inside_phase(run: Path) -> None:
        checkpoints = sorted((run / "checkpoints").glob("step_*"))
        assert [c.name for c in checkpoints] == ["step_000000000195"]
        data, _, _ = load_from_zip_file(checkpoints[0] / "model.zip", device="cpu", print_system_info=False)
        assert data["sb3_tar_schedule_state"]["exploring"] == {"actor": 100, "critic": 100}

    runs = run_killed_and_resumed(tmp_path, body, kill_at=198, after_kill=inside_phase)
    state = _same_runs(runs)
    assert state["step"] == 300 and state["updates"] == 2 and state["exploring"] == {"actor": 0, "critic": 0}
