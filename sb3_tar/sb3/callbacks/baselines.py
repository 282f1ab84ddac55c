"""The field's baselines for sparse training as SB3 callbacks: gradual magnitude pruning and dense networks
of equal parameter count (``docs/method.md``, "Baselines")."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from sb3_tar.core.config import DEFAULT_SPARSITY, check_choice, check_int, renamed
from sb3_tar.core.gmp import DEFAULT_END_FRACTION, DEFAULT_INTERVAL, DEFAULT_START_FRACTION, GMP_SCOPES, GMPConfig
from sb3_tar.core.masks import ones_masks
from sb3_tar.sb3.callbacks.sparse import SparseCallback, _records_given, check_supported
from sb3_tar.sb3.execution import sparse_execution as sparse_exec
from sb3_tar.sb3.execution.enforcement import attached_enforcer
from sb3_tar.sb3.methods.gradual import (
    GMP_STATE_ATTRIBUTE,
    GradualPruner,
    attached_pruner,
    config_of_state,
    new_state,
    training_flops_of_state,
)
from sb3_tar.sb3.methods.pruning import role_configs
from sb3_tar.sb3.methods.reference_schedules import REFERENCE_GMP, describe, reference_family, reference_values
from sb3_tar.sb3.methods.rewiring import STATE_ATTRIBUTE as DST_STATE_ATTRIBUTE
from sb3_tar.sb3.methods.rewiring import planned_steps_of
from sb3_tar.sb3.methods.small_dense import network_shapes, small_dense_matches
from sb3_tar.sb3.networks import sparse_networks
from sb3_tar.sb3.policies import (
    SparsePolicyMixin,
    install_masks,
    masked_policy_class,
    start_sparse_execution,
)
from sb3_tar.sb3.reporting.model_masks import enforcer_of, stored_masks
from sb3_tar.sb3.reporting.report_logging import attach_curves


class GMPCallback(SparseCallback):
    """
    Gradual magnitude pruning (Zhu and Gupta 2017) on any SAC/TD3/TQC model, as Graesser et al. 2022 run it; also on
    SB3's PPO, A2C and DQN (``docs/usage.md``, "PPO, A2C and DQN", for their roles and ``T``).

    Training starts dense: on the first training start the actor and every Q-network get all-ones masks
    (``weight_mask`` buffers, online and target, as with :class:`~sb3_tar.callbacks.TARCallback`). With ``T``
    the gradient steps the first ``learn()`` plans, ``t0 = round(start_fraction * T)`` and
    ``t1 = round(end_fraction * T)``, each network is pruned at gradient steps ``t0 + k * update_interval`` and at
    ``t1`` to exactly ``K_t = N - round_half_up(c_t * (N - K_f))`` weights, ``c_t = 1 - (1 - (t - t0) /
    (t1 - t0))^3`` and ``K_f = round((1 - sparsity) * N)``: the weights of largest ``|w|`` among those kept so
    far, ranked over the network (``magnitude_scope="global"``) or per layer (``"layer"``, ``"erk"``; see
    :mod:`sb3_tar.core.gmp`). Pruned weights are zeroed online and in the targets and held at ``0.0`` between
    prune steps. After ``t1`` the mask is fixed. A layer whose density falls below
    :data:`~sb3_tar.sb3.execution.sparse_execution.DENSITY_THRESHOLD` moves onto the sparse kernel (``sparse_execution``)
    right after the prune step, and is pruned there at later prune steps.

    The schedule's settings and position are kept in ``model.sb3_tar_gmp_state`` and saved by ``model.save()``:
    a second ``learn()``, or a model loaded with ``SAC.load(path, env)`` and trained with a ``GMPCallback``,
    continues the schedule where it stopped (this callback's own settings are then ignored, with a warning if
    they differ). Every prune step is logged under ``gmp/<network>/{kept,sparsity}`` and ``gmp/step`` (``<network>``:
    ``actor``, ``critic/qf0``, ...), dumped at once to every output of the logger as a row of its own at x = the
    model's environment steps (one row per prune of the Q-networks, one per prune of the actor).
    :attr:`training_flops` is the run's average training FLOPs relative to dense, integrated over its
    gradient steps.

    :param sparsity: Final sparsity ``s_f`` of actor and critic, in ``[0, 1)``.
    :param actor_sparsity: Final sparsity of the actor (default: ``sparsity``).
    :param critic_sparsity: Final sparsity of each Q-network (default: ``sparsity``).
    :param start_fraction: ``t0 / T`` in ``[0, 1]`` (default 0.2; on PPO/A2C the reference study's ``32000 / 156480``
        (0.2045), on DQN its 0.2; :mod:`sb3_tar.sb3.methods.reference_schedules`).
    :param end_fraction: ``t1 / T`` in ``[start_fraction, 1]`` (default 0.8; on PPO/A2C ``120000 / 156480`` (0.767),
        on DQN 0.75).
    :param update_interval: Gradient steps between prune steps, ``>= 1`` (default 1000; on PPO/A2C the reference
        study's 500, on DQN its 1000; the name of :class:`~sb3_tar.callbacks.DSTCallback`'s interval between mask
        updates). The PPO/A2C/DQN defaults apply to the arguments the caller did not set (an explicit value always
        wins; a study value that would put ``t0`` after an explicit ``t1``, or the reverse, is not taken);
        :attr:`reference_defaults` holds those taken, and ``verbose >= 1`` prints them.
    :param magnitude_scope: ``"global"`` (default), ``"layer"`` or ``"erk"`` (the name of
        :class:`~sb3_tar.callbacks.TARCallback`'s magnitude ranking scope; ``"erk"`` is GMP's own).
    :param seed: Seed of the tie-breaking draws (default: the model's ``seed``, else drawn from torch).
    :param verbose: 0: silent, 1: say what happens, 2: also print every prune step.
    :param sparse_execution: ``"auto"`` (default), ``True`` or ``False``: train the layers that fall below the
        density threshold on the sparse C++ kernel (:mod:`sb3_tar.sb3.execution.sparse_execution`).
    :param interval: Deprecated name of ``update_interval`` (accepted, with a ``FutureWarning``, until the next release).
    :param scope: Deprecated name of ``magnitude_scope`` (accepted, with a ``FutureWarning``, until the next release).
    """

    @_records_given
    def __init__(
        self,
        sparsity: float | None = DEFAULT_SPARSITY,
        actor_sparsity: float | None = None,
        critic_sparsity: float | None = None,
        start_fraction: float = DEFAULT_START_FRACTION,
        end_fraction: float = DEFAULT_END_FRACTION,
        update_interval: int = DEFAULT_INTERVAL,
        magnitude_scope: str = "global",
        seed: int | None = None,
        verbose: int = 0,
        sparse_execution: bool | str = "auto",
        interval: int | None = None,
        scope: str | None = None,
    ) -> None:
        super().__init__(seed, verbose)
        self.actor_sparsity_asked = actor_sparsity
        name = type(self).__name__
        update_interval = renamed(name, "interval", "update_interval", interval, update_interval, DEFAULT_INTERVAL)
        magnitude_scope = renamed(name, "scope", "magnitude_scope", scope, magnitude_scope, "global")
        check_int("update_interval", update_interval, 1)
        check_choice("magnitude_scope", magnitude_scope, GMP_SCOPES)
        self.config = GMPConfig(
            start_fraction=start_fraction, end_fraction=end_fraction, interval=update_interval, scope=magnitude_scope
        )
        configs = role_configs(sparsity, actor_sparsity, critic_sparsity)
        self.sparsities = {role: config.sparsity for role, config in configs.items()}
        self.sparse_execution = sparse_exec.check_option(sparse_execution)
        self.pruner: GradualPruner | None = None
        #: The reference study's PPO/DQN values this callback took for the arguments not set (empty: none).
        self.reference_defaults: dict[str, Any] = {}

    def _init_callback(self) -> None:
        check_supported(self.model, type(self).__name__, ppo_a2c_dqn=True)
        self._refuse_actor_options()
        self._execution()  # refuses sparse_execution=True where the kernel cannot train, before anything changes
        given = set(self.given) | ({"update_interval"} if "interval" in self.given else set())
        family = reference_family(self.model.policy)
        taken = reference_values(REFERENCE_GMP, family, given)
        start = taken.get("start_fraction", self.config.start_fraction)
        end = taken.get("end_fraction", self.config.end_fraction)
        if start > end:  # a study value beyond the caller's explicit other end of the window: not taken
            taken.pop("start_fraction" if "end_fraction" in given else "end_fraction")
        if taken and family is not None:  # PPO/A2C/DQN: the study's schedule for what the caller left unset
            fields = {"interval" if k == "update_interval" else k: v for k, v in taken.items()}
            self.config = dataclasses.replace(self.config, **fields)
            self.reference_defaults = taken
            self._say(describe(type(self).__name__, family, taken))

    @property
    def training_flops(self) -> float:
        """Average training FLOPs so far relative to the dense networks (1.0 before any gradient step)."""
        state = getattr(self.model, GMP_STATE_ATTRIBUTE, None) if self.model is not None else None
        return training_flops_of_state(state) if isinstance(state, dict) else 1.0

    def _on_training_start(self) -> None:
        policy = self.model.policy
        name = type(self).__name__
        if isinstance(policy, SparsePolicyMixin) or isinstance(getattr(self.model, DST_STATE_ATTRIBUTE, None), dict):
            raise ValueError(f"{name} prunes a dense model gradually: train a fresh MlpPolicy model with this callback")
        state = getattr(self.model, GMP_STATE_ATTRIBUTE, None)
        if isinstance(state, dict):
            pruner = self._resume(policy, state)
        elif attached_enforcer(policy) is not None or stored_masks(self.model) is not None:
            raise ValueError(
                f"{name}: the model already has masks (TARCallback, DSTCallback or SparsePolicy) and no GMP state; "
                "gradual magnitude pruning starts dense: train a fresh model with this callback"
            )
        else:
            pruner = self._start(policy)
        pruner.logger = self.logger
        pruner.verbose = max(pruner.verbose, self.verbose)
        self.pruner = pruner
        self.logger.record("gmp/total_steps", pruner.total_steps)
        attach_curves(self.model)  # the sparse/ curves: the masks' state at every dump, dense until t0
        self._convert_when_due()

    def _start(self, policy: Any) -> GradualPruner:
        total = planned_steps_of(self.model)  # may refuse the setup: nothing is modified before
        seed = self._mask_seed()
        masked_class = masked_policy_class(type(policy))
        networks = sparse_networks(policy)
        enforcer = install_masks(policy, networks, {n.name: ones_masks(n.linears) for n in networks}, False, False)
        self.model.policy_class = masked_class
        policy.sparse_layers = []  # none until the mask is fixed
        self.pruned = True
        state = new_state(self.config, self.sparsities, total, seed)
        state["sparse_execution"] = sparse_exec.option_code(self._execution())
        setattr(self.model, GMP_STATE_ATTRIBUTE, state)
        self.model.sb3_tar_config = {"gmp": self.config.to_dict() | {"sparsities": dict(self.sparsities), "seed": seed}}
        pruner = GradualPruner(enforcer, self.model)
        pruner.attach(policy)
        t0, t1 = pruner.window
        self._say(
            f"dense until gradient step {t0}, then pruned every {self.config.interval} steps to sparsity "
            f"{self.sparsities} at step {t1} of {total} ({self.config.scope} magnitude, seed {seed})"
        )
        return pruner

    def _resume(self, policy: Any, state: dict[str, Any]) -> GradualPruner:
        stored = config_of_state(state)
        if stored != self.config or state["sparsities"] != self.sparsities:
            warnings.warn(
                f"{type(self).__name__}: the model continues its GMP run with the stored settings "
                f"{stored.to_dict() | {'sparsities': state['sparsities']}}; this callback's settings are ignored",
                stacklevel=3,
            )
        enforcer = enforcer_of(self.model)
        if enforcer is None:
            raise ValueError(f"The model has a GMP state ({GMP_STATE_ATTRIBUTE}) but no masks (weight_mask buffers)")
        pruner = attached_pruner(policy)
        if pruner is None or pruner.enforcer is not enforcer or pruner.model is not self.model:
            pruner = GradualPruner(enforcer, self.model)
            pruner.attach(policy)
        if pruner.step == 0:  # no gradient step yet: plan again from this learn() call
            pruner.set_total_steps(planned_steps_of(self.model))
        self._say(f"continuing GMP at gradient step {pruner.step} of {pruner.total_steps}")
        return pruner

    def _convert_when_due(self) -> None:
        """After a prune, move the layers that fell below the density threshold onto the sparse kernel (here, between
        training calls: never inside an optimizer step, whose parameters the conversion replaces)."""
        pruner = self.pruner
        policy = self.model.policy
        if pruner is None or not pruner.conversion_due or pruner.step == 0:
            return
        pruner.conversion_due = False
        option = sparse_exec.option_from_code(int(pruner.state.get("sparse_execution", 0)))
        getattr(policy, sparse_exec.FLAG_BUFFER).fill_(sparse_exec.option_code(option))  # saved: a loaded model runs alike
        before = list(getattr(policy, "sparse_layers", []))
        self.sparse_layers = start_sparse_execution(policy, pruner.enforcer, option)
        added = [name for name in self.sparse_layers if name not in before]
        if added:
            self._say(f"at gradient step {pruner.step}, sparse execution (C++ kernel) for {', '.join(added)}")

    def _on_step(self) -> bool:
        self._convert_when_due()
        return True


class SmallDenseCallback(SparseCallback):
    """
    Records how a dense model compares, in parameters, with the sparse network it stands in for: the
    *small dense* baseline (a dense network whose hidden width makes its weight count match the kept count of
    the ``sparsity``-sparse network of width ``reference_width``; see
    :func:`sb3_tar.sb3.methods.small_dense.small_dense_net_arch`, which solves the ``net_arch`` to build it with).
    On SAC/TD3/TQC/CrossQ the networks are the actor and each Q-network; on PPO/A2C (and sb3-contrib's TRPO,
    MaskablePPO) the policy branch ``actor`` and the value branch ``critic``, each with its own width
    (``net_arch=dict(pi=..., vf=...)``); on DQN (and QR-DQN) the Q-network, whose target is built alike. Only
    ``MlpPolicy`` networks (a ``CnnPolicy``'s features extractor is refused).

    It changes nothing in the model, and refuses a sparse one (a ``SparsePolicy``, or a model with masks). On
    training start it reads every network's shape, solves the width
    again and stores, per network, the reference and solved widths, the sparse kept count and the model's
    weight count in ``model.sb3_tar_config["small_dense"]`` (saved with the model; ``sb3-tar sweep`` copies
    it into each cell's ``summary.json``). If the model's width is not the solved one it warns.

    :param reference_width: Hidden width ``W`` of the sparse network matched.
    :param sparsity: Its sparsity (both roles), in ``[0, 1)``.
    :param actor_sparsity: Its actor's sparsity (default: ``sparsity``).
    :param critic_sparsity: Its Q-networks' (PPO/A2C: value branch's; DQN: Q-network's) sparsity (default:
        ``sparsity``).
    :param verbose: 1: print the counts.
    """

    def __init__(
        self,
        reference_width: int = 256,
        sparsity: float | None = DEFAULT_SPARSITY,
        actor_sparsity: float | None = None,
        critic_sparsity: float | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(None, verbose)
        self.actor_sparsity_asked = actor_sparsity
        self.reference_width = check_int("reference_width", reference_width, 1)
        configs = role_configs(sparsity, actor_sparsity, critic_sparsity)
        self.sparsities = {role: config.sparsity for role, config in configs.items()}
        self.record: dict[str, dict[str, Any]] = {}

    def _init_callback(self) -> None:
        check_supported(self.model, type(self).__name__, ppo_a2c_dqn=True)
        self._refuse_actor_options()

    def _on_training_start(self) -> None:
        policy = self.model.policy
        if (
            isinstance(policy, SparsePolicyMixin)
            or attached_enforcer(policy) is not None
            or stored_masks(self.model) is not None
            or isinstance(getattr(self.model, GMP_STATE_ATTRIBUTE, None), dict)
        ):
            raise ValueError(
                f"{type(self).__name__} describes a dense model standing in for a sparse one, and this model is sparse "
                "(a SparsePolicy, or masks from TARCallback, DSTCallback or GMPCallback): train a plain dense model with "
                "this callback alone"
            )
        matches = small_dense_matches(policy, self.reference_width, self.sparsities)
        shapes = network_shapes(policy)
        record = {}
        for name, match in matches.items():
            shape, arch = shapes[name]
            record[name] = match.to_dict() | {
                "model_widths": list(arch),
                "model_weights": shape.weights(arch),
                "model_biases": shape.biases(arch),
                "reference_biases": shape.biases(self.reference_width),
            }
            if list(arch) != list(match.widths):
                warnings.warn(
                    f"SmallDenseCallback: {name} has hidden widths {arch}; the widths matching the "
                    f"{match.sparsity:g}-sparse width-{self.reference_width} network are {list(match.widths)}",
                    stacklevel=2,
                )
        self.record = record
        config = getattr(self.model, "sb3_tar_config", None) or {}
        self.model.sb3_tar_config = dict(config, small_dense=record)
        if self.verbose >= 1:
            for name, r in record.items():
                print(
                    f"small dense {name}: widths {r['model_widths']} ({r['model_weights']} weights) for the "
                    f"{r['sparsity']:g}-sparse width-{r['reference_width']} network ({r['target']} of "
                    f"{r['reference_weights']} weights kept), {100 * r['relative_error']:+.2f}%"
                )
