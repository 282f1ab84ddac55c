"""benchmarks/unit_connectivity.py: hidden units of a drawn SAC policy, classified per network."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
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


def test_committed_table_is_what_the_script_prints() -> None:
    """The README quotes benchmarks/results/unit_connectivity.md: it must be the script's current output."""
    committed = (SCRIPT.parent / "results" / "unit_connectivity.md").read_text()
    docs = (SCRIPT.parents[1] / "docs" / "benchmarks.md").read_text()
    assert all(line in docs for line in committed.splitlines() if line.startswith("|")), "docs/benchmarks.md table"
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True).stdout
    cpu, _, out = out.partition("\n")  # its first line names the CPU it ran on (every benchmark's does); the table follows
    assert cpu.startswith("CPU: ")

    def rows(text: str) -> dict[tuple[str, str], list[float]]:
        cells = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
        return {(r[0], r[1]): [float(x) for x in r[2:]] for r in cells[2:]}  # after the header and its rule

    ours, theirs = rows(out), rows(committed)
    assert len(theirs) == 8 and ours.keys() == theirs.keys()
    assert out.splitlines()[:2] == committed.splitlines()[:2]
    for key, counts in theirs.items():
        assert abs(sum(counts) - 1536) < 1e-6, key
        # exact on this project's machine; SynFlow's float scores may flip a borderline weight on another CPU
        assert all(abs(a - b) <= 2.0 for a, b in zip(ours[key], counts)), (key, ours[key], counts)
