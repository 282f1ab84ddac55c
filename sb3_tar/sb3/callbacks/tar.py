"""``TARCallback``: an existing SB3 project's networks pruned once by a static criterion and revived with TAR (or
Uniform Revival) when training starts, the masks then fixed; ``enforce_masks`` for a loaded model."""

from __future__ import annotations

from typing import Any

from sb3_tar.core.config import DEFAULT_SPARSITY, REVIVALS, check_choice
from sb3_tar.core.layer_report import NetworkReport
from sb3_tar.core.role_methods import FIXED_ROLE_METHODS, resolve_role_methods, static_method
from sb3_tar.sb3.callbacks.sparse import SparseCallback, _records_given, _stored_configs, check_supported
from sb3_tar.sb3.execution.sparse_execution import check_option
from sb3_tar.sb3.methods.gradual import GMP_STATE_ATTRIBUTE
from sb3_tar.sb3.methods.pruning import role_configs
from sb3_tar.sb3.methods.rewiring import (
    STATE_ATTRIBUTE,
)
from sb3_tar.sb3.methods.role_methods import method_configs
from sb3_tar.sb3.policies import (
    SparsePolicyMixin,
)
from sb3_tar.sb3.reporting.model_masks import enforcer_of, stored_masks
from sb3_tar.sb3.reporting.report_logging import attach_curves


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
        self.actor_sparsity_asked = actor_sparsity
        self.actor_method_asked = role_methods.get("actor") if isinstance(role_methods, dict) else None
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
        self._refuse_actor_options()
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
