"""Iterative exploitation-exploration ("enhanced saliency") as a schedule and a selection (pure PyTorch, no SB3).

Sun, Shen, Yin, Mao, Molchanov and Alvarez, "Advancing Weight and Channel Sparsification with Enhanced
Saliency" (WACV 2025, arXiv 2502.03658), split a network into an *active structure*, trained, and an
*exploration space*, the pruned weights. Periodically every pruned weight is reactivated (from zero) and
trained for a few iterations while the active part stays frozen; then one prune-and-grow step ranks both sets
by the same importance criterion (magnitude here) and keeps, in every layer, exactly as many weights as it had.

Schedule, in gradient steps ``t`` (from 1) of a run planned for ``T``: update ``k >= 1`` happens at
``u_k = k * interval`` while ``u_k <= round(end_fraction * T)``; its exploration phase is the
``explore_steps`` gradient steps ``u_k - explore_steps + 1 .. u_k``, and its prune-and-grow step comes right after
the phase (before the next step of each network's optimizer). See ``docs/method.md`` ("Exploitation-exploration").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from sb3_tar.core.config import check_int, check_number, set_checked
from sb3_tar.core.selection import top_k_mask

DEFAULT_INTERVAL = 1000
DEFAULT_EXPLORE_STEPS = 50
DEFAULT_END_FRACTION = 0.8


@dataclass(frozen=True)
class IEEConfig:
    """
    Validated settings of an exploitation-exploration run.

    :param interval: Gradient steps between two prune-and-grow steps (``>= 2``).
    :param explore_steps: Gradient steps of each exploration phase, in ``[1, interval - 1]``.
    :param end_fraction: Fraction of the planned gradient steps after which the mask is fixed, in ``(0, 1]``.
    """

    interval: int = DEFAULT_INTERVAL
    explore_steps: int = DEFAULT_EXPLORE_STEPS
    end_fraction: float = DEFAULT_END_FRACTION

    def __post_init__(self) -> None:
        set_checked(self, "interval", check_int, 2)
        set_checked(self, "explore_steps", check_int, 1)
        if self.explore_steps > self.interval - 1:
            raise ValueError(f"explore_steps={self.explore_steps!r} is outside the allowed range [1, {self.interval - 1}]")
        set_checked(self, "end_fraction", check_number, 0.0, 1.0, low_open=True)

    def end_step(self, total_steps: int) -> int:
        """:return: ``round(end_fraction * T)``: no update after this gradient step."""
        check_int("total_steps", total_steps, 0)
        return round(self.end_fraction * total_steps)

    def window(self, step: int, total_steps: int) -> tuple[int, int] | None:
        """
        :param step: Gradient step ``t``.
        :param total_steps: Planned gradient steps ``T``.
        :return: ``(first, last)`` gradient steps of the exploration phase holding ``t``, or ``None`` if ``t`` is an
            exploitation step.
        """
        check_int("step", step, 0)
        update = -(-step // self.interval) * self.interval  # the next update step >= step
        if step < 1 or update > self.end_step(total_steps) or step <= update - self.explore_steps:
            return None
        return update - self.explore_steps + 1, update

    def explores(self, step: int, total_steps: int) -> bool:
        """:return: Whether gradient step ``step`` belongs to an exploration phase."""
        return self.window(step, total_steps) is not None

    def updates_until(self, step: int, total_steps: int) -> int:
        """:return: Prune-and-grow steps completed by the end of gradient step ``step``."""
        return min(step, self.end_step(total_steps)) // self.interval

    def to_dict(self) -> dict[str, Any]:
        """:return: The settings as a plain dict."""
        return asdict(self)


@torch.no_grad()
def prune_and_grow(weight: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """
    The new mask of one layer after exploration: the ``count`` weights of largest ``|w|`` over the active and the
    reactivated weights together (ties broken at random with ``generator``).

    :param weight: The layer's weight, active and explored values in place.
    :param count: Its kept count (unchanged by the step).
    :param generator: Seeded CPU generator.
    :return: A boolean CPU mask with exactly ``count`` entries.
    """
    return top_k_mask(weight.detach().abs().to(device="cpu", dtype=torch.float64), int(count), generator)


__all__ = [
    "DEFAULT_END_FRACTION",
    "DEFAULT_EXPLORE_STEPS",
    "DEFAULT_INTERVAL",
    "IEEConfig",
    "prune_and_grow",
]
