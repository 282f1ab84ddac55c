"""Where the time of a sparse SAC training run goes: cProfile of ``learn()``, grouped by phase.

Builds the model of the speed benchmark's ``sparse`` row (``SparsePolicy``, global magnitude, TAR rr = 0.01,
``sparse_execution=True``; ``--variant dense`` for SB3's ``MlpPolicy``, ``set``/``rigl`` for DST on the
kernel), warms it up, and profiles ``--steps`` env steps (one gradient step each). Prints the share of the
profiled time spent in each phase (cumulative times of the functions named; phases nest as indented) and
the functions with the largest own time. cProfile slows Python-heavy code more than C++ code, so the shares
of SB3's Python glue are upper bounds; compare variants run the same way.

    python benchmarks/profile_training_step.py --width 256 --steps 500
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import torch
from stable_baselines3 import SAC

from sb3_tar import sac
from sb3_tar.experiments.provenance import hardware_line

#: (label, depth, predicate on cProfile's (file, line, function) key): cumulative time of the matching entries.
PHASES: list[tuple[str, int, object]] = [
    ("collect_rollouts (env steps, acting, replay buffer add)", 0, lambda f, n: n == "collect_rollouts"),
    ("env step (MuJoCo and wrappers)", 1, lambda f, n: n == "step_wait"),
    ("policy.predict (acting)", 1, lambda f, n: n == "predict" and "policies" in f),
    ("train (gradient steps)", 0, lambda f, n: n == "train" and f.endswith("sac.py")),
    ("replay buffer sample", 1, lambda f, n: n == "sample" and "buffers" in f),
    ("backward passes (autograd engine, all layers)", 1, lambda f, n: n == "backward" and "autograd/__init__" in f),
    ("sparse kernel backward (C++)", 2, lambda f, n: n == "backward" and "functional" in f),
    ("optimizer steps with hooks", 1, lambda f, n: n == "wrapper" and "optimizer.py" in f),
    ("Adam update itself", 2, lambda f, n: n in ("_single_tensor_adam", "_multi_tensor_adam")),
    ("mask enforcement hooks (sb3-tar)", 2, lambda f, n: n == "hook" and "enforcement" in f),
    ("zero_grad", 1, lambda f, n: n == "zero_grad"),
    ("Polyak averaging", 1, lambda f, n: n == "polyak_update"),
    ("SparseLinear.forward (incl. acting)", 1, lambda f, n: n == "forward" and "sparse_linear.py" in f),
    ("set_training_mode (SB3, every step)", 1, lambda f, n: n == "set_training_mode"),
]


def build(variant: str, width: int, sparsity: float, seed: int) -> SAC:
    kwargs: dict = dict(net_arch=[width, width])
    if variant == "dense":
        return SAC("MlpPolicy", "HalfCheetah-v4", learning_starts=100, seed=seed, device="cpu", policy_kwargs=kwargs)
    kwargs.update(sparsity=sparsity, sparse_execution=True)
    if variant in ("set", "rigl"):
        kwargs.update(dst_method=variant, dst_total_steps=100_000)
    else:
        kwargs.update(criterion="magnitude", recovery_ratio=0.01)
    return SAC(sac.SparsePolicy, "HalfCheetah-v4", learning_starts=100, seed=seed, device="cpu", policy_kwargs=kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="sparse", choices=["dense", "sparse", "set", "rigl"])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=15, help="functions listed by own time")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(hardware_line(1))
    model = build(args.variant, args.width, args.sparsity, args.seed)
    model.learn(200)  # warm-up: learning_starts, kernel build, first gradient steps
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    model.learn(args.steps, reset_num_timesteps=False)
    profiler.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    total = max(entry[3] for key, entry in stats.stats.items() if key[2] == "learn")  # type: ignore[attr-defined]
    rate = args.steps / wall
    print(f"{args.variant} SAC width {args.width}: {args.steps} steps in {wall:.2f} s under cProfile ({rate:.1f} steps/s)")
    print(f"{'phase':<60} {'ms/step':>8} {'share':>7}")
    for label, depth, match in PHASES:
        seconds = sum(entry[3] for (f, _, n), entry in stats.stats.items() if match(f, n))  # type: ignore[attr-defined]
        print(f"{'  ' * depth + label:<60} {seconds / args.steps * 1e3:>8.3f} {seconds / total:>7.1%}")
    print()
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
