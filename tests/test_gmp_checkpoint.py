"""A GMP run killed mid-schedule (after layers moved onto the sparse kernel) and resumed from its exact checkpoint
ends bit for bit where the uninterrupted run ends: weights, masks, optimizer state and the schedule's position."""

from __future__ import annotations

from pathlib import Path

from kill_script import SAC_SCRIPT, assert_same_final_models, run_killed_and_resumed

SAC_GMP = SAC_SCRIPT.format(
    callback="GMPCallback",
    kwargs="sparsity=0.9, update_interval=50, seed=3, sparse_execution=True",
    width=32,
    save_freq=50,
)


def test_gmp_run_killed_on_the_kernel_resumes_bit_for_bit(tmp_path: Path) -> None:
    """T = 300 gradient steps, prunes at gradient steps 110, 160, 210, 240 (env steps 210, 260, 310, 340); killed at
    env step 280, after the prune at 160 moved layers onto the kernel; resumed from the checkpoint of env step 250
    (gradient step 149), it prunes at 160, 210 and 240 again, on the kernel."""
    runs = run_killed_and_resumed(tmp_path, SAC_GMP, kill_at=280)
    data, params = assert_same_final_models(runs, "sb3_tar_gmp_state")
    assert data["sb3_tar_gmp_state"]["step"] == 300 and data["sb3_tar_gmp_state"]["actor_step"] == 240
    masks = {k: int(v.sum()) for k, v in params["policy"].items() if k.endswith("weight_mask") and "target" not in k}
    assert sum(v for k, v in masks.items() if k.startswith("actor.")) == 118  # round(0.1 * 1184)
