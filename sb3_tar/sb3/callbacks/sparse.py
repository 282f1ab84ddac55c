"""The base of sb3-tar's sparse callbacks (:class:`SparseCallback`: what it makes sparse, when, and the checks of the
model it is attached to) and the algorithms each kind supports."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any

from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from sb3_tar.core.config import SparsityConfig, check_int
from sb3_tar.core.layer_report import NetworkReport
from sb3_tar.core.streams import check_optional_seed
from sb3_tar.sb3.execution.enforcement import MaskEnforcer
from sb3_tar.sb3.execution.sparse_execution import option_for_model
from sb3_tar.sb3.methods.pruning import draw_seed, sparsify_policy
from sb3_tar.sb3.networks import is_q_policy, sparse_networks
from sb3_tar.sb3.policies import (
    install_masks,
    masked_policy_class,
    start_sparse_execution,
)
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
        super().__init__(check_int("verbose", verbose, 0))
        if not isinstance(mask_gradients, bool):
            raise TypeError(f"mask_gradients must be a bool, got {mask_gradients!r}")
        self.mask_gradients = mask_gradients
        self.seed = check_optional_seed(seed)
        self.reports: dict[str, NetworkReport] = {}
        self.pruned = False
        #: Layers that run on the sparse kernel after pruning (``"<network>/<layer>"``).
        self.sparse_layers: list[str] = []
        #: The ``actor_sparsity`` and ``role_methods["actor"]`` the caller gave (``None``: none), refused on a model
        #: without an actor.
        self.actor_sparsity_asked: float | None = None
        self.actor_method_asked: str | None = None

    def _init_callback(self) -> None:
        check_supported(self.model, type(self).__name__)

    def _refuse_actor_options(self) -> None:
        """
        :raises ValueError: If ``actor_sparsity`` or ``role_methods["actor"]`` was given for a DQN model, which has no
            actor (its Q-network is the critic role): it would be recorded and ignored.
        """
        given = (("actor_sparsity", self.actor_sparsity_asked), ("role_methods['actor']", self.actor_method_asked))
        asked = [f"{name}={value!r}" for name, value in given if value is not None]
        if asked and is_q_policy(self.model.policy):
            raise ValueError(
                f"{type(self).__name__}: {', '.join(asked)} has no actor to apply to: "
                f"{type(self.model).__name__}'s policy has only Q-networks (the critic role); use sparsity, "
                "critic_sparsity or role_methods['critic']"
            )

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
