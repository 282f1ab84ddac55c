"""Time static pruning + revival of a SAC policy's networks at Humanoid-v4 sizes (a script, not a test).

Builds SB3's own ``SACPolicy`` for Humanoid-v4's spaces (376-dim observation, 17-dim action) at each
width, then prunes and revives the actor (shared trunk, two heads ``mu``/``log_std``) and each of
the critic's two Q-networks with every criterion, and prints the median seconds over ``--repeats``
fresh copies. Example::

    python benchmarks/bench_pruning.py                      # sparsity 0.9, rr 0.01, widths 256 1024
    python benchmarks/bench_pruning.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.sac.policies import SACPolicy
from torch import nn

from sb3_tar import SparsityConfig, prune_and_revive
from sb3_tar.core.config import BUDGET_MODES, CRITERIA, REVIVALS
from sb3_tar.experiments.provenance import hardware_line

OBS_DIM, ACT_DIM = 376, 17  # Humanoid-v4


def sac_networks(width: int, seed: int) -> dict[str, nn.Module]:
    """The actor and the two Q-networks of SB3's SAC policy for Humanoid-v4 with ``net_arch=[width, width]``."""
    torch.manual_seed(seed)
    policy = SACPolicy(
        gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32),
        gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32),
        lambda _: 3e-4,
        net_arch=[width, width],
    )
    nets: dict[str, nn.Module] = {"actor": policy.actor}
    for i, q_net in enumerate(policy.critic.q_networks):
        nets[f"critic.qf{i}"] = q_net
    return nets


def actor_synflow_forward(actor: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SynFlow's forward through SB3's SAC actor: both heads, no clamping, no sampling."""
    latent = actor.latent_pi(actor.features_extractor(x))
    return torch.cat([actor.mu(latent), actor.log_std(latent)], dim=-1)


def q_synflow_forward(q_net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return q_net(x)


def time_one(net: nn.Module, name: str, config: SparsityConfig, seed: int) -> float:
    forward = actor_synflow_forward if name == "actor" else q_synflow_forward
    start = time.perf_counter()
    prune_and_revive(net, config, seed, forward=forward, name=name)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--rr", type=float, default=0.01, help="recovery_ratio")
    parser.add_argument("--width", type=int, nargs="+", default=[256, 1024], help="hidden widths to time")
    parser.add_argument("--repeats", type=int, default=3, help="fresh copies timed per cell; the median is printed")
    parser.add_argument("--criteria", nargs="+", default=list(CRITERIA), choices=CRITERIA)
    parser.add_argument("--revival", default="tar", choices=REVIVALS)
    parser.add_argument("--budget-mode", default="reserve", choices=BUDGET_MODES)
    parser.add_argument("--synflow-iters", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(hardware_line(torch.get_num_threads()))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, load average {load:.2f}"
    )
    print(
        f"sparsity={args.sparsity} rr={args.rr} revival={args.revival} budget_mode={args.budget_mode} "
        f"synflow_iters={args.synflow_iters}; median of {args.repeats} repeats, seconds\n"
    )
    columns = "  ".join(f"{name:>{max(7, len(name))}}" for name in ("actor", "critic.qf0", "critic.qf1"))
    header = f"{'width':>5}  {'criterion':<9}  {'weights':>9}  {columns}  {'total':>7}"
    print(header)
    print("-" * len(header))
    for width in args.width:
        base = sac_networks(width, args.seed)
        n_weights = sum(m.weight.numel() for net in base.values() for m in net.modules() if isinstance(m, nn.Linear))
        for criterion in args.criteria:
            config = SparsityConfig(
                sparsity=args.sparsity,
                criterion=criterion,
                revival=args.revival,
                recovery_ratio=args.rr,
                budget_mode=args.budget_mode,
                synflow_iters=args.synflow_iters,
            )
            times: dict[str, list[float]] = {name: [] for name in base}
            for repeat in range(args.repeats):
                for name, net in base.items():
                    times[name].append(time_one(copy.deepcopy(net), name, config, args.seed + repeat))
            medians = {name: statistics.median(t) for name, t in times.items()}
            cells = "  ".join(f"{medians[n]:>{max(7, len(n))}.3f}" for n in base)
            print(f"{width:>5}  {criterion:<9}  {n_weights:>9}  {cells}  {sum(medians.values()):>7.3f}", flush=True)


if __name__ == "__main__":
    main()
