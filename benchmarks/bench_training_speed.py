"""Training speed of sparse SAC (SparsePolicy, TAR) against dense SAC (MlpPolicy), side by side.

Both models train on the same env with the same seed and settings; their training is
interleaved in chunks (dense chunk, sparse chunk, dense chunk, ...) so machine noise hits both
alike. Prints env steps per second of each and the ratio sparse / dense per width.

    python benchmarks/bench_training_speed.py --widths 256 1024 --steps 2000 --chunk 250
"""

from __future__ import annotations

import argparse
import time

import torch
from stable_baselines3 import SAC

from sb3_tar.sac import SparsePolicy


def build(policy, env_id: str, width: int, seed: int, sparse: bool) -> SAC:
    policy_kwargs: dict = dict(net_arch=[width, width])
    if sparse:
        policy_kwargs.update(sparsity=0.9, criterion="magnitude", recovery_ratio=0.01)
    return SAC(policy, env_id, learning_starts=100, seed=seed, device="cpu", policy_kwargs=policy_kwargs)


def measure(env_id: str, width: int, steps: int, chunk: int, seed: int) -> tuple[float, float]:
    models = {
        "dense": build("MlpPolicy", env_id, width, seed, False),
        "sparse": build(SparsePolicy, env_id, width, seed, True),
    }
    for model in models.values():  # warm-up: fill learning_starts and run a few gradient steps, untimed
        model.learn(150)
    seconds = {name: 0.0 for name in models}
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        for name, model in models.items():
            start = time.perf_counter()
            model.learn(n, reset_num_timesteps=False)
            seconds[name] += time.perf_counter() - start
        done += n
    return steps / seconds["dense"], steps / seconds["sparse"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v4")
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=2000, help="timed env steps per model and width")
    parser.add_argument("--chunk", type=int, default=250, help="env steps per interleaved chunk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"env={args.env} steps={args.steps} chunk={args.chunk} seed={args.seed} torch threads={args.threads}")
    print(f"{'width':>6}  {'dense steps/s':>14}  {'sparse steps/s':>15}  {'sparse/dense':>12}")
    for width in args.widths:
        dense, sparse = measure(args.env, width, args.steps, args.chunk, args.seed)
        print(f"{width:>6}  {dense:>14.1f}  {sparse:>15.1f}  {sparse / dense:>12.3f}", flush=True)


if __name__ == "__main__":
    main()
