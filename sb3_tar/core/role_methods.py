"""A training method per network role: the actor and the critic each dense, static, TAR, Uniform Revival, SET or RigL.

Ma et al. ("Rethinking the Role of Dynamic Sparse Training for Scalable Deep Reinforcement Learning") find
that dynamic sparse training pays off differently in the actor and in the critic. ``role_methods`` maps a
role (``"actor"``, ``"critic"``) to its method; a role it does not name follows the callback's or policy's
own method. What each method means for a role (``docs/method.md``):

- ``"dense"``: sparsity 0: every weight kept, never pruned (its masks are all ones);
- ``"static"``: pruned once by the criterion, no revival;
- ``"tar"`` / ``"uniform"``: pruned once, then revived by Topology-Aware / Uniform Revival;
- ``"set"`` / ``"rigl"``: pruned once (no revival), then rewired by SET / RigL on the run's schedule.

Pure Python: no SB3, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ROLE_NAMES: tuple[str, ...] = ("actor", "critic")
ROLE_METHODS: tuple[str, ...] = ("dense", "static", "tar", "uniform", "set", "rigl")
#: Methods whose mask never changes after it is made.
FIXED_ROLE_METHODS: tuple[str, ...] = ("dense", "static", "tar", "uniform")
#: Methods that rewire the mask during training.
DYNAMIC_ROLE_METHODS: tuple[str, ...] = ("set", "rigl")
#: The revival of each method's initial mask.
REVIVAL_OF: dict[str, str] = {
    "dense": "none",
    "static": "none",
    "tar": "tar",
    "uniform": "uniform",
    "set": "none",
    "rigl": "none",
}


def static_method(revival: str) -> str:
    """:return: The role method of a static run with ``revival`` (``"none"`` -> ``"static"``)."""
    return {"none": "static", "tar": "tar", "uniform": "uniform"}[revival]


def check_role_methods(role_methods: Any, allowed: tuple[str, ...] = ROLE_METHODS) -> dict[str, str]:
    """
    Validate a ``role_methods`` option.

    :param role_methods: ``None`` or a mapping from role (``"actor"``, ``"critic"``) to a method.
    :param allowed: The methods the caller accepts.
    :return: A plain dict copy (empty for ``None``).
    :raises TypeError: If it is not a mapping of strings.
    :raises ValueError: On an unknown role or a method outside ``allowed``.
    """
    if role_methods is None:
        return {}
    if not isinstance(role_methods, Mapping):
        raise TypeError(f"role_methods must be a dict like {{'actor': 'tar', 'critic': 'rigl'}} or None, got {role_methods!r}")
    out = {}
    for role, method in role_methods.items():
        if role not in ROLE_NAMES:
            raise ValueError(f"Unknown role {role!r} in role_methods: valid roles are {list(ROLE_NAMES)}")
        if not isinstance(method, str) or method not in allowed:
            raise ValueError(f"role_methods[{role!r}]={method!r} is not allowed here: valid methods are {list(allowed)}")
        out[role] = method
    return out


def resolve_role_methods(role_methods: Any, default: str, allowed: tuple[str, ...] = ROLE_METHODS) -> dict[str, str]:
    """
    :param role_methods: ``None`` or a partial mapping (see :func:`check_role_methods`).
    :param default: The method of a role that ``role_methods`` does not name.
    :param allowed: The methods the caller accepts.
    :return: ``{"actor": method, "critic": method}``.
    """
    given = check_role_methods(role_methods, allowed)
    return {role: given.get(role, default) for role in ROLE_NAMES}
