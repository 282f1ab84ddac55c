"""SET and RigL inside SB3's training loop (thin SB3 glue over :mod:`sb3_tar.core.dynamic`).

SAC, TD3 and TQC take their gradient steps inside ``train()``, where no callback runs. A
:class:`Rewirer` therefore listens to the :class:`~sb3_tar.sb3.execution.enforcement.MaskEnforcer`'s
optimizer pre-step hooks (``pre_step_listeners``), which run *before* the enforcer masks the
gradients:

- **Clock.** Every critic optimizer step is one gradient step of the model: the critic's
  pre-step hook advances the schedule's step ``t`` (1 for the run's first gradient step).
- **Critic.** At an update step (``t`` a multiple of ``update_interval``, ``t < T_end``) every
  Q-network is rewired in that same hook; RigL reads the dense gradient of the TD loss, which
  ``.grad`` holds at that moment (and only then: the actor loss later writes into it too). The
  gradient prune criteria (``prune_criterion`` ``"mest"``, ``"snip"``, ``"sensitivity"``,
  ``"reciprocal_sensitivity"``) read the same gradient at the same moment, for SET and RigL alike.
- **Roles.** With ``role_methods``, only the roles whose method is SET or RigL are rewired (each
  growing by its own method); the clock still advances on every critic step.
- **Actor.** The actor is rewired in its own optimizer's next pre-step hook, with the drop
  fraction of the update step it belongs to; RigL reads the dense gradient of the policy loss.
  With SAC/TQC that is the same gradient step; with TD3 (``policy_delay``) the next actor step.
- The optimizer step that follows runs with the new mask: dropped weights are zeroed (online
  and target, by :meth:`~sb3_tar.sb3.execution.enforcement.MaskEnforcer.update_masks`), grown weights are set
  to 0.0 (online and target) and their optimizer state (Adam's ``exp_avg``, ``exp_avg_sq``,
  ``max_exp_avg_sq``: every state tensor of the weight's shape) is reset to 0 before the step.

The schedule's position lives in a :class:`DSTState`: buffers of a ``SparsePolicy``
(:class:`BufferState`) or a dict on the model, ``model.sb3_tar_dst_state``
(:class:`AttributeState`); both are saved with the model, so a resumed run continues the
schedule.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch
from torch import nn

from sb3_tar.core.dynamic import DSTConfig, RewireResult, planned_gradient_steps, rewire_masks, update_generator
from sb3_tar.core.masks import is_compressed
from sb3_tar.core.prune_criteria import needs_gradient
from sb3_tar.sb3.execution.compressed_dst import GradientCapture, rewire_compressed
from sb3_tar.sb3.execution.enforcement import MaskEnforcer
from sb3_tar.sb3.execution.sparse_execution import realign_state
from sb3_tar.sb3.networks import SparseNetwork

_ATTR = "_sb3_tar_rewirer"
#: Model attribute holding a callback-driven run's DST state (saved with the model).
STATE_ATTRIBUTE = "sb3_tar_dst_state"
#: ``total_steps`` value meaning "not known yet" (filled in by ``DSTCallback`` from ``learn()``).
UNKNOWN_TOTAL = -1
STATE_KEYS: tuple[str, ...] = ("step", "total_steps", "actor_step", "seed")


class DSTState(Protocol):
    """
    Integer state of a DST run: ``step`` (gradient steps taken), ``total_steps`` (planned gradient
    steps, ``-1`` if unknown), ``actor_step`` (update step the actor was last rewired at) and
    ``seed`` (of the update draws).
    """

    def get(self, key: str) -> int: ...

    def set(self, key: str, value: int) -> None: ...


class BufferState:
    """
    DST state in int64 scalar buffers of a ``SparsePolicy`` (``dst_step``, ``dst_total_steps``,
    ``dst_actor_step``, ``dst_seed``): part of ``policy.state_dict()``, saved and loaded by SB3.

    :param module: The policy holding the buffers.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    @staticmethod
    def register(module: nn.Module, total_steps: int, seed: int) -> BufferState:
        """
        Register the buffers on ``module`` (in ``_build``, so ``load`` finds them).

        :param module: The policy.
        :param total_steps: Planned gradient steps (``-1``: unknown).
        :param seed: Seed of the update draws.
        :return: The state.
        """
        values = {"step": 0, "total_steps": total_steps, "actor_step": 0, "seed": seed}
        device = next(module.parameters()).device
        for key in STATE_KEYS:
            module.register_buffer(f"dst_{key}", torch.tensor(values[key], dtype=torch.int64, device=device))
        return BufferState(module)

    def get(self, key: str) -> int:
        return int(getattr(self.module, f"dst_{key}").item())

    def set(self, key: str, value: int) -> None:
        getattr(self.module, f"dst_{key}").fill_(int(value))


class AttributeState:
    """
    DST state in a dict on the SB3 model, ``model.sb3_tar_dst_state``, which ``model.save()``
    stores with the model's other attributes (plain ``MlpPolicy`` run by ``DSTCallback``).
    Besides the integer state it holds the run's settings (``method``, ``update_interval``,
    ``drop_fraction``, ``end_fraction``), so a resumed run keeps them.

    :param model: The SB3 model.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    @staticmethod
    def create(model: Any, config: DSTConfig, total_steps: int, seed: int) -> AttributeState:
        """
        :param model: The SB3 model.
        :param config: The run's settings.
        :param total_steps: Planned gradient steps.
        :param seed: Seed of the update draws.
        :return: The state, stored on the model.
        """
        state = {"step": 0, "total_steps": total_steps, "actor_step": 0, "seed": seed}
        setattr(model, STATE_ATTRIBUTE, config.to_dict() | state)
        return AttributeState(model)

    @property
    def data(self) -> dict[str, Any]:
        return getattr(self.model, STATE_ATTRIBUTE)

    def config(self) -> DSTConfig:
        """:return: The settings stored with the run (a setting that a run saved before it existed keeps its default)."""
        return DSTConfig(**{key: self.data[key] for key in DSTConfig.__dataclass_fields__ if key in self.data})

    def get(self, key: str) -> int:
        return int(self.data[key])

    def set(self, key: str, value: int) -> None:
        self.data[key] = int(value)


@dataclass(frozen=True)
class DSTUpdate:
    """
    One network's mask update.

    :param step: The schedule's update step ``t`` (its drop fraction is ``zeta_t``).
    :param clock: Gradient steps taken when it was applied (``step``, or later for a TD3 actor).
    :param network: Network name.
    :param role: ``"actor"`` or ``"critic"``.
    :param drop_fraction: ``zeta_t``.
    :param dropped: Dropped connections per layer.
    :param grown: Grown connections per layer.
    :param kept: Active connections per layer (unchanged by the update).
    """

    step: int
    clock: int
    network: str
    role: str
    drop_fraction: float
    dropped: list[int]
    grown: list[int]
    kept: list[int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: ``listener(update, network, result)``: called right after a network's mask update, before
#: the optimizer step; ``result`` holds the dropped/grown positions and the previous masks.
UpdateListener = Callable[[DSTUpdate, SparseNetwork, RewireResult], None]
#: ``listener(role, step)``: called once a role's networks are all updated for update step ``step`` (after the
#: :data:`UpdateListener` calls of that update).
RoleListener = Callable[[str, int], None]


class Rewirer:
    """
    Runs SET or RigL on a sparse policy, driven by its optimizers' pre-step hooks.

    :param enforcer: The policy's mask enforcer (its store holds the masks that change).
    :param config: Method and schedule.
    :param state: Where the schedule's position lives.
    :param verbose: 2: print every update. Updates are logged as cumulative ``sparse/...`` curves at every dump of
        the model's logger, and each role's update as a row of its own (:mod:`sb3_tar.sb3.reporting.report_logging`).
    """

    def __init__(self, enforcer: MaskEnforcer, config: DSTConfig, state: DSTState, verbose: int = 0) -> None:
        if not isinstance(config, DSTConfig):
            raise TypeError(f"config must be a DSTConfig, got {type(config).__name__}")
        self.enforcer = enforcer
        self.config = config
        self.state = state
        self.verbose = verbose
        #: Every network update of this process, in order (counts only).
        self.history: list[DSTUpdate] = []
        #: Called after each network's update (see :data:`UpdateListener`).
        self.update_listeners: list[UpdateListener] = []
        #: Called after each role's update (see :data:`RoleListener`).
        self.role_listeners: list[RoleListener] = []
        #: Records the dense gradient of layers on the sparse kernel around update steps.
        self.capture = GradientCapture()
        self._load_hook: Any = None

    # -- schedule ---------------------------------------------------------------------------
    @property
    def step(self) -> int:
        """Gradient steps taken so far (the schedule's clock)."""
        return self.state.get("step")

    @property
    def total_steps(self) -> int:
        """Planned gradient steps of the run (``-1`` if unknown)."""
        return self.state.get("total_steps")

    @property
    def end_step(self) -> float:
        """``T_end = end_fraction * total_steps``: no update happens at or after it."""
        return self.config.end_step(max(self.total_steps, 0))

    def set_total_steps(self, total_steps: int) -> None:
        """
        :param total_steps: Planned gradient steps of the whole run (``T_end`` is derived from it).
        """
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 0:
            raise ValueError(f"total_steps={total_steps!r} is outside the allowed range [0, inf)")
        self.state.set("total_steps", total_steps)
        self.prepare_capture()

    @property
    def finished(self) -> bool:
        """Whether the schedule is past ``T_end`` (no update will happen any more)."""
        return self.total_steps >= 0 and self.step >= self.end_step

    # -- hooks ------------------------------------------------------------------------------
    def attach(self, policy: nn.Module) -> None:
        """
        Listen to the enforcer's pre-step hooks (the enforcer must be attached to ``policy``),
        replacing a rewirer attached to this policy before.

        :param policy: The SB3 policy.
        """
        previous = attached_rewirer(policy)
        if previous is not None:
            previous.detach(policy)
        self.enforcer.pre_step_listeners.append(self)
        object.__setattr__(policy, _ATTR, self)
        self._load_hook = policy.register_load_state_dict_post_hook(self._on_load)
        self.prepare_capture()

    def detach(self, policy: nn.Module | None = None) -> None:
        """Stop listening (and forget the rewirer on ``policy``)."""
        if self in self.enforcer.pre_step_listeners:
            self.enforcer.pre_step_listeners.remove(self)
        if self._load_hook is not None:
            self._load_hook.remove()
            self._load_hook = None
        self.capture.disarm([layer for net in self.enforcer.networks for layer in net.linears])
        if policy is not None and getattr(policy, _ATTR, None) is self:
            object.__delattr__(policy, _ATTR)

    def __call__(self, role: str, optimizer: torch.optim.Optimizer) -> None:
        """Pre-step listener: advance the clock on critic steps and rewire the rewired roles when due."""
        if role == "critic":
            if self.total_steps == UNKNOWN_TOTAL:
                raise RuntimeError(
                    "Dynamic sparse training needs the run's planned number of gradient steps: build the "
                    "SparsePolicy with dst_total_steps=..., or pass callback=sb3_tar.DSTCallback() to learn()"
                )
            step = self.step + 1
            self.state.set("step", step)
            if self.config.is_update_step(step, self.total_steps) and self.config.role_method("critic") is not None:
                self._rewire_role("critic", step, optimizer)
            self.prepare_capture()
        elif role == "actor" and self.config.role_method("actor") is not None:
            due = self.config.last_update_step(self.step, max(self.total_steps, 0))
            if due > self.state.get("actor_step"):
                self._rewire_role("actor", due, optimizer)
                self.state.set("actor_step", due)
                self.prepare_capture()  # with update_interval=1 the next step updates again

    def _on_load(self, module: nn.Module, incompatible_keys: Any) -> None:
        """Load-state-dict post hook of the policy: the loaded schedule may be one step before an update."""
        self.prepare_capture()

    def prepare_capture(self) -> None:
        """
        Arm the dense-gradient capture of the layers on the sparse kernel when the next gradient step
        updates the mask (the actor stays armed until its own update, which may come later with TD3);
        called after every critic step, when the rewirer is attached, when the policy's state is loaded
        and when ``total_steps`` is set. Costs nothing on the masked dense path.

        A run resumed (exact checkpoint, or ``save``/``load``) after the critic's update of step ``t`` and
        before the actor's (TD3 with a ``policy_delay`` that does not divide ``update_interval``) arms the
        actor again here: its update is still due, and the uninterrupted run has kept it armed since step ``t - 1``.
        """
        if self.total_steps < 0:
            return
        rewired = [net for net in self.enforcer.networks if self.config.role_method(net.role) is not None]
        update_next = self.config.is_update_step(self.step + 1, self.total_steps)
        actor_due = any(net.role == "actor" for net in rewired) and (  # DQN has no actor network
            self.config.last_update_step(self.step, self.total_steps) > self.state.get("actor_step")
        )
        reads_grad = any(self.config.role_method(role) == "rigl" for role in ("actor", "critic")) or needs_gradient(
            self.config.prune_criterion
        )
        # PPO/A2C/DQN: the gradient hooks zero pruned gradients before clipping; keep the dense ones for this update
        self.enforcer.record_dense = reads_grad and (update_next or actor_due)
        if update_next:
            self.capture.arm([layer for net in rewired for layer in net.linears])  # roles with fixed masks: never
            return
        if actor_due:
            self.capture.arm([layer for net in rewired if net.role == "actor" for layer in net.linears])

    # -- the update -------------------------------------------------------------------------
    @torch.no_grad()
    def _rewire_role(self, role: str, step: int, optimizer: torch.optim.Optimizer) -> None:
        fraction = self.config.fraction(step, self.total_steps)
        networks = self.enforcer.role_networks(role)
        updates = [self._rewire(net, step, fraction, optimizer) for net in networks]
        self.capture.disarm([layer for net in networks for layer in net.linears])
        # the state of layers on the kernel moved with their masks: record it, so that another pre-step hook of the same
        # optimizer (PPO/A2C: one optimizer for both roles) does not move it again
        realign_state(optimizer, record_only=True)
        if self.verbose >= 2:
            counts = ", ".join(f"{u.network} -{sum(u.dropped)}/+{sum(u.grown)}" for u in updates)
            print(f"{self.config.method.upper()} update at gradient step {step} (drop fraction {fraction:.4f}): {counts}")
        for listener in list(self.role_listeners):
            listener(role, step)

    def _dense_grad(self, layer: nn.Module) -> torch.Tensor | None:
        """The dense gradient of a sparse-kernel layer, from the capture (:mod:`sb3_tar.sb3.execution.compressed_dst`)."""
        grad = self.capture.dense_grad(layer)
        if grad is None and layer.values.grad is not None:
            warnings.warn(
                "sb3-tar: no dense gradient was recorded for a layer on the sparse kernel at this DST update "
                "(was the policy's training step driven from outside SB3's train()?); RigL scores its growth "
                "candidates 0 (random growth) and grown weights take gradient 0 at this step",
                RuntimeWarning,
                stacklevel=2,
            )
        return grad

    def _recorded_or_grad(self, net: SparseNetwork, index: int, layer: nn.Module) -> torch.Tensor | None:
        """The dense gradient the enforcer's gradient hook recorded (PPO/A2C/DQN), else the layer's ``.grad``."""
        recorded = self.enforcer.dense_grad(net.name, index)
        return recorded if recorded is not None else layer.weight.grad

    def _rewire(self, net: SparseNetwork, step: int, fraction: float, optimizer: torch.optim.Optimizer) -> DSTUpdate:
        masks = self.enforcer.store.get(net.name)
        weights = [layer.weight for layer in net.linears]  # a SparseLinear's weight is a dense copy
        method = self.config.role_method(net.role)
        # Dense gradients, read here in the optimizer's pre-step hook (the critic's .grad holds the TD loss's only now);
        # a layer on the sparse kernel has its dense gradient formed from the capture (sb3_tar.sb3.execution.compressed_dst).
        dense_grads = [
            self._dense_grad(layer) if is_compressed(layer) else self._recorded_or_grad(net, i, layer)
            for i, layer in enumerate(net.linears)
        ]
        reads_grad = method == "rigl" or needs_gradient(self.config.prune_criterion)
        grads = dense_grads if reads_grad else None
        generator = update_generator(self.state.get("seed"), step, net.name)
        result = rewire_masks(weights, masks, fraction, method, generator, grads, self.config.prune_criterion)
        # PPO/A2C/DQN: on the masked path the gradient hooks zeroed the grown weights' gradients before clipping, so
        # they take gradient 0 at this step; the kernel's grown weights do the same
        clipped = getattr(self.enforcer, "clipping", False)
        for i, layer in enumerate(net.linears):  # before the masks are stored: set_mask compares with the old one
            if is_compressed(layer):
                target = net.target_layers[i] if net.target_layers else None
                rewire_compressed(layer, result.masks[i], optimizer, None if clipped else dense_grads[i], target)
        self.enforcer.update_masks(
            net.name, [m.to(device=mask.device, dtype=mask.dtype) for m, mask in zip(result.masks, masks)]
        )
        for i, (layer, grown) in enumerate(zip(net.linears, result.grown)):
            if is_compressed(layer):
                continue
            grown = grown.to(layer.weight.device)
            layer.weight.masked_fill_(grown, 0.0)
            if net.target_layers:
                net.target_layers[i].weight.masked_fill_(grown.to(net.target_layers[i].weight.device), 0.0)
            reset_optimizer_state(optimizer, layer.weight, grown)
        update = DSTUpdate(
            step=step,
            clock=self.step,
            network=net.name,
            role=net.role,
            drop_fraction=fraction,
            dropped=result.dropped_counts,
            grown=result.grown_counts,
            kept=result.kept_counts,
        )
        self.history.append(update)
        for listener in self.update_listeners:
            listener(update, net, result)
        return update


@torch.no_grad()
def reset_optimizer_state(optimizer: torch.optim.Optimizer, param: torch.Tensor, positions: torch.Tensor) -> None:
    """
    Zero the optimizer state of ``param`` at ``positions``: every state tensor of the parameter's
    shape (Adam's ``exp_avg``, ``exp_avg_sq`` and, with ``amsgrad``, ``max_exp_avg_sq``; SGD's
    ``momentum_buffer``; ...). Scalar state such as Adam's ``step`` is left alone.

    :param optimizer: The optimizer stepping ``param``.
    :param param: The parameter.
    :param positions: Boolean tensor of ``param``'s shape.
    """
    state = optimizer.state.get(param)
    if not state:
        return
    for value in state.values():
        if isinstance(value, torch.Tensor) and value.shape == param.shape:
            value.masked_fill_(positions.to(value.device), 0)


def attached_rewirer(policy: nn.Module) -> Rewirer | None:
    """
    :param policy: An SB3 policy.
    :return: The :class:`Rewirer` attached to it, if any.
    """
    return getattr(policy, _ATTR, None)


def planned_on_policy_steps(model: Any) -> int:
    """
    Gradient steps the current ``learn()`` call of a PPO or A2C model will take (SB3's loop, replayed): it collects
    rollouts of ``n_steps * n_envs`` timesteps while ``num_timesteps < total_timesteps`` and trains after each, PPO
    ``n_epochs * ceil(n_steps * n_envs / batch_size)`` minibatch steps (fewer if ``target_kl`` stops an epoch early:
    the schedule then ends later than planned), A2C one step::

        R = ceil((total_timesteps - num_timesteps) / (n_steps * n_envs))
        T = R * n_epochs * ceil(n_steps * n_envs / batch_size)   # PPO
        T = R                                                   # A2C
        T = R * n_critic_updates * ceil(n_steps * n_envs / batch_size)   # TRPO (its actor moves by a line search)

    :param model: A PPO, A2C, TRPO or MaskablePPO model whose ``learn()`` has set ``_total_timesteps``.
    :return: The planned gradient steps (``>= 0``).
    """
    rollout = int(model.n_steps) * int(model.n_envs)
    remaining = int(model._total_timesteps) - int(model.num_timesteps)
    rollouts = max(0, -(-remaining // rollout))
    batch_size = getattr(model, "batch_size", None)
    if batch_size is None:  # A2C: the whole rollout in one step
        return rollouts
    if hasattr(model, "n_critic_updates"):  # TRPO: only the value function's minibatch steps use the optimizer
        return rollouts * int(model.n_critic_updates) * -(-rollout // int(batch_size))
    return rollouts * int(model.n_epochs) * -(-rollout // int(batch_size))


def planned_steps_of(model: Any) -> int:
    """
    Gradient steps the model's current ``learn()`` call will take (call it once ``learn()`` has
    set up the model, e.g. in a callback's ``_on_training_start``); see
    :func:`sb3_tar.core.dynamic.planned_gradient_steps` for the formula.

    :param model: An SB3 off-policy model, or a PPO/A2C model (:func:`planned_on_policy_steps`).
    :return: The planned gradient steps.
    """
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    if isinstance(model, OnPolicyAlgorithm):
        return planned_on_policy_steps(model)
    train_freq = model.train_freq
    unit = getattr(train_freq.unit, "value", train_freq.unit)
    return planned_gradient_steps(
        int(model._total_timesteps),
        int(model.num_timesteps),
        int(model.learning_starts),
        int(train_freq.frequency),
        str(unit),
        int(model.gradient_steps),
        int(model.n_envs),
    )
