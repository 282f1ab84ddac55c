"""A GMP run killed mid-schedule (after layers moved onto the sparse kernel) and resumed from its exact checkpoint
ends bit for bit where the uninterrupted run ends: weights, masks, optimizer state and the schedule's position."""

from __future__ import annotations

from pathlib import Path

from kill_script import assert_same_bits, run_killed_and_resumed
from stable_baselines3.common.save_util import load_from_zip_file

SAC_GMP = """
    from stable_baselines3 import SAC
    from sb3_tar.baselines import GMPCallback

    env = make_vec_env("Pendulum-v1", n_envs=1, seed=3)
    model = SAC("MlpPolicy", env, learning_starts=100, batch_size=32, policy_kwargs=dict(net_arch=[32, 32]), seed=3)
    callbacks = [
        ExactCheckpointCallback(os.path.join(out, "checkpoints"), save_freq=50, config={"run": "sac-gmp"}, verbose=0),
        GMPCallback(sparsity=0.9, update_interval=50, seed=3, sparse_execution=True),
        Kill(),
    ]
    model.learn(400, callback=callbacks)
    model.save(os.path.join(out, "final"))
"""


def test_gmp_run_killed_on_the_kernel_resumes_bit_for_bit(tmp_path: Path) -> None:
    """T = 300 gradient steps, prunes at gradient steps 110, 160, 210, 240 (env steps 210, 260, 310, 340); killed at
    env step 280, after the prune at 160 moved layers onto the kernel; resumed from the checkpoint of env step 250
    (gradient step 149), it prunes at 160, 210 and 240 again, on the kernel."""
    runs = run_killed_and_resumed(tmp_path, SAC_GMP, kill_at=280)
    ref = load_from_zip_file(runs.reference / "final.zip", device="cpu", print_system_info=False)
    got = load_from_zip_file(runs.run / "final.zip", device="cpu", print_system_info=False)
    assert_same_bits(ref[1]["policy"], got[1]["policy"])
    for role in ("actor", "critic"):
        for index, entry in ref[1][f"{role}.optimizer"]["state"].items():
            assert_same_bits(entry, got[1][f"{role}.optimizer"]["state"][index])
    assert ref[0]["sb3_tar_gmp_state"] == got[0]["sb3_tar_gmp_state"]
    assert got[0]["sb3_tar_gmp_state"]["step"] == 300 and got[0]["sb3_tar_gmp_state"]["actor_step"] == 240
    masks = {k: int(v.sum()) for k, v in got[1]["policy"].items() if k.endswith("weight_mask") and "target" not in k}
    assert sum(v for k, v in masks.items() if k.startswith("actor.")) == 118  # round(0.1 * 1184)
