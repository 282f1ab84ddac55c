"""``DSTCallback``: dynamic sparse training (SET, RigL and the gradient criteria of the reference study) on an
existing SB3 project: the masks drawn when training starts and rewired on a schedule."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from sb3_tar.core.config import DEFAULT_SPARSITY, check_choice
from sb3_tar.core.dynamic import DST_METHODS, dst_config
from sb3_tar.core.role_methods import resolve_role_methods
from sb3_tar.sb3.callbacks.sparse import (
    _SCHEDULE_ARGUMENTS,
    SparseCallback,
    _records_given,
    check_supported,
)
from sb3_tar.sb3.execution.enforcement import attached_enforcer
from sb3_tar.sb3.execution.sparse_execution import check_option
from sb3_tar.sb3.methods.pruning import role_configs
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
from sb3_tar.sb3.policies import (
    SparsePolicyMixin,
)
from sb3_tar.sb3.reporting.model_masks import enforcer_of, stored_masks
from sb3_tar.sb3.reporting.report_logging import attach_curves


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
        self.actor_sparsity_asked = actor_sparsity
        self.actor_method_asked = role_methods.get("actor") if isinstance(role_methods, dict) else None
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
        self._refuse_actor_options()
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
