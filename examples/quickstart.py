"""Main job: a short real TAR training run of sparse SAC on a MuJoCo task.

Prunes SAC's actor and both Q-networks to 90% sparsity by weight magnitude, revives 1% of the
weights with Topology-Aware Revival, trains for a few thousand steps with the mask fixed (on the
sparse C++ kernel where it builds, else on the masked dense path; it says which), then prints the
final sparsity (measured on the weights) and an evaluation.

    python examples/quickstart.py --env HalfCheetah-v4 --steps 3000
"""

from __future__ import annotations

import argparse
import time

import torch
from stable_baselines3 import SAC
from stable_baselines3.common.evaluation import evaluate_policy

import sb3_tar
from sb3_tar.sac import SparsePolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v4")
    parser.add_argument("--steps", type=int, default=3000, help="env steps of training")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--criterion", default="magnitude", choices=["random", "erk", "magnitude", "synflow"])
    parser.add_argument("--recovery-ratio", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = SAC(
        SparsePolicy,
        args.env,
        learning_starts=min(1000, args.steps // 3),
        seed=args.seed,
        verbose=1,
        device="cpu",
        policy_kwargs=dict(sparsity=args.sparsity, criterion=args.criterion, recovery_ratio=args.recovery_ratio),
    )
    print(f"== Pruned at {args.sparsity:.0%} by {args.criterion}, revived rr={args.recovery_ratio} with TAR ==")
    for report in model.policy.sparsity_reports.values():
        print(report, end="\n\n")

    layers = model.policy.sparse_layers
    if layers:
        print(f"Execution: sparse C++ kernel for {len(layers)} layers ({', '.join(layers)}); the others masked dense")
    else:
        print("Execution: masked dense path (the sparse kernel is not available here)")
    print(f"== Training SAC on {args.env} for {args.steps} steps (mask fixed) ==")
    start = time.perf_counter()
    model.learn(args.steps, log_interval=1)
    elapsed = time.perf_counter() - start

    print(f"\n== After {args.steps} steps ({elapsed:.0f} s, {args.steps / elapsed:.0f} steps/s) ==")
    for name, stats in sb3_tar.sparsity_summary(model).items():
        print(
            f"{name:<11} kept {stats['kept']}/{stats['total']} (sparsity {stats['sparsity']:.4f}), "
            f"zero weights {stats['zero_fraction']:.4f}, pruned-but-nonzero {stats['pruned_nonzero']}"
        )
    mean, std = evaluate_policy(model, model.get_env(), n_eval_episodes=args.eval_episodes, deterministic=True)
    print(f"Evaluation over {args.eval_episodes} episodes: return {mean:.1f} +/- {std:.1f}")


if __name__ == "__main__":
    main()
