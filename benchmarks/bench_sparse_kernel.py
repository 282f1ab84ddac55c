"""One linear layer, forward + backward: dense vs masked dense vs ``SparseLinear`` (a script, not a test).

All variants of one configuration run interleaved in one process (block of calls of A, of B, of C,
then again), so machine noise hits them alike; the table shows the median over repeats of the
per-call time of each, and the speed-ups of the sparse layer.

- ``dense``: ``nn.Linear`` forward + backward (gradients wrt input, weight, bias);
- ``masked``: the same plus the masked path's per-step masking (``grad *= mask``, ``weight *= mask``);
- ``sparse``: :class:`sb3_tar.kernels.SparseLinear` forward + backward (gradients wrt input, kept
  values, bias).

The input requires a gradient (a hidden layer). ``--sweep`` prints the sparse/dense time ratio over
densities, to read off the density below which the sparse layer wins; a Q-network table shows the
layers chained (activations stay feature-major between sparse layers, so only the input is transposed).
Example::

    python benchmarks/bench_sparse_kernel.py                    # the default table, batch 256, 1 thread
    python benchmarks/bench_sparse_kernel.py --sweep --repeats 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sb3_tar.experiments.provenance import hardware_line
from sb3_tar.kernels import SparseLinear, load_kernel

DEFAULT_CONFIGS = ((256, 256, 0.9), (256, 256, 0.95), (1024, 1024, 0.9), (1024, 1024, 0.95), (2048, 2048, 0.95))
SWEEP_DENSITIES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, min_block_s: float) -> dict[str, float]:
    """
    Median per-call microseconds of each function, timed in interleaved blocks.

    :param fns: Functions to time, by name.
    :param repeats: Blocks per function.
    :param min_block_s: Rough duration of one block (sets the calls per block from a warm-up).
    :return: Median microseconds per call, by name.
    """
    calls = {}
    for name, fn in fns.items():  # warm-up, and calls per block
        fn()
        start = time.perf_counter()
        fn()
        calls[name] = max(1, int(min_block_s / max(time.perf_counter() - start, 1e-7)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            times[name].append((time.perf_counter() - start) / calls[name] * 1e6)
    return {name: statistics.median(t) for name, t in times.items()}


def layers(out_features: int, in_features: int, density: float, seed: int) -> tuple[nn.Linear, torch.Tensor, SparseLinear]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(out_features, in_features, generator=g) < density
    torch.manual_seed(seed)
    dense = nn.Linear(in_features, out_features)
    with torch.no_grad():
        dense.weight.mul_(mask)
    return dense, mask, SparseLinear.from_linear(dense, mask)


def train_step_fns(out_features: int, in_features: int, density: float, batch: int, seed: int) -> dict[str, Callable]:
    """Forward + backward of the dense, masked and sparse layer on the same input and output gradient."""
    dense, mask, sparse = layers(out_features, in_features, density, seed)
    mask_f = mask.float()
    x = torch.randn(batch, in_features, requires_grad=True)
    grad_y = torch.randn(batch, out_features)

    def dense_step() -> None:
        dense(x).backward(grad_y)

    def masked_step() -> None:
        dense(x).backward(grad_y)
        with torch.no_grad():
            dense.weight.grad.mul_(mask_f)
            dense.weight.mul_(mask_f)

    def sparse_step() -> None:
        sparse(x).backward(grad_y)

    def zero() -> None:  # keep the .grad accumulation cost the same for all
        x.grad = dense.weight.grad = dense.bias.grad = sparse.values.grad = sparse.bias.grad = None

    return {
        "dense": lambda: (zero(), dense_step()),
        "masked": lambda: (zero(), masked_step()),
        "sparse": lambda: (zero(), sparse_step()),
    }


def mlp_fns(width: int, sparsity: float, batch: int, seed: int, in_features: int = 393) -> dict[str, Callable]:
    """
    Forward + backward of an SB3-shaped Q-network ``in -> width -> width -> 1`` (ReLU): dense, and with
    every layer a SparseLinear at ``sparsity`` (the output layer too), on a row-major input batch.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sizes = (in_features, width, width, 1)
    dense_layers, sparse_layers = [], []
    for n_in, n_out in zip(sizes, sizes[1:]):
        dense, mask, sparse = layers(n_out, n_in, 1 - sparsity, int(torch.randint(0, 2**31, (1,), generator=g)))
        dense_layers.append(dense)
        sparse_layers.append(sparse)
    dense_net = nn.Sequential(dense_layers[0], nn.ReLU(), dense_layers[1], nn.ReLU(), dense_layers[2])
    sparse_net = nn.Sequential(sparse_layers[0], nn.ReLU(), sparse_layers[1], nn.ReLU(), sparse_layers[2])
    x = torch.randn(batch, in_features)

    def step(net: nn.Module) -> None:
        net.zero_grad(set_to_none=True)
        net(x).mean().backward()

    return {"dense": lambda: step(dense_net), "sparse": lambda: step(sparse_net)}


def batch1_fns(out_features: int, in_features: int, density: float, seed: int) -> dict[str, Callable]:
    """Forward of one sample without autograd (acting): dense F.linear vs the raw kernel vs the layer."""
    dense, _, sparse = layers(out_features, in_features, density, seed)
    kernel = load_kernel()
    x = torch.randn(1, in_features)
    s = sparse.structure

    def dense_fwd() -> None:
        with torch.no_grad():
            F.linear(x, dense.weight, dense.bias)

    def kernel_fwd() -> None:
        kernel.forward(x.t().contiguous(), sparse.values, sparse.bias, s.row_ptr, s.col_idx, out_features)

    def layer_fwd() -> None:
        with torch.no_grad():
            sparse(x)

    return {"dense": dense_fwd, "kernel": kernel_fwd, "layer": layer_fwd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved blocks per variant")
    parser.add_argument("--block", type=float, default=0.05, help="seconds per timed block (roughly)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the kernel itself is single-threaded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", action="store_true", help="also sweep densities at 256x256 and 1024x1024")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(hardware_line(args.threads))
    start = time.perf_counter()
    load_kernel()
    print(f"kernel ready in {time.perf_counter() - start:.1f} s (build or cache)")
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, threads={args.threads}")

    print(f"\nforward + backward, batch {args.batch} (median us per call; speed-up = other / sparse)")
    print(f"{'shape':>11} {'sparsity':>8} {'dense':>9} {'masked':>9} {'sparse':>9} {'vs dense':>9} {'vs masked':>9}")
    for out_f, in_f, sparsity in DEFAULT_CONFIGS:
        t = interleaved(train_step_fns(out_f, in_f, 1 - sparsity, args.batch, args.seed), args.repeats, args.block)
        print(
            f"{out_f:>5}x{in_f:<5} {sparsity:>8.2f} {t['dense']:>9.0f} {t['masked']:>9.0f} {t['sparse']:>9.0f} "
            f"{t['dense'] / t['sparse']:>8.2f}x {t['masked'] / t['sparse']:>8.2f}x"
        )

    print(f"\nQ-network {393} -> w -> w -> 1 (ReLU), every layer sparse, forward + backward, batch {args.batch}")
    print(f"{'width':>11} {'sparsity':>8} {'dense':>9} {'sparse':>9} {'vs dense':>9}")
    for width, sparsity in ((256, 0.9), (256, 0.95), (1024, 0.9), (1024, 0.95)):
        t = interleaved(mlp_fns(width, sparsity, args.batch, args.seed), args.repeats, args.block)
        print(f"{width:>11} {sparsity:>8.2f} {t['dense']:>9.0f} {t['sparse']:>9.0f} {t['dense'] / t['sparse']:>8.2f}x")

    print("\nbatch-1 forward without autograd (median us per call)")
    print(f"{'shape':>11} {'sparsity':>8} {'dense':>9} {'kernel':>9} {'layer':>9} {'dense/layer':>11}")
    for out_f, in_f, sparsity in DEFAULT_CONFIGS:
        t = interleaved(batch1_fns(out_f, in_f, 1 - sparsity, args.seed), args.repeats, args.block / 5)
        print(
            f"{out_f:>5}x{in_f:<5} {sparsity:>8.2f} {t['dense']:>9.1f} {t['kernel']:>9.1f} {t['layer']:>9.1f} "
            f"{t['dense'] / t['layer']:>10.2f}x"
        )

    if args.sweep:
        print(f"\ndensity sweep, forward + backward, batch {args.batch}: sparse / dense time (< 1: sparse wins)")
        print(f"{'shape':>11} " + " ".join(f"{d:>6.2f}" for d in SWEEP_DENSITIES))
        for size in (256, 1024):
            ratios = []
            for density in SWEEP_DENSITIES:
                fns = train_step_fns(size, size, density, args.batch, args.seed)
                t = interleaved({k: fns[k] for k in ("dense", "sparse")}, args.repeats, args.block)
                ratios.append(t["sparse"] / t["dense"])
            print(f"{size:>5}x{size:<5} " + " ".join(f"{r:>6.2f}" for r in ratios))


if __name__ == "__main__":
    main()
