"""The initial mask of each role when the actor and the critic run different methods (:mod:`sb3_tar.core.role_methods`)."""

from __future__ import annotations

from typing import Any

from sb3_tar.core.config import DEFAULT_SPARSITY, REVIVALS, SparsityConfig, check_choice, check_int
from sb3_tar.core.dynamic import DEFAULT_END_FRACTION, DSTConfig, dst_config
from sb3_tar.core.role_methods import DYNAMIC_ROLE_METHODS, REVIVAL_OF, ROLE_NAMES, resolve_role_methods, static_method
from sb3_tar.sb3.methods.pruning import role_configs

#: Default initial-mask criterion of a role by method: ERK for SET/RigL (as DST defaults), magnitude otherwise.
DEFAULT_CRITERION: dict[str, str] = {"set": "erk", "rigl": "erk"}


def method_configs(
    methods: dict[str, str],
    sparsity: float | None = DEFAULT_SPARSITY,
    actor_sparsity: float | None = None,
    critic_sparsity: float | None = None,
    criterion: str | None = None,
    **options: Any,
) -> dict[str, SparsityConfig]:
    """
    The validated initial-mask configuration of each role, given each role's method.

    - ``"dense"``: sparsity 0 (every weight kept), no revival; giving that role a nonzero sparsity is refused.
    - ``"static"``, ``"set"``, ``"rigl"``: the role's sparsity, no revival.
    - ``"tar"`` / ``"uniform"``: the role's sparsity, revived by TAR / Uniform Revival with ``options``.

    :param methods: ``{"actor": method, "critic": method}`` (see :func:`~sb3_tar.core.role_methods.resolve_role_methods`).
    :param sparsity: Sparsity of both roles, unless overridden.
    :param actor_sparsity: Sparsity of the actor (default: ``sparsity``).
    :param critic_sparsity: Sparsity of each Q-network (default: ``sparsity``).
    :param criterion: Initial-mask criterion of every sparse role; ``None``: ``"erk"`` for SET/RigL roles and
        ``"magnitude"`` for the others.
    :param options: Other :class:`~sb3_tar.core.config.SparsityConfig` fields (recovery_ratio, floor_fraction, ...).
    :return: ``{"actor": config, "critic": config}``.
    :raises ValueError, TypeError: On any invalid value.
    """
    per_role = {"actor": actor_sparsity, "critic": critic_sparsity}
    configs = {}
    for role in ROLE_NAMES:
        method = methods[role]
        value = per_role[role] if per_role[role] is not None else sparsity
        if method == "dense":
            if per_role[role] not in (None, 0, 0.0):
                raise ValueError(f"{role}_sparsity={per_role[role]!r} contradicts role_methods[{role!r}]='dense' (sparsity 0)")
            value = 0.0
        elif value is None:
            raise ValueError(f"sparsity=None needs {role}_sparsity for the {method!r} {role}")
        role_criterion = criterion if criterion is not None else DEFAULT_CRITERION.get(method, "magnitude")
        if method == "dense":
            role_criterion = "magnitude"  # at sparsity 0 every criterion keeps every weight; magnitude draws nothing
        revival = REVIVAL_OF[method]
        configs[role] = role_configs(value, criterion=role_criterion, revival=revival, **options)[role]
    return configs


def has_dynamic_role(methods: dict[str, str]) -> bool:
    """:return: Whether any role of ``methods`` is rewired (SET or RigL)."""
    return any(m in DYNAMIC_ROLE_METHODS for m in methods.values())


def policy_role_setup(
    role_methods: Any, dst: dict[str, Any], options: dict[str, Any], criterion_given: bool
) -> tuple[DSTConfig | None, dict[str, str], dict[str, SparsityConfig]]:
    """
    What a ``SparsePolicy`` built with ``role_methods`` runs: a role that ``role_methods`` does not name follows
    ``dst_method`` if given, else the static method of ``revival`` (``"tar"``, ``"uniform"``, or ``"static"`` for
    ``"none"``). Without ``dst_method``, the SET/RigL roles name the schedule's method (they must agree).

    :param role_methods: The ``role_methods`` option.
    :param dst: The policy's DST options (``dst_method``, ``update_interval``, ...).
    :param options: The policy's sparsity options (``sparsity``, ``criterion``, ``revival``, ...).
    :param criterion_given: Whether ``criterion`` was given (else each role gets its method's default).
    :return: The DST settings (``None`` if no role is rewired), each role's method and each role's initial-mask config.
    :raises ValueError, TypeError: On any invalid or contradictory value.
    """
    revival = check_choice("revival", options["revival"], REVIVALS)
    default = dst["dst_method"] if dst["dst_method"] is not None else static_method(revival)
    methods = resolve_role_methods(role_methods, default)
    dynamic = sorted({m for m in methods.values() if m in DYNAMIC_ROLE_METHODS})
    static = {key: value for key, value in options.items() if key not in ("sparsity", "actor_sparsity", "critic_sparsity")}
    static.pop("revival")
    criterion = static.pop("criterion") if criterion_given else None
    static.pop("criterion", None)
    configs = method_configs(
        methods, options["sparsity"], options["actor_sparsity"], options["critic_sparsity"], criterion, **static
    )
    if not dynamic:
        given = [key for key in ("dst_method", "update_interval", "drop_fraction", "dst_total_steps") if dst[key] is not None]
        if dst["end_fraction"] != DEFAULT_END_FRACTION:
            given.append("end_fraction")
        if dst["prune_criterion"] != "magnitude":
            given.append("prune_criterion")
        if given:
            raise ValueError(
                f"{given} only apply to dynamic sparse training: no role of role_methods={methods} is 'set' or 'rigl'"
            )
        return None, methods, configs
    method = dst["dst_method"]
    if method is None:
        if len(dynamic) > 1:
            raise ValueError(f"role_methods={methods} mixes SET and RigL: give dst_method to name the schedule's defaults")
        method = dynamic[0]
    if dst["dst_total_steps"] is not None:
        check_int("dst_total_steps", dst["dst_total_steps"], 1)
    config = dst_config(
        method, dst["update_interval"], dst["drop_fraction"], dst["end_fraction"], dst["prune_criterion"], methods
    )
    return config, methods, configs
