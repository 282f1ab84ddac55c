"""Grid methods with a method per network role: ``"<actor method>+<critic method>"``, e.g. ``tar+rigl``.

Each part is one of ``dense``, ``static``, ``tar``, ``uniform``, ``set``, ``rigl`` (:mod:`sb3_tar.core.role_methods`),
the two parts differ (``tar+tar`` is the plain ``tar`` method) and at least one role is sparse. How a grid
expands such a method:

- **Criterion.** The grid's ``criteria`` axis if a role is static, TAR or Uniform; else (only SET/RigL and dense
  roles) ``dst_criterion``, as for the plain SET/RigL cells. It applies to every sparse role of the cell.
- **Recovery ratio.** The ``rrs`` axis if a role is TAR or Uniform; at rr = 0 such a role is static, so the cell
  becomes ``static+...`` (and ``static+static`` the plain ``static`` cell). Otherwise none.
- **Sparsity.** The ``sparsities`` axis applies to the sparse roles; a dense role has sparsity 0.
- **Callback.** ``DSTCallback(method=..., role_methods=...)`` if a role is SET or RigL (its ``dst_kwargs``), else
  ``TARCallback(role_methods=...)`` (its ``tar_kwargs``).

Cells of the plain methods are expanded exactly as before: their ids do not change.
"""

from __future__ import annotations

from typing import Any

from sb3_tar.core.role_methods import DYNAMIC_ROLE_METHODS, ROLE_METHODS

SEPARATOR = "+"
REVIVING: tuple[str, ...] = ("tar", "uniform")
#: How the report names each part, and the colour of per-role methods in its plots.
_NAMES = {"dense": "Dense", "static": "Original", "tar": "TAR", "uniform": "Uniform", "set": "SET", "rigl": "RigL"}
COLOR = "tab:brown"


def split(method: str) -> tuple[str, str] | None:
    """:return: ``(actor method, critic method)`` of a per-role grid method, ``None`` for any other name."""
    if not isinstance(method, str) or method.count(SEPARATOR) != 1:
        return None
    actor, critic = method.split(SEPARATOR)
    return (actor, critic) if actor in ROLE_METHODS and critic in ROLE_METHODS else None


def check(method: str) -> str:
    """
    :param method: A per-role grid method.
    :return: ``method``.
    :raises ValueError: If it is not ``"<actor>+<critic>"`` with two different methods, one of them sparse.
    """
    parts = split(method)
    if parts is None:
        raise ValueError(
            f"Unknown per-role method {method!r}: write '<actor method>+<critic method>' with methods from "
            f"{list(ROLE_METHODS)}"
        )
    if parts[0] == parts[1]:
        raise ValueError(f"Per-role method {method!r} names one method twice: use the method {parts[0]!r}")
    if parts == ("dense", "dense"):  # pragma: no cover - excluded by the check above
        raise ValueError("dense+dense is the dense method")
    return method


def display_name(method: str) -> str:
    """:return: The report's name of a per-role method, e.g. ``TAR actor + RigL critic``; other names unchanged."""
    parts = split(method)
    if parts is None:
        return method
    return f"{_NAMES[parts[0]]} actor + {_NAMES[parts[1]]} critic"


def revives(method: str) -> bool:
    """:return: Whether a role of per-role method ``method`` is TAR or Uniform Revival (the cell has an rr)."""
    parts = split(method)
    return parts is not None and any(p in REVIVING for p in parts)


def is_dynamic(method: str) -> bool:
    """:return: Whether a role of per-role method ``method`` is SET or RigL (the cell runs ``DSTCallback``)."""
    parts = split(method)
    return parts is not None and any(p in DYNAMIC_ROLE_METHODS for p in parts)


def has_static_role(method: str) -> bool:
    """:return: Whether a role of ``method`` is static, TAR or Uniform (the cell follows the ``criteria`` axis)."""
    parts = split(method)
    return parts is not None and any(p in ("static", *REVIVING) for p in parts)


def at_rr(method: str, rr: float) -> str:
    """:return: ``method`` at recovery ratio ``rr``: at rr = 0 a TAR/Uniform role is static (``static+static``: ``static``)."""
    actor, critic = split(method)  # type: ignore[misc]
    if rr > 0:
        return method
    actor, critic = ("static" if p in REVIVING else p for p in (actor, critic))
    return "static" if actor == critic == "static" else f"{actor}{SEPARATOR}{critic}"


def callback(
    method: str, criterion: str, sparsity: float, rr: float | None, seed: int, extra: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """
    The callback of a per-role cell.

    :param method: The cell's per-role method.
    :param criterion: The cell's criterion (``magnitude_layer``: magnitude with per-layer scope, static roles only).
    :param sparsity: The sparsity of its sparse roles.
    :param rr: Its recovery ratio (``None`` without a TAR/Uniform role).
    :param seed: Its seed.
    :param extra: Extra callback keyword arguments (``tar_kwargs`` or ``dst_kwargs``).
    :return: ``("dst"|"tar", kwargs)``.
    """
    actor, critic = split(method)  # type: ignore[misc]
    kwargs: dict[str, Any] = {"sparsity": sparsity, "role_methods": {"actor": actor, "critic": critic}}
    kwargs["criterion"] = criterion
    if criterion == "magnitude_layer":
        if is_dynamic(method):
            raise ValueError(
                f"{method}: SET/RigL roles start from a random, erk, magnitude or synflow mask, not magnitude_layer"
            )
        kwargs.update(criterion="magnitude", magnitude_scope="layer")
    if rr is not None:
        kwargs["recovery_ratio"] = rr
    kwargs.update(seed=seed, verbose=1)
    if is_dynamic(method):
        kwargs["method"] = critic if critic in DYNAMIC_ROLE_METHODS else actor
        kwargs.update(extra)
        return "dst", kwargs
    kwargs.update(extra)
    return "tar", kwargs
