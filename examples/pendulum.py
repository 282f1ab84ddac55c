"""A one-minute sparse training run without MuJoCo: SAC on Pendulum-v1, 90% sparse with TAR.

A plain SB3 ``MlpPolicy`` model becomes sparse when ``learn()`` starts (``TARCallback``): the actor and both
Q-networks are pruned to 90% by weight magnitude and 1% of the weights is revived with Topology-Aware Revival;
the mask then stays fixed. Prints the per-layer pruning/revival table, the measured final sparsity and the mean
return of 10 deterministic episodes (a random policy scores about -1,200 on Pendulum, a good one about -150).

    python examples/pendulum.py --steps 5000
"""

from __future__ import annotations

import argparse
import time

import torch
from stable_baselines3 import SAC
from stable_baselines3.common.evaluation import evaluate_policy

import sb3_tar
from sb3_tar import TARCallback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000, help="env steps of training")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    # RL-Zoo3's Pendulum learning rate (1e-3), SB3's default network (256, 256) and an early start of learning
    model = SAC(
        "MlpPolicy",
        "Pendulum-v1",
        learning_rate=1e-3,
        learning_starts=min(500, args.steps // 4),
        seed=args.seed,
        device="cpu",
    )
    callback = TARCallback(sparsity=args.sparsity, criterion="magnitude", recovery_ratio=0.01, seed=args.seed, verbose=1)
    start = time.perf_counter()
    model.learn(args.steps, callback=callback)
    elapsed = time.perf_counter() - start
    print(f"\n== Trained {args.steps} steps in {elapsed:.0f} s with the mask fixed ==")
    for name, stats in sb3_tar.sparsity_summary(model).items():
        print(f"{name}: {stats['kept']} of {stats['total']} weights kept (sparsity {stats['sparsity']:.4f})")
    mean, std = evaluate_policy(model, model.get_env(), n_eval_episodes=10, deterministic=True)
    print(f"mean return over 10 episodes: {mean:.1f} +/- {std:.1f}")


if __name__ == "__main__":
    main()
