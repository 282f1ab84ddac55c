"""Sparse SB3 SAC/TD3/TQC, PPO/A2C and DQN policies (thin SB3 glue).

- :class:`SparsePolicyMixin`: ``SparsePolicy`` classes, pruned and revived when built, or trained
  with dynamic sparse training (SET/RigL) from an initial static mask.
- :class:`MaskedPolicyMixin`: the class SB3 rebuilds when it loads a model that a callback made
  sparse. It carries ``weight_mask`` buffers and the enforcement hooks from the moment it is
  built, so ``SAC.load`` / ``TD3.load`` fill the buffers with the saved masks and the loaded model
  stays sparse through ``learn()`` with no callback and no extra call.
- :func:`install_masks`: what both (and the callbacks) do to hold masks: register the buffers on
  every sparsified ``nn.Linear`` (online and target) and hook the policy's optimizers.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import torch
from gymnasium import spaces
from torch import nn

from sb3_tar.core.config import DEFAULT_SPARSITY, check_choice, check_int, renamed
from sb3_tar.core.dynamic import DEFAULT_END_FRACTION, DSTConfig, dst_config
from sb3_tar.core.layer_report import NetworkReport
from sb3_tar.core.masks import is_compressed, ones_masks
from sb3_tar.core.streams import check_optional_seed
from sb3_tar.sb3.call_stack import caller_frames, frame_algorithm
from sb3_tar.sb3.execution import sparse_execution as sparse_exec
from sb3_tar.sb3.execution.enforcement import MaskEnforcer
from sb3_tar.sb3.execution.mask_store import BufferStore
from sb3_tar.sb3.methods.pruning import draw_seed, role_configs, sparsify_policy
from sb3_tar.sb3.methods.rewiring import UNKNOWN_TOTAL, BufferState, Rewirer
from sb3_tar.sb3.methods.role_methods import policy_role_setup
from sb3_tar.sb3.networks import SparseNetwork, sparse_networks
from sb3_tar.sb3.reporting.report_logging import attach_from_caller

#: Policy buffer recording whether gradients of pruned weights are masked (saved with the policy).
MASK_GRADIENTS_BUFFER = "sb3_tar_mask_gradients"


def install_masks(
    policy: nn.Module,
    networks: list[SparseNetwork],
    masks: dict[str, list[torch.Tensor]],
    mask_gradients: bool,
    sparse_execution: bool | str = False,
) -> MaskEnforcer:
    """
    Hold ``masks`` in ``weight_mask`` buffers of the policy's sparsified layers (online and target),
    record ``mask_gradients`` and ``sparse_execution`` in the policy buffers ``sb3_tar_mask_gradients`` and
    ``sb3_tar_sparse_execution``, and attach a :class:`~sb3_tar.sb3.execution.enforcement.MaskEnforcer` to the policy's
    optimizers. Everything is part of ``policy.state_dict()``, so SB3's ``save()``/``load()`` keep it.
    (Converting layers to sparse execution is :func:`start_sparse_execution`'s job.)

    :param policy: An SB3 SAC/TD3/TQC, PPO/A2C or DQN policy, built (its optimizers exist).
    :param networks: Its sparse networks (:func:`~sb3_tar.sb3.networks.sparse_networks`).
    :param masks: A mask per layer of every network.
    :param mask_gradients: Also zero the gradients of pruned weights before each step.
    :param sparse_execution: The option to record (``"auto"``, ``True`` or ``False``).
    :return: The attached enforcer.
    """
    if not isinstance(mask_gradients, bool):
        raise TypeError(f"mask_gradients must be a bool, got {mask_gradients!r}")
    code = sparse_exec.option_code(sparse_execution)
    store = BufferStore.register(networks, masks)
    policy.register_buffer(MASK_GRADIENTS_BUFFER, torch.tensor(mask_gradients))
    policy.register_buffer(sparse_exec.FLAG_BUFFER, torch.tensor(code, dtype=torch.int8))
    enforcer = MaskEnforcer(networks, store, mask_gradients=mask_gradients)
    enforcer.attach(policy)
    return enforcer


def start_sparse_execution(
    policy: nn.Module, enforcer: MaskEnforcer, option: bool | str, loading: bool | None = None
) -> list[str]:
    """
    Run the policy's sparse layers on the sparse kernel if ``option`` asks for it and the kernel is
    available on the policy's device (:mod:`sb3_tar.sb3.execution.sparse_execution`), moving the enforcement hooks
    to the rebuilt optimizers.

    :param policy: A policy holding masks.
    :param enforcer: Its attached enforcer.
    :param option: ``"auto"``, ``True`` or ``False``.
    :param loading: Whether the option comes from a file being loaded (``True`` then falls back with a
        warning instead of raising); default: whether SB3's ``load()`` is under way.
    :return: The converted layers (``"<network>/<layer>"``; also ``policy.sparse_layers``); empty on the
        masked path.
    :raises RuntimeError: With ``option=True`` when the kernel is not available (not while loading).
    """
    device, in_load = sparse_exec.sb3_context(policy)
    policy._sb3_tar_path_device = device.type  # what follow_device compares with
    if not sparse_exec.resolve(option, device, in_load if loading is None else loading):
        policy.sparse_layers = []
        return []
    converted = sparse_exec.enable(policy, enforcer.networks)
    enforcer.attach(policy)
    policy.sparse_layers = converted
    return converted


def follow_device(policy: nn.Module, enforcer: MaskEnforcer, device: torch.device | str | None = None) -> None:
    """
    Put a policy on the path its device allows after it moved (``policy.to(...)``): off the CPU, compressed
    layers go back to the masked path; back on the CPU, the saved ``sparse_execution`` option decides again.

    :param policy: A policy holding masks (its option in the ``sb3_tar_sparse_execution`` buffer).
    :param enforcer: Its attached enforcer.
    :param device: The device to decide for (default: that of the policy's parameters).
    """
    if not hasattr(policy, sparse_exec.FLAG_BUFFER):
        return
    if device is None:
        device = next((p.device for p in policy.parameters()), torch.device("cpu"))
    device = torch.device(device)
    compressed = any(is_compressed(layer) for net in enforcer.networks for layer in net.linears)
    if device.type != "cpu":
        policy._sb3_tar_path_device = device.type
        if compressed:
            sparse_exec.disable(policy, enforcer.networks)
            enforcer.attach(policy)
            policy.sparse_layers = []
    elif not compressed and getattr(policy, "_sb3_tar_path_device", "cpu") != "cpu":  # back from another device
        option = sparse_exec.option_from_code(int(getattr(policy, sparse_exec.FLAG_BUFFER)))
        start_sparse_execution(policy, enforcer, option, loading=True)


class MaskedPolicyMixin:
    """
    A policy whose sparse networks hold masks from the moment it is built.

    This is the policy class that SB3 records for a plain ``MlpPolicy`` model made sparse by
    :class:`~sb3_tar.callbacks.TARCallback` or :class:`~sb3_tar.callbacks.DSTCallback` (the
    callback sets ``model.policy_class`` to it). When ``SAC.load`` / ``TD3.load`` / ``TQC.load``
    rebuild the policy, it registers all-ones ``weight_mask`` buffers and the enforcement hooks;
    loading the saved state dict then fills the buffers with the saved masks, so the loaded
    model keeps its masks with no callback and no extra call. It is not meant to be built
    directly (its masks would all be ones: a dense model).
    """

    mask_enforcer: MaskEnforcer
    _sb3_tar_attaches_curves = True  # its set_training_mode attaches the curves (report_logging.ATTACHES_CURVES)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        networks = sparse_networks(self)  # type: ignore[arg-type]
        masks = {n.name: ones_masks(n.linears) for n in networks}
        self.mask_enforcer = install_masks(self, networks, masks, mask_gradients=False)  # type: ignore[arg-type]
        self.sparse_layers: list[str] = []

    def set_training_mode(self, mode: bool) -> None:
        """Also make the calling model's logger record sb3-tar's curves (:mod:`sb3_tar.sb3.reporting.report_logging`)."""
        attach_from_caller(self)
        super().set_training_mode(mode)  # type: ignore[misc]

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """
        Load the state dict, then apply the saved options: gradient masking, and sparse execution of the
        loaded masks (which the all-ones placeholder masks of the build could not decide).
        """
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)  # type: ignore[misc]
        self.mask_enforcer.mask_gradients = bool(getattr(self, MASK_GRADIENTS_BUFFER))
        option = sparse_exec.option_from_code(int(getattr(self, sparse_exec.FLAG_BUFFER)))
        if not self.sparse_layers:
            start_sparse_execution(self, self.mask_enforcer, option, loading=True)  # type: ignore[arg-type]
        return result

    def _apply(self, fn: Any, recurse: bool = True) -> Any:  # .to(), .cuda(), .cpu(): the device decides the path
        result = super()._apply(fn, recurse)  # type: ignore[misc]
        if getattr(self, "mask_enforcer", None) is not None:
            follow_device(self, self.mask_enforcer)  # type: ignore[arg-type]
        return result


_MASKED_CLASSES: dict[type, type] = {}


def masked_policy_class(policy_class: type) -> type:
    """
    The masked variant of an SB3 policy class (see :class:`MaskedPolicyMixin`).

    SB3's own classes have importable variants (``sb3_tar.sac.MaskedPolicy`` and the like); any
    other class gets one made on first use, which SB3 saves by value (cloudpickle), so the model
    still loads where that class can be imported.

    :param policy_class: The class of a plain policy, e.g. ``SACPolicy``.
    :return: A subclass of ``policy_class`` and :class:`MaskedPolicyMixin` (``policy_class`` itself
        if it already holds masks when built).
    """
    if issubclass(policy_class, (MaskedPolicyMixin, SparsePolicyMixin)):
        return policy_class
    if policy_class not in _MASKED_CLASSES:
        import sb3_tar.dqn  # noqa: F401
        import sb3_tar.ppo  # noqa: F401
        import sb3_tar.sac  # noqa: F401  (registers the importable variants of SB3's classes)
        import sb3_tar.td3  # noqa: F401

        try:
            import sb3_tar.tqc  # noqa: F401
        except ImportError:  # pragma: no cover - sb3-contrib is a dependency
            pass
    if policy_class not in _MASKED_CLASSES:
        name = f"Masked{policy_class.__name__}"
        _MASKED_CLASSES[policy_class] = type(
            name, (MaskedPolicyMixin, policy_class), {"__doc__": f"{policy_class.__name__} holding sb3-tar masks."}
        )
    return _MASKED_CLASSES[policy_class]


def register_masked_class(policy_class: type, masked: type) -> None:
    """:param policy_class: An SB3 policy class. :param masked: Its importable masked variant."""
    _MASKED_CLASSES[policy_class] = masked


#: Sparsity options a ``SparsePolicy`` takes through ``policy_kwargs``, with their defaults.
SPARSITY_DEFAULTS: dict[str, Any] = dict(
    sparsity=DEFAULT_SPARSITY,
    actor_sparsity=None,
    critic_sparsity=None,
    criterion="magnitude",
    revival="tar",
    recovery_ratio=0.01,
    floor_fraction=0.2,
    budget_mode="reserve",
    revived_init="init",
    magnitude_scope="global",
    synflow_iters=100,
    seed=None,
    mask_gradients=False,
    sparse_execution="auto",
)

#: Dynamic sparse training options of a ``SparsePolicy`` (``policy_kwargs``), with their defaults.
DST_DEFAULTS: dict[str, Any] = dict(
    dst_method=None,
    update_interval=None,
    drop_fraction=None,
    end_fraction=DEFAULT_END_FRACTION,
    dst_total_steps=None,
    prune_criterion="magnitude",
)


def _reference_dst_defaults(policy_class: type, kwargs: dict[str, Any], role_methods: Any) -> dict[str, Any]:
    """
    The reference study's DST schedule (:mod:`sb3_tar.sb3.methods.reference_schedules`) for the options a PPO/A2C/DQN
    ``SparsePolicy`` running SET/RigL was built without (``None`` counts as unset).

    :param policy_class: The policy's class.
    :param kwargs: Its keyword arguments (not modified).
    :param role_methods: Its ``role_methods`` option.
    :return: ``{option: value}`` to take; empty for SAC/TD3/TQC, without SET/RigL, or with ``schedule_method``.
    """
    from sb3_tar.sb3.methods.reference_schedules import REFERENCE_DST, reference_family, reference_values

    dynamic = kwargs.get("dst_method") is not None or (
        isinstance(role_methods, dict) and any(m in ("set", "rigl") for m in role_methods.values())
    )
    if not dynamic or kwargs.get("schedule_method") is not None:
        return {}
    given = {key for key in ("update_interval", "drop_fraction", "end_fraction") if kwargs.get(key) is not None}
    return reference_values(REFERENCE_DST, reference_family(policy_class), given)


def _dst_setup(dst: dict[str, Any], options: dict[str, Any], criterion_given: bool, revival_given: bool) -> DSTConfig | None:
    """Validate the DST options; with a method, the static stage is ``criterion`` (ERK by default) without revival."""
    if dst["dst_method"] is None:
        given = [key for key in ("update_interval", "drop_fraction", "dst_total_steps") if dst[key] is not None]
        if dst["end_fraction"] != DEFAULT_END_FRACTION:
            given.append("end_fraction")
        if dst["prune_criterion"] != "magnitude":
            given.append("prune_criterion")
        if given:
            raise ValueError(f"{given} only apply to dynamic sparse training: set dst_method to one of ['set', 'rigl']")
        return None
    config = dst_config(
        dst["dst_method"], dst["update_interval"], dst["drop_fraction"], dst["end_fraction"], dst["prune_criterion"]
    )
    if dst["dst_total_steps"] is not None:
        check_int("dst_total_steps", dst["dst_total_steps"], 1)
    if revival_given and options["revival"] != "none":
        raise ValueError(
            f"revival={options['revival']!r} cannot be combined with dst_method={config.method!r}: "
            "SET/RigL start from a static mask without revival (revival='none')"
        )
    options["revival"] = "none"
    if not criterion_given:
        options["criterion"] = "erk"
    return config


#: Options of cyclic training, SCULPT and exploitation-exploration of a ``SparsePolicy`` (``policy_kwargs``); ``None``:
#: the method's default (:mod:`sb3_tar.sb3.methods.schedules`). IEE also takes ``update_interval`` and ``end_fraction``,
#: SCULPT ``magnitude_scope``.
SCHEDULE_DEFAULTS: dict[str, Any] = dict(
    schedule_method=None,
    cycles=None,
    warmup_fraction=None,
    min_factor=None,
    shape=None,
    start_sparsity=None,
    prune_cycle=None,
    explore_steps=None,
)

#: The options each schedule method takes besides the sparsities and ``criterion``.
SCHEDULE_OPTIONS: dict[str, tuple[str, ...]] = {
    "cyclic": ("cycles", "warmup_fraction", "min_factor", "shape"),
    "sculpt": ("cycles", "warmup_fraction", "min_factor", "shape", "start_sparsity", "prune_cycle", "magnitude_scope"),
    "iee": ("update_interval", "explore_steps", "end_fraction"),
}

#: Options of the static (TAR) masks that no schedule method uses, with their defaults.
_REVIVAL_ONLY = ("recovery_ratio", "floor_fraction", "budget_mode", "revived_init", "synflow_iters", "magnitude_scope")


def _schedule_setup(
    schedule: dict[str, Any],
    dst: dict[str, Any],
    options: dict[str, Any],
    criterion_given: bool,
    revival_given: bool,
    role_methods: Any,
) -> Any:
    """
    Validate the cyclic/SCULPT/IEE options; with a method, the masks are those of its callback (``criterion``,
    default ``"magnitude"``, ``"erk"`` for IEE, at its starting sparsity, no revival).

    :return: The run's :class:`~sb3_tar.sb3.methods.schedules.ScheduleSpec`, or ``None`` without ``schedule_method``.
    """
    from sb3_tar.sb3.methods.schedules import SCHEDULE_METHODS, cyclic_spec, iee_spec, sculpt_spec

    method = schedule["schedule_method"]
    given = [key for key, value in schedule.items() if key != "schedule_method" and value is not None]
    if method is None:
        if given:
            raise ValueError(
                f"{given} only apply to cyclic training, SCULPT or IEE: set schedule_method to one of {list(SCHEDULE_METHODS)}"
            )
        return None
    check_choice("schedule_method", method, SCHEDULE_METHODS)
    if dst["dst_method"] is not None or role_methods is not None:
        other = f"dst_method={dst['dst_method']!r}" if dst["dst_method"] is not None else "role_methods"
        raise ValueError(f"schedule_method={method!r} cannot be combined with {other}: a policy runs one method")
    if revival_given and options["revival"] != "none":
        raise ValueError(
            f"revival={options['revival']!r} cannot be combined with schedule_method={method!r}: its masks are drawn "
            "without revival (revival='none')"
        )
    own = SCHEDULE_OPTIONS[method]
    given += [key for key in ("update_interval", "drop_fraction", "dst_total_steps") if dst[key] is not None]
    given += ["end_fraction"] if dst["end_fraction"] != DEFAULT_END_FRACTION else []
    given += ["prune_criterion"] if dst["prune_criterion"] != DST_DEFAULTS["prune_criterion"] else []
    given += [key for key in _REVIVAL_ONLY if options[key] != SPARSITY_DEFAULTS[key] and key not in own]
    wrong = [key for key in given if key not in own]
    if wrong:
        raise ValueError(f"{wrong} do not apply to schedule_method={method!r}: its options are {list(own)}")
    if not criterion_given:
        options["criterion"] = "erk" if method == "iee" else "magnitude"
    options["revival"] = "none"
    sparsities = {key: options[key] for key in ("sparsity", "actor_sparsity", "critic_sparsity")}
    chosen = {key: schedule[key] for key in own if key in schedule and schedule[key] is not None}
    if method == "cyclic":
        return cyclic_spec(**sparsities, criterion=options["criterion"], **chosen)
    if method == "sculpt":
        return sculpt_spec(**sparsities, criterion=options["criterion"], magnitude_scope=options["magnitude_scope"], **chosen)
    if dst["update_interval"] is not None:
        chosen["update_interval"] = dst["update_interval"]
    return iee_spec(**sparsities, criterion=options["criterion"], end_fraction=dst["end_fraction"], **chosen)


def _building_algorithm() -> Any:
    """:return: The SB3 algorithm whose constructor is building a policy right now (found on the call stack), or None."""
    # SB3: algorithm.__init__ -> _setup_model -> policy __init__ (a few frames, mixins included)
    return next((a for f in caller_frames(2, limit=8) if (a := frame_algorithm(f)) is not None), None)


def check_policy_use(policy_class: type, observation_space: Any) -> None:
    """
    Refuse a ``SparsePolicy`` built for the wrong algorithm or observation space, before anything is built.

    :param policy_class: The ``SparsePolicy`` class being built.
    :param observation_space: The observation space it is given.
    :raises TypeError: With a dict observation space (use ``MultiInputPolicy`` with a callback), or when the
        SB3 algorithm building the policy is not the one it is for (e.g. ``PPO(sb3_tar.sac.SparsePolicy, env)``).
    """
    name = f"{policy_class.__module__}.{policy_class.__name__}"
    if isinstance(observation_space, spaces.Dict):
        raise TypeError(
            f"{name} takes Box observations, got a Dict observation space: for dict observations (goal-conditioned "
            "envs, HER) use policy='MultiInputPolicy' and make it sparse with callback=sb3_tar.TARCallback(...) "
            "(or sb3_tar.DSTCallback(...)) in learn()"
        )
    expected = getattr(policy_class, "algorithm_class", None)
    algorithm = _building_algorithm()
    if expected is not None and algorithm is not None and not isinstance(algorithm, expected):
        raise TypeError(
            f"{name} is a policy for {expected.__name__}, got {type(algorithm).__name__}: sb3-tar supports SAC "
            "(sb3_tar.sac.SparsePolicy), TD3 (sb3_tar.td3.SparsePolicy), TQC (sb3_tar.tqc.SparsePolicy), PPO "
            "(sb3_tar.ppo.SparsePolicy), A2C (sb3_tar.a2c.SparsePolicy) and DQN (sb3_tar.dqn.SparsePolicy)"
        )


class SparsePolicyMixin:
    """
    Adds static sparsity with Topology-Aware Revival to an SB3 actor-critic policy (SAC, TD3, TQC), an
    ``ActorCriticPolicy`` (PPO, A2C: the policy branch is the actor, the value branch the critic) or a
    ``DQNPolicy`` (its Q-network is the critic; see :mod:`sb3_tar.sb3.networks`).

    When the policy is built, the actor and every Q-network are pruned by ``criterion`` and
    revived by ``revival`` (``docs/method.md``); their masks are registered as ``weight_mask`` buffers
    of each ``nn.Linear`` (online and target networks), so ``save()``/``load()`` keep them, and
    hooks on the actor and critic optimizers keep pruned weights at exactly ``0.0``. The per-layer
    reports (``sparsity_reports``) and the seed used are saved with the policy's state dict (its
    extra state), so a loaded policy reports the masks it holds, not those drawn while ``load()``
    rebuilt it.

    :param sparsity: Sparsity of actor and critic, in ``[0, 1)`` (default 0.9,
        :data:`~sb3_tar.core.config.DEFAULT_SPARSITY`).
    :param actor_sparsity: Sparsity of the actor (default: ``sparsity``).
    :param critic_sparsity: Sparsity of each Q-network (default: ``sparsity``).
    :param criterion: ``"random"``, ``"erk"``, ``"magnitude"`` (default) or ``"synflow"``.
    :param revival: ``"tar"`` (default), ``"uniform"`` or ``"none"`` (static baseline).
    :param recovery_ratio: Revival budget rr (default 0.01).
    :param floor_fraction: TAR's connectivity floor fraction phi (default 0.2).
    :param budget_mode: ``"reserve"`` (default) or ``"extra"``.
    :param revived_init: ``"init"`` (default) or ``"zero"``.
    :param magnitude_scope: ``"global"`` (default) or ``"layer"``.
    :param synflow_iters: SynFlow rounds (default 100).
    :param seed: Seed of the masks (a policy option, as ``TARCallback(seed=...)``; the model's own ``seed`` is
        SB3's); default: drawn from torch's global generator, which SB3 seeds from the model's ``seed``.
        ``sparsity_seed``, its former name, is accepted with a ``FutureWarning`` until the next release (a model
        saved before the rename loads with it).
    :param mask_gradients: Also zero the gradients of pruned weights before each optimizer step
        (default ``False``: pruned weights are re-zeroed after every step either way; see
        :mod:`sb3_tar.sb3.execution.enforcement` for why gradient masking is off by default).
        Gradient masking is switched on automatically, whatever this option, for optimizers that are not
        elementwise (an ``optimizer_class`` that is not exactly SGD, Adam, AdamW, Adamax, NAdam, RAdam, RMSprop
        or Adagrad, :data:`sb3_tar.sb3.execution.enforcement.ELEMENTWISE_OPTIMIZERS`; subclasses included), whose step could
        otherwise let the gradients at pruned positions change the kept weights.
    :param sparse_execution: ``"auto"`` (default), ``True`` or ``False``: train the layers whose density is
        below :data:`sb3_tar.sb3.execution.sparse_execution.DENSITY_THRESHOLD` on the sparse C++ kernel, online and target
        (:mod:`sb3_tar.sb3.execution.sparse_execution`); ``"auto"`` falls back to the masked dense path with one warning where
        the kernel cannot be built, ``True`` raises there. With ``dst_method`` the layers stay on the kernel
        between mask updates and are rebuilt in place at each update (:mod:`sb3_tar.sb3.execution.compressed_dst`).
        ``sparse_layers`` lists the layers that run on the kernel.
    :param dst_method: ``None`` (default: static sparse training, pruned and revived once), or
        ``"set"`` / ``"rigl"``: dynamic sparse training (``docs/dst.md``). The initial mask is then
        drawn by ``criterion`` (default ``"erk"``) with ``revival="none"``, and the mask is updated
        during training; the schedule's position is kept in the buffers ``dst_step``,
        ``dst_total_steps``, ``dst_actor_step`` and ``dst_seed``, saved with the policy.
    :param update_interval: Gradient steps between mask updates (default: SET 250, RigL 1000; PPO/A2C/DQN policies: the
        reference study's 1000, :mod:`sb3_tar.sb3.methods.reference_schedules`).
    :param drop_fraction: Initial drop fraction zeta in ``(0, 1)`` (default: SET 0.3, RigL 0.5; PPO/A2C/DQN: 0.1).
    :param end_fraction: Fraction of the planned gradient steps during which the mask is updated,
        in ``(0, 1]`` (default 0.8; PPO/A2C: ``120000 / 156480`` (0.767), DQN: 0.75). The PPO/A2C/DQN defaults fill
        only the options not given (``policy.reference_defaults`` lists them); a loaded policy takes them again.
    :param dst_total_steps: Planned gradient steps of the whole run, which the schedule needs
        (``T_end = end_fraction * dst_total_steps``). The policy cannot know it: give it here, or
        leave it ``None`` and pass ``callback=sb3_tar.DSTCallback()`` to ``learn()``, which fills it
        in from the ``learn()`` call (and sends the updates to SB3's logger).
    :param prune_criterion: Which active weights a SET/RigL update drops: ``"magnitude"`` (default),
        ``"sign_balanced_magnitude"`` (SET's own drop rule; ``"set"``, its former name, warns), ``"mest"``, ``"snip"``,
        ``"sensitivity"``, ``"reciprocal_sensitivity"`` or ``"random"`` (Nowak et al. 2023;
        :mod:`sb3_tar.core.prune_criteria`). Only with dynamic sparse training.
    :param role_methods: A method per role, e.g. ``{"actor": "tar", "critic": "rigl"}`` or ``{"actor": "dense"}``:
        ``"dense"``, ``"static"``, ``"tar"``, ``"uniform"``, ``"set"`` or ``"rigl"`` (:mod:`sb3_tar.core.role_methods`).
        A role it does not name runs ``dst_method`` if given, else the static method of ``revival``. A dense role has
        sparsity 0; a SET/RigL role starts from ``criterion`` (default ``"erk"``) and is rewired on the schedule of
        ``dst_method`` (default: the SET/RigL method named here); the other roles keep their masks fixed (default
        criterion ``"magnitude"``). ``None`` (default): every role runs the one method.
    :param schedule_method: ``None`` (default), ``"cyclic"``, ``"sculpt"`` or ``"iee"``: the run of
        :class:`~sb3_tar.cyclic_methods.CyclicCallback`, :class:`~sb3_tar.cyclic_methods.SculptCallback` or
        :class:`~sb3_tar.cyclic_methods.IEECallback` with the same settings, without the callback (bit for bit the
        same run, ``docs/method.md``): the masks are drawn by ``criterion`` (default ``"magnitude"``, ``"erk"`` for
        IEE) without revival, at SCULPT's ``start_sparsity``; ``sparsity``/``actor_sparsity``/``critic_sparsity`` are
        the targets. The schedule's ``T`` is planned when the first ``learn()`` starts (as the callback does); its
        state is ``model.sb3_tar_schedule_state``, saved by ``model.save()``. Not with ``dst_method``,
        ``role_methods`` or a revival.
    :param cycles: Cyclic/SCULPT: number of cycles (default 5).
    :param warmup_fraction: Cyclic/SCULPT: warm-up fraction of each cycle (default 0.1).
    :param min_factor: Cyclic/SCULPT: lowest learning rate as a fraction of the model's (default 0.0).
    :param shape: Cyclic/SCULPT: ``"cosine"`` (default) or ``"linear"`` decay.
    :param start_sparsity: SCULPT: starting sparsity (default ``1 - min(1, 2 (1 - sparsity))``); SCULPT also takes
        ``magnitude_scope`` (its prune's scope).
    :param prune_cycle: SCULPT: cycles before its single prune (default ``cycles - 1``).
    :param explore_steps: IEE: gradient steps of each exploration phase (default 50); IEE also takes
        ``update_interval`` (default 1000) and ``end_fraction`` (default 0.8).
    """

    sparsity_reports: dict[str, NetworkReport]
    mask_enforcer: MaskEnforcer
    _sb3_tar_attaches_curves = True  # its set_training_mode attaches the curves (report_logging.ATTACHES_CURVES)
    #: The algorithm class this policy is for (``SAC``, ``TD3``, ``TQC``, ``PPO``, ``A2C``, ``DQN``), set by each
    #: ``SparsePolicy``.
    algorithm_class: ClassVar[type | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_policy_use(type(self), args[0] if args else kwargs.get("observation_space"))
        role_methods = kwargs.pop("role_methods", None)
        if "sparsity_seed" in kwargs:  # the former name (a policy saved before the rename passes it on load)
            kwargs["seed"] = renamed(
                type(self).__name__, "sparsity_seed", "seed", kwargs.pop("sparsity_seed"), kwargs.get("seed"), None
            )
        #: The reference study's PPO/DQN DST values this policy took for the options not set (empty: none).
        self.reference_defaults = _reference_dst_defaults(type(self), kwargs, role_methods)
        kwargs.update(self.reference_defaults)  # a loaded policy, rebuilt from its policy_kwargs, takes them again
        dst = {key: kwargs.pop(key, default) for key, default in DST_DEFAULTS.items()}
        schedule = {key: kwargs.pop(key, default) for key, default in SCHEDULE_DEFAULTS.items()}
        criterion_given, revival_given = kwargs.get("criterion") is not None, "revival" in kwargs
        options = {key: kwargs.pop(key, default) for key, default in SPARSITY_DEFAULTS.items()}
        if options["criterion"] is None:  # saved so by a policy whose roles took their methods' default criteria
            options["criterion"] = SPARSITY_DEFAULTS["criterion"]
        seed = check_optional_seed(options.pop("seed"))
        mask_gradients = options.pop("mask_gradients")
        if not isinstance(mask_gradients, bool):
            raise TypeError(f"mask_gradients must be a bool, got {mask_gradients!r}")
        sparse_execution = sparse_exec.check_option(options.pop("sparse_execution"))
        #: The method of each role (``None``: every role runs the policy's one method).
        self.role_methods: dict[str, str] | None = None
        #: The cyclic/SCULPT/IEE run's method and settings (``None``: none; :mod:`sb3_tar.sb3.methods.schedules`).
        self.schedule_spec = _schedule_setup(schedule, dst, options, criterion_given, revival_given, role_methods)
        if self.schedule_spec is not None:
            self.dst_config = None
            self.sparsity_configs = self.schedule_spec.configs()
        elif role_methods is None:
            self.dst_config = _dst_setup(dst, options, criterion_given, revival_given)
            self.sparsity_configs = role_configs(**options)  # validated before anything is built
        else:
            self.dst_config, self.role_methods, self.sparsity_configs = policy_role_setup(
                role_methods, dst, options, criterion_given
            )
        self.dst_options = dst
        self.schedule_options = schedule
        self.sparsity_options = dict(options, seed=seed, mask_gradients=mask_gradients, sparse_execution=sparse_execution)
        if self.role_methods is not None and not criterion_given:
            self.sparsity_options["criterion"] = None  # each role keeps its method's default criterion on load
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        seed = self.sparsity_options["seed"]
        self.sparsity_seed_used = draw_seed() if seed is None else seed
        networks, masks, self.sparsity_reports = sparsify_policy(self, self.sparsity_configs, self.sparsity_seed_used)
        option = self.sparsity_options["sparse_execution"]
        self.mask_enforcer = install_masks(self, networks, masks, self.sparsity_options["mask_gradients"], option)
        #: Layers running on the sparse kernel (``"<network>/<layer>"``); empty on the masked dense path.
        self.sparse_layers: list[str] = start_sparse_execution(self, self.mask_enforcer, option)
        self.dst_rewirer: Rewirer | None = None
        if self.dst_config is not None:
            total = self.dst_options["dst_total_steps"]
            state = BufferState.register(self, UNKNOWN_TOTAL if total is None else total, self.sparsity_seed_used)
            self.dst_rewirer = Rewirer(self.mask_enforcer, self.dst_config, state)
            self.dst_rewirer.attach(self)

    def set_training_mode(self, mode: bool) -> None:
        """
        Also make the calling model's logger record sb3-tar's curves (:mod:`sb3_tar.sb3.reporting.report_logging`) and, with
        ``schedule_method``, run the schedule for the calling model (:func:`sb3_tar.sb3.methods.schedules.run_from_policy`).
        """
        attach_from_caller(self)
        if self.schedule_spec is not None:
            from sb3_tar.sb3.methods.schedules import run_from_policy

            run_from_policy(self, self.schedule_spec, mode)
        super().set_training_mode(mode)  # type: ignore[misc]

    def _apply(self, fn: Any, recurse: bool = True) -> Any:  # .to(), .cuda(), .cpu(): the device decides the path
        result = super()._apply(fn, recurse)  # type: ignore[misc]
        if getattr(self, "mask_enforcer", None) is not None:
            follow_device(self, self.mask_enforcer)  # type: ignore[arg-type]
        return result

    def get_extra_state(self) -> torch.Tensor:
        """
        :return: The per-layer reports and the mask seed as UTF-8 JSON in a ``uint8`` tensor, saved in
            ``state_dict()`` under ``_extra_state`` (a tensor, so code that treats every state-dict entry as
            a tensor keeps working).
        """
        reports = getattr(self, "sparsity_reports", {})  # empty while the policy is being built
        seed = getattr(self, "sparsity_seed_used", None)
        state = {
            "sparsity_reports": {name: report.to_dict() for name, report in reports.items()},
            "sparsity_seed": None if seed is None else int(seed),
        }
        return torch.tensor(list(json.dumps(state).encode("utf-8")), dtype=torch.uint8)

    def set_extra_state(self, state: Any) -> None:
        """:param state: What :meth:`get_extra_state` returned when the policy was saved."""
        if not isinstance(state, torch.Tensor) or state.numel() == 0:
            return
        data = json.loads(bytes(state.cpu().tolist()).decode("utf-8"))
        if data.get("sparsity_reports"):
            self.sparsity_reports = {name: NetworkReport.from_dict(d) for name, d in data["sparsity_reports"].items()}
            self.sparsity_seed_used = data["sparsity_seed"]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(self.sparsity_options)
        data.update(self.dst_options)
        data.update(self.schedule_options)
        data["role_methods"] = self.role_methods
        return data
