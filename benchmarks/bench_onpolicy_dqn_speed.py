"""Training speed of sparse PPO and DQN against dense, side by side: dense, masked dense, sparse execution.

Models of one algorithm train on the same env with the same seed and settings:

- ``dense``: SB3's ``MlpPolicy``;
- ``masked``: sb3-tar's ``SparsePolicy`` of the algorithm (magnitude, TAR rr = 0.01) with ``sparse_execution=False``:
  the mask is enforced on dense tensors (gradient hooks zero pruned gradients before SB3 clips them);
- ``sparse``: the same policy with ``sparse_execution=True``: layers below the density threshold run on sb3-tar's C++
  kernel (PPO: both branches' hidden layers and heads; DQN: ``q_net`` and ``q_net_target``), with optimizer state for
  kept weights only.

PPO trains with minibatches of ``--ppo-batch`` (64) over rollouts of ``--ppo-n-steps`` for ``--ppo-epochs`` epochs;
DQN with SB3's defaults (one gradient step of batch 32 every 4 env steps) after ``learning_starts``. Training is
interleaved in chunks (dense, masked, sparse, dense, ...; a PPO chunk is one rollout and its epochs) so machine noise
hits all alike. Prints env steps per second, the ratios to dense and sparse / masked, and the optimizer-state memory.

    python benchmarks/bench_onpolicy_dqn_speed.py --algos ppo dqn --width 256 --sparsity 0.9 --rollouts 6 --dqn-steps 4000
"""

from __future__ import annotations

import argparse
import time

import torch
from stable_baselines3 import DQN, PPO

from sb3_tar import dqn, ppo
from sb3_tar.experiments.provenance import hardware_line

VARIANTS = ("dense", "masked", "sparse")


def build(algo: str, variant: str, args: argparse.Namespace):
    """One model of the comparison (see the module docstring)."""
    policy_kwargs: dict = dict(net_arch=[args.width, args.width])
    if variant != "dense":
        policy_kwargs.update(
            sparsity=args.sparsity, criterion="magnitude", recovery_ratio=0.01, sparse_execution=variant == "sparse"
        )
    if algo == "ppo":
        policy = ppo.SparsePolicy if variant != "dense" else "MlpPolicy"
        return PPO(
            policy,
            args.ppo_env,
            n_steps=args.ppo_n_steps,
            batch_size=args.ppo_batch,
            n_epochs=args.ppo_epochs,
            seed=args.seed,
            device="cpu",
            policy_kwargs=policy_kwargs,
        )
    policy = dqn.SparsePolicy if variant != "dense" else "MlpPolicy"
    starts = args.dqn_learning_starts
    return DQN(policy, args.dqn_env, learning_starts=starts, seed=args.seed, device="cpu", policy_kwargs=policy_kwargs)


def optimizer_state_bytes(model) -> int:
    """Bytes of every tensor in ``policy.optimizer``'s state."""
    return sum(
        v.numel() * v.element_size()
        for state in model.policy.optimizer.state.values()
        for v in state.values()
        if isinstance(v, torch.Tensor)
    )


def measure(algo: str, args: argparse.Namespace) -> dict:
    """Train the three models interleaved; return env steps per second, optimizer-state MB and kernel layers of each."""
    models = {v: build(algo, v, args) for v in VARIANTS}
    if algo == "ppo":
        warmup, chunk, total = args.ppo_n_steps, args.ppo_n_steps, args.rollouts * args.ppo_n_steps
    else:
        warmup, chunk, total = args.dqn_learning_starts + 200, args.dqn_chunk, args.dqn_steps
    for model in models.values():  # untimed: fill learning_starts / the first rollout, build the kernel
        model.learn(warmup)
    seconds = {name: 0.0 for name in models}
    done = 0
    while done < total:
        n = min(chunk, total - done)
        for name, model in models.items():
            start = time.perf_counter()
            model.learn(n, reset_num_timesteps=False)
            seconds[name] += time.perf_counter() - start
        done += n
    return {
        "steps_per_s": {name: total / seconds[name] for name in models},
        "state_mb": {name: optimizer_state_bytes(m) / 2**20 for name, m in models.items()},
        "kernel_layers": {name: len(getattr(m.policy, "sparse_layers", [])) for name, m in models.items()},
        "timed_steps": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=["ppo", "dqn"], choices=["ppo", "dqn"])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--ppo-env", default="HalfCheetah-v4")
    parser.add_argument("--ppo-n-steps", type=int, default=1024, help="PPO rollout length (one interleaved chunk)")
    parser.add_argument("--ppo-batch", type=int, default=64, help="PPO minibatch size")
    parser.add_argument("--ppo-epochs", type=int, default=10)
    parser.add_argument("--rollouts", type=int, default=6, help="timed PPO rollouts per model")
    parser.add_argument("--dqn-env", default="CartPole-v1")
    parser.add_argument("--dqn-learning-starts", type=int, default=1000)
    parser.add_argument("--dqn-steps", type=int, default=4000, help="timed DQN env steps per model")
    parser.add_argument("--dqn-chunk", type=int, default=500, help="DQN env steps per interleaved chunk")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(hardware_line(args.threads))
    print(f"width={args.width} sparsity={args.sparsity:g} seed={args.seed} torch threads={args.threads}")
    for algo in args.algos:
        r = measure(algo, args)
        if algo == "ppo":
            setting = (
                f"{args.ppo_env}, n_steps={args.ppo_n_steps}, batch_size={args.ppo_batch}, n_epochs={args.ppo_epochs}, "
                f"{args.rollouts} timed rollouts"
            )
        else:
            setting = f"{args.dqn_env}, SB3 defaults (train_freq=4, batch_size=32), {args.dqn_steps} timed env steps"
        dense, masked = r["steps_per_s"]["dense"], r["steps_per_s"]["masked"]
        print(f"\n{algo} width={args.width} sparsity={args.sparsity:g}: {setting}")
        print(f"{'model':>8} {'steps/s':>8} {'/ dense':>8} {'/ masked':>9} {'state MB':>9} {'kernel layers':>13}")
        for name, speed in r["steps_per_s"].items():
            print(
                f"{name:>8} {speed:>8.1f} {speed / dense:>8.3f} {speed / masked:>9.3f} {r['state_mb'][name]:>9.3f} "
                f"{r['kernel_layers'][name]:>13}",
                flush=True,
            )


if __name__ == "__main__":
    main()
