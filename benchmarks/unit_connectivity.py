"""Which hidden units a static mask removes whole, leaves half-connected, or keeps live (a script, not a test).

The report's dead-unit counts are per layer: a hidden unit with no input counts once in the layer that
computes it and, if it also has no output, once more in the layer that reads it. That cannot tell a
network made narrower (units removed whole, still connected end to end) from one left half-connected
(units whose kept input weights feed nothing, or whose output weights read a constant). This script draws
the static masks of SB3's own ``SACPolicy`` for HalfCheetah-v4 (17-dim observation, 6-dim action,
``net_arch=[256, 256]``) with each criterion, through the same code as the callbacks
(:func:`sb3_tar.sb3.methods.pruning.sparsify_policy`), before and after TAR's revival, and classifies the 1,536
hidden units of the actor and both Q-networks with :func:`sb3_tar.core.masks.hidden_unit_states`.

Its masks are fresh draws for seeds 0..n-1 of freshly built policies, not the one-CPU grid's cells (those
were built inside RL-Zoo3 runs); they use the same criteria, networks and budgets. Its output with the
defaults is committed as ``benchmarks/results/unit_connectivity.md`` (the README quotes it; a test
regenerates it)::

    python benchmarks/unit_connectivity.py > benchmarks/results/unit_connectivity.md   # sparsity 0.9, rr 0.01, seeds 0-4
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.sac.policies import SACPolicy

from sb3_tar.core.masks import hidden_unit_states
from sb3_tar.experiments.provenance import hardware_line
from sb3_tar.sb3.methods.pruning import role_configs, sparsify_policy

OBS_DIM, ACT_DIM = 17, 6  # HalfCheetah-v4

#: (label, SparsityConfig options) of the static criteria the one-CPU grid compares.
CRITERIA: tuple[tuple[str, dict], ...] = (
    ("magnitude", {"criterion": "magnitude"}),
    ("magnitude_layer", {"criterion": "magnitude", "magnitude_scope": "layer"}),
    ("erk", {"criterion": "erk"}),
    ("synflow", {"criterion": "synflow"}),
)


def network_states(masks: Sequence[torch.Tensor]) -> tuple[int, int, int]:
    """
    :param masks: One network's masks in forward order; parallel heads (SAC's ``mu`` and ``log_std``) are
        consecutive layers of equal shape that read the same hidden units.
    :return: ``(removed whole, half-connected, live)`` summed over the network's hidden layers.
    """
    total = [0, 0, 0]
    for i in range(len(masks) - 1):
        nxt = masks[i + 1]
        if nxt.shape[1] != masks[i].shape[0]:
            continue  # layer i is a head: its outputs are the network's outputs
        consumers = [nxt, *(m for m in masks[i + 2 :] if m.shape == nxt.shape)]
        for k, count in enumerate(hidden_unit_states(masks[i], consumers)):
            total[k] += count
    return total[0], total[1], total[2]


def policy_states(sparsity: float, seed: int, width: int = 256, **options) -> tuple[int, int, int]:
    """Draw one policy's masks (actor and both Q-networks) and classify their hidden units."""
    torch.manual_seed(seed)
    policy = SACPolicy(
        gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32),
        gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32),
        lambda _: 3e-4,
        net_arch=[width, width],
    )
    _, masks, _ = sparsify_policy(policy, role_configs(sparsity, **options), seed)
    per_network = [network_states(m) for m in masks.values()]
    return tuple(sum(states[k] for states in per_network) for k in range(3))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--rr", type=float, default=0.01, help="TAR's recovery_ratio (reserve mode)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..n-1; the table gives the mean")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(hardware_line(1))
    print(f"SAC HalfCheetah-v4, width 256, sparsity {args.sparsity}: hidden units of the actor and both Q-networks")
    print(f"(1536 in all), mean over seeds 0-{args.seeds - 1}\n")
    print("| criterion | mask | removed whole | half-connected | live |")
    print("| --- | --- | ---: | ---: | ---: |")
    for label, options in CRITERIA:
        stages = (
            ("Original", dict(revival="none", recovery_ratio=0.0)),
            (f"TAR (rr {args.rr})", dict(revival="tar", recovery_ratio=args.rr, budget_mode="reserve")),
        )
        for stage, extra in stages:
            counts = np.array([policy_states(args.sparsity, seed, **options, **extra) for seed in range(args.seeds)])
            removed, half, live = counts.mean(axis=0)
            print(f"| {label} | {stage} | {removed:.1f} | {half:.1f} | {live:.1f} |")


if __name__ == "__main__":
    main()
