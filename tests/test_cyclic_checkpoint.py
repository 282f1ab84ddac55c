"""SCULPT and exploitation-exploration runs killed mid-schedule (SIGKILL of a subprocess) and resumed from their exact
checkpoints end bit for bit where the uninterrupted runs end: weights, masks, optimizer state (learning rates
included) and the schedule's position and cost."""

from __future__ import annotations

from pathlib import Path

from kill_script import SAC_SCRIPT, assert_same_final_models, run_killed_and_resumed
from stable_baselines3.common.save_util import load_from_zip_file


def _script(callback: str, kwargs: str) -> str:
    return SAC_SCRIPT.format(callback=callback, kwargs=kwargs, width=64, save_freq=65)


def _same_runs(runs) -> dict:
    return assert_same_final_models(runs, "sb3_tar_schedule_state")[0]["sb3_tar_schedule_state"]


def test_sculpt_killed_before_its_prune_resumes_bit_for_bit(tmp_path: Path) -> None:
    """T = 300 gradient steps, 3 cycles, prune at gradient step 201 (env step 301); checkpoints every 65 env steps
    (65, 130, 195, 260); killed at env step 280, resumed from env step 260 (gradient step 160, mid-cycle 2, on the
    kernel from the start: sparsity 0.8), it prunes at 201 and retrains the last cycle."""
    body = _script("SculptCallback", "sparsity=0.9, cycles=3, seed=3, sparse_execution=True")
    runs = run_killed_and_resumed(tmp_path, body, kill_at=280)
    state = _same_runs(runs)
    assert state["step"] == 300 and state["critic_pruned"] == 201 and state["actor_pruned"] == 201


def test_iee_killed_inside_an_exploration_phase_resumes_bit_for_bit(tmp_path: Path) -> None:
    """interval 100, explore_steps 10: phases at gradient steps 91-100 and 191-200 (env steps 191-200, 291-300). The
    checkpoint of env step 195 is taken inside the first phase (gradient step 95: every weight reactivated, the active
    mask in the saved state, targets masked by hooks); killed at env step 198 and resumed from it, the run finishes
    the phase, prunes and grows, goes back to the kernel and explores again."""
    body = _script("IEECallback", "sparsity=0.9, update_interval=100, explore_steps=10, seed=3")

    def inside_phase(run: Path) -> None:
        checkpoints = sorted((run / "checkpoints").glob("step_*"))
        assert [c.name for c in checkpoints] == ["step_000000000195"]
        data, _, _ = load_from_zip_file(checkpoints[0] / "model.zip", device="cpu", print_system_info=False)
        assert data["sb3_tar_schedule_state"]["exploring"] == {"actor": 100, "critic": 100}

    runs = run_killed_and_resumed(tmp_path, body, kill_at=198, after_kill=inside_phase)
    state = _same_runs(runs)
    assert state["step"] == 300 and state["updates"] == 2 and state["exploring"] == {"actor": 0, "critic": 0}
