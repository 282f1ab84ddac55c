"""``SparseLinear``: an ``nn.Linear`` whose weight has a fixed sparse mask, held and trained compressed.

Only the kept weights are parameters (``values``, one entry per kept weight), so an optimizer over
``module.parameters()`` keeps state for kept weights only, and the C++ kernel does forward and
backward in time proportional to ``nnz`` instead of ``out * in``. Its state dict is that of a masked
``nn.Linear`` (``weight`` dense with zeros at pruned positions, ``bias``, ``weight_mask``), so
checkpoints move freely between sparse execution and plain masked layers.
"""

from __future__ import annotations

import math
import warnings
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sb3_tar.kernels._build import kernel_summary, loaded_kernel
from sb3_tar.kernels.functional import (
    SparseStructure,
    apply_kernel,
    as_bool_mask,
    build_structure,
    scatter_dense,
)

MASK_BUFFER = "weight_mask"  # the name the masked nn.Linear path uses (sb3_tar.sb3.execution.mask_store)
_STRUCTURE_BUFFERS = ("row_ptr", "col_idx", "col_ptr", "csc_row", "csc_perm", "kept_index")
_warned_fallback = False

_WRITE_HELP = (
    "SparseLinear.weight is a read-only dense copy: the layer holds its kept weights compressed in `values` "
    "(row-major order of the mask), so a write into `weight` would change nothing. Write `layer.values` "
    "(e.g. `layer.values.data.mul_(0.5)`), set a dense weight with `layer.set_mask(layer.mask, weight)`, redraw "
    "with `layer.reset_parameters()`, or convert the layer with `layer.to_linear()`."
)
#: In-place operator methods that write into their first argument.
_INPLACE_DUNDERS = frozenset(
    f"__i{op}__"
    for op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "lshift", "rshift", "matmul")
) | {"__setitem__", "__set__", "__delitem__"}


def _holds(arg: Any, cls: type) -> bool:
    return isinstance(arg, cls) or (isinstance(arg, (list, tuple)) and any(isinstance(a, cls) for a in arg))


class ReadOnlyWeight(torch.Tensor):
    """
    The dense copy ``SparseLinear.weight`` returns: reads work as on any tensor (their results are plain
    tensors), but a write into it or into a view of it (in-place methods, ``nn.init.*_``, item assignment,
    ``.data`` writes, ``out=``) raises a ``RuntimeError`` naming the API to use, instead of silently changing
    nothing.
    """

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        writes = (name.endswith("_") and not name.endswith("__")) or name in _INPLACE_DUNDERS
        # the written tensor: the first argument (nn.init.* functions pass it as ``tensor=``)
        target = args[0] if args else kwargs.get("tensor", kwargs.get("input"))
        if (writes and _holds(target, cls)) or _holds(kwargs.get("out"), cls):
            raise RuntimeError(f"{_WRITE_HELP} (attempted: {name or func})")
        with torch._C.DisableTorchFunctionSubclass():
            result = func(*args, **kwargs)
        sources = [a for a in args if isinstance(a, cls)]
        return _keep_views(result, sources, cls)

    def __deepcopy__(self, memo: dict) -> torch.Tensor:
        """A copy is a plain tensor (writable, and no longer tied to the layer)."""
        with torch._C.DisableTorchFunctionSubclass():
            return self.clone()

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickled as a plain tensor."""
        with torch._C.DisableTorchFunctionSubclass():
            return self.clone().__reduce_ex__(protocol)


def _keep_views(result: Any, sources: list[torch.Tensor], cls: type) -> Any:
    """Views of a read-only weight stay read-only (writing into them would be dropped too); other results are plain."""
    if isinstance(result, torch.Tensor):
        if sources and result.numel() and any(_shares_storage(result, s) for s in sources):
            return result.as_subclass(cls)
        return result
    if isinstance(result, (list, tuple)) and any(isinstance(r, torch.Tensor) for r in result):
        return type(result)(_keep_views(r, sources, cls) for r in result)
    return result


def _shares_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    with torch._C.DisableTorchFunctionSubclass():
        try:
            return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):  # tensors without storage
            return False


def is_recording() -> bool:
    """
    Whether a tracer or exporter is recording this call (``torch.jit.trace``, ``torch.onnx.export``,
    ``torch.export``): it cannot see inside the C++ kernel (a trace would hold its output as a constant),
    so :class:`SparseLinear` then runs ``F.linear`` on the scattered dense weight, which it records exactly.
    """
    exporting = getattr(torch.compiler, "is_exporting", None)
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or (exporting is not None and exporting())


class SparseLinear(nn.Linear):
    """
    ``y = x @ W^T + b`` with ``W = values`` scattered into a fixed mask.

    A subclass of ``nn.Linear`` so that code which walks a network's ``nn.Linear`` modules and reads
    ``in_features``, ``out_features``, ``weight`` or ``bias`` keeps working; but ``weight`` is a read-only
    dense copy (:class:`ReadOnlyWeight`), not a parameter: writing into it or assigning ``layer.weight``
    raises an error naming the API to use (the kept weights are ``values``).

    Execution: on the CPU in float32/float64 with the kernel available, the C++ kernel (output in
    feature-major layout: a non-contiguous ``(..., out)`` tensor; use ``.reshape``, not ``.view``);
    otherwise (another device or dtype, or no C++ compiler), and while a tracer or exporter records the call
    (:func:`is_recording`), ``F.linear`` on the scattered dense weight, same results, no speed-up. The kernel
    runs on one thread whatever ``torch.get_num_threads()``.

    :param in_features: Size of each input sample.
    :param out_features: Size of each output sample.
    :param mask: Boolean or 0/1 tensor ``(out_features, in_features)``: ``True`` keeps a weight.
    :param bias: Whether to learn an additive bias.
    :param device: Device of the parameters.
    :param dtype: Dtype of the parameters.
    :param initialize: Draw ``values`` and ``bias`` like ``nn.Linear`` does (from torch's global generator);
        ``False`` leaves them uninitialized for the caller to fill (what :meth:`from_linear` does, so that
        converting a layer does not shift the global random stream).
    """

    __constants__ = ["in_features", "out_features"]
    #: Marks a compressed linear layer for the core (:func:`sb3_tar.core.masks.is_compressed`): a sparsifiable
    #: layer whose pruned weights do not exist, so masks need no re-zeroing.
    sb3_tar_compressed = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        mask: torch.Tensor,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        initialize: bool = True,
    ) -> None:
        nn.Module.__init__(self)  # not nn.Linear's: there is no dense ``weight`` parameter
        for name, size in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ValueError(f"{name} must be a non-negative int, got {size!r}")
        self.in_features = in_features
        self.out_features = out_features
        m = as_bool_mask(mask, (out_features, in_features))
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        # nn.Linear's default initialization: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        nnz = int(m.sum())
        self.values = nn.Parameter(torch.empty(nnz, **factory))
        self.bias = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        if initialize:  # from_linear copies the values instead, and must not draw from torch's global generator
            with torch.no_grad():
                self.values.uniform_(-bound, bound)
                if self.bias is not None:
                    self.bias.uniform_(-bound, bound)
        self.register_buffer(MASK_BUFFER, m.to(device=self.values.device, dtype=self._mask_dtype()))
        for name in _STRUCTURE_BUFFERS:
            self.register_buffer(name, None, persistent=False)
        self._install_structure(build_structure(m))

    # ----------------------------------------------------------------------------------------------
    # construction and conversion

    @classmethod
    def from_linear(cls, linear: nn.Linear, mask: torch.Tensor) -> SparseLinear:
        """
        A SparseLinear with the kept weights and the bias of ``linear`` (copies, on its device and dtype).

        :param linear: The dense layer.
        :param mask: Boolean or 0/1 mask of ``linear.weight``'s shape; weights at pruned positions are dropped.
        :return: The sparse layer.
        :raises TypeError: If ``linear`` is not an ``nn.Linear``.
        :raises ValueError: If the mask's shape differs from the weight's or it is not 0/1.
        """
        if not isinstance(linear, nn.Linear) or isinstance(linear, SparseLinear):
            raise TypeError(f"from_linear expects an nn.Linear with a dense weight, got {type(linear).__name__}")
        m = as_bool_mask(mask, tuple(linear.weight.shape))
        weight = linear.weight.detach()
        layer = cls(
            linear.in_features,
            linear.out_features,
            m,
            bias=linear.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
            initialize=False,
        )
        with torch.no_grad():
            layer.values.copy_(weight[m.to(weight.device)])
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach())
        layer.values.requires_grad_(linear.weight.requires_grad)
        return layer

    def to_linear(self) -> nn.Linear:
        """
        A masked ``nn.Linear`` equal to this layer: dense weight (zeros at pruned positions), bias,
        and a ``weight_mask`` buffer (copies).

        :return: The dense layer, on this layer's device and dtype.
        """
        weight = self.dense_weight().detach()
        linear = nn.Linear(
            self.in_features, self.out_features, bias=self.bias is not None, device=weight.device, dtype=weight.dtype
        )
        with torch.no_grad():
            linear.weight.copy_(weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        linear.register_buffer(MASK_BUFFER, getattr(self, MASK_BUFFER).detach().clone())
        return linear

    # ----------------------------------------------------------------------------------------------
    # structure

    def _mask_dtype(self) -> torch.dtype:
        return self.values.dtype if self.values.is_floating_point() else torch.float32

    def _install_structure(self, structure: SparseStructure) -> None:
        device = self.values.device
        for name in _STRUCTURE_BUFFERS:
            setattr(self, name, getattr(structure, name).to(device))
        self._refresh_structure()

    def _refresh_structure(self) -> None:
        """Re-read the structure tuple from the buffers (after they were replaced or moved)."""
        self._structure = SparseStructure(
            *(getattr(self, name) for name in _STRUCTURE_BUFFERS), self.out_features, self.in_features
        )

    def _apply(self, fn, recurse: bool = True):  # .to(), .double(), .cuda(), ... replace the buffers
        result = super()._apply(fn, recurse)
        self._refresh_structure()
        return result

    @property
    def structure(self) -> SparseStructure:
        """The index arrays of the mask (CSR by row, CSC by column), as held in the buffers."""
        return self._structure

    @property
    def nnz(self) -> int:
        """Number of kept weights."""
        return self.values.numel()

    @property
    def mask(self) -> torch.Tensor:
        """The mask as a boolean tensor (a copy)."""
        return getattr(self, MASK_BUFFER) != 0

    @torch.no_grad()
    def set_mask(
        self, mask: torch.Tensor, weight: torch.Tensor | None = None, structure: SparseStructure | None = None
    ) -> None:
        """
        Change the mask, keeping the same ``values`` Parameter object (optimizers hold it; their state
        for it must be converted by the caller, e.g. with :func:`dense_to_values`). A gradient of the
        old length is dropped.

        :param mask: New boolean or 0/1 mask ``(out_features, in_features)``.
        :param weight: Dense weight to take the new kept values from; by default the current dense
            weight (so newly kept positions start at zero).
        :param structure: The new mask's structure if the caller has it (another layer's, e.g. the online
            layer's for its target: the index arrays are then shared, not built again).
        :raises ValueError: If a shape differs from ``(out_features, in_features)`` or the mask is not 0/1.
        """
        shape = (self.out_features, self.in_features)
        m = as_bool_mask(mask, shape).to(self.values.device)
        if weight is None:
            weight = self.dense_weight()
        elif tuple(weight.shape) != shape:
            raise ValueError(f"weight has shape {tuple(weight.shape)}, expected {shape}")
        kept = weight.detach().to(device=self.values.device, dtype=self.values.dtype)[m]
        if not torch.equal(m, self.mask):
            self._install_structure(build_structure(m) if structure is None else structure)
            getattr(self, MASK_BUFFER).copy_(m)
        if kept.shape == self.values.shape:
            self.values.copy_(kept)
        else:
            self.values.data = kept
            self.values.grad = None  # a gradient of the old length could not be accumulated into

    # ----------------------------------------------------------------------------------------------
    # dense views

    def dense_weight(self) -> torch.Tensor:
        """
        The dense weight ``(out_features, in_features)``, zeros at pruned positions.

        Differentiable wrt ``values`` when grad mode is on (a new tensor each call: writing into it
        does not change the layer).

        :return: The dense weight.
        """
        return scatter_dense(self.values, self.structure)

    @property
    def weight(self) -> torch.Tensor:
        """
        Read-only dense weight (a detached copy, zeros at pruned positions), for code that reads ``layer.weight``.
        Writing into it raises (see :class:`ReadOnlyWeight`).
        """
        with torch.no_grad():
            return self.dense_weight().as_subclass(ReadOnlyWeight)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "weight":
            raise AttributeError(f"cannot assign SparseLinear.weight. {_WRITE_HELP}")
        super().__setattr__(name, value)

    # ----------------------------------------------------------------------------------------------
    # forward

    def _kernel(self) -> ModuleType | None:
        """The C++ kernel if this layer can use it (CPU, float32/float64, kernel built), else ``None``."""
        global _warned_fallback
        values = self.values
        if values.device.type != "cpu" or values.dtype not in (torch.float32, torch.float64):
            return None
        kernel = loaded_kernel()
        if kernel is None and not _warned_fallback:
            _warned_fallback = True
            warnings.warn(
                f"SparseLinear falls back to dense F.linear (correct but not faster): {kernel_summary()}",
                RuntimeWarning,
                stacklevel=3,
            )
        return kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        :param x: Input ``(..., in_features)``.
        :return: ``x @ W^T + b``, ``(..., out_features)``.
        :raises ValueError: If the last dimension of ``x`` is not ``in_features``.
        :raises TypeError: If ``x``'s dtype differs from the parameters'.
        """
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"input has shape {tuple(x.shape)}, expected (..., {self.in_features})")
        kernel = None if is_recording() else self._kernel()
        if kernel is None:
            if torch.onnx.is_in_onnx_export():  # values are not in the state dict: the exporter records them as a constant
                return F.linear(x, scatter_dense(self.values.data, self._structure), self.bias)
            return F.linear(x, self.dense_weight(), self.bias)
        values, bias, s = self.values, self.bias, self._structure
        if x.dtype != values.dtype:
            raise TypeError(f"input has dtype {x.dtype}, but the layer's parameters have dtype {values.dtype}")
        if torch.is_grad_enabled() and (x.requires_grad or values.requires_grad or (bias is not None and bias.requires_grad)):
            return apply_kernel(x, values, bias, s)
        # no autograd graph to record (acting, target values): call the kernel directly
        x2 = x if x.dim() == 2 else x.reshape(-1, self.in_features)
        y = kernel.forward(kernel.feature_major(x2), values, bias, s.row_ptr, s.col_idx, self.out_features)
        return y if x.dim() == 2 else y.reshape(*x.shape[:-1], self.out_features)

    def reset_parameters(self) -> None:
        """Draw ``values`` and ``bias`` again as ``nn.Linear`` initializes its weight and bias."""
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        with torch.no_grad():
            self.values.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)
        self._dense_cache = None

    def extra_repr(self) -> str:
        total = self.in_features * self.out_features
        density = self.nnz / total if total else 0.0
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"nnz={self.nnz}, density={density:.4f}"
        )

    # ----------------------------------------------------------------------------------------------
    # state dict: exactly that of a masked nn.Linear

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        destination[prefix + "weight"] = self.dense_weight().detach()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias if keep_vars else self.bias.detach()
        mask = getattr(self, MASK_BUFFER)
        destination[prefix + MASK_BUFFER] = mask if keep_vars else mask.detach()

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        for hook in self._load_state_dict_pre_hooks.values():
            hook(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        shape = torch.Size((self.out_features, self.in_features))
        expected = {"weight": shape, MASK_BUFFER: shape}
        if self.bias is not None:
            expected["bias"] = torch.Size((self.out_features,))
        found: dict[str, torch.Tensor] = {}
        for name, want in expected.items():
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            value = state_dict[key]
            if not isinstance(value, torch.Tensor):
                error_msgs.append(f'While copying "{key}", expected torch.Tensor, got {type(value).__name__}.')
            elif value.shape != want:
                error_msgs.append(
                    f"size mismatch for {key}: copying a param with shape {value.shape} from checkpoint, "
                    f"the shape in current model is {want}."
                )
            else:
                found[name] = value
        if strict:
            unexpected_keys.extend(k for k in state_dict if k.startswith(prefix) and k[len(prefix) :] not in expected)
        if MASK_BUFFER in found and not bool(((found[MASK_BUFFER] == 0) | (found[MASK_BUFFER] == 1)).all()):
            error_msgs.append(f"{prefix}{MASK_BUFFER} must hold only 0 and 1.")
            found.pop(MASK_BUFFER)
        with torch.no_grad():
            if "weight" in found or MASK_BUFFER in found:
                mask = found.get(MASK_BUFFER, getattr(self, MASK_BUFFER))
                self.set_mask(mask, found.get("weight"))
            if "bias" in found:
                self.bias.copy_(found["bias"])
