"""Training speed of sparse SAC/TD3 against dense, side by side: dense, masked dense, sparse execution, SET, RigL.

Models of one algorithm train on the same env with the same seed and settings:

- ``dense``: SB3's ``MlpPolicy``;
- ``masked``: ``SparsePolicy`` (magnitude, TAR rr = 0.01) with ``sparse_execution=False``: the mask is
  enforced on dense tensors;
- ``sparse``: the same policy with ``sparse_execution=True``: layers below the density threshold run on
  sb3-tar's C++ kernel, with optimizer state for kept weights only;
- ``set`` / ``rigl``: ``SparsePolicy(dst_method=...)`` (ERK initial mask, the method's default update interval
  and drop fraction unless ``--update-interval`` is given) with ``sparse_execution=True``: the kernel between
  mask updates, rebuilt in place at each update; ``--dst-masked`` adds the same runs on the masked path
  (``set_masked`` / ``rigl_masked``).

Their training is interleaved in chunks (dense, masked, sparse, set, rigl, dense, ...) so machine noise hits
all alike. Prints env steps per second, the ratios to dense, the optimizer-state memory (Adam's moments of the
actor and critic) of each, and for SET/RigL what one mask update costs: the mean wall time of an update (all
networks, critic and actor, including RigL's dense gradient products) and that time in ordinary training steps
of the same model.

    python benchmarks/bench_training_speed.py --algos sac --widths 256 1024 --sparsities 0.9 --steps 2000 --chunk 250
"""

from __future__ import annotations

import argparse
import time

import torch
from stable_baselines3 import SAC, TD3

from sb3_tar import sac, td3
from sb3_tar.experiments.provenance import hardware_line
from sb3_tar.sb3.methods.rewiring import attached_rewirer

ALGOS = {"sac": (SAC, sac.SparsePolicy), "td3": (TD3, td3.SparsePolicy)}
STATIC = ("dense", "masked", "sparse")
DST = ("set", "rigl")
WARMUP = 150  # untimed env steps per model (learning_starts=100)


def build(algo: str, variant: str, env_id: str, width: int, sparsity: float, seed: int, args: argparse.Namespace):
    cls, sparse_policy = ALGOS[algo]
    policy_kwargs: dict = dict(net_arch=[width, width])
    policy = "MlpPolicy"
    method, _, path = variant.partition("_")
    if method in DST:
        policy = sparse_policy
        planned = 10 * (WARMUP + args.steps)  # the schedule's T_end stays far: the drop fraction is about zeta
        policy_kwargs.update(
            sparsity=sparsity,
            dst_method=method,
            dst_total_steps=planned,
            update_interval=args.update_interval,
            sparse_execution=path != "masked",
        )
    elif variant != "dense":
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


def time_updates(model) -> list[float]:
    """Wrap the model's rewirer so that each mask update (one role's networks) records its wall time."""
    rewirer = attached_rewirer(model.policy)
    seconds: list[float] = []
    rewire_role = rewirer._rewire_role

    def timed(*a, **k):
        start = time.perf_counter()
        rewire_role(*a, **k)
        seconds.append(time.perf_counter() - start)

    rewirer._rewire_role = timed
    return seconds


def measure(algo: str, env_id: str, width: int, sparsity: float, args: argparse.Namespace) -> dict:
    variants = list(STATIC) + list(args.dst)
    if args.dst_masked:
        variants += [f"{m}_masked" for m in args.dst]
    models = {v: build(algo, v, env_id, width, sparsity, args.seed, args) for v in variants}
    update_seconds = {v: time_updates(m) for v, m in models.items() if v.partition("_")[0] in DST}
    for model in models.values():  # warm-up: fill learning_starts, build the kernel, a few gradient steps; untimed
        model.learn(WARMUP)
    for times in update_seconds.values():
        times.clear()
    seconds = {name: 0.0 for name in models}
    done = 0
    while done < args.steps:
        n = min(args.chunk, args.steps - done)
        for name, model in models.items():
            start = time.perf_counter()
            model.learn(n, reset_num_timesteps=False)
            seconds[name] += time.perf_counter() - start
        done += n
    out: dict = {"steps_per_s": {name: args.steps / seconds[name] for name in models}}
    out["state_mb"] = {name: optimizer_state_bytes(m) / 2**20 for name, m in models.items()}
    out["kernel_layers"] = {name: len(getattr(m.policy, "sparse_layers", [])) for name, m in models.items()}
    out["updates"] = {}
    for name, times in update_seconds.items():
        rewirer = attached_rewirer(models[name].policy)
        per_update = sum(times) / max(1, len(times) // 2) if times else float("nan")  # critic + actor = one update
        out["updates"][name] = (len(times) // 2, per_update, per_update * out["steps_per_s"][name], rewirer.config)
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
    parser.add_argument("--dst", nargs="*", default=list(DST), choices=DST, help="DST methods to add (none: static only)")
    parser.add_argument("--dst-masked", action="store_true", help="also run SET/RigL on the masked dense path")
    parser.add_argument("--update-interval", type=int, default=None, help="SET/RigL update interval (default: per method)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(hardware_line(args.threads))
    print(f"env={args.env} steps={args.steps} chunk={args.chunk} seed={args.seed} torch threads={args.threads}")
    for algo in args.algos:
        for width in args.widths:
            for sparsity in args.sparsities:
                r = measure(algo, args.env, width, sparsity, args)
                dense = r["steps_per_s"]["dense"]
                print(f"\n{algo} width={width} sparsity={sparsity:g}")
                print(f"{'model':>12} {'steps/s':>8} {'/ dense':>8} {'state MB':>9} {'kernel layers':>13}")
                for name, speed in r["steps_per_s"].items():
                    print(
                        f"{name:>12} {speed:>8.1f} {speed / dense:>8.3f} {r['state_mb'][name]:>9.2f} "
                        f"{r['kernel_layers'][name]:>13}",
                        flush=True,
                    )
                for name, (count, seconds, steps, config) in r["updates"].items():
                    print(
                        f"{name:>12}: {count} mask updates (every {config.update_interval} gradient steps), "
                        f"{seconds * 1e3:.1f} ms each = {steps:.2f} training steps",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
