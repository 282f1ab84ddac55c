"""What a cyclic, SCULPT or exploitation-exploration run needs, whoever attaches it (thin SB3 glue).

The callbacks of :mod:`sb3_tar.cyclic_methods` and the ``SparsePolicy`` option ``schedule_method`` start the same
runs from the same settings:

- :class:`ScheduleSpec`, made by :func:`cyclic_spec`, :func:`sculpt_spec` or :func:`iee_spec` (which validate every
  setting): the starting masks' configuration (``criterion``, no revival, at the method's starting sparsity), the
  settings stored in ``model.sb3_tar_schedule_state``, the fresh state and the runner
  (:class:`~sb3_tar.sb3.methods.cyclic.CyclicRunner` or :class:`~sb3_tar.sb3.methods.iee.Explorer`).
- :func:`convert_between_calls`: between two training calls, the masked dense path where the method needs it (IEE's
  exploration trains every weight) and the sparse kernel where a mask change made layers sparse enough.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sb3_tar.core.config import SparsityConfig, check_number
from sb3_tar.core.cyclic import (
    DEFAULT_CYCLES,
    DEFAULT_MIN_FACTOR,
    DEFAULT_WARMUP_FRACTION,
    CyclicSchedule,
    SculptPlan,
    sculpt_start_sparsity,
)
from sb3_tar.core.iee import DEFAULT_END_FRACTION, DEFAULT_EXPLORE_STEPS, DEFAULT_INTERVAL, IEEConfig
from sb3_tar.core.masks import is_compressed
from sb3_tar.sb3.execution import sparse_execution as sparse_exec
from sb3_tar.sb3.execution.enforcement import MaskEnforcer
from sb3_tar.sb3.methods.cyclic import STATE_ATTRIBUTE, CyclicRunner, ScheduleListener, attached_runner, new_state
from sb3_tar.sb3.methods.iee import Explorer
from sb3_tar.sb3.methods.pruning import role_configs

#: The methods, in the order the docs and the errors name them.
SCHEDULE_METHODS: tuple[str, ...] = ("cyclic", "sculpt", "iee")


@dataclass(frozen=True)
class ScheduleSpec:
    """
    One run's method and settings, validated.

    :param method: ``"cyclic"``, ``"sculpt"`` or ``"iee"``.
    :param sparsities: Target sparsity per role (``actor``, ``critic``).
    :param start_sparsities: Sparsity of the starting masks per role (SCULPT's is lower; the others' the target).
    :param criterion: The starting masks' criterion.
    :param settings: The method's settings, stored in the state (compared when a run is continued).
    :param position: The method's own position keys of a fresh state (SCULPT's prune flags, IEE's phases).
    """

    method: str
    sparsities: dict[str, float]
    start_sparsities: dict[str, float]
    criterion: str
    settings: dict[str, Any]
    position: dict[str, Any] = field(default_factory=dict)

    def configs(self) -> dict[str, SparsityConfig]:
        """:return: The starting masks' configuration per role (``criterion`` at the starting sparsity, no revival)."""
        starts = self.start_sparsities
        return role_configs(None, starts["actor"], starts["critic"], criterion=self.criterion, revival="none")

    def new_state(self, total_steps: int, seed: int, sparse_execution: bool | str) -> dict[str, Any]:
        """
        :param total_steps: Planned gradient steps ``T``.
        :param seed: Seed of the masks and of the tie-breaking draws.
        :param sparse_execution: The run's ``sparse_execution`` option.
        :return: A fresh ``model.sb3_tar_schedule_state``.
        """
        state = new_state(self.method, total_steps, seed, sparsities=dict(self.sparsities), **self.settings)
        state.update({key: (dict(value) if isinstance(value, dict) else value) for key, value in self.position.items()})
        state["sparse_execution"] = sparse_exec.option_code(sparse_execution)
        return state

    def stored_settings(self, state: dict[str, Any]) -> dict[str, Any] | None:
        """
        :param state: A stored ``model.sb3_tar_schedule_state`` of this method.
        :return: Its settings where they differ from this spec's (``None`` where they are the same).
        """
        stored = {key: state.get(key) for key in self.settings}
        return None if stored == self.settings and state["sparsities"] == self.sparsities else stored

    def runner(self, enforcer: MaskEnforcer, model: Any) -> ScheduleListener:
        """:return: The runner of a model holding this method's state (``model.sb3_tar_schedule_state``)."""
        return Explorer(enforcer, model) if self.method == "iee" else CyclicRunner(enforcer, model)


def _targets(sparsity: float | None, actor: float | None, critic: float | None, criterion: str) -> dict[str, float]:
    """:return: The target sparsity per role (raises naming the allowed values of a bad sparsity or criterion)."""
    configs = role_configs(sparsity, actor, critic, criterion=criterion, revival="none")
    return {role: config.sparsity for role, config in configs.items()}


def cyclic_spec(
    sparsity: float | None = 0.9,
    actor_sparsity: float | None = None,
    critic_sparsity: float | None = None,
    criterion: str = "magnitude",
    cycles: int = DEFAULT_CYCLES,
    warmup_fraction: float = DEFAULT_WARMUP_FRACTION,
    min_factor: float = DEFAULT_MIN_FACTOR,
    shape: str = "cosine",
) -> ScheduleSpec:
    """
    Static sparse training with a cyclic learning rate (:class:`~sb3_tar.cyclic_methods.CyclicCallback` documents
    every parameter).

    :return: The validated spec.
    """
    targets = _targets(sparsity, actor_sparsity, critic_sparsity, criterion)
    schedule = CyclicSchedule(cycles=cycles, warmup_fraction=warmup_fraction, min_factor=min_factor, shape=shape)
    return ScheduleSpec("cyclic", targets, dict(targets), criterion, {"schedule": schedule.to_dict()})


def sculpt_spec(
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
) -> ScheduleSpec:
    """
    SCULPT-ing (:class:`~sb3_tar.cyclic_methods.SculptCallback` documents every parameter).

    :return: The validated spec.
    """
    targets = _targets(sparsity, actor_sparsity, critic_sparsity, criterion)
    schedule = CyclicSchedule(cycles=cycles, warmup_fraction=warmup_fraction, min_factor=min_factor, shape=shape)
    plan = SculptPlan(schedule, cycles - 1 if prune_cycle is None else prune_cycle, magnitude_scope)
    starts = {}
    for role, target in targets.items():
        start = sculpt_start_sparsity(target) if start_sparsity is None else start_sparsity
        start = check_number("start_sparsity", start, 0.0, 1.0)  # a TypeError for a non-number
        if not start <= target:
            raise ValueError(f"start_sparsity={start!r} is outside the allowed range [0, {target}] (the {role}'s target)")
        starts[role] = start
    settings = {
        "schedule": schedule.to_dict(),
        "prune_cycle": plan.prune_cycle,
        "scope": plan.scope,
        "start_sparsities": dict(starts),
    }
    return ScheduleSpec("sculpt", targets, starts, criterion, settings, {"critic_pruned": 0, "actor_pruned": 0})


def iee_spec(
    sparsity: float | None = 0.9,
    actor_sparsity: float | None = None,
    critic_sparsity: float | None = None,
    criterion: str = "erk",
    update_interval: int = DEFAULT_INTERVAL,
    explore_steps: int = DEFAULT_EXPLORE_STEPS,
    end_fraction: float = DEFAULT_END_FRACTION,
) -> ScheduleSpec:
    """
    Iterative exploitation-exploration (:class:`~sb3_tar.cyclic_methods.IEECallback` documents every parameter).

    :return: The validated spec.
    """
    targets = _targets(sparsity, actor_sparsity, critic_sparsity, criterion)
    config = IEEConfig(interval=update_interval, explore_steps=explore_steps, end_fraction=end_fraction)
    position = {"exploring": {"actor": 0, "critic": 0}, "updates": 0}
    return ScheduleSpec("iee", targets, dict(targets), criterion, config.to_dict(), position)


def needs_dense(runner: ScheduleListener, model: Any) -> bool:
    """
    :param runner: A model's runner.
    :param model: The model.
    :return: Whether the next training call needs the masked dense path: an exploration phase is under way or one
        of the gradient steps that call will take explores.
    """
    if not isinstance(runner, Explorer):
        return False
    if runner.exploring:
        return True
    steps = int(model.gradient_steps)
    if steps < 0:
        steps = int(model.train_freq.frequency) * int(model.n_envs)
    first = runner.step + 1
    return any(runner.config.explores(t, runner.total_steps) for t in range(first, first + max(steps, 1)))


def run_from_policy(policy: Any, spec: ScheduleSpec, training: bool, depth: int = 2) -> None:
    """
    What the callback does, for a ``SparsePolicy`` built with ``schedule_method`` (called by its
    ``set_training_mode``, which SB3's ``collect_rollouts()`` and ``train()`` call): find the model calling it (on the
    call stack, the first time), give it the run's state (a fresh one, or the one a loaded model restored) and attach
    the runner; plan ``T`` when a ``learn()`` starts before the run's first gradient step (as the callback does at
    its training start); at the start of each training call, move layers between the masked dense path and the
    kernel (:func:`convert_between_calls`).

    :param policy: The ``SparsePolicy`` (its masks drawn from ``spec.configs()`` when it was built).
    :param spec: Its method and settings.
    :param training: The mode ``set_training_mode`` sets (``True``: a training call starts).
    :param depth: Frames between this function and the SB3 method that called ``set_training_mode``.
    :raises ValueError: When the calling model holds the state of another method.
    """
    from sb3_tar.sb3.call_stack import caller_frames, frame_algorithm
    from sb3_tar.sb3.methods.rewiring import planned_steps_of

    runner = attached_runner(policy)
    model = runner.model if runner is not None and getattr(runner.model, "policy", None) is policy else None
    if model is None:
        frames = caller_frames(depth, limit=1)
        model = frame_algorithm(frames[0]) if frames else None
        if model is None or model.policy is not policy:
            return
        state = getattr(model, STATE_ATTRIBUTE, None)
        fresh = not isinstance(state, dict)
        if fresh:
            options = policy.sparsity_options
            setattr(model, STATE_ATTRIBUTE, spec.new_state(0, policy.sparsity_seed_used, options["sparse_execution"]))
        elif state.get("method") != spec.method:
            raise ValueError(
                f"{type(policy).__name__} runs schedule_method={spec.method!r}, but the model holds the state of a "
                f"{state.get('method')!r} run ({STATE_ATTRIBUTE})"
            )
        runner = spec.runner(policy.mask_enforcer, model)
        if fresh:
            runner.record_kept()
            runner.conversion_due = False  # the policy put its sparse layers on the kernel when it was built
        runner.attach(policy)
    start = getattr(model, "start_time", None)
    if start is not None and runner.step == 0 and runner.planned_for != start:
        runner.set_total_steps(planned_steps_of(model))
        runner.planned_for = start  # once per learn(): num_timesteps moves on within it
    runner.logger = getattr(model, "_logger", None)
    if training:
        convert_between_calls(model, runner)


def convert_between_calls(model: Any, runner: ScheduleListener) -> list[str]:
    """
    Between two training calls: the masked dense path where the next call needs it (:func:`needs_dense`), the sparse
    kernel for the layers that are sparse enough once a mask change made that due (never before the first gradient
    step: the starting masks were put there when they were drawn).

    :param model: The SB3 model.
    :param runner: Its attached runner.
    :return: The layers moved onto the kernel now (``"<network>/<layer>"``).
    """
    from sb3_tar.sb3.policies import start_sparse_execution

    policy, enforcer = model.policy, runner.enforcer
    if needs_dense(runner, model):
        if any(is_compressed(layer) for net in enforcer.networks for layer in net.linears):
            sparse_exec.disable(policy, enforcer.networks)
            enforcer.attach(policy)
            policy.sparse_layers = []
            runner.conversion_due = True
        return []
    if not runner.conversion_due or runner.step == 0:
        return []
    runner.conversion_due = False
    option = sparse_exec.option_from_code(int(runner.state.get("sparse_execution", 0)))
    getattr(policy, sparse_exec.FLAG_BUFFER).fill_(sparse_exec.option_code(option))
    before = list(getattr(policy, "sparse_layers", []))
    return [name for name in start_sparse_execution(policy, enforcer, option) if name not in before]


__all__ = [
    "SCHEDULE_METHODS",
    "ScheduleSpec",
    "convert_between_calls",
    "cyclic_spec",
    "iee_spec",
    "needs_dense",
    "run_from_policy",
    "sculpt_spec",
]
