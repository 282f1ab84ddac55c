"""The report's training FLOPs of cyclic, SCULPT and IEE cells (``sb3_tar.experiments.flops.training_flops`` on the
saved model) against hand counts on a network small enough to count: SAC on Pendulum with ``net_arch=[8]``.

Actor: 3->8, 8->1 (mu), 8->1 (log_std): N = 24 + 8 + 8 = 40 weights, B = 10 biases; each Q-network: 4->8, 8->1:
N = 40, B = 9. Per gradient step and sample a network costs 2 K + B: dense 90 + 2 * 89 = 268; at sparsity 0.5
(K = 20 each) 50 + 2 * 49 = 148. learning_starts=50 and learn(150): T = 100 gradient steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.save_util import load_from_zip_file

from sb3_tar.baselines import CyclicCallback, IEECallback, SculptCallback
from sb3_tar.experiments.flops import training_flops

torch.set_num_threads(1)

DENSE, SPARSE = 268, 148
CASES = [
    # static mask at K = 20 throughout
    (CyclicCallback(sparsity=0.5, cycles=2, seed=1), SPARSE / DENSE),
    # starts dense (start sparsity 1 - min(1, 2 * 0.5) = 0); prune at t_p = 51: the critic before that step's cost
    # (98), the actor in its own hook after it (90 at step 51); 52..100 at K
    (SculptCallback(sparsity=0.5, cycles=2, seed=1), (50 * DENSE + (90 + 98) + 49 * SPARSE) / (100 * DENSE)),
    # updates at 20, 40, 60, 80 (<= 0.8 T): 4 phases of 5 dense steps, 80 exploitation steps at K
    (
        IEECallback(sparsity=0.5, criterion="magnitude", update_interval=20, explore_steps=5, seed=1),
        (20 * DENSE + 80 * SPARSE) / (100 * DENSE),
    ),
]


@pytest.mark.parametrize("callback, expected", CASES, ids=["cyclic", "sculpt", "iee"])
def test_report_flops_of_a_saved_cell_by_hand(tmp_path: Path, callback: object, expected: float) -> None:
    model = SAC(
        "MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=16, policy_kwargs=dict(net_arch=[8]), seed=0, device="cpu"
    )
    model.learn(150, callback=callback)
    state = model.sb3_tar_schedule_state
    assert state["flops_steps"] == 100 and state["flops_dense"] == DENSE
    model.save(tmp_path / "model.zip")
    data, params, _ = load_from_zip_file(tmp_path / "model.zip", device="cpu", print_system_info=False)
    assert training_flops(data, params) == pytest.approx(expected, rel=1e-12)
    assert callback.training_flops == pytest.approx(expected, rel=1e-12)
