"""benchmarks/unit_connectivity.py: hidden units of a drawn SAC policy, classified per network."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "unit_connectivity.py"
_spec = importlib.util.spec_from_file_location("unit_connectivity", SCRIPT)
unit_connectivity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(unit_connectivity)


def test_network_states_follow_the_trunk_and_both_heads() -> None:
    # actor-like: 3 inputs -> 4 hidden -> 4 hidden -> two heads of 2 outputs
    first, second = torch.ones(4, 3), torch.ones(4, 4)
    mu, log_std = torch.zeros(2, 4), torch.zeros(2, 4)
    mu[:, 0] = 1  # second hidden layer: unit 0 feeds mu
    log_std[:, 1] = 1  # unit 1 feeds log_std; units 2 and 3 feed nothing but have inputs: half-connected
    first[3] = 0  # first hidden layer: unit 3 has no input but feeds the second layer: half-connected
    assert unit_connectivity.network_states([first, second, mu, log_std]) == (0, 3, 5)
    second[:, 3] = 0  # now unit 3 of the first hidden layer is removed whole
    assert unit_connectivity.network_states([first, second, mu, log_std]) == (1, 2, 5)
    # Q-like: the output layer reads only the second hidden layer
    assert unit_connectivity.network_states([torch.ones(4, 5), torch.ones(4, 4), torch.ones(1, 4)]) == (0, 0, 8)


def test_a_dense_policy_has_every_hidden_unit_live() -> None:
    # actor and two Q-networks, two hidden layers of 8 each: 3 * 2 * 8 units
    assert unit_connectivity.policy_states(
        0.0, seed=0, width=8, criterion="magnitude", revival="none", recovery_ratio=0.0
    ) == (
        0,
        0,
        48,
    )
