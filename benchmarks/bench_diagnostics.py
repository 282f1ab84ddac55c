"""Cost of ``DiagnosticsCallback`` against training, side by side.

Two copies of one SAC model (same env, width, seed) train in interleaved chunks: ``plain`` without the
callback, ``diag`` with ``DiagnosticsCallback(every=...)``. Chunks alternate (plain, diag, plain, ...) so machine
noise hits both alike; keep ``--chunk`` a multiple of ``--every`` (each ``learn()`` call ends with a measurement
unless its last step just had one). Printed:

- the wall time of each copy and their ratio (the callback's overhead at that ``every``, noisy on a busy machine:
  both copies train identically, the callback changes nothing in training, so the difference is the
  measurements plus noise);
- the time spent inside the measurements as a share of ``diag``'s wall time (the overhead, measured in one run);
- the median time of one measurement and of one training step (environment step + gradient step) of ``diag``,
  and the overhead they imply for each ``every`` in ``--report-every``: ``measurement / (every * step)``.

    python benchmarks/bench_diagnostics.py --env HalfCheetah-v5 --width 256 --steps 6000 --every 1000
    python benchmarks/bench_diagnostics.py --env Pendulum-v1 --width 64 --steps 6000 --every 1000
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback

from sb3_tar.diagnostics import DiagnosticsCallback
from sb3_tar.experiments.provenance import hardware_line


class StepTimer(BaseCallback):
    """Wall time between consecutive environment steps (each includes the gradient step after it)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self._last: float | None = None

    def _on_step(self) -> bool:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now
        return True


def build(env: str, width: int, seed: int) -> SAC:
    return SAC(
        "MlpPolicy",
        env,
        learning_starts=1000,
        batch_size=256,
        seed=seed,
        device="cpu",
        policy_kwargs=dict(net_arch=[width] * 2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6000, help="training steps of each copy (after learning_starts)")
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--report-every", type=int, nargs="+", default=[500, 1000, 5000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(hardware_line(1))
    plain, diag = build(args.env, args.width, args.seed), build(args.env, args.width, args.seed)
    callback = DiagnosticsCallback(every=args.every)
    timer = StepTimer()
    for model in (plain, diag):  # fill the buffer (learning_starts) outside the timed part
        model.learn(1000, reset_num_timesteps=False)
    wall = {"plain": 0.0, "diag": 0.0}
    done = 0
    while done < args.steps:
        n = min(args.chunk, args.steps - done)
        order = (("plain", plain), ("diag", diag))
        for name, model in order if (done // args.chunk) % 2 == 0 else order[::-1]:  # alternate who goes first
            start = time.perf_counter()
            callbacks = [callback, timer] if name == "diag" else [StepTimer()]  # same per-step bookkeeping
            model.learn(n, reset_num_timesteps=False, callback=callbacks)
            wall[name] += time.perf_counter() - start
        timer._last = None
        done += n
    measure = statistics.median(r["seconds"] for r in callback.rows)
    step = statistics.median(timer.times)
    print(f"SAC {args.env} width {args.width}, {args.steps} steps per copy (chunks of {args.chunk}), 1 thread")
    print(f"plain {wall['plain']:.1f} s, diag (every={args.every}, {len(callback.rows)} measurements) {wall['diag']:.1f} s")
    print(f"side by side: diag / plain = {wall['diag'] / wall['plain']:.4f}")
    spent = sum(r["seconds"] for r in callback.rows)
    print(f"time inside measurements: {spent:.2f} s = {100 * spent / wall['diag']:.2f} % of diag's wall time")
    print(f"median measurement {measure * 1000:.1f} ms, median training step {step * 1000:.2f} ms")
    for every in args.report_every:
        print(f"implied overhead at every={every}: {100 * measure / (every * step):.2f} %")


if __name__ == "__main__":
    main()
