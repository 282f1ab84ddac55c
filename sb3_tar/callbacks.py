"""Callbacks that make an existing SB3 SAC/TD3/TQC project sparse without other code changes (``TARCallback``: PPO, A2C
and DQN too)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
import warnings
from collections.abc import Callable
from typing import Any

from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from sb3_tar.core.config import DEFAULT_SPARSITY, REVIVALS, SparsityConfig, check_choice
from sb3_tar.core.dynamic import DST_METHODS, dst_config
from sb3_tar.core.layer_report import NetworkReport
from sb3_tar.core.role_methods import FIXED_ROLE_METHODS, resolve_role_methods, static_method
from sb3_tar.sb3.execution.enforcement import MaskEnforcer, attached_enforcer
from sb3_tar.sb3.execution.sparse_execution import check_option, option_for_model
from sb3_tar.sb3.methods.gradual import GMP_STATE_ATTRIBUTE
from sb3_tar.sb3.methods.pruning import draw_seed, role_configs, sparsify_policy
from sb3_tar.sb3.methods.reference_schedules import REFERENCE_DST, describe, reference_family, reference_values
from sb3_tar.sb3.methods.rewiring import (
    STATE_ATTRIBUTE,
    UNKNOWN_TOTAL,
    AttributeState,
    Rewirer,
    attached_rewirer,
    planned_steps_of,
)
from sb3_tar.sb3.methods.role_methods import has_dynamic_role, method_configs
from sb3_tar.sb3.networks import sparse_networks
from sb3_tar.sb3.policies import (
    SparsePolicyMixin,
    install_masks,
    masked_policy_class,
    start_sparse_execution,
)
from sb3_tar.sb3.reporting.model_masks import enforcer_of, stored_masks
from sb3_tar.sb3.reporting.report_logging import attach_curves

#: The algorithms that ``TARCallback``, ``DSTCallback``, ``GMPCallback`` and ``SmallDenseCallback`` support beside
#: SAC/TD3/TQC/CrossQ.
PPO_A2C_DQN: tuple[type, ...] = (PPO, A2C, DQN)


def contrib_on_policy_and_q() -> tuple[type, ...]:
    """
    :return: sb3-contrib's algorithms that train the same networks as PPO/A2C (TRPO, MaskablePPO: an
        ``ActorCriticPolicy``) or as DQN (QR-DQN: a Q-network and its hard-copied target); CrossQ is an off-policy
        actor-critic like SAC and needs no entry here. Empty if sb3-contrib is missing.
    """
    try:
        from sb3_contrib import QRDQN, TRPO, MaskablePPO
    except ImportError:  # pragma: no cover - sb3-contrib is a dependency
        return ()
    return (TRPO, MaskablePPO, QRDQN)


#: What each kind of callback supports, for messages.
SUPPORTED_ALL = (
    "SAC, TD3, TQC and CrossQ (off-policy actor-critic algorithms), SB3's PPO, A2C and DQN, and sb3-contrib's TRPO, "
    "MaskablePPO and QR-DQN"
)
SUPPORTED_OFF_POLICY = (
    "SAC, TD3, TQC and CrossQ (off-policy actor-critic algorithms); PPO, A2C, DQN, TRPO, MaskablePPO and QR-DQN are "
    "supported by TARCallback, DSTCallback, GMPCallback, SmallDenseCallback and DiagnosticsCallback"
)


def check_supported(model: Any, who: str, ppo_a2c_dqn: bool = False) -> None:
    """
    :param model: The model a callback is attached to.
    :param who: The callback's name, for the message.
    :param ppo_a2c_dqn: Whether the callback also supports SB3's PPO, A2C and DQN and sb3-contrib's TRPO, MaskablePPO
        and QR-DQN (exactly these classes or their subclasses, with their own policies): ``TARCallback``,
        ``DSTCallback``, ``GMPCallback``, ``SmallDenseCallback`` and ``DiagnosticsCallback``.
    :raises TypeError: Unless ``model`` is an off-policy actor-critic (SAC, TD3, TQC, CrossQ, DDPG), or with
        ``ppo_a2c_dqn`` one of the algorithms above, whose networks hold ``nn.Linear`` or convolution layers.
        Raised before training starts; the model is not modified and stays usable. The message names what is
        supported (sb3-contrib's RecurrentPPO, ARS and others are refused).
    """
    others = PPO_A2C_DQN + contrib_on_policy_and_q()
    off_policy = isinstance(model, OffPolicyAlgorithm) and hasattr(model.policy, "actor") and not isinstance(model, others)
    if not (off_policy or (ppo_a2c_dqn and isinstance(model, others))):
        supported = SUPPORTED_ALL if ppo_a2c_dqn else SUPPORTED_OFF_POLICY
        raise TypeError(f"{who} supports {supported}, got {type(model).__name__}: remove the callback or switch algorithm")
    sparse_networks(model.policy)


class SparseCallback(BaseCallback):
    """
    What ``TARCallback`` and ``DSTCallback`` share: the model check, the mask seed, pruning a
    plain policy into ``weight_mask`` buffers with enforcement hooks, logging and messages.

    :param seed: Seed of the masks (default: the model's ``seed``, else drawn from torch).
    :param verbose: Verbosity level.
    :param mask_gradients: Also zero the gradients of pruned weights before each step (see
        :mod:`sb3_tar.sb3.execution.enforcement`; on automatically for optimizers that are not elementwise).
    """

    def __init__(self, seed: int | None = None, verbose: int = 0, mask_gradients: bool = False) -> None:
        super().__init__(verbose)
        if not isinstance(mask_gradients, bool):
            raise TypeError(f"mask_gradients must be a bool, got {mask_gradients!r}")
        self.mask_gradients = mask_gradients
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self.seed = seed
        self.reports: dict[str, NetworkReport] = {}
        self.pruned = False
        #: Layers that run on the sparse kernel after pruning (``"<network>/<layer>"``).
        self.sparse_layers: list[str] = []

    def _init_callback(self) -> None:
        check_supported(self.model, type(self).__name__)

    #: Attributes holding the settings that decide what a sparse callback trains.
    _SETTINGS: tuple[str, ...] = (
        "configs",
        "config",
        "sparsities",
        "seed",
        "mask_gradients",
        "sparse_execution",
        "role_methods",
        "reference_width",
    )

    def checkpoint_settings(self) -> dict[str, Any]:
        """
        :return: The settings that decide what this callback trains (sparsity and mask criterion of each role, revival,
            schedule, seed, execution path ...; not ``verbose``): a checkpoint of a run with other ones is never
            resumed (:class:`~sb3_tar.sb3.persistence.checkpoint.ExactCheckpointCallback`).
        """
        return {key: vars(self)[key] for key in self._SETTINGS if key in vars(self)}

    def _execution(self) -> bool | str:
        """:return: The ``sparse_execution`` option applied to the model (``"auto"`` is ``False`` where the kernel
        cannot train its algorithm: :func:`~sb3_tar.sb3.execution.sparse_execution.option_for_model`, which also refuses
        ``True`` there)."""
        return option_for_model(self.model, getattr(self, "sparse_execution", False), type(self).__name__)

    def _mask_seed(self) -> int:
        if self.seed is not None:
            return int(self.seed)
        return self.model.seed if isinstance(self.model.seed, int) else draw_seed()

    def _sparsify_model(
        self, configs: dict[str, SparsityConfig], seed: int, sparse_execution: bool | str = False, **record: Any
    ) -> MaskEnforcer:
        """
        Prune and revive the model's plain policy, hold the masks in ``weight_mask`` buffers with
        enforcement hooks, and record the masked policy class as the model's ``policy_class``, so
        that ``SAC.load`` (etc.) rebuilds a policy that keeps the masks.
        """
        policy = self.model.policy
        masked_class = masked_policy_class(type(policy))  # before anything is modified
        networks, masks, self.reports = sparsify_policy(policy, configs, seed)
        enforcer = install_masks(policy, networks, masks, self.mask_gradients, sparse_execution)
        self.model.policy_class = masked_class
        self.pruned = True
        self.sparse_layers = start_sparse_execution(policy, enforcer, sparse_execution)
        self.model.sb3_tar_config = (
            {role: c.to_dict() for role, c in configs.items()} | {"seed": seed, "mask_gradients": self.mask_gradients} | record
        )
        self.model.sb3_tar_reports = {name: report.to_dict() for name, report in self.reports.items()}
        attach_curves(self.model)
        return enforcer

    def _warn_ignored(self, why: str, existing: dict[str, SparsityConfig] | None) -> None:
        """
        Warn that the model keeps the masks it has, naming each setting this callback was given (by name, whatever
        its value) that differs from the one the masks were drawn with; silent when it was given none.

        :param why: Where the model's masks come from.
        :param existing: The settings of those masks per role (``None``: unknown).
        """
        requested = getattr(self, "configs", None)
        fields = {field for name in getattr(self, "given", ()) for field in _MASK_FIELDS.get(name, ())}
        if not fields or requested is None:
            return
        differing = {}
        for role, config in requested.items():
            old = None if existing is None or role not in existing else existing[role].to_dict()
            new = {key: value for key, value in config.to_dict().items() if key in fields}
            changed = {key: ("?" if old is None else old.get(key), value) for key, value in new.items()}
            changed = {key: pair for key, pair in changed.items() if pair[0] != pair[1]}
            if changed:
                differing[role] = changed
        if differing:
            details = "; ".join(
                f"{role}: " + ", ".join(f"{key}={old!r} kept (asked {new!r})" for key, (old, new) in changed.items())
                for role, changed in differing.items()
            )
            warnings.warn(
                f"{type(self).__name__}: not pruning, {why}; this callback's settings are ignored ({details}). "
                "Build the model with the settings you want (a plain MlpPolicy with this callback, or the SparsePolicy's "
                "own options) to change them",
                stacklevel=3,
            )

    def _print_reports(self) -> None:
        if self.verbose >= 1:
            for report in self.reports.values():
                print(report, end="\n\n")

    def _say(self, message: str) -> None:
        if self.verbose >= 1:
            print(f"{type(self).__name__}: {message}")

    def _on_step(self) -> bool:
        return True


#: The mask settings among a callback's arguments -> the :class:`SparsityConfig` fields they set.
_MASK_FIELDS: dict[str, tuple[str, ...]] = {
    "sparsity": ("sparsity",),
    "actor_sparsity": ("sparsity",),
    "critic_sparsity": ("sparsity",),
    "role_methods": tuple(SparsityConfig.__dataclass_fields__),
    **{name: (name,) for name in SparsityConfig.__dataclass_fields__ if name != "sparsity"},
}
#: The DST schedule settings among ``DSTCallback``'s arguments.
_SCHEDULE_ARGUMENTS: tuple[str, ...] = ("method", "update_interval", "drop_fraction", "end_fraction", "prune_criterion")


def _records_given(init: Callable[..., None]) -> Callable[..., None]:
    """
    Record in ``self.given`` the names of the arguments a callback's ``__init__`` was called with (positional or
    keyword), whatever their values: an argument given with its default value still counts as asked for. The
    signature is unchanged (``inspect.signature`` follows ``__wrapped__``).
    """
    names = list(inspect.signature(init).parameters)[1:]

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        self.given = frozenset(names[: len(args)]) | frozenset(kwargs)
        init(self, *args, **kwargs)

    return wrapper


def _stored_configs(model: Any) -> dict[str, SparsityConfig] | None:
    """:return: The per-role settings a sparse callback recorded in ``model.sb3_tar_config`` (``None``: none)."""
    record = getattr(model, "sb3_tar_config", None)
    if not isinstance(record, dict):
        return None
    try:
        return {role: SparsityConfig(**record[role]) for role in ("actor", "critic") if isinstance(record.get(role), dict)}
    except (TypeError, ValueError):
        return None


class TARCallback(SparseCallback):
    """
    Static sparse training with Topology-Aware Revival, attached to any SAC/TD3/TQC model, or to an SB3 PPO, A2C or
    DQN model built with ``MlpPolicy`` (roles: ``docs/usage.md``, "PPO, A2C and DQN"; sparse execution as for SAC, with
    gradient clipping over kept weights only).

    On training start, if the model is not sparse yet, the actor and every Q-network are
    pruned by ``criterion`` and revived by ``revival`` (``docs/method.md``), target networks are
    masked, and hooks on the actor and critic optimizers keep the pruned weights at exactly
    ``0.0`` for the rest of training. It never prunes twice: a second ``learn()``, a model
    built with ``SparsePolicy``, or a model loaded after a sparse run keep their masks, with a warning
    naming each kept and each asked setting when this callback was given settings that differ from
    those the masks were drawn with. A model with SET/RigL or GMP masks is refused (``ValueError``,
    as :class:`DSTCallback` refuses static masks): continue it with its own callback.

    With a plain ``MlpPolicy`` the masks are registered as ``weight_mask`` buffers of every
    sparsified ``nn.Linear`` (online and target), exactly as with ``SparsePolicy``, and the model's
    ``policy_class`` becomes the policy's masked variant (for example
    :class:`sb3_tar.sac.MaskedPolicy`): ``model.save()`` stores the masks, and ``SAC.load(path, env)``
    rebuilds a policy that keeps them, so the loaded model stays sparse through ``learn()`` with
    or without this callback.

    The model's measured sparsity, pruned-but-nonzero count and dead units are recorded at every dump of
    SB3's logger under ``sparse/<network>/...``, the per-layer allocation once as text (``docs/masks.md``,
    "What is logged"); the per-layer table is printed with ``verbose >= 1``.

    :param sparsity: Sparsity of actor and critic in ``[0, 1)`` (default 0.9,
        :data:`~sb3_tar.core.config.DEFAULT_SPARSITY`, as every entry point).
    :param actor_sparsity: Sparsity of the actor (default: ``sparsity``).
    :param critic_sparsity: Sparsity of each Q-network (default: ``sparsity``).
    :param criterion: ``"random"``, ``"erk"``, ``"magnitude"`` or ``"synflow"``.
    :param revival: ``"tar"``, ``"uniform"`` or ``"none"`` (the static baseline).
    :param recovery_ratio: Revival budget rr.
    :param floor_fraction: TAR's connectivity floor fraction phi in ``[0, 1]``.
    :param budget_mode: ``"reserve"`` or ``"extra"``.
    :param revived_init: ``"init"`` or ``"zero"``.
    :param magnitude_scope: ``"global"`` or ``"layer"``.
    :param synflow_iters: SynFlow rounds.
    :param seed: Seed of the masks (default: the model's ``seed``, else drawn from torch).
    :param verbose: 0: silent, 1: print the per-layer table.
    :param mask_gradients: Also zero the gradients of pruned weights before each optimizer step
        (default ``False``; pruned weights are re-zeroed after every step either way, see
        :mod:`sb3_tar.sb3.execution.enforcement`).
        Gradient masking is switched on automatically, whatever this option, for optimizers that are not
        elementwise (an ``optimizer_class`` that is not exactly SGD, Adam, AdamW, Adamax, NAdam, RAdam, RMSprop
        or Adagrad, :data:`sb3_tar.sb3.execution.enforcement.ELEMENTWISE_OPTIMIZERS`; subclasses included), whose step could
        otherwise let the gradients at pruned positions change the kept weights.
    :param sparse_execution: ``"auto"`` (default), ``True`` or ``False``: train the sparse layers on the
        sparse C++ kernel (:mod:`sb3_tar.sb3.execution.sparse_execution`; the actor and critic optimizers are rebuilt with
        the model's optimizer class and options). Saved with the model: a loaded model runs the same way.
    :param role_methods: A fixed-mask method per role, e.g. ``{"actor": "dense"}`` (a dense actor with a TAR critic):
        ``"dense"`` (sparsity 0), ``"static"``, ``"tar"`` or ``"uniform"``; a role it does not name follows ``revival``
        (``docs/method.md``). For SET/RigL in one role use :class:`DSTCallback`'s ``role_methods``.
    """

    @_records_given
    def __init__(
        self,
        sparsity: float | None = DEFAULT_SPARSITY,
        actor_sparsity: float | None = None,
        critic_sparsity: float | None = None,
        criterion: str = "magnitude",
        revival: str = "tar",
        recovery_ratio: float = 0.01,
        floor_fraction: float = 0.2,
        budget_mode: str = "reserve",
        revived_init: str = "init",
        magnitude_scope: str = "global",
        synflow_iters: int = 100,
        seed: int | None = None,
        verbose: int = 0,
        mask_gradients: bool = False,
        sparse_execution: bool | str = "auto",
        role_methods: dict[str, str] | None = None,
    ) -> None:
        super().__init__(seed, verbose, mask_gradients)
        self.sparse_execution = check_option(sparse_execution)
        #: The method of each role (``None``: both follow ``revival``).
        self.role_methods: dict[str, str] | None = None
        options = dict(
            recovery_ratio=recovery_ratio,
            floor_fraction=floor_fraction,
            budget_mode=budget_mode,
            revived_init=revived_init,
            magnitude_scope=magnitude_scope,
            synflow_iters=synflow_iters,
        )
        if role_methods is not None:
            self.role_methods = resolve_role_methods(
                role_methods, static_method(check_choice("revival", revival, REVIVALS)), FIXED_ROLE_METHODS
            )
            self.configs = method_configs(self.role_methods, sparsity, actor_sparsity, critic_sparsity, criterion, **options)
        else:
            self.configs = role_configs(
                sparsity, actor_sparsity, critic_sparsity, criterion=criterion, revival=revival, **options
            )

    def _init_callback(self) -> None:
        check_supported(self.model, type(self).__name__, ppo_a2c_dqn=True)
        self._execution()  # refuses sparse_execution=True where the kernel cannot train, before anything changes

    def _on_training_start(self) -> None:
        policy = self.model.policy
        name = type(self).__name__
        dynamic = isinstance(getattr(self.model, STATE_ATTRIBUTE, None), dict) or getattr(policy, "dst_rewirer", None)
        if dynamic or isinstance(getattr(self.model, GMP_STATE_ATTRIBUTE, None), dict):
            raise ValueError(
                f"{name}: the model already has {'SET/RigL' if dynamic else 'GMP'} masks; TARCallback prunes a dense model "
                f"once and would only keep them: continue with {'DSTCallback' if dynamic else 'GMPCallback'}, or train a "
                "fresh model with this callback"
            )
        if isinstance(policy, SparsePolicyMixin):
            self._warn_ignored("the policy is a SparsePolicy, pruned when built", policy.sparsity_configs)
            self._report_existing("the policy is a SparsePolicy, pruned when built", policy.sparsity_reports)
            return
        if stored_masks(self.model) is not None:  # a previous learn() or a loaded sparse model
            enforcer_of(self.model)  # hooks are normally attached already; attach them if not
            self._warn_ignored("the model already has masks", _stored_configs(self.model))
            self._report_existing("the model already has masks", {})
            return
        seed = self._mask_seed()
        record = {} if self.role_methods is None else {"role_methods": self.role_methods}
        self._sparsify_model(self.configs, seed, self._execution(), **record)
        self._say(f"pruned and revived with seed {seed}")
        self._say(
            f"sparse execution (C++ kernel) for {len(self.sparse_layers)} layers: {', '.join(self.sparse_layers)}"
            if self.sparse_layers
            else "masked dense execution"
        )
        self._print_reports()

    def _report_existing(self, why: str, reports: dict[str, NetworkReport]) -> None:
        self.reports = dict(reports)
        attach_curves(self.model)
        self._say(f"not pruning, {why}")


def enforce_masks(model: Any) -> bool:
    """
    Make sure the masks a model holds are enforced: attach the hooks if none are attached and
    zero the pruned weights (online and target). A loaded sparse model needs no such call (its
    policy attaches the hooks when SB3 rebuilds it); this is for a policy whose optimizers were
    replaced, or to repair weights changed by hand.

    :param model: An SB3 model.
    :return: Whether the model has masks.
    """
    enforcer = enforcer_of(model)
    if enforcer is None:
        return False
    enforcer.apply()
    return True


class DSTCallback(SparseCallback):
    """
    Dynamic sparse training (SET or RigL) on any SAC/TD3/TQC model (``docs/dst.md``), and on SB3's PPO, A2C and DQN
    (RigL reads the dense gradient that the gradient hooks record before they zero the pruned positions ahead of
    gradient clipping, or on the sparse kernel the capture records: ``docs/usage.md``, "PPO, A2C and DQN").

    On the first training start, the actor and every Q-network are pruned by ``criterion``
    (ERK by default, no revival); then, every ``update_interval`` gradient steps until
    ``end_fraction`` of the planned gradient steps, each layer drops its ``k = round(zeta_t * K_l)``
    smallest-magnitude active weights and grows ``k`` others: at random (SET) or where the dense
    gradient of the network's own loss is largest (RigL), with the cosine-decayed drop fraction
    ``zeta_t = zeta / 2 * (1 + cos(pi * t / T_end))`` and ``T_end = end_fraction * T``. ``T`` is the
    number of gradient steps the first ``learn()`` call plans (re-planned by a later call only while
    no gradient step has been taken yet; see
    :func:`sb3_tar.core.dynamic.planned_gradient_steps`: ``total_timesteps - learning_starts`` with one
    env, ``train_freq=1`` and ``gradient_steps=1``). Grown weights start at 0.0 with zeroed Adam
    moments; every mask change is copied to the target networks. At every dump of SB3's logger the
    updates so far are recorded (``sparse/dst/updates``, ``sparse/dst/drop_fraction`` and the cumulative
    ``sparse/<network>/dropped`` and ``sparse/<network>/grown``, ``docs/dst.md``), with each network's
    measured sparsity.

    With a plain ``MlpPolicy`` the masks are kept in ``weight_mask`` buffers (as with
    :class:`TARCallback`) and the schedule (its settings, the gradient-step clock, ``T`` and the
    seed) in ``model.sb3_tar_dst_state``, both saved by ``model.save()``. The schedule is never
    restarted: a second ``learn()`` or a run loaded with ``SAC.load(path, env)`` and trained with
    a ``DSTCallback`` continues it with the stored settings and ``T`` (this callback's own settings
    are then ignored, with a warning if they differ). Without a ``DSTCallback`` a loaded model
    keeps its masks fixed (its policy enforces them; the schedule does not advance).

    With a ``SparsePolicy`` built with ``dst_method``, the policy runs SET/RigL itself; this
    callback only fills in ``dst_total_steps`` from ``learn()`` when the policy was built without
    it, and sends the updates to the model's logger. Its other settings are ignored, with a warning when
    some were given and differ from the policy's.

    :param method: ``"set"`` or ``"rigl"``.
    :param sparsity: Sparsity of actor and critic in ``[0, 1)`` (default 0.9,
        :data:`~sb3_tar.core.config.DEFAULT_SPARSITY`, as every entry point).
    :param actor_sparsity: Sparsity of the actor (default: ``sparsity``).
    :param critic_sparsity: Sparsity of each Q-network (default: ``sparsity``).
    :param criterion: Initial mask: ``"erk"``, ``"random"``, ``"magnitude"`` or ``"synflow"``; ``None`` (default):
        ``"erk"`` (with ``role_methods``: ``"erk"`` for SET/RigL roles, ``"magnitude"`` for the others).
    :param update_interval: Gradient steps between mask updates, ``>= 1`` (default: SET 250, RigL 1000; on PPO/A2C and
        DQN the reference study's 1000, :mod:`sb3_tar.sb3.methods.reference_schedules`).
    :param drop_fraction: Initial drop fraction zeta in ``(0, 1)`` (default: SET 0.3, RigL 0.5; on PPO/A2C and DQN
        the reference study's 0.1).
    :param end_fraction: Fraction of the planned gradient steps during which the mask is updated,
        in ``(0, 1]`` (default 0.8; on PPO/A2C the reference study's ``120000 / 156480`` (0.767), on DQN its 0.75).
        The PPO/A2C/DQN defaults apply to the arguments the caller did not set (an explicit value, even the SAC
        default, always wins); :attr:`reference_defaults` holds those taken, and ``verbose >= 1`` prints them.
    :param seed: Seed of the initial mask and of the update draws (default: the model's ``seed``,
        else drawn from torch).
    :param verbose: 0: silent, 1: print the initial per-layer table, 2: also print every update.
    :param prune_criterion: Which active weights an update drops: ``"magnitude"`` (default),
        ``"sign_balanced_magnitude"`` (SET's own drop rule; ``"set"``, its former name, warns), ``"mest"``, ``"snip"``,
        ``"sensitivity"``, ``"reciprocal_sensitivity"`` or ``"random"`` (Nowak et al. 2023;
        ``docs/method.md``). The gradient criteria read the dense gradient in the optimizer's pre-step hook, as RigL does.
    :param role_methods: A method per role, e.g. ``{"actor": "tar"}`` (RigL critic, static TAR actor) or
        ``{"actor": "dense"}``: ``"dense"``, ``"static"``, ``"tar"``, ``"uniform"``, ``"set"`` or ``"rigl"``; a role it
        does not name runs ``method``. Only SET/RigL roles are rewired; at least one role must be. Stored with the
        DST state.
    :param recovery_ratio: Revival budget rr of a ``"tar"`` / ``"uniform"`` role (default 0.01).
    :param sparse_execution: ``"auto"`` (default), ``True`` or ``False``: train the layers below the density
        threshold on the sparse C++ kernel between mask updates, online and target, with optimizer state for
        kept weights only; each update rebuilds them in place (:mod:`sb3_tar.sb3.execution.compressed_dst`). Saved with
        the model. As for :class:`TARCallback`; ignored when the policy is a ``SparsePolicy`` or already sparse.
    """

    @_records_given
    def __init__(
        self,
        method: str = "set",
        sparsity: float | None = DEFAULT_SPARSITY,
        actor_sparsity: float | None = None,
        critic_sparsity: float | None = None,
        criterion: str | None = None,
        update_interval: int | None = None,
        drop_fraction: float | None = None,
        end_fraction: float = 0.8,
        seed: int | None = None,
        verbose: int = 0,
        prune_criterion: str = "magnitude",
        role_methods: dict[str, str] | None = None,
        recovery_ratio: float = 0.01,
        sparse_execution: bool | str = "auto",
    ) -> None:
        super().__init__(seed, verbose)
        self.sparse_execution = check_option(sparse_execution)
        methods = None
        if role_methods is not None:
            methods = resolve_role_methods(role_methods, check_choice("method", method, DST_METHODS))
            if not has_dynamic_role(methods):
                raise ValueError(f"role_methods={methods} rewires no role: use TARCallback for fixed masks")
        self.config = dst_config(method, update_interval, drop_fraction, end_fraction, prune_criterion, methods)
        #: The schedule arguments set by the caller (``None`` for ``update_interval``/``drop_fraction`` is unset).
        unset = {k for k, v in (("update_interval", update_interval), ("drop_fraction", drop_fraction)) if v is None}
        self._explicit = self.given - unset
        #: The reference study's PPO/DQN values this callback took for the arguments not set (empty: none).
        self.reference_defaults: dict[str, Any] = {}
        if methods is None:
            criterion = "erk" if criterion is None else criterion
            self.configs = role_configs(sparsity, actor_sparsity, critic_sparsity, criterion=criterion, revival="none")
        else:
            self.configs = method_configs(
                methods, sparsity, actor_sparsity, critic_sparsity, criterion, recovery_ratio=recovery_ratio
            )
        self.rewirer: Rewirer | None = None

    def _init_callback(self) -> None:
        check_supported(self.model, type(self).__name__, ppo_a2c_dqn=True)
        self._execution()  # refuses sparse_execution=True where the kernel cannot train, before anything changes
        policy = self.model.policy
        family = reference_family(policy)
        taken = {} if isinstance(policy, SparsePolicyMixin) else reference_values(REFERENCE_DST, family, self._explicit)
        if taken and family is not None:  # PPO/A2C/DQN: the study's schedule for what the caller left unset
            self.config = dataclasses.replace(self.config, **taken)
            self.reference_defaults = taken
            self._say(describe(type(self).__name__, family, taken))

    def _on_training_start(self) -> None:
        policy = self.model.policy
        name = type(self).__name__
        if isinstance(policy, SparsePolicyMixin):
            rewirer = getattr(policy, "dst_rewirer", None)
            if rewirer is None:
                raise TypeError(
                    f"{name} cannot train a static SparsePolicy: build it with dst_method='set' or 'rigl' "
                    "(policy_kwargs), or use a plain MlpPolicy with this callback"
                )
            asked = {key for key in self.given if key in _SCHEDULE_ARGUMENTS}
            schedule = {key: (getattr(rewirer.config, key), getattr(self.config, key)) for key in asked}
            differing = {key: pair for key, pair in sorted(schedule.items()) if pair[0] != pair[1]}
            if differing:
                details = ", ".join(f"{key}={stored!r} kept (asked {own!r})" for key, (stored, own) in differing.items())
                warnings.warn(
                    f"{name}: the SparsePolicy runs {rewirer.config.method.upper()} with its own settings; this "
                    f"callback's are ignored ({details})",
                    stacklevel=2,
                )
            self._warn_ignored("the policy is a SparsePolicy, pruned when built", policy.sparsity_configs)
            if policy.dst_options["dst_total_steps"] is None and (rewirer.total_steps == UNKNOWN_TOTAL or rewirer.step == 0):
                rewirer.set_total_steps(rewirer.step + planned_steps_of(self.model))
            self.reports = dict(policy.sparsity_reports)
            self._say(f"the SparsePolicy runs {rewirer.config.method.upper()} itself")
        elif isinstance(getattr(self.model, STATE_ATTRIBUTE, None), dict):
            rewirer = self._resume(policy)
        elif attached_enforcer(policy) is not None or stored_masks(self.model) is not None:
            raise ValueError(
                f"{name}: the model already has static masks (TARCallback or SparsePolicy) and no DST state; "
                "SET/RigL start from their own initial mask: train a fresh model with this callback"
            )
        else:
            rewirer = self._start(policy)
        rewirer.verbose = max(rewirer.verbose, self.verbose)
        self.rewirer = rewirer
        attach_curves(self.model)  # counts this rewirer's updates
        if rewirer.finished and rewirer.step > 0:
            warnings.warn(
                f"{name}: the DST schedule ended at gradient step {rewirer.end_step:g} (end_fraction of the "
                f"{rewirer.total_steps} planned steps) and the run is at step {rewirer.step}: this learn() trains "
                "with a fixed mask",
                stacklevel=2,
            )

    def _start(self, policy: Any) -> Rewirer:
        total = planned_steps_of(self.model)  # may refuse the setup: nothing is modified before
        seed = self._mask_seed()
        enforcer = self._sparsify_model(self.configs, seed, self._execution(), dst=self.config.to_dict())
        state = AttributeState.create(self.model, self.config, total, seed)
        rewirer = Rewirer(enforcer, self.config, state)
        rewirer.attach(policy)
        self._say(
            f"{self.config.method.upper()} from a {self.configs['critic'].criterion} mask (seed {seed}), "
            f"{total} planned gradient steps, updates every {self.config.update_interval} until step "
            f"{rewirer.end_step:g}"
        )
        self._print_reports()
        return rewirer

    def _resume(self, policy: Any) -> Rewirer:
        state = AttributeState(self.model)
        stored = state.config()
        if stored != self.config:
            warnings.warn(
                f"{type(self).__name__}: the model continues its DST run with the stored settings {stored.to_dict()}; "
                f"this callback's settings {self.config.to_dict()} are ignored",
                stacklevel=3,
            )
        enforcer = enforcer_of(self.model)  # attached when SB3 rebuilt the loaded policy
        if enforcer is None:
            raise ValueError(f"The model has a DST state ({STATE_ATTRIBUTE}) but no masks (weight_mask buffers)")
        rewirer = attached_rewirer(policy)
        if rewirer is None or rewirer.enforcer is not enforcer:
            rewirer = Rewirer(enforcer, stored, state)
            rewirer.attach(policy)
        if rewirer.step == 0:  # no gradient step yet (e.g. the first learn() ended before learning_starts): plan again
            rewirer.set_total_steps(planned_steps_of(self.model))
        self._say(f"continuing {stored.method.upper()} at gradient step {rewirer.step} of {rewirer.total_steps}")
        return rewirer


__all__ = [
    "DSTCallback",
    "SparseCallback",
    "TARCallback",
    "attached_enforcer",
    "check_supported",
    "enforce_masks",
]
