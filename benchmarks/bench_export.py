"""What the dense-equivalent export costs when acting (batch 1): ONNX Runtime and TorchScript files written by
``sb3_tar.export_actor`` against the sparse actor in PyTorch (a script, not a test).

For each width, a 90%-sparse SAC actor (``SACSparsePolicy``, hidden layers on the sparse kernel) is exported to
ONNX and TorchScript, and four ways of computing one deterministic action from one observation are timed in
interleaved blocks (so that machine noise hits them alike), on one thread:

- ``onnxruntime``: the exported ONNX file (dense matrix products, pruned weights as zeros);
- ``torchscript``: the exported TorchScript file (the same dense graph);
- ``sparse torch``: ``policy.actor(obs, deterministic=True)`` under ``no_grad`` (the C++ kernel), unscaled;
- ``dense torch``: the exported module itself in eager PyTorch (dense ``nn.Linear`` layers, pruned weights as zeros);
- ``predict``: ``model.predict(obs, deterministic=True)`` (numpy in and out, SB3's checks included).

The table shows the median microseconds per call and the file sizes. Example::

    python benchmarks/bench_export.py --widths 256 1024
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from sb3_tar.experiments.provenance import hardware_line


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, min_block_s: float) -> dict[str, float]:
    """:return: Median microseconds per call of each function, timed in interleaved blocks."""
    calls = {}
    for name, fn in fns.items():
        fn()
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < min_block_s / 4:
            fn()
            n += 1
        calls[name] = max(1, int(4 * n))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name] * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def measure(width: int, args: argparse.Namespace, options: object) -> None:
    """Export a sparse SAC actor of this width, time the four ways of acting, print one table row."""
    import onnxruntime as ort
    from stable_baselines3 import SAC

    import sb3_tar
    from sb3_tar.sb3.persistence.export import DeterministicActor

    policy_kwargs = dict(net_arch=[width, width], sparsity=args.sparsity, sparse_execution=True)
    model = SAC(sb3_tar.SACSparsePolicy, args.env, policy_kwargs=policy_kwargs, seed=0, device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        onnx_path, ts_path = os.path.join(folder, "actor.onnx"), os.path.join(folder, "actor.pt")
        sb3_tar.export_actor(model, onnx_path)
        sb3_tar.export_actor(model, ts_path)
        session = ort.InferenceSession(onnx_path, options)
        scripted = torch.jit.load(ts_path)
        size_mb = os.path.getsize(onnx_path) / 1e6
    obs = model.observation_space.sample()[None].astype(np.float32)
    obs_t = torch.as_tensor(obs)
    actor = model.policy.actor
    low = torch.as_tensor(model.action_space.low)
    scale = torch.as_tensor(model.action_space.high) - low
    dense = DeterministicActor(model.policy)

    def sparse_torch() -> torch.Tensor:  # the exported function, computed by the sparse layers
        with torch.no_grad():
            return low + 0.5 * (torch.tanh(actor.mu(actor.latent_pi(actor.features_extractor(obs_t)))) + 1.0) * scale

    def dense_torch() -> torch.Tensor:
        with torch.no_grad():
            return dense(obs_t)

    def torchscript() -> torch.Tensor:
        with torch.no_grad():
            return scripted(obs_t)

    fns = {
        "onnxruntime": lambda: session.run(None, {"observation": obs}),
        "torchscript": torchscript,
        "dense torch": dense_torch,
        "sparse torch": sparse_torch,
        "predict": lambda: model.predict(obs[0], deterministic=True),
    }
    t = interleaved(fns, args.repeats, args.block_s)
    print(
        f"| {width} | {t['onnxruntime']:.1f} | {t['torchscript']:.1f} | {t['dense torch']:.1f} | {t['sparse torch']:.1f} "
        f"| {t['predict']:.1f} | {size_mb:.2f} MB | {t['onnxruntime'] / t['sparse torch']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--env", default="HalfCheetah-v4")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--block-s", type=float, default=0.3)
    args = parser.parse_args()

    import onnxruntime as ort

    torch.set_num_threads(1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    print(hardware_line(1))
    print(f"onnxruntime {ort.__version__}, 1 thread")
    print(f"SAC actor, {args.env}, sparsity {args.sparsity}, batch 1: median microseconds per action")
    print(
        "| width | onnxruntime | torchscript | dense torch | sparse torch | predict | ONNX file | onnxruntime / sparse torch |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for width in args.widths:
        measure(width, args, options)


if __name__ == "__main__":
    main()
