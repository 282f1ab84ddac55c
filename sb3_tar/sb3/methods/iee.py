"""Exploitation-exploration ("enhanced saliency") inside SB3's training loop (thin glue over :mod:`sb3_tar.core.iee`).

Driven by the :class:`~sb3_tar.sb3.execution.enforcement.MaskEnforcer`'s optimizer hooks, per role (actor, critic):

- **Start of a phase** (the role's first optimizer step inside an exploration window): the current mask is kept as
  the *active* mask ``A`` (in ``model.sb3_tar_schedule_state``, saved with the model); the online mask buffers
  become all ones, so every pruned weight is *reactivated*: it is 0.0 (the enforcer kept it there) and its optimizer
  state (Adam's moments) is zeroed. The target networks keep ``A`` (their mask buffers are not touched) and a
  forward pre-hook re-zeros their weights outside ``A`` before each use, since Polyak averaging now blends in the
  reactivated online weights.
- **Every exploration step**: the pre-step hook copies the weights, biases and optimizer state of the role's
  networks; the post-step hook writes back the copies at the active positions (every bias, every 0-dimensional
  state such as Adam's step count), so the active structure and its optimizer state are bit for bit what they were
  before the phase, and only reactivated weights move.
- **End of a phase** (the role's first optimizer step after the window): every layer keeps exactly its count of
  weights, those of largest ``|w|`` over active and reactivated weights (:func:`sb3_tar.core.iee.prune_and_grow`);
  grown weights keep their explored values and moments, the others return to 0.0; the targets get the new mask
  (zeros at every grown position).
- Exploitation steps train the active structure as a static mask; the callback moves layers below the density
  threshold onto the sparse kernel between phases and back to the masked dense path before each phase.
"""

from __future__ import annotations

from typing import Any

import torch

from sb3_tar.core.iee import IEEConfig, prune_and_grow
from sb3_tar.core.masks import is_compressed
from sb3_tar.core.streams import stream_generator
from sb3_tar.sb3.execution.enforcement import MaskEnforcer
from sb3_tar.sb3.execution.mask_store import MASK_BUFFER
from sb3_tar.sb3.methods.cyclic import ScheduleListener
from sb3_tar.sb3.networks import SparseNetwork, log_name


class Explorer(ScheduleListener):
    """
    Runs exploitation-exploration on a policy holding masks.

    :param enforcer: The policy's mask enforcer.
    :param model: The SB3 model holding ``sb3_tar_schedule_state`` (method ``"iee"``).
    :param logger: SB3 logger.
    :param verbose: 2: print every prune-and-grow step.
    """

    def __init__(self, enforcer: MaskEnforcer, model: Any, logger: Any = None, verbose: int = 0) -> None:
        super().__init__(enforcer, model, logger, verbose)
        state = self.state
        self.config = IEEConfig(**{k: state[k] for k in IEEConfig.__dataclass_fields__})
        self._saved: dict[str, list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor | None, dict[str, Any]]]] = {}
        self._hooks: dict[str, list[Any]] = {}
        #: ``(step, network, kept per layer, grown)`` of every prune-and-grow step of this process.
        self.history: list[tuple[int, str, list[int], int]] = []
        for role, end in state["exploring"].items():  # resumed inside a phase: the targets' hooks again
            if int(end):
                for net in self.enforcer.role_networks(role):
                    self._hook_targets(net)

    # -- schedule ------------------------------------------------------------------------------
    @property
    def exploring(self) -> bool:
        """Whether a role is inside an exploration phase (its mask buffers are all ones)."""
        return any(int(end) for end in self.state["exploring"].values())

    def attach(self, policy: torch.nn.Module) -> None:
        """Listen to the enforcer's pre- and post-step hooks."""
        super().attach(policy)
        self.enforcer.post_step_listeners.append(self.after_step)

    def detach(self) -> None:
        """Stop listening."""
        super().detach()
        listeners = self.enforcer.post_step_listeners
        for listener in list(listeners):
            if getattr(listener, "__self__", None) is self:
                listeners.remove(listener)

    def __call__(self, role: str, optimizer: torch.optim.Optimizer) -> None:
        """Pre-step listener: clock, end and start of phases, the copy of the frozen part, the step's cost."""
        if role not in ("actor", "critic"):
            return
        step = self.tick() if role == "critic" else max(self.step, 1)
        state = self.state
        end = int(state["exploring"][role])
        if end and step > end:
            self._finish(role, end)
            end = 0
        window = self.config.window(step, self.total_steps)
        if window is not None and not end:
            self._start(role, optimizer, window)
            end = window[1]
        if end:
            self._save(role, optimizer)
        if role == "critic":
            self.count_flops(dense=window is not None)

    def after_step(self, role: str, optimizer: torch.optim.Optimizer) -> None:
        """Post-step listener: restore the active structure after an exploration step."""
        saved = self._saved.pop(role, None)
        if not saved:
            return
        with torch.no_grad():
            for param, value, active, opt_state in saved:
                now = optimizer.state.get(param, {})
                if active is None:
                    param.copy_(value)
                else:
                    param.copy_(torch.where(active, value, param))
                for key, old in opt_state.items():
                    new = now.get(key)
                    if not isinstance(new, torch.Tensor):
                        now[key] = old
                    elif active is not None and new.shape == active.shape:
                        new.copy_(torch.where(active, old, new))
                    else:
                        new.copy_(old)

    # -- phases --------------------------------------------------------------------------------
    @torch.no_grad()
    def _start(self, role: str, optimizer: torch.optim.Optimizer, window: tuple[int, int]) -> None:
        state = self.state
        active = state.setdefault("active", {})
        for net in self.enforcer.role_networks(role):
            if any(is_compressed(layer) for layer in net.linears):
                raise RuntimeError(
                    f"{net.name} runs on the sparse kernel at the start of an exploration phase (gradient step "
                    f"{window[0]}): exploration trains every weight, so its layers must be on the masked dense path "
                    "(the IEE callback converts them before each phase)"
                )
            masks = self.enforcer.store.get(net.name)
            active[net.name] = [m.detach().to("cpu").bool().clone() for m in masks]
            for layer, mask in zip(net.linears, masks):
                reactivated = ~mask.bool()
                for value in optimizer.state.get(layer.weight, {}).values():
                    if isinstance(value, torch.Tensor) and value.shape == layer.weight.shape:
                        value.masked_fill_(reactivated, 0.0)
                getattr(layer, MASK_BUFFER).fill_(1)  # online only: the targets keep A
            self._hook_targets(net)
        state["exploring"][role] = window[1]
        if self.verbose >= 2:
            print(f"IEE {role}: exploration from gradient step {window[0]} to {window[1]}")

    def _save(self, role: str, optimizer: torch.optim.Optimizer) -> None:
        saved = []
        active = self.state["active"]
        for net in self.enforcer.role_networks(role):
            for layer, mask in zip(net.linears, active[net.name]):
                for param, where in ((layer.weight, mask.to(layer.weight.device)), (layer.bias, None)):
                    if param is None:
                        continue
                    opt_state = {
                        k: v.detach().clone() if isinstance(v, torch.Tensor) else v
                        for k, v in optimizer.state.get(param, {}).items()
                    }
                    saved.append((param, param.detach().clone(), where, opt_state))
        self._saved[role] = saved

    @torch.no_grad()
    def _finish(self, role: str, end: int) -> None:
        state = self.state
        active = state["active"]
        for net in self.enforcer.role_networks(role):
            masks = active.pop(net.name)
            self._unhook_targets(net)
            for layer, mask in zip(net.target_layers, masks):
                layer.weight.mul_(mask.to(layer.weight.device))
            new, counts, grown = [], [], 0
            for i, (layer, mask) in enumerate(zip(net.linears, masks)):
                generator = stream_generator(int(state["seed"]), f"iee/{net.name}", "dst_update", end, i)
                chosen = prune_and_grow(layer.weight, int(mask.sum()), generator)
                grown += int((chosen & ~mask).sum())
                counts.append(int(chosen.sum()))
                new.append(chosen)
            old = self.enforcer.store.get(net.name)
            self.enforcer.update_masks(net.name, [m.to(device=o.device, dtype=o.dtype) for m, o in zip(new, old)])
            self.history.append((end, net.name, counts, grown))
            if self.logger is not None:
                self.logger.record(f"iee/{log_name(net.name)}/grown", grown)
            if self.verbose >= 2:
                print(f"IEE prune-and-grow of {net.name} after gradient step {end}: {grown} weights grown, kept {counts}")
        state["exploring"][role] = 0
        if role == "critic":
            state["updates"] = int(state.get("updates", 0)) + 1
        self.conversion_due = True

    # -- targets -------------------------------------------------------------------------------
    def _hook_targets(self, net: SparseNetwork) -> None:
        self._unhook_targets(net)
        masks = self.state["active"][net.name]
        handles = []
        for layer, mask in zip(net.target_layers, masks):
            handles.append(layer.register_forward_pre_hook(_MaskTarget(mask.to(layer.weight.device))))
        self._hooks[net.name] = handles

    def _unhook_targets(self, net: SparseNetwork) -> None:
        for handle in self._hooks.pop(net.name, []):
            handle.remove()


class _MaskTarget:
    """Forward pre-hook of a target layer during exploration: zero its weights outside the active mask."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask

    @torch.no_grad()
    def __call__(self, module: torch.nn.Module, args: tuple) -> None:
        module.weight.mul_(self.mask)


__all__ = ["Explorer"]
