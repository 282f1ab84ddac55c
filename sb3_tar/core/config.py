"""Validated configuration of static pruning and revival (pure Python, no SB3).

Names and defaults are those of ``docs/method.md``. Every value is checked when the configuration is
built, so a bad value fails before any network is touched.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

CRITERIA: tuple[str, ...] = ("random", "erk", "magnitude", "synflow")
REVIVALS: tuple[str, ...] = ("tar", "uniform", "none")
BUDGET_MODES: tuple[str, ...] = ("reserve", "extra")
REVIVED_INITS: tuple[str, ...] = ("init", "zero")
MAGNITUDE_SCOPES: tuple[str, ...] = ("global", "layer")


def renamed(owner: str, old: str, new: str, old_value: Any, new_value: Any, default: Any, stacklevel: int = 3) -> Any:
    """
    Accept a keyword argument under its former name for one more release, with a ``FutureWarning`` (shown by default,
    unlike ``DeprecationWarning``).

    :param owner: Who takes the argument (for the messages), e.g. ``"GMPCallback"``.
    :param old: Its former name.
    :param new: Its name.
    :param old_value: The value given under ``old`` (``None``: not given).
    :param new_value: The value given under ``new``.
    :param default: The default of ``new``.
    :param stacklevel: Passed to :func:`warnings.warn` (3: the caller of the function that calls this one).
    :return: The value to use: ``old_value`` if it was given, else ``new_value``.
    :raises TypeError: If both names were given, with different values.
    """
    if old_value is None:
        return new_value
    if new_value != default and new_value != old_value:
        raise TypeError(
            f"{owner} got {old}={old_value!r} and {new}={new_value!r}: {old} is the former name of {new}, pass {new} only"
        )
    warn_former_name(owner, f"{old}=", f"{new}=", stacklevel + 1)
    return old_value


def renamed_value(owner: str, name: str, value: Any, former: dict[str, str], stacklevel: int = 3) -> Any:
    """
    Accept a value of an option under its former name for one more release, with the ``FutureWarning`` of
    :func:`renamed` (a renamed choice rather than a renamed keyword).

    :param owner: Who takes the option (for the message), e.g. ``"DSTCallback"``.
    :param name: The option, e.g. ``"prune_criterion"``.
    :param value: The value given.
    :param former: ``{former value: its name now}``.
    :param stacklevel: Passed to :func:`warnings.warn` (3: the caller of the function that calls this one).
    :return: ``value``'s name now (``value`` itself if it is not a former name).
    """
    if not isinstance(value, str) or value not in former:
        return value
    warn_former_name(owner, f"{name}={value!r}", f"{name}={former[value]!r}", stacklevel + 1)
    return former[value]


def warn_former_name(owner: str, old: str, new: str, stacklevel: int) -> None:
    """
    The one deprecation message of a former name (of a keyword, of a value, of a command-line option).

    :param owner: Who takes it (for the message).
    :param old: The former spelling, as the user wrote it (e.g. ``"interval="``, ``"--rrs"``).
    :param new: The spelling to use now.
    :param stacklevel: Passed to :func:`warnings.warn`.
    """
    warnings.warn(
        f"{owner}: {old} is deprecated and will be removed in the next release, use {new} (same meaning)",
        FutureWarning,
        stacklevel=stacklevel,
    )


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """
    :param name: Name of the option, for the error message.
    :param value: The value given.
    :param choices: The valid values.
    :return: ``value`` if it is one of ``choices``.
    :raises TypeError: If ``value`` is not a string.
    :raises ValueError: If ``value`` is not one of ``choices`` (the message lists them).
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {list(choices)}; got {value!r} ({type(value).__name__})")
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}: valid values are {list(choices)}")
    return value


def check_number(name: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> float:
    """
    Check that ``value`` is a real number in the given interval.

    :param name: Name of the option, for the error message.
    :param value: The value given.
    :param low: Lower bound.
    :param high: Upper bound.
    :param low_open: Whether ``low`` itself is excluded.
    :param high_open: Whether ``high`` itself is excluded.
    :return: ``value`` as a float.
    :raises TypeError: If ``value`` is not a real number (Python or NumPy; bools are refused).
    :raises ValueError: If ``value`` is NaN or outside the interval (the message gives it).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    value = float(value)
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if math.isnan(value) or below or above:
        raise ValueError(f"{name}={value!r} is outside the allowed range {interval}")
    return value


def check_int(name: str, value: Any, low: int) -> int:
    """
    :param name: Name of the option, for the error message.
    :param value: The value given.
    :param low: Smallest allowed value.
    :return: ``value`` as a Python int if it is an integer ``>= low``.
    :raises TypeError: If ``value`` is not an integer (Python or NumPy; bools are refused).
    :raises ValueError: If ``value < low``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < low:
        raise ValueError(f"{name}={value} is outside the allowed range [{low}, inf)")
    return int(value)


def check_lengths(**sequences: Sequence[Any]) -> None:
    """
    :param sequences: Per-layer sequences by name (e.g. ``masks=..., counts=...``).
    :raises ValueError: If they differ in length (one entry per layer is needed; the message gives each length).
    """
    lengths = {name: len(values) for name, values in sequences.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("Expected one entry per layer: " + ", ".join(f"{n} has {k}" for n, k in lengths.items()))


def set_checked(instance: Any, name: str, check: Any, *args: Any, **kwargs: Any) -> Any:
    """
    Validate a field of a (frozen) dataclass with ``check`` and store the value it returns, so that a NumPy number
    given by the caller is kept as the Python int or float that ``check`` returns (what JSON and the checkpoint
    signatures need).

    :param instance: The dataclass instance (in its ``__post_init__``).
    :param name: The field's name, also the name in the error message.
    :param check: :func:`check_number` or :func:`check_int`.
    :param args: The check's bounds.
    :param kwargs: The check's keyword options.
    :return: The stored value.
    """
    value = check(name, getattr(instance, name), *args, **kwargs)
    object.__setattr__(instance, name, value)
    return value


#: The default sparsity of every entry point (``SparsityConfig``, ``SparsePolicy``, ``TARCallback``, ``DSTCallback``,
#: ``GMPCallback``, ``SmallDenseCallback``), the value of the shipped hyperparameter files, the presets and the README.
DEFAULT_SPARSITY = 0.9


@dataclass(frozen=True)
class SparsityConfig:
    """
    How one network is pruned at initialization and revived (``docs/method.md``).

    :param sparsity: Target sparsity alpha in ``[0, 1)``: the fraction of the network's
        sparsifiable weights that are zero at the end of pruning and revival (``budget_mode="reserve"``).
    :param criterion: Static pruning criterion, one of ``"random"``, ``"erk"``, ``"magnitude"``,
        ``"synflow"``.
    :param revival: ``"tar"`` (Topology-Aware Revival), ``"uniform"`` (Uniform Revival ablation)
        or ``"none"`` (the static baseline, "Original"; ``recovery_ratio`` is then ignored).
    :param recovery_ratio: Revival budget rr as a fraction of the network's sparsifiable weights
        (paper: 0, 0.005, 0.01, 0.02); must be ``>= 0``.
    :param floor_fraction: Fraction phi of the budget spread evenly over layers as a connectivity
        floor, in ``[0, 1]``.
    :param budget_mode: ``"reserve"``: prune to density ``(1 - alpha) - rr`` first, so the final
        density is exactly ``1 - alpha`` (requires ``rr <= 1 - alpha``); ``"extra"``: prune to
        ``1 - alpha`` and revive on top (final density ``1 - alpha + rr``, requires ``rr <= alpha``).
    :param revived_init: ``"init"``: a revived weight gets back its initialization value;
        ``"zero"``: it starts at 0.
    :param magnitude_scope: For ``criterion="magnitude"``: ``"global"`` (one threshold over the
        network) or ``"layer"`` (uniform per-layer density).
    :param synflow_iters: Number of SynFlow pruning rounds (``>= 1``).
    """

    sparsity: float = DEFAULT_SPARSITY
    criterion: str = "magnitude"
    revival: str = "tar"
    recovery_ratio: float = 0.01
    floor_fraction: float = 0.2
    budget_mode: str = "reserve"
    revived_init: str = "init"
    magnitude_scope: str = "global"
    synflow_iters: int = 100

    def __post_init__(self) -> None:
        alpha = set_checked(self, "sparsity", check_number, 0.0, 1.0, high_open=True)
        check_choice("criterion", self.criterion, CRITERIA)
        check_choice("revival", self.revival, REVIVALS)
        rr = set_checked(self, "recovery_ratio", check_number, 0.0, 1.0)
        set_checked(self, "floor_fraction", check_number, 0.0, 1.0)
        check_choice("budget_mode", self.budget_mode, BUDGET_MODES)
        check_choice("revived_init", self.revived_init, REVIVED_INITS)
        check_choice("magnitude_scope", self.magnitude_scope, MAGNITUDE_SCOPES)
        set_checked(self, "synflow_iters", check_int, 1)
        if self.revival != "none":
            if self.budget_mode == "reserve" and rr > 1.0 - alpha + 1e-12:
                raise ValueError(
                    f"recovery_ratio={rr} is outside the allowed range [0, {1.0 - alpha:g}] for "
                    f"budget_mode='reserve' at sparsity={alpha}: rr must be <= 1 - sparsity"
                )
            if self.budget_mode == "extra" and rr > alpha + 1e-12:
                raise ValueError(
                    f"recovery_ratio={rr} is outside the allowed range [0, {alpha:g}] for "
                    f"budget_mode='extra' at sparsity={alpha}: the final density 1 - sparsity + rr must be <= 1"
                )

    @property
    def effective_recovery_ratio(self) -> float:
        """The revival budget actually used: ``recovery_ratio``, or 0 with ``revival="none"``."""
        return 0.0 if self.revival == "none" else float(self.recovery_ratio)

    def to_dict(self) -> dict[str, Any]:
        """:return: The configuration as a plain dict (for logging and JSON)."""
        return asdict(self)
