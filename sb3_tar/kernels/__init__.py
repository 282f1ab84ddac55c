"""Sparse execution of masked linear layers on the CPU (pure torch + a JIT-compiled C++ kernel; no SB3).

- :class:`SparseLinear`: a linear layer with a fixed mask whose kept weights are its only weight
  parameter; state dict identical to a masked ``nn.Linear`` (``weight``, ``bias``, ``weight_mask``).
- :func:`sparse_linear_function`: the differentiable function behind it.
- :func:`values_to_dense` / :func:`dense_to_values`: convert per-kept-weight tensors (optimizer
  state) between the compressed and the dense layout.
- :func:`kernel_available` / :func:`load_kernel`: build the C++ kernel (cached) or report why not.
"""

from sb3_tar.kernels._build import KernelUnavailableError, kernel_available, kernel_error, load_kernel
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
    "load_kernel",
    "sparse_linear_function",
    "values_to_dense",
]
