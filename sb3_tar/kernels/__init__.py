"""Sparse execution of masked linear layers on the CPU (pure torch + a JIT-compiled C++ kernel; no SB3).

- :class:`SparseLinear`: a linear layer with a fixed mask whose kept weights are its only weight
  parameter; state dict identical to a masked ``nn.Linear`` (``weight``, ``bias``, ``weight_mask``).
- :func:`sparse_linear_function`: the differentiable function behind it.
- :func:`values_to_dense` / :func:`dense_to_values`: convert per-kept-weight tensors (optimizer
  state) between the compressed and the dense layout.
- :func:`kernel_available` / :func:`load_kernel`: build the C++ kernel (cached) or report why not
  (:func:`kernel_error`: the full error; :func:`kernel_summary`: one line and the build log's path).

Design (see ``csrc/sparse_linear.cpp``): the mask is stored as CSR by output row (the order of the
values) and CSC by input column (with a permutation into the values), and activations are used
feature-major (``x^T``), so forward, gradient wrt input (a gather over the CSC, no scatter) and
gradient wrt values (one dot product per kept weight) all run contiguous SIMD loops over the batch.
Outputs are returned feature-major (non-contiguous ``(batch, out)`` tensors): element-wise ops keep
that layout, so chained sparse layers never transpose; the gradient wrt an input has the input's layout.

Measured on one core of an AMD EPYC (Zen 4, AVX-512), batch 256, forward + backward of one layer
(``benchmarks/bench_sparse_kernel.py``): the sparse layer is faster than a dense ``nn.Linear`` below
about 40% density (ratio 0.86 at 40%, 1.1-1.3 at 50%), 3-4x faster at 10%, 4-7x at 5%. At batch 1
(acting) the kernel is about as fast as dense at 10% density and faster below, so there is no dense
small-batch path: a cached dense weight would go stale under in-place writes that do not bump the
version counter (fused optimizers, ``.data``), and rebuilding it per call costs more than the kernel.
"""

from sb3_tar.kernels._build import (
    KernelUnavailableError,
    kernel_available,
    kernel_error,
    kernel_log,
    kernel_summary,
    load_kernel,
)
from sb3_tar.kernels.functional import (
    SparseStructure,
    build_structure,
    dense_to_values,
    sparse_linear_function,
    values_to_dense,
)
from sb3_tar.kernels.sparse_linear import SparseLinear

__all__ = [
    "KernelUnavailableError",
    "SparseLinear",
    "SparseStructure",
    "build_structure",
    "dense_to_values",
    "kernel_available",
    "kernel_error",
    "kernel_log",
    "kernel_summary",
    "load_kernel",
    "sparse_linear_function",
    "values_to_dense",
]
