"""Training speed of sparse SAC/TD3 against dense, side by side: dense, masked dense, sparse execution.

Three models of one algorithm train on the same env with the same seed and settings:

- ``dense``: SB3's ``MlpPolicy``;
- ``masked``: ``SparsePolicy`` (magnitude, TAR rr = 0.01) with ``sparse_execution=False``: the mask is
  enforced on dense tensors;
- ``sparse``: the same policy with ``sparse_execution=True``: layers below the density threshold run on
  sb3-tar's C++ kernel, with optimizer state for kept weights only.

Their training is interleaved in chunks (dense, masked, sparse, dense, ...) so machine noise hits all
alike. Prints env steps per second, the ratios to dense, and the optimizer-state memory (Adam's moments
of the actor and critic) of each.

    python benchmarks/bench_training_speed.py --algos sac --widths 256 1024 --sparsities 0.9 --steps 2000 --chunk 250
"""

from __future__ import annotations

import argparse
import time

import torch
from stable_baselines3 import SAC, TD3

from sb3_tar import sac, td3

ALGOS = {"sac": (SAC, sac.SparsePolicy), "td3": (TD3, td3.SparsePolicy)}


def build(algo: str, variant: str, env_id: str, width: int, sparsity: float, seed: int):
    cls, sparse_policy = ALGOS[algo]
    policy_kwargs: dict = dict(net_arch=[width, width])
    policy = "MlpPolicy"
    if variant != "dense":
        policy = sparse_policy
        policy_kwargs.update(
            sparsity=sparsity, criterion="magnitude", recovery_ratio=0.01, sparse_execution=variant == "sparse"
        )
    return cls(policy, env_id, learning_starts=100, seed=seed, device="cpu", policy_kwargs=policy_kwargs)


def optimizer_state_bytes(model) -> int:
    """Bytes of every tensor in the actor's and critic's optimizer state."""
    total = 0
    for holder in (model.policy.actor, model.policy.critic):
        for state in holder.optimizer.state.values():
            total += sum(v.numel() * v.element_size() for v in state.values() if isinstance(v, torch.Tensor))
    return total


def measure(algo: str, env_id: str, width: int, sparsity: float, steps: int, chunk: int, seed: int) -> dict:
    models = {v: build(algo, v, env_id, width, sparsity, seed) for v in ("dense", "masked", "sparse")}
    for model in models.values():  # warm-up: fill learning_starts, build the kernel, a few gradient steps; untimed
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
    out = {name: steps / seconds[name] for name in models}
    out.update({f"{name}_state_mb": optimizer_state_bytes(m) / 2**20 for name, m in models.items()})
    out["sparse_layers"] = len(models["sparse"].policy.sparse_layers)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=["sac"], choices=sorted(ALGOS))
    parser.add_argument("--env", default="HalfCheetah-v4")
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.9])
    parser.add_argument("--steps", type=int, default=2000, help="timed env steps per model")
    parser.add_argument("--chunk", type=int, default=250, help="env steps per interleaved chunk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"env={args.env} steps={args.steps} chunk={args.chunk} seed={args.seed} torch threads={args.threads}")
    header = (
        f"{'algo':>4} {'width':>5} {'sparsity':>8} {'dense/s':>8} {'masked/s':>8} {'sparse/s':>8} "
        f"{'masked/dense':>12} {'sparse/dense':>12} {'state MB dense':>14} {'masked':>7} {'sparse':>7} {'sparse layers':>13}"
    )
    print(header)
    for algo in args.algos:
        for width in args.widths:
            for sparsity in args.sparsities:
                r = measure(algo, args.env, width, sparsity, args.steps, args.chunk, args.seed)
                print(
                    f"{algo:>4} {width:>5} {sparsity:>8g} {r['dense']:>8.1f} {r['masked']:>8.1f} {r['sparse']:>8.1f} "
                    f"{r['masked'] / r['dense']:>12.3f} {r['sparse'] / r['dense']:>12.3f} {r['dense_state_mb']:>14.2f} "
                    f"{r['masked_state_mb']:>7.2f} {r['sparse_state_mb']:>7.2f} {r['sparse_layers']:>13}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
