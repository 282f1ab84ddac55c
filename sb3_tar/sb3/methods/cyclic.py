"""Cyclic learning rates and SCULPT's single prune inside SB3's training loop (thin glue over
:mod:`sb3_tar.core.cyclic`).

As for GMP (:mod:`sb3_tar.sb3.methods.gradual`), everything happens in the
:class:`~sb3_tar.sb3.execution.enforcement.MaskEnforcer`'s optimizer pre-step hooks, since SAC/TD3/TQC take their
gradient steps inside ``train()``:

- **Clock.** Every critic optimizer step is one gradient step ``t``.
- **Learning rate.** Before each actor and critic optimizer step, every parameter group of that optimizer gets
  ``lr = base * f_t``: ``base`` is what SB3's own schedule gives now (``model.lr_schedule`` at the model's
  progress), ``f_t`` the cyclic factor of gradient step ``t``. SAC/TQC's entropy-coefficient optimizer keeps SB3's
  rate (it trains no network weight).
- **SCULPT.** At gradient step ``t_p`` every Q-network is pruned in the critic's hook, before the optimizer step,
  to exactly ``K = round((1 - s) N)`` weights of largest ``|w|`` among those it keeps (one ranking per network, or
  per layer); the actor is pruned the same way in its own next pre-step hook. The enforcer zeros the pruned
  weights online and in the targets. Layers already on the sparse kernel shrink in place
  (:func:`~sb3_tar.sb3.methods.gradual.shrink_compressed`); layers that fall below the density threshold move onto it
  between two training calls (the callback does it).

The schedule's settings and position live in ``model.sb3_tar_schedule_state`` (saved by ``model.save()``, so an
exact checkpoint resumes it), with the run's training cost (:func:`training_flops_of_state`).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import torch

from sb3_tar.core.cyclic import CyclicSchedule, SculptPlan
from sb3_tar.core.gmp import final_kept, final_layer_counts, flops_per_sample
from sb3_tar.core.gmp import prune_step_masks as core_prune_step_masks
from sb3_tar.core.masks import is_compressed, matrix_shape
from sb3_tar.core.streams import stream_generator
from sb3_tar.sb3.execution.enforcement import MaskEnforcer
from sb3_tar.sb3.execution.sparse_execution import register_owner
from sb3_tar.sb3.methods.gradual import shrink_compressed
from sb3_tar.sb3.methods.step_clock import StepClock
from sb3_tar.sb3.networks import log_name

#: Model attribute holding a cyclic, SCULPT or exploitation-exploration run's settings and position (saved).
STATE_ATTRIBUTE = "sb3_tar_schedule_state"
_ATTR = "_sb3_tar_schedule_runner"


def new_state(method: str, total_steps: int, seed: int, **settings: Any) -> dict[str, Any]:
    """
    :param method: ``"cyclic"``, ``"sculpt"`` or ``"iee"``.
    :param total_steps: Planned gradient steps ``T``.
    :param seed: Seed of the tie-breaking draws.
    :param settings: The method's settings (JSON-like values).
    :return: A fresh state dict (store it as ``model.sb3_tar_schedule_state``).
    """
    return dict(settings) | {
        "method": method,
        "step": 0,
        "total_steps": int(total_steps),
        "seed": int(seed),
        "flops_sum": 0,
        "flops_steps": 0,
        "flops_dense": 0,
    }


class ScheduleListener(StepClock):
    """
    What the cyclic/SCULPT runner and the exploration runner share beyond :class:`~sb3_tar.sb3.methods.step_clock.StepClock`:
    the per-network sizes and kept counts, and a step's cost from them.

    :param enforcer: The policy's mask enforcer.
    :param model: The SB3 model; its ``sb3_tar_schedule_state`` dict is read and written in place, looked up at
        every use (a model restored from a checkpoint goes on with the restored state).
    :param logger: SB3 logger (``None``: none; bind one later).
    :param verbose: 2: print every mask change.
    """

    state_attribute = STATE_ATTRIBUTE
    policy_attribute = _ATTR

    def __init__(self, enforcer: MaskEnforcer, model: Any, logger: Any = None, verbose: int = 0) -> None:
        super().__init__(enforcer, model, logger, verbose)
        #: Per network: weights ``N`` and bias entries ``B``.
        self.sizes: dict[str, tuple[int, int]] = {}
        for net in enforcer.networks:
            total = sum(layer.weight.numel() if not is_compressed(layer) else layer.mask.numel() for layer in net.linears)
            bias = sum(matrix_shape(layer)[0] for layer in net.linears if layer.bias is not None)
            self.sizes[net.name] = (total, bias)
        #: The ``start_time`` of the ``learn()`` that planned ``T`` (a ``SparsePolicy`` plans once per ``learn()``).
        self.planned_for: int | None = None

    def kept_now(self, name: str) -> int:
        """:return: Weights network ``name``'s mask keeps now."""
        return sum(int(m.sum()) for m in self.enforcer.store.get(name))

    def count_flops(self, dense: bool = False) -> None:
        """
        Add one gradient step's cost: ``sum_n (2 K_n + B_n)`` for the kept counts now (``dense``: ``2 N_n + B_n``).

        :param dense: Whether every weight is trained at this step (an exploration step).
        """
        kept = self.state.setdefault("kept", {})
        cost = 0
        for name, (total, bias) in self.sizes.items():
            cost += flops_per_sample(total if dense else int(kept.get(name, total)), bias)
        self.add_step_cost(cost, sum(flops_per_sample(total, bias) for total, bias in self.sizes.values()))

    def record_kept(self) -> None:
        """Store every network's kept count in the state (what :meth:`count_flops` reads)."""
        self.state["kept"] = {net.name: self.kept_now(net.name) for net in self.enforcer.networks}


class CyclicRunner(ScheduleListener):
    """
    Sets the cyclic learning rate before every actor and critic step and, for SCULPT, prunes once.

    :param enforcer: The policy's mask enforcer.
    :param model: The SB3 model holding ``sb3_tar_schedule_state`` (method ``"cyclic"`` or ``"sculpt"``).
    :param logger: SB3 logger.
    :param verbose: 2: print the prune.
    """

    def __init__(self, enforcer: MaskEnforcer, model: Any, logger: Any = None, verbose: int = 0) -> None:
        super().__init__(enforcer, model, logger, verbose)
        state = self.state
        self.schedule = CyclicSchedule(**state["schedule"])
        self.plan = (
            SculptPlan(self.schedule, int(state["prune_cycle"]), str(state["scope"])) if state["method"] == "sculpt" else None
        )
        #: ``(step, network, kept)`` of every prune of this process.
        self.history: list[tuple[int, str, int]] = []

    @property
    def prune_step(self) -> int | None:
        """SCULPT's prune step ``t_p`` (``None`` for plain cyclic training)."""
        return None if self.plan is None else self.plan.prune_step(self.total_steps)

    def factor(self, step: int) -> float:
        """:return: The cyclic factor of gradient step ``step`` (``>= 1``)."""
        return self.schedule.factor(max(step, 1), self.total_steps)

    def base_learning_rate(self) -> float:
        """:return: What SB3's own learning-rate schedule gives at the model's current progress."""
        return float(self.model.lr_schedule(self.model._current_progress_remaining))

    def __call__(self, role: str, optimizer: torch.optim.Optimizer) -> None:
        """Pre-step listener: clock, SCULPT's prune when due, the learning rate of this step, its cost."""
        state = self.state
        if role == "critic":
            step = self.tick()
            if self.plan is not None and not int(state["critic_pruned"]) and step >= self.prune_step:
                self._prune_role("critic", step, optimizer)
                state["critic_pruned"] = step
            self.count_flops()
        elif role == "actor":
            step = self.step
            if self.plan is not None and int(state["critic_pruned"]) and not int(state["actor_pruned"]):
                self._prune_role("actor", step, optimizer)
                state["actor_pruned"] = step
        else:
            return
        factor = self.factor(step)
        lr = self.base_learning_rate() * factor
        for group in optimizer.param_groups:
            group["lr"] = lr
        if self.logger is not None and role == "critic":
            self.logger.record("cyclic/lr_factor", factor)

    @torch.no_grad()
    def _prune_role(self, role: str, step: int, optimizer: torch.optim.Optimizer) -> None:
        networks = self.enforcer.role_networks(role)
        sparsity = float(self.state["sparsities"][role])
        for net in networks:
            total = self.sizes[net.name][0]
            n_keep = final_kept(total, sparsity)
            masks = self.enforcer.store.get(net.name)
            shapes = [matrix_shape(m) for m in masks]
            counts = final_layer_counts(self.plan.scope, shapes, n_keep)
            weights = [layer.weight for layer in net.linears]
            generator = stream_generator(int(self.state["seed"]), f"sculpt/{net.name}", "dst_update", step)
            new = core_prune_step_masks(weights, masks, n_keep, Fraction(1), counts, generator)
            for i, layer in enumerate(net.linears):
                if is_compressed(layer):
                    targets = [net.target_layers[i]] if net.target_layers else []
                    shrink_compressed(layer, new[i], optimizer, targets)
            self.enforcer.update_masks(net.name, [m.to(device=old.device, dtype=old.dtype) for m, old in zip(new, masks)])
            self.history.append((step, net.name, n_keep))
            if self.logger is not None:
                self.logger.record(f"sculpt/{log_name(net.name)}/kept", n_keep)
            if self.verbose >= 2:
                print(f"SCULPT prune of {net.name} at gradient step {step}: {n_keep} of {total} weights kept")
        if any(is_compressed(layer) for net in networks for layer in net.linears):
            register_owner(optimizer, self.enforcer.optimizer_networks(role, optimizer))
        self.record_kept()
        self.conversion_due = True


def attached_runner(policy: torch.nn.Module) -> ScheduleListener | None:
    """:return: The cyclic/SCULPT/exploration runner attached to ``policy``, if any."""
    return getattr(policy, _ATTR, None)


__all__ = ["STATE_ATTRIBUTE", "CyclicRunner", "ScheduleListener", "attached_runner", "new_state"]
