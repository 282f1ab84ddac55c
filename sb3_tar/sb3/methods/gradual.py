"""Gradual magnitude pruning inside SB3's training loop (thin SB3 glue over :mod:`sb3_tar.core.gmp`).

Like SET/RigL (:mod:`sb3_tar.sb3.methods.rewiring`), a :class:`GradualPruner` listens to the
:class:`~sb3_tar.sb3.execution.enforcement.MaskEnforcer`'s optimizer pre-step hooks, since SAC/TD3/TQC take their
gradient steps inside ``train()`` where no callback runs:

- **Clock.** Every critic optimizer step is one gradient step; the critic's pre-step hook advances ``t``.
- **Critic.** At a prune step every Q-network is pruned in that hook, before the optimizer step; the
  enforcer zeros the newly pruned weights online and in ``critic_target``.
- **Actor.** The actor is pruned in its own optimizer's next pre-step hook (after the actor loss's backward
  pass, which still needs the weights it read) to the kept count of the latest prune step; with TD3 that is
  the next delayed actor step, and ``actor_target`` is masked with it.
- Between prune steps the enforcer's post-step hooks keep the pruned weights at exactly ``0.0``.
- Once a layer's density falls below the sparse-execution threshold, the callback moves it onto the sparse kernel
  between two training calls (:mod:`sb3_tar.sb3.execution.sparse_execution`); later prunes of such a layer shrink its kept
  values and their optimizer state in place (:func:`shrink_compressed`).

The schedule's position and settings live in a dict on the model, ``model.sb3_tar_gmp_state``, which
``model.save()`` stores with the model (so does any checkpoint made with ``model.save()``): a run loaded from
such a file and trained on with a :class:`~sb3_tar.baselines.GMPCallback` continues the schedule where it was.
The same dict accumulates the run's training cost (:func:`training_flops_of_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sb3_tar.core.gmp import GMPConfig, cubic_progress, final_kept, final_layer_counts, flops_per_sample, kept_at
from sb3_tar.core.gmp import prune_step_masks as core_prune_step_masks
from sb3_tar.core.masks import is_compressed, matrix_shape
from sb3_tar.core.streams import stream_generator
from sb3_tar.sb3.execution.enforcement import MaskEnforcer
from sb3_tar.sb3.execution.sparse_execution import register_owner
from sb3_tar.sb3.methods.step_clock import StepClock, training_flops_of_state
from sb3_tar.sb3.networks import SparseNetwork, log_name
from sb3_tar.sb3.reporting.report_logging import record_and_dump

#: Model attribute holding a GMP run's settings and position (saved with the model).
GMP_STATE_ATTRIBUTE = "sb3_tar_gmp_state"
_ATTR = "_sb3_tar_gmp_pruner"
#: Integer keys of the state (besides the settings).
STATE_KEYS: tuple[str, ...] = ("step", "total_steps", "actor_step", "seed", "flops_sum", "flops_steps", "flops_dense")


def new_state(config: GMPConfig, sparsities: dict[str, float], total_steps: int, seed: int) -> dict[str, Any]:
    """
    :param config: The schedule's settings.
    :param sparsities: Final sparsity per role (``actor``, ``critic``).
    :param total_steps: Planned gradient steps ``T``.
    :param seed: Seed of the tie-breaking draws.
    :return: A fresh state dict (store it as ``model.sb3_tar_gmp_state``).
    """
    return config.to_dict() | {
        "sparsities": dict(sparsities),
        "step": 0,
        "total_steps": int(total_steps),
        "actor_step": 0,
        "seed": int(seed),
        "flops_sum": 0,
        "flops_steps": 0,
        "flops_dense": 0,
    }


def config_of_state(state: dict[str, Any]) -> GMPConfig:
    """:return: The settings stored in a state dict."""
    return GMPConfig(**{key: state[key] for key in GMPConfig.__dataclass_fields__})


@dataclass
class _Plan:
    """Per-network constants of the schedule."""

    total: int
    final: int
    bias_ops: int
    final_counts: list[int] | None


class GradualPruner(StepClock):
    """
    Runs gradual magnitude pruning on a policy holding masks, driven by its optimizers' pre-step hooks.

    :param enforcer: The policy's mask enforcer (its store holds the masks that shrink).
    :param model: The SB3 model; its ``sb3_tar_gmp_state`` dict is read and written in place, looked up at every use
        (so a model whose attributes are restored from a checkpoint goes on with the restored state).
    :param logger: SB3 logger receiving the ``gmp/...`` values of every prune (``None``: none; bind one later): each
        prune of a role is dumped at once, as a row of its own (:func:`~sb3_tar.sb3.reporting.report_logging.record_and_dump`).
    :param verbose: 2: print every prune step.
    """

    state_attribute = GMP_STATE_ATTRIBUTE
    policy_attribute = _ATTR

    def __init__(self, enforcer: MaskEnforcer, model: Any, logger: Any = None, verbose: int = 0) -> None:
        super().__init__(enforcer, model, logger, verbose)
        state = self.state
        self.config = config_of_state(state)
        self.plans: dict[str, _Plan] = {}
        for net in enforcer.networks:
            shapes = [matrix_shape(layer) for layer in net.linears]
            total = sum(o * i for o, i in shapes)
            final = final_kept(total, float(state["sparsities"][net.role]))
            bias_ops = sum(matrix_shape(layer)[0] for layer in net.linears if layer.bias is not None)
            self.plans[net.name] = _Plan(total, final, bias_ops, final_layer_counts(self.config.scope, shapes, final))
        #: ``(step, network, kept)`` of every prune of this process, in order.
        self.history: list[tuple[int, str, int]] = []

    # -- schedule ---------------------------------------------------------------------------
    @property
    def window(self) -> tuple[int, int]:
        """``(t0, t1)``."""
        return self.config.window(self.total_steps)

    @property
    def finished(self) -> bool:
        """Whether every network has been pruned to its final count (the mask is fixed from now on); never before
        the run's first gradient step (a run planned with ``T = 0`` plans again on its next ``learn()``)."""
        t1 = self.window[1]
        actor_done = int(self.state["actor_step"]) >= t1 or not self.enforcer.role_networks("actor")  # DQN: no actor
        return self.step >= 1 and self.total_steps > 0 and self.step >= t1 and actor_done

    def kept_at_step(self, name: str, step: int) -> int:
        """:return: The kept count of network ``name`` after the latest prune step ``<= step``."""
        plan = self.plans[name]
        t0, t1 = self.window
        due = self.config.last_prune_step(step, self.total_steps)
        return kept_at(cubic_progress(due, t0, t1), plan.total, plan.final) if due > 0 else plan.total

    # -- hooks ------------------------------------------------------------------------------
    def __call__(self, role: str, optimizer: torch.optim.Optimizer) -> None:
        """Pre-step listener: advance the clock on critic steps, prune when due, count the step's cost."""
        if role == "critic":
            step = self.tick()
            if self.config.is_prune_step(step, self.total_steps):
                self._prune_role("critic", step, optimizer)
            self.add_step_cost(
                sum(flops_per_sample(self.kept_at_step(name, step), plan.bias_ops) for name, plan in self.plans.items()),
                sum(flops_per_sample(plan.total, plan.bias_ops) for plan in self.plans.values()),
            )
        elif role == "actor":
            due = self.config.last_prune_step(self.step, self.total_steps)
            if due > int(self.state["actor_step"]):
                self._prune_role("actor", due, optimizer)
                self.state["actor_step"] = due

    # -- the prune --------------------------------------------------------------------------
    @torch.no_grad()
    def _prune_role(self, role: str, step: int, optimizer: torch.optim.Optimizer) -> None:
        t0, t1 = self.window
        progress = cubic_progress(step, t0, t1)
        self.conversion_due = True
        networks = self.enforcer.role_networks(role)
        values: dict[str, Any] = {}
        for net in networks:
            kept = self._prune(net, step, progress, optimizer)
            values[f"gmp/{log_name(net.name)}/kept"] = kept
            values[f"gmp/{log_name(net.name)}/sparsity"] = 1 - kept / self.plans[net.name].total
        if any(is_compressed(layer) for net in networks for layer in net.linears):
            # the layout hooks find the new values parameters (shrink_compressed)
            register_owner(optimizer, self.enforcer.optimizer_networks(role, optimizer))
        if self.logger is not None:  # a row of its own at every prune step (SB3 keeps only a key's last value per dump)
            values["gmp/step"] = step
            record_and_dump(self.logger, values, int(getattr(self.model, "num_timesteps", 0)))
        if self.verbose >= 2:
            names = {net.name for net in self.enforcer.role_networks(role)}
            counts = ", ".join(f"{n}={k}" for s, n, k in self.history if s == step and n in names)
            print(f"GMP prune at gradient step {step} (progress {float(progress):.4f}): kept {counts}")

    def _prune(self, net: SparseNetwork, step: int, progress: Any, optimizer: torch.optim.Optimizer) -> int:
        plan = self.plans[net.name]
        masks = self.enforcer.store.get(net.name)
        n_keep = kept_at(progress, plan.total, plan.final)
        generator = stream_generator(int(self.state["seed"]), f"gmp/{net.name}", "dst_update", step)
        weights = [layer.weight for layer in net.linears]
        new = core_prune_step_masks(weights, masks, n_keep, progress, plan.final_counts, generator)
        for i, layer in enumerate(net.linears):  # layers already on the sparse kernel shrink their kept values
            if is_compressed(layer):
                targets = [net.target_layers[i]] if net.target_layers else []
                shrink_compressed(layer, new[i], optimizer, targets)
        self.enforcer.update_masks(net.name, [m.to(device=old.device, dtype=old.dtype) for m, old in zip(new, masks)])
        self.history.append((step, net.name, n_keep))
        return n_keep


@torch.no_grad()
def shrink_compressed(
    layer: torch.nn.Module, mask: torch.Tensor, optimizer: torch.optim.Optimizer, targets: list[torch.nn.Module]
) -> None:
    """
    Prune a layer that runs on the sparse kernel (a :class:`~sb3_tar.kernels.SparseLinear`) to ``mask``, a subset of
    its mask: its kept values and the optimizer's per-value state (Adam's moments, ...) are gathered at the new kept
    positions, and its target layers get the same mask.

    :param layer: The online layer.
    :param mask: Its new boolean mask.
    :param optimizer: The optimizer stepping ``layer.values`` (its layout hooks learn of the new parameter from
        :func:`~sb3_tar.sb3.execution.sparse_execution.register_owner`, which the caller runs once per prune step).
    :param targets: Its target layers (also on the kernel).
    """
    from sb3_tar.kernels import dense_to_values, values_to_dense

    new = mask.to(device=layer.values.device).bool()
    old = layer.mask
    if torch.equal(new, old):
        return
    previous = layer.values
    state = optimizer.state.pop(previous, None)
    if state:
        for key, value in list(state.items()):
            if isinstance(value, torch.Tensor) and value.shape == previous.shape:
                state[key] = dense_to_values(values_to_dense(value, old), new)
    # the gradient of the step under way (a prune runs in the optimizer's pre-step hook): the weights still kept take
    # their step, as on the masked dense path
    grad = None if previous.grad is None else dense_to_values(values_to_dense(previous.grad, old), new)
    for module in (layer, *targets):
        module.set_mask(new.to(module.values.device))
        # A new Parameter: autograd caches a leaf's gradient accumulator with the leaf's shape, so a Parameter whose
        # data changed length could not receive gradients of the new length.
        module.values = torch.nn.Parameter(module.values.detach().clone(), requires_grad=module.values.requires_grad)
    layer.values.grad = grad
    for group in optimizer.param_groups:
        group["params"] = [layer.values if p is previous else p for p in group["params"]]
    if state:
        optimizer.state[layer.values] = state


def attached_pruner(policy: torch.nn.Module) -> GradualPruner | None:
    """:return: The :class:`GradualPruner` attached to ``policy``, if any."""
    return getattr(policy, _ATTR, None)


__all__ = [
    "GMP_STATE_ATTRIBUTE",
    "GradualPruner",
    "attached_pruner",
    "config_of_state",
    "new_state",
    "shrink_compressed",
    "training_flops_of_state",
]
