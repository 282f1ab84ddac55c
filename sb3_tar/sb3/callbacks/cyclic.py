"""Cyclic sparse training, SCULPT and exploitation-exploration as SB3 callbacks (``docs/method.md``, "Cyclic training
and SCULPT" and "Exploitation-exploration"). Exported from :mod:`sb3_tar.baselines`, :mod:`sb3_tar.cyclic_methods`
and :mod:`sb3_tar`."""

from __future__ import annotations

import warnings
from typing import Any

from sb3_tar.core.cyclic import DEFAULT_CYCLES, DEFAULT_MIN_FACTOR, DEFAULT_WARMUP_FRACTION
from sb3_tar.core.iee import DEFAULT_END_FRACTION, DEFAULT_EXPLORE_STEPS, DEFAULT_INTERVAL
from sb3_tar.sb3.callbacks.sparse import SparseCallback
from sb3_tar.sb3.execution import sparse_execution as sparse_exec
from sb3_tar.sb3.execution.enforcement import attached_enforcer
from sb3_tar.sb3.methods.cyclic import STATE_ATTRIBUTE, ScheduleListener, attached_runner
from sb3_tar.sb3.methods.gradual import GMP_STATE_ATTRIBUTE
from sb3_tar.sb3.methods.rewiring import STATE_ATTRIBUTE as DST_STATE_ATTRIBUTE
from sb3_tar.sb3.methods.rewiring import planned_steps_of
from sb3_tar.sb3.methods.schedules import ScheduleSpec, convert_between_calls, cyclic_spec, iee_spec, sculpt_spec
from sb3_tar.sb3.policies import SparsePolicyMixin
from sb3_tar.sb3.reporting.model_masks import enforcer_of, stored_masks


class _ScheduledCallback(SparseCallback):
    """
    What the three callbacks share: prune the plain policy once (``criterion``, no revival) at the method's starting
    sparsity, keep the schedule in ``model.sb3_tar_schedule_state`` (saved by ``model.save()``; a second ``learn()``
    or a loaded run continues it with the stored settings), attach the runner to the optimizers' hooks, and move
    layers between the sparse kernel and the masked dense path between training calls
    (:func:`~sb3_tar.sb3.methods.schedules.convert_between_calls`). Each callback only makes its
    :class:`~sb3_tar.sb3.methods.schedules.ScheduleSpec` (:mod:`sb3_tar.sb3.methods.schedules`, which validates the settings).

    :param spec: The method and its settings.
    :param seed: Seed of the masks (default: the model's ``seed``, else drawn from torch).
    :param verbose: 0: silent, 1: the per-layer table, 2: also every mask change.
    :param sparse_execution: ``"auto"``, ``True`` or ``False``: sparse layers on the C++ kernel.
    """

    def __init__(self, spec: ScheduleSpec, seed: int | None, verbose: int, sparse_execution: bool | str) -> None:
        super().__init__(seed, verbose)
        self.sparse_execution = sparse_exec.check_option(sparse_execution)
        self.spec = spec
        self.criterion = spec.criterion
        self.sparsities = dict(spec.sparsities)
        self.runner: ScheduleListener | None = None

    # -- training start ------------------------------------------------------------------------
    @property
    def training_flops(self) -> float:
        """Average training FLOPs so far relative to the dense networks (1.0 before any gradient step)."""
        return self.runner.training_flops if self.runner is not None else 1.0

    def _on_training_start(self) -> None:
        policy = self.model.policy
        name = type(self).__name__
        if isinstance(policy, SparsePolicyMixin) or any(
            isinstance(getattr(self.model, a, None), dict) for a in (DST_STATE_ATTRIBUTE, GMP_STATE_ATTRIBUTE)
        ):
            raise ValueError(f"{name} trains its own masks: train a fresh MlpPolicy model with this callback")
        state = getattr(self.model, STATE_ATTRIBUTE, None)
        if isinstance(state, dict):
            if state.get("method") != self.method:
                raise ValueError(f"{name}: the model continues a {state.get('method')!r} run, not {self.method!r}")
            runner = self._resume(policy, state)
        elif attached_enforcer(policy) is not None or stored_masks(self.model) is not None:
            raise ValueError(
                f"{name}: the model already has masks and no {self.method} state: train a fresh model with this callback"
            )
        else:
            runner = self._start()
        runner.logger = self.logger
        runner.verbose = max(runner.verbose, self.verbose)
        self.runner = runner
        self._convert()

    def _start(self) -> ScheduleListener:
        spec = self.spec
        total = planned_steps_of(self.model)  # may refuse the setup: nothing is modified before
        seed = self._mask_seed()
        settings = spec.settings
        self._sparsify_model(spec.configs(), seed, self.sparse_execution, **{self.method: settings})
        setattr(self.model, STATE_ATTRIBUTE, spec.new_state(total, seed, self.sparse_execution))
        runner = spec.runner(enforcer_of(self.model), self.model)
        runner.record_kept()
        runner.conversion_due = False  # _sparsify_model put the sparse layers on the kernel already
        runner.attach(self.model.policy)
        self._say(f"{self.method} from a {self.criterion} mask (seed {seed}), {total} planned gradient steps, {settings}")
        self._print_reports()
        return runner

    def _resume(self, policy: Any, state: dict[str, Any]) -> ScheduleListener:
        stored = self.spec.stored_settings(state)
        if stored is not None:
            warnings.warn(
                f"{type(self).__name__}: the model continues its {self.method} run with the stored settings {stored}; "
                "this callback's settings are ignored",
                stacklevel=3,
            )
        enforcer = enforcer_of(self.model)
        if enforcer is None:
            raise ValueError(f"The model has a {self.method} state ({STATE_ATTRIBUTE}) but no masks (weight_mask buffers)")
        runner = attached_runner(policy)
        if runner is None or runner.enforcer is not enforcer or runner.model is not self.model:
            runner = self.spec.runner(enforcer, self.model)
            runner.attach(policy)
        if runner.step == 0:
            runner.set_total_steps(planned_steps_of(self.model))
        self._say(f"continuing {self.method} at gradient step {runner.step} of {runner.total_steps}")
        return runner

    # -- sparse execution ----------------------------------------------------------------------
    def _convert(self) -> None:
        """Between training calls: the masked dense path where the method needs it, the kernel where it is due."""
        if self.runner is None:
            return
        added = convert_between_calls(self.model, self.runner)
        if added:
            self.sparse_layers = list(self.model.policy.sparse_layers)
            self._say(f"at gradient step {self.runner.step}, sparse execution (C++ kernel) for {', '.join(added)}")

    def _on_step(self) -> bool:
        self._convert()
        return True

    def _on_rollout_end(self) -> None:
        self._convert()


class CyclicCallback(_ScheduledCallback):
    """
    Static sparse training with a cyclic learning rate (Gadhikar et al. 2024), on any SAC/TD3/TQC model.

    On the first training start the actor and every Q-network are pruned once by ``criterion`` to ``sparsity`` (no
    revival; online and target masked, as with :class:`~sb3_tar.callbacks.TARCallback`). With ``T`` the gradient
    steps the first ``learn()`` plans, the learning rate of the actor and critic optimizers at gradient step ``t`` is
    the model's own rate times the factor of :class:`sb3_tar.core.cyclic.CyclicSchedule` (``cycles`` cycles, each a
    linear warm-up over ``warmup_fraction`` of it from ``min_factor`` to 1, then a cosine or linear decay back to
    ``min_factor``). The schedule lives in ``model.sb3_tar_schedule_state``, saved with the model.

    :param sparsity: Sparsity of actor and critic, in ``[0, 1)``.
    :param actor_sparsity: Sparsity of the actor (default: ``sparsity``).
    :param critic_sparsity: Sparsity of each Q-network (default: ``sparsity``).
    :param criterion: The mask's criterion: ``"magnitude"`` (default), ``"magnitude_layer"``, ``"erk"``, ``"random"``
        or ``"synflow"``.
    :param cycles: Number of cycles ``>= 1`` (default 5).
    :param warmup_fraction: Warm-up fraction of each cycle in ``[0, 1)`` (default 0.1).
    :param min_factor: Lowest learning rate as a fraction of the model's, in ``[0, 1]`` (default 0.0).
    :param shape: ``"cosine"`` (default) or ``"linear"`` decay.
    :param seed: Seed of the mask (default: the model's ``seed``, else drawn from torch).
    :param verbose: 0: silent, 1: the per-layer table, 2: also every mask change.
    :param sparse_execution: ``"auto"`` (default), ``True`` or ``False``: sparse layers on the C++ kernel.
    """

    method = "cyclic"

    def __init__(
        self,
        sparsity: float | None = 0.9,
        actor_sparsity: float | None = None,
        critic_sparsity: float | None = None,
        criterion: str = "magnitude",
        cycles: int = DEFAULT_CYCLES,
        warmup_fraction: float = DEFAULT_WARMUP_FRACTION,
        min_factor: float = DEFAULT_MIN_FACTOR,
        shape: str = "cosine",
        seed: int | None = None,
        verbose: int = 0,
        sparse_execution: bool | str = "auto",
    ) -> None:
        spec = cyclic_spec(sparsity, actor_sparsity, critic_sparsity, criterion, cycles, warmup_fraction, min_factor, shape)
        super().__init__(spec, seed, verbose, sparse_execution)


class SculptCallback(_ScheduledCallback):
    """
    SCULPT-ing (Gadhikar et al. 2024): cyclic training of a mask at a lower starting sparsity, one magnitude prune
    to the target sparsity, then retraining, on any SAC/TD3/TQC model.

    The actor and every Q-network are pruned by ``criterion`` to ``start_sparsity`` and trained with the cyclic
    learning rate of :class:`CyclicCallback`. At the first gradient step of cycle ``prune_cycle``
    (``t_p = prune_cycle * T // cycles + 1``) each network is pruned once to exactly ``round((1 - sparsity) N)``
    weights, those of largest ``|w|`` among the weights it keeps (``magnitude_scope="global"``: one ranking per network;
    ``"layer"``: each layer at the target density), online and target (the actor in its next optimizer step); the
    remaining cycles retrain the pruned mask with the same cyclic schedule.

    :param sparsity: Target sparsity of actor and critic, in ``[0, 1)``.
    :param start_sparsity: Starting sparsity of both roles, in ``[0, sparsity]`` (default: twice the target density,
        ``1 - min(1, 2 (1 - sparsity))``; 0.8 for 0.9).
    :param actor_sparsity: Target sparsity of the actor (default: ``sparsity``).
    :param critic_sparsity: Target sparsity of each Q-network (default: ``sparsity``).
    :param criterion: The starting mask's criterion (default ``"magnitude"``).
    :param cycles: Number of cycles ``>= 2`` (default 5).
    :param prune_cycle: Cycles before the prune, in ``[1, cycles - 1]`` (default ``cycles - 1``: one retraining
        cycle).
    :param magnitude_scope: ``"global"`` (default) or ``"layer"`` (the name ``TARCallback`` and ``GMPCallback`` use).
    :param warmup_fraction: Warm-up fraction of each cycle (default 0.1).
    :param min_factor: Lowest learning rate as a fraction of the model's (default 0.0).
    :param shape: ``"cosine"`` (default) or ``"linear"``.
    :param seed: Seed of the starting mask and of the prune's tie-breaking.
    :param verbose: 0: silent, 1: the per-layer table, 2: also the prune.
    :param sparse_execution: ``"auto"`` (default), ``True`` or ``False``.
    """

    method = "sculpt"

    def __init__(
        self,
        sparsity: float | None = 0.9,
        start_sparsity: float | None = None,
        actor_sparsity: float | None = None,
        critic_sparsity: float | None = None,
        criterion: str = "magnitude",
        cycles: int = DEFAULT_CYCLES,
        prune_cycle: int | None = None,
        magnitude_scope: str = "global",
        warmup_fraction: float = DEFAULT_WARMUP_FRACTION,
        min_factor: float = DEFAULT_MIN_FACTOR,
        shape: str = "cosine",
        seed: int | None = None,
        verbose: int = 0,
        sparse_execution: bool | str = "auto",
    ) -> None:
        spec = sculpt_spec(
            sparsity,
            start_sparsity,
            actor_sparsity,
            critic_sparsity,
            criterion,
            cycles,
            prune_cycle,
            magnitude_scope,
            warmup_fraction,
            min_factor,
            shape,
        )
        super().__init__(spec, seed, verbose, sparse_execution)
        self.start_sparsities = dict(spec.start_sparsities)


class IEECallback(_ScheduledCallback):
    """
    Iterative exploitation-exploration ("enhanced saliency", Sun et al. 2025) on any SAC/TD3/TQC model.

    The actor and every Q-network are pruned by ``criterion`` to ``sparsity``. Every ``update_interval`` gradient steps,
    until ``end_fraction`` of the planned steps, an exploration phase of ``explore_steps`` gradient steps reactivates
    every pruned weight from zero (weights and optimizer state) and trains only those, the active weights, biases
    and their optimizer state held bit for bit; then each layer keeps exactly its count of weights of largest ``|w|``
    over both sets (:mod:`sb3_tar.sb3.methods.iee`). Targets stay masked with the active mask throughout. Between phases the
    layers below the density threshold run on the sparse kernel.

    :param sparsity: Sparsity of actor and critic, in ``[0, 1)``.
    :param actor_sparsity: Sparsity of the actor (default: ``sparsity``).
    :param critic_sparsity: Sparsity of each Q-network (default: ``sparsity``).
    :param criterion: The initial mask's criterion (default ``"erk"``, as SET/RigL here).
    :param update_interval: Gradient steps between prune-and-grow steps, ``>= 2`` (default 1000, RigL's here; the
        name ``DSTCallback`` and ``GMPCallback`` use).
    :param explore_steps: Gradient steps of each exploration phase, in ``[1, update_interval - 1]`` (default 50).
    :param end_fraction: Fraction of the planned gradient steps after which the mask is fixed (default 0.8).
    :param seed: Seed of the initial mask and of the tie-breaking.
    :param verbose: 0: silent, 1: the per-layer table, 2: also every phase.
    :param sparse_execution: ``"auto"`` (default), ``True`` or ``False``.
    """

    method = "iee"

    def __init__(
        self,
        sparsity: float | None = 0.9,
        actor_sparsity: float | None = None,
        critic_sparsity: float | None = None,
        criterion: str = "erk",
        update_interval: int = DEFAULT_INTERVAL,
        explore_steps: int = DEFAULT_EXPLORE_STEPS,
        end_fraction: float = DEFAULT_END_FRACTION,
        seed: int | None = None,
        verbose: int = 0,
        sparse_execution: bool | str = "auto",
    ) -> None:
        spec = iee_spec(sparsity, actor_sparsity, critic_sparsity, criterion, update_interval, explore_steps, end_fraction)
        super().__init__(spec, seed, verbose, sparse_execution)
