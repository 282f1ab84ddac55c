"""Cyclic learning-rate schedules and SCULPT's single prune (pure PyTorch, no SB3).

Cyclic sparse training (Gadhikar, Nelaturu and Burkholz, "Cyclic Sparse Training: Is it Enough?", arXiv 2406.02773)
trains a fixed sparse mask with the learning-rate schedule repeated ``C`` times instead of run once. Here the
``T`` planned gradient steps are split into ``C`` cycles, cycle ``c`` (0-based) covering gradient steps
``c T // C + 1`` to ``(c + 1) T // C``. At position ``p = t - c T // C - 1`` (0-based) of a cycle of length ``L``
with ``W = round(warmup_fraction * L)`` warm-up steps the learning rate is ``lr_t = base * f_t`` with

    ``f_t = m + (1 - m) * (p + 1) / W``                              for ``p < W`` (linear warm-up),
    ``f_t = m + (1 - m) * (1 + cos(pi * q)) / 2``, ``q = (p - W) / (L - W)``  for ``p >= W`` (``shape="cosine"``),
    ``f_t = m + (1 - m) * (1 - q)``                                  for ``p >= W`` (``shape="linear"``),

``m = min_factor`` and ``base`` the run's own learning rate. Gradient steps past ``T`` (a run trained beyond its
plan) keep the factor of step ``T``.

SCULPT-ing trains a mask at a lower starting sparsity cyclically, prunes it once by magnitude to the target
sparsity at the start of cycle ``prune_cycle`` and retrains the remaining cycles (one by default). See
``docs/method.md`` ("Cyclic training and SCULPT") for where each default comes from.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from sb3_tar.core.config import check_choice, check_int, check_number, set_checked

#: Shapes of the decay part of a cycle.
CYCLIC_SHAPES: tuple[str, ...] = ("cosine", "linear")
#: Scopes of SCULPT's magnitude prune: one ranking over the network, or every layer at the target density.
SCULPT_SCOPES: tuple[str, ...] = ("global", "layer")
DEFAULT_CYCLES = 5
DEFAULT_WARMUP_FRACTION = 0.1
DEFAULT_MIN_FACTOR = 0.0


@dataclass(frozen=True)
class CyclicSchedule:
    """
    A learning-rate schedule repeated over ``cycles`` cycles (see the module docstring).

    :param cycles: Number of cycles ``C`` over the planned gradient steps (``>= 1``).
    :param warmup_fraction: Fraction of each cycle spent warming up linearly, in ``[0, 1)``.
    :param min_factor: The lowest factor ``m`` of the base learning rate, in ``[0, 1]``.
    :param shape: ``"cosine"`` or ``"linear"`` decay after the warm-up.
    """

    cycles: int = DEFAULT_CYCLES
    warmup_fraction: float = DEFAULT_WARMUP_FRACTION
    min_factor: float = DEFAULT_MIN_FACTOR
    shape: str = "cosine"

    def __post_init__(self) -> None:
        set_checked(self, "cycles", check_int, 1)
        set_checked(self, "warmup_fraction", check_number, 0.0, 1.0, high_open=True)
        set_checked(self, "min_factor", check_number, 0.0, 1.0)
        check_choice("shape", self.shape, CYCLIC_SHAPES)

    def cycle_start(self, cycle: int, total_steps: int) -> int:
        """:return: Gradient steps before cycle ``cycle`` (0-based): ``cycle * T // C``."""
        check_int("cycle", cycle, 0)
        check_int("total_steps", total_steps, 0)
        if cycle > self.cycles:
            raise ValueError(f"cycle={cycle!r} is outside the allowed range [0, {self.cycles}]")
        return cycle * total_steps // self.cycles

    def factor(self, step: int, total_steps: int) -> float:
        """
        :param step: Gradient step ``t`` (from 1).
        :param total_steps: Planned gradient steps ``T``.
        :return: ``f_t``, the factor of the base learning rate at step ``t`` (1.0 while ``T < C``: no cycle fits).
        """
        check_int("step", step, 1)
        check_int("total_steps", total_steps, 0)
        if total_steps < self.cycles:
            return 1.0
        step = min(step, total_steps)
        cycle = min((step - 1) * self.cycles // total_steps, self.cycles - 1)
        while self.cycle_start(cycle, total_steps) >= step:  # integer boundaries: find the cycle holding step
            cycle -= 1
        while self.cycle_start(cycle + 1, total_steps) < step:
            cycle += 1
        start = self.cycle_start(cycle, total_steps)
        length = self.cycle_start(cycle + 1, total_steps) - start
        position = step - start - 1
        warmup = min(round(self.warmup_fraction * length), length - 1)
        m = self.min_factor
        if position < warmup:
            return m + (1.0 - m) * (position + 1) / warmup
        q = (position - warmup) / (length - warmup)
        if self.shape == "cosine":
            return m + (1.0 - m) * (1.0 + math.cos(math.pi * q)) / 2.0
        return m + (1.0 - m) * (1.0 - q)

    def to_dict(self) -> dict[str, Any]:
        """:return: The settings as a plain dict."""
        return asdict(self)


def sculpt_start_sparsity(sparsity: float) -> float:
    """
    Default starting sparsity of SCULPT: twice the target's density, ``1 - min(1, 2 (1 - s))`` (0.8 for 0.9).

    :param sparsity: Target sparsity ``s`` in ``[0, 1)``.
    :return: The starting sparsity.
    """
    check_number("sparsity", sparsity, 0.0, 1.0, high_open=True)
    return max(0.0, 1.0 - 2.0 * (1.0 - sparsity))


@dataclass(frozen=True)
class SculptPlan:
    """
    When SCULPT prunes: at the first gradient step of cycle ``prune_cycle`` (``prune_cycle * T // C + 1``).

    :param schedule: The cyclic schedule.
    :param prune_cycle: Cycles trained at the starting sparsity before the prune, in ``[1, C - 1]`` (default
        ``C - 1``: one retraining cycle).
    :param scope: ``"global"`` or ``"layer"`` magnitude ranking.
    """

    schedule: CyclicSchedule
    prune_cycle: int
    scope: str = "global"

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, CyclicSchedule):
            raise TypeError(f"schedule={self.schedule!r} must be a CyclicSchedule, got {type(self.schedule).__name__}")
        if self.schedule.cycles < 2:
            raise ValueError(f"cycles={self.schedule.cycles!r} is outside the allowed range [2, inf) for SCULPT")
        set_checked(self, "prune_cycle", check_int, 1)
        if self.prune_cycle > self.schedule.cycles - 1:
            raise ValueError(f"prune_cycle={self.prune_cycle!r} is outside the allowed range [1, {self.schedule.cycles - 1}]")
        check_choice("scope", self.scope, SCULPT_SCOPES)

    def prune_step(self, total_steps: int) -> int:
        """:return: The gradient step whose optimizer step is the first on the pruned mask (at least 1)."""
        return self.schedule.cycle_start(self.prune_cycle, total_steps) + 1


__all__ = [
    "CYCLIC_SHAPES",
    "CyclicSchedule",
    "DEFAULT_CYCLES",
    "DEFAULT_MIN_FACTOR",
    "DEFAULT_WARMUP_FRACTION",
    "SCULPT_SCOPES",
    "SculptPlan",
    "sculpt_start_sparsity",
]
