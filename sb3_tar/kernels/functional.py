"""The sparse linear function ``y = x @ W^T + b`` over a fixed mask, and layout helpers (pure torch + the C++ kernel).

``W`` is held as its kept values only, a vector of length ``nnz`` in row-major order of the kept
positions: the order of ``weight[mask]`` (and of ``mask.nonzero()``).
"""

from __future__ import annotations

from types import ModuleType
from typing import NamedTuple

import torch
from torch.autograd.function import once_differentiable

from sb3_tar.kernels import _build
from sb3_tar.kernels._build import load_kernel

_INT32_MAX = 2**31 - 1


class SparseStructure(NamedTuple):
    """
    The index arrays of a mask (CPU or any device; the kernel needs them on the CPU).

    :param row_ptr: CSR row pointers, int64 ``(out + 1,)``.
    :param col_idx: CSR column of each kept value, int32 ``(nnz,)``.
    :param col_ptr: CSC column pointers, int64 ``(in + 1,)``.
    :param csc_row: CSC row of each entry, int32 ``(nnz,)``.
    :param csc_perm: Position in ``values`` of each CSC entry, int32 ``(nnz,)``.
    :param kept_index: Flat index ``row * in + col`` of each kept value, int64 ``(nnz,)``.
    :param out_features: Rows of ``W``.
    :param in_features: Columns of ``W``.
    """

    row_ptr: torch.Tensor
    col_idx: torch.Tensor
    col_ptr: torch.Tensor
    csc_row: torch.Tensor
    csc_perm: torch.Tensor
    kept_index: torch.Tensor
    out_features: int
    in_features: int

    @property
    def nnz(self) -> int:
        return self.col_idx.numel()


def as_bool_mask(mask: torch.Tensor, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """
    Check a mask and return it as a boolean tensor.

    :param mask: A 2-D boolean mask, or a 0/1 tensor of any real dtype.
    :param shape: The shape the mask must have, if given.
    :return: The boolean mask (the input itself if it is boolean already).
    :raises TypeError: If ``mask`` is not a tensor.
    :raises ValueError: If it is not 2-D, has the wrong shape, or holds values other than 0 and 1.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dim() != 2:
        raise ValueError(f"mask must be 2-D (out_features, in_features), got shape {tuple(mask.shape)}")
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(shape)}")
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask must hold only 0 and 1 (or be boolean)")
    return mask != 0


def build_structure(mask: torch.Tensor) -> SparseStructure:
    """
    Index arrays (CSR by output row, CSC by input column) of a mask, built on the CPU.

    :param mask: Boolean or 0/1 mask of shape ``(out_features, in_features)``.
    :return: The structure; values are in row-major order of the kept positions.
    :raises ValueError: If the mask is not a 2-D 0/1 mask, or too large for 32-bit indices.
    """
    m = as_bool_mask(mask).detach().to("cpu")
    out_features, in_features = m.shape
    if in_features > _INT32_MAX or out_features > _INT32_MAX:
        raise ValueError(f"layer shape {tuple(m.shape)} exceeds 32-bit indices")
    kept_index = m.reshape(-1).nonzero().reshape(-1)  # row-major order
    nnz = kept_index.numel()
    if nnz > _INT32_MAX:
        raise ValueError(f"nnz = {nnz} exceeds 32-bit indices")
    zero = torch.zeros(1, dtype=torch.int64)
    row_ptr = torch.cat([zero, m.sum(1, dtype=torch.int64).cumsum(0)])
    col_ptr = torch.cat([zero, m.sum(0, dtype=torch.int64).cumsum(0)])
    col_idx = (kept_index % max(in_features, 1)).to(torch.int32)
    position = torch.full((out_features, in_features), -1, dtype=torch.int64)
    position.view(-1)[kept_index] = torch.arange(nnz, dtype=torch.int64)
    csc_positions = position.t()[m.t()]  # column-major order of the kept positions
    csc_row = (kept_index[csc_positions] // max(in_features, 1)).to(torch.int32)
    return SparseStructure(
        row_ptr=row_ptr,
        col_idx=col_idx.contiguous(),
        col_ptr=col_ptr,
        csc_row=csc_row.contiguous(),
        csc_perm=csc_positions.to(torch.int32).contiguous(),
        kept_index=kept_index.contiguous(),
        out_features=int(out_features),
        in_features=int(in_features),
    )


def values_to_dense(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """
    Scatter a per-kept-weight tensor (values, a gradient, Adam's ``exp_avg``) into the dense layout.

    :param values: Tensor of shape ``(nnz,)`` in row-major order of the kept positions.
    :param mask: Boolean or 0/1 mask ``(out_features, in_features)`` with ``nnz`` kept entries.
    :return: A new dense tensor of the mask's shape, ``values``' dtype and device, zeros at pruned positions.
    :raises ValueError: If ``values`` is not 1-D or its length differs from the mask's kept count.
    """
    m = as_bool_mask(mask).to(values.device)
    if values.dim() != 1 or values.numel() != int(m.sum()):
        raise ValueError(f"values has shape {tuple(values.shape)}, expected ({int(m.sum())},) for this mask")
    dense = values.new_zeros(m.shape)
    dense[m] = values.detach()
    return dense


def dense_to_values(dense: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """
    Gather the kept entries of a dense per-weight tensor (inverse of :func:`values_to_dense`).

    :param dense: Tensor of shape ``(out_features, in_features)``.
    :param mask: Boolean or 0/1 mask of the same shape.
    :return: A new tensor ``(nnz,)`` in row-major order of the kept positions (entries at pruned positions are dropped).
    :raises ValueError: If the shapes differ.
    """
    m = as_bool_mask(mask).to(dense.device)
    if tuple(dense.shape) != tuple(m.shape):
        raise ValueError(f"dense has shape {tuple(dense.shape)}, but the mask has shape {tuple(m.shape)}")
    return dense.detach()[m].clone()


def scatter_dense(values: torch.Tensor, structure: SparseStructure) -> torch.Tensor:
    """
    The dense weight ``(out, in)`` with zeros at pruned positions, differentiable wrt ``values``.

    :param values: Kept values ``(nnz,)``.
    :param structure: The mask's structure (``kept_index`` on ``values``' device).
    :return: The dense weight.
    """
    flat = values.new_zeros(structure.out_features * structure.in_features)
    return flat.scatter(0, structure.kept_index, values).view(structure.out_features, structure.in_features)


def _kernel() -> ModuleType:
    """The loaded kernel without taking the build lock (the hot path), building it on first use."""
    kernel = _build._kernel
    return kernel if kernel is not None else load_kernel()


class _SparseLinearFunction(torch.autograd.Function):
    """Autograd of the C++ kernel: y (n, out) from x (n, in); returns y in feature-major layout (strides 1, n)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None, s: SparseStructure) -> torch.Tensor:  # type: ignore[override]
        kernel = _kernel()
        xt = kernel.feature_major(x)  # a free view when x comes from another SparseLinear
        y = kernel.forward(xt, values, bias, s.row_ptr, s.col_idx, s.out_features)
        need_x, need_v = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.save_for_backward(xt if need_v else None, values if need_x else None)
        ctx.structure = s
        ctx.input_row_major = not x.t().is_contiguous()  # the gradient wrt x gets the layout of x
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor):  # type: ignore[override]
        xt, values = ctx.saved_tensors
        s: SparseStructure = ctx.structure
        need_x, need_v, need_b = ctx.needs_input_grad[:3]
        kernel = _kernel()
        gyt = kernel.feature_major(grad_y)
        n = gyt.shape[1]
        if xt is None:  # no gradient wrt values: only the batch size of xt is read
            xt = gyt.new_empty((s.in_features, n))
        if values is None:  # no gradient wrt x: values are not read
            values = gyt.new_empty((s.nnz,))
        grad_x, grad_v, grad_b = kernel.backward(
            xt,
            gyt,
            values,
            s.row_ptr,
            s.col_idx,
            s.col_ptr,
            s.csc_row,
            s.csc_perm,
            need_x,
            need_v,
            need_b,
            ctx.input_row_major,
        )
        return grad_x, grad_v, grad_b, None


def sparse_linear_function(
    x: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None, structure: SparseStructure
) -> torch.Tensor:
    """
    ``y = x @ W^T + b`` with the C++ kernel, differentiable wrt ``x``, ``values`` and ``bias``
    (first-order gradients only: a double backward raises).

    The output is returned in feature-major layout (a non-contiguous ``(..., out)`` tensor whose
    transpose is contiguous): element-wise ops keep that layout, so a following sparse layer reads it
    without a copy. Use ``.reshape`` rather than ``.view`` on it, as on any non-contiguous tensor.

    :param x: Input ``(..., in_features)`` on the CPU, float32 or float64.
    :param values: Kept weights ``(nnz,)`` (same dtype), row-major order of the kept positions.
    :param bias: Bias ``(out_features,)`` or ``None``.
    :param structure: The mask's structure from :func:`build_structure` (on the CPU).
    :return: ``(..., out_features)``.
    :raises ValueError: If the shapes do not match.
    :raises TypeError: If the dtypes differ or are not float32/float64.
    :raises KernelUnavailableError: If the C++ kernel cannot be built.
    """
    check_inputs(x, values, bias, structure)
    return apply_kernel(x, values.contiguous(), None if bias is None else bias.contiguous(), structure)


def apply_kernel(x: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None, structure: SparseStructure) -> torch.Tensor:
    """:func:`sparse_linear_function` without the argument checks (contiguous values and bias)."""
    if x.dim() == 2:
        return _SparseLinearFunction.apply(x, values, bias, structure)
    y = _SparseLinearFunction.apply(x.reshape(-1, structure.in_features), values, bias, structure)
    return y.reshape(*x.shape[:-1], structure.out_features)


def check_inputs(x: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None, structure: SparseStructure) -> None:
    """
    Check shapes and dtypes of :func:`sparse_linear_function`'s arguments.

    :raises ValueError: If a shape does not match the structure.
    :raises TypeError: If a dtype differs from ``values``' or is not float32/float64.
    """
    if x.dim() == 0 or x.shape[-1] != structure.in_features:
        raise ValueError(f"input has shape {tuple(x.shape)}, expected (..., {structure.in_features})")
    if values.dim() != 1 or values.numel() != structure.nnz:
        raise ValueError(f"values has shape {tuple(values.shape)}, expected ({structure.nnz},)")
    if bias is not None and tuple(bias.shape) != (structure.out_features,):
        raise ValueError(f"bias has shape {tuple(bias.shape)}, expected ({structure.out_features},)")
    if values.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"the kernel supports float32 and float64, got values of dtype {values.dtype}")
    for name, t in (("input", x), ("bias", bias)):
        if t is not None and t.dtype != values.dtype:
            raise TypeError(f"{name} has dtype {t.dtype}, but values have dtype {values.dtype}")
