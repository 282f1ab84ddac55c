"""SET and RigL on layers trained by the sparse kernel (thin SB3 glue; see :mod:`sb3_tar.sb3.methods.rewiring`).

A :class:`~sb3_tar.kernels.SparseLinear` holds its kept weights only, so between mask updates it trains
exactly as under a static mask. A mask update needs two things the compressed layer does not hold:

- **The dense gradient** ``dL/dW = sum_b grad_y_b^T x_b`` of the step it happens in: RigL grows where
  ``|dL/dW|`` is largest, and on the masked dense path the optimizer step right after the update also
  moves the grown weights by their gradient. :class:`GradientCapture` records the layer's inputs ``x``
  and output gradients ``grad_y`` of the backward passes of that step only (it is armed for the
  gradient step before an update step and disarmed once the update is done), and forms the dense
  product ``grad_y^T x`` once, at the update. No dense backward runs on any other step.
- **An in-place rebuild**: :func:`rewire_compressed` keeps the layer, its ``values`` Parameter (the
  optimizer holds it) and the optimizer; it moves the optimizer state and the gradient of the surviving
  weights to their new positions, gives grown weights the value 0.0, zero moments and their dense
  gradient, rebuilds the index arrays of the new mask, and does the same (values only) to the target.

The contributions that count are those a dense layer's ``weight.grad`` would hold when the optimizer's
pre-step hook runs: the backward passes since the gradient was last cleared. A contribution that finds
the layer's ``values.grad`` cleared (``None``, or all zeros after ``zero_grad(set_to_none=False)``)
starts the sum again, unless an earlier contribution of the same backward pass is still waiting to be
accumulated (a layer used twice in one loss).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sb3_tar.core.masks import is_compressed
from sb3_tar.kernels.functional import build_structure


class LayerCapture:
    """
    Records ``(x, grad_y)`` of one online SparseLinear's backward passes while attached.

    :param layer: A :class:`~sb3_tar.kernels.SparseLinear` of an online network.
    """

    def __init__(self, layer: nn.Module) -> None:
        self.layer = layer
        self.records: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._pending = False  # a contribution of the running backward pass is not accumulated yet
        self._handles = [
            layer.register_forward_hook(self._forward),
            layer.values.register_post_accumulate_grad_hook(self._accumulated),
        ]

    def _forward(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if torch.is_grad_enabled() and module.values.requires_grad and output.requires_grad:
            x = args[0].detach()
            output.register_hook(lambda grad_y: self._backward(x, grad_y))

    def _backward(self, x: torch.Tensor, grad_y: torch.Tensor) -> None:
        grad = self.layer.values.grad
        if not self._pending and (grad is None or not bool(grad.any())):
            self.records.clear()  # the gradient was cleared since the last contribution
        self.records.append((x, grad_y.detach()))
        self._pending = True

    def _accumulated(self, param: torch.Tensor) -> None:
        self._pending = False

    def dense_grad(self) -> torch.Tensor | None:
        """
        :return: ``sum grad_y^T x`` over the recorded backward passes, of the layer's dense weight shape
            (``None`` if nothing was recorded).
        """
        if not self.records:
            return None
        out, inp = self.layer.out_features, self.layer.in_features
        total = None
        for x, grad_y in self.records:
            part = grad_y.reshape(-1, out).t().mm(x.reshape(-1, inp).to(grad_y.dtype))
            total = part if total is None else total.add_(part)
        return total

    def remove(self) -> None:
        """Stop recording and free the records."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.records.clear()


class GradientCapture:
    """The :class:`LayerCapture` of each armed online SparseLinear, by layer."""

    def __init__(self) -> None:
        self._layers: dict[int, LayerCapture] = {}

    def arm(self, layers: list[nn.Module]) -> None:
        """:param layers: Layers of the online networks; the compressed ones start recording (if not already)."""
        for layer in layers:
            if is_compressed(layer) and id(layer) not in self._layers:
                self._layers[id(layer)] = LayerCapture(layer)

    def disarm(self, layers: list[nn.Module]) -> None:
        """:param layers: Layers that stop recording (their records are freed)."""
        for layer in layers:
            capture = self._layers.pop(id(layer), None)
            if capture is not None:
                capture.remove()

    def armed(self, layer: nn.Module) -> bool:
        """:return: Whether ``layer`` is recording."""
        return id(layer) in self._layers

    def dense_grad(self, layer: nn.Module) -> torch.Tensor | None:
        """:return: The layer's dense gradient of the current step (``None`` if not recorded)."""
        capture = self._layers.get(id(layer))
        return None if capture is None else capture.dense_grad()


class _Move:
    """
    Where each weight kept by a new mask was in the old layout (one pass over the dense shape), to move
    per-kept-weight tensors (values, optimizer state, gradient) without going through the dense layout.

    :param old_index: Flat dense index of each old kept weight (row-major, as ``values``).
    :param new_index: Flat dense index of each new kept weight.
    :param size: Number of dense positions.
    """

    def __init__(self, old_index: torch.Tensor, new_index: torch.Tensor, size: int) -> None:
        position = torch.full((size,), -1, dtype=torch.int64, device=old_index.device)
        position[old_index] = torch.arange(old_index.numel(), device=old_index.device)
        source = position[new_index]
        self.survivor = source >= 0  # per new kept weight: it was kept before
        self.source = source[self.survivor]  # its index in the old layout
        self.grown_index = new_index[~self.survivor]  # flat dense index of each grown weight

    def __call__(self, tensor: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
        """:return: ``tensor`` in the new layout; grown weights take their entry of the dense ``fill`` (or 0)."""
        moved = tensor.new_zeros(self.survivor.shape)
        moved[self.survivor] = tensor[self.source]
        if fill is not None:
            moved[~self.survivor] = fill.reshape(-1)[self.grown_index].to(device=tensor.device, dtype=tensor.dtype)
        return moved


@torch.no_grad()
def rewire_compressed(
    layer: nn.Module,
    mask: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    dense_grad: torch.Tensor | None,
    target: nn.Module | None = None,
) -> None:
    """
    Give a SparseLinear (and its target) a new mask with the same kept count, in place.

    Surviving weights keep their values, optimizer state and gradient; grown weights start at 0.0 with
    zero optimizer state (every state tensor of ``values``' shape: Adam's moments, ...) and take their
    entry of ``dense_grad`` as gradient, as on the masked dense path; dropped weights disappear.

    :param layer: The online :class:`~sb3_tar.kernels.SparseLinear`.
    :param mask: The new boolean mask (dense shape).
    :param optimizer: The optimizer stepping ``layer.values``.
    :param dense_grad: The layer's dense gradient of this step (``None``: grown weights get gradient 0).
    :param target: The matching layer of the target network (a SparseLinear), if any.
    """
    values = layer.values
    new = mask.to(device=values.device, dtype=torch.bool)
    structure = build_structure(new)
    if structure.nnz != values.numel():
        raise ValueError(f"the new mask keeps {structure.nnz} weights, the layer holds {values.numel()}")
    move = _Move(layer.structure.kept_index, structure.kept_index.to(values.device), new.numel())
    state: dict[str, Any] = optimizer.state.get(values, {})
    for value in state.values():
        if isinstance(value, torch.Tensor) and value.shape == values.shape:
            value.copy_(move(value))
    grad = values.grad
    new_grad = None if grad is None else move(grad, dense_grad)
    layer.set_mask(new, structure=structure)  # same nnz: values are copied in place
    if new_grad is not None:
        values.grad.copy_(new_grad)
    if target is not None:
        target.set_mask(new, structure=structure)  # the same index arrays
