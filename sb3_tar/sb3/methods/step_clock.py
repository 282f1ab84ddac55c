"""The scaffolding every scheduled mask method shares inside SB3's training loop (GMP, cyclic/SCULPT, IEE).

A scheduled method listens to the :class:`~sb3_tar.sb3.execution.enforcement.MaskEnforcer`'s optimizer pre-step hooks (SAC,
TD3 and TQC take their gradient steps inside ``train()``, where no callback runs). What all of them keep is the same:

- a state dict on the model (``model.<state_attribute>``, saved by ``model.save()``), looked up at every use, so a
  model whose attributes are restored from a checkpoint goes on with the restored state;
- a gradient-step clock in it (``step``, advanced by the critic's pre-step hook) and the planned steps ``T``
  (``total_steps``);
- one listener per policy (``policy.<policy_attribute>``), replacing the one attached before;
- the training-cost integral (``flops_sum``, ``flops_steps``, ``flops_dense``; :func:`training_flops_of_state`).

Each method's listener (:class:`~sb3_tar.sb3.methods.gradual.GradualPruner`,
:class:`~sb3_tar.sb3.methods.cyclic.ScheduleListener`) keeps only what differs: its settings, what it does at a step
and what a step costs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from sb3_tar.sb3.execution.enforcement import MaskEnforcer


def training_flops_of_state(state: dict[str, Any]) -> float:
    """
    Average training FLOPs of a scheduled run relative to the same networks dense, integrated over its gradient
    steps: ``sum_t sum_n cost_n(t) / (steps * sum_n (2 N_n + B_n))``.

    :param state: The run's state dict (``model.sb3_tar_gmp_state``, ``model.sb3_tar_schedule_state``).
    :return: The ratio (1.0 before any gradient step).
    """
    if int(state.get("flops_steps", 0)) == 0 or int(state.get("flops_dense", 0)) == 0:
        return 1.0
    return int(state["flops_sum"]) / (int(state["flops_steps"]) * int(state["flops_dense"]))


class StepClock:
    """
    Base of the scheduled methods' listeners: the state dict on the model, the clock, attaching, the cost integral.

    :param enforcer: The policy's mask enforcer.
    :param model: The SB3 model holding the state dict (``model.<state_attribute>``).
    :param logger: SB3 logger (``None``: none; bind one later).
    :param verbose: 2: print every mask change.
    """

    #: Model attribute holding the state dict (saved with the model).
    state_attribute: ClassVar[str] = ""
    #: Policy attribute holding the attached listener (not saved).
    policy_attribute: ClassVar[str] = ""

    def __init__(self, enforcer: MaskEnforcer, model: Any, logger: Any = None, verbose: int = 0) -> None:
        self.enforcer = enforcer
        self.model = model
        self.logger = logger
        self.verbose = verbose
        #: Set by a mask change: layers may cross the sparse-execution threshold (converted between training calls,
        #: never inside an optimizer step).
        self.conversion_due = True

    @property
    def state(self) -> dict[str, Any]:
        """``model.<state_attribute>``."""
        return getattr(self.model, self.state_attribute)

    @property
    def step(self) -> int:
        """Gradient steps taken so far."""
        return int(self.state["step"])

    @property
    def total_steps(self) -> int:
        """Planned gradient steps ``T``."""
        return int(self.state["total_steps"])

    def set_total_steps(self, total_steps: int) -> None:
        """:param total_steps: Planned gradient steps of the whole run."""
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 0:
            raise ValueError(f"total_steps={total_steps!r} is outside the allowed range [0, inf)")
        self.state["total_steps"] = total_steps

    def tick(self) -> int:
        """Advance the clock by one gradient step (the critic's pre-step hook). :return: The new step."""
        step = self.step + 1
        self.state["step"] = step
        return step

    def add_step_cost(self, cost: int, dense: int) -> None:
        """
        Add one gradient step to the cost integral.

        :param cost: The step's FLOPs per sample, all networks.
        :param dense: The same networks' dense FLOPs per sample.
        """
        state = self.state
        state["flops_sum"] = int(state["flops_sum"]) + cost
        state["flops_dense"] = dense
        state["flops_steps"] = int(state["flops_steps"]) + 1

    @property
    def training_flops(self) -> float:
        """Average training FLOPs so far relative to the dense networks."""
        return training_flops_of_state(self.state)

    def attach(self, policy: torch.nn.Module) -> None:
        """Listen to the enforcer's pre-step hooks, replacing a listener of this kind attached to ``policy`` before."""
        previous = getattr(policy, self.policy_attribute, None)
        if previous is not None:
            previous.detach()
        self.enforcer.pre_step_listeners.append(self)
        object.__setattr__(policy, self.policy_attribute, self)

    def detach(self) -> None:
        """Stop listening."""
        if self in self.enforcer.pre_step_listeners:
            self.enforcer.pre_step_listeners.remove(self)


__all__ = ["StepClock", "training_flops_of_state"]
