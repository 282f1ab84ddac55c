"""Gradual magnitude pruning (Zhu and Gupta 2017) as a schedule of exact kept counts (pure PyTorch, no SB3).

Training starts dense. Between gradient steps ``t0`` and ``t1`` the sparsity of every network rises on the
cubic schedule

    ``s_t = s_f * (1 - (1 - (t - t0) / (t1 - t0))^3)``

and at each *prune step* (``t0 + k * interval`` up to ``t1``, and ``t1`` itself) the network keeps exactly

    ``K_t = N - floor(c_t * (N - K_f) + 1/2)``,  ``c_t = 1 - (1 - (t - t0) / (t1 - t0))^3``

of its ``N`` sparsifiable weights (``K_f = round((1 - s_f) * N)``, the kept count of a static run at ``s_f``),
computed in exact rational arithmetic and rounded half up: ``K_t0 = N`` and ``K_t1 = K_f``. The weights kept
are those of largest ``|w|`` among the weights kept so far (masks only shrink), over the whole network
(``scope="global"``) or per layer (``"layer"``: each layer ends at density ``1 - s_f``; ``"erk"``: each layer
ends at its Erdos-Renyi-Kernel density, as in Graesser et al. 2022), each layer following the same cubic curve
towards its own final count. After ``t1`` the mask is fixed. See ``docs/method.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import torch

from sb3_tar.core.config import check_choice, check_int, check_lengths, check_number, set_checked
from sb3_tar.core.criteria import layer_counts
from sb3_tar.core.selection import apportion, top_k_mask

#: ``global``: one magnitude ranking over the network; ``layer``: every layer at the same density;
#: ``erk``: every layer towards its ERK density (Graesser et al.'s SAC configuration).
GMP_SCOPES: tuple[str, ...] = ("global", "layer", "erk")
DEFAULT_START_FRACTION = 0.2
DEFAULT_END_FRACTION = 0.8
DEFAULT_INTERVAL = 1000


@dataclass(frozen=True)
class GMPConfig:
    """
    Validated settings of a gradual magnitude pruning run.

    :param start_fraction: ``t0`` as a fraction of the planned gradient steps ``T``, in ``[0, 1]``.
    :param end_fraction: ``t1`` as a fraction of ``T``, in ``(0, 1]`` and ``>= start_fraction``.
    :param interval: Gradient steps between prune steps (``>= 1``).
    :param scope: ``"global"``, ``"layer"`` or ``"erk"`` (see the module docstring).
    """

    start_fraction: float = DEFAULT_START_FRACTION
    end_fraction: float = DEFAULT_END_FRACTION
    interval: int = DEFAULT_INTERVAL
    scope: str = "global"

    def __post_init__(self) -> None:
        set_checked(self, "start_fraction", check_number, 0.0, 1.0)
        set_checked(self, "end_fraction", check_number, 0.0, 1.0, low_open=True)
        if self.end_fraction < self.start_fraction:
            raise ValueError(
                f"end_fraction={self.end_fraction!r} is outside the allowed range [start_fraction={self.start_fraction!r}, 1]"
            )
        set_checked(self, "interval", check_int, 1)
        check_choice("scope", self.scope, GMP_SCOPES)

    def window(self, total_steps: int) -> tuple[int, int]:
        """
        :param total_steps: Planned gradient steps ``T`` of the run.
        :return: ``(t0, t1) = (round(start_fraction * T), round(end_fraction * T))`` (Python's ``round``), with
            ``t1`` at least 1 when ``T >= 1`` (so a short run still reaches its final sparsity).
        """
        check_int("total_steps", total_steps, 0)
        t1 = round(self.end_fraction * total_steps)
        if total_steps >= 1:
            t1 = max(t1, 1)
        return min(round(self.start_fraction * total_steps), t1), t1

    def is_prune_step(self, step: int, total_steps: int) -> bool:
        """:return: Whether gradient step ``step`` prunes (see :func:`is_prune_step`)."""
        return is_prune_step(step, *self.window(total_steps), self.interval)

    def last_prune_step(self, step: int, total_steps: int) -> int:
        """:return: The latest prune step ``<= step`` (0 if there is none yet)."""
        return last_prune_step(step, *self.window(total_steps), self.interval)

    def to_dict(self) -> dict[str, Any]:
        """:return: The settings as a plain dict."""
        return asdict(self)


def is_prune_step(step: int, t0: int, t1: int, interval: int) -> bool:
    """
    Prune steps are ``t0 + k * interval`` for ``k >= 1`` while ``< t1``, and ``t1`` itself (so the final
    sparsity is reached exactly at ``t1``); gradient steps count from 1, and ``t0`` itself changes nothing
    (``s_t0 = 0``).

    :param step: Gradient step ``t``.
    :param t0: First step of the schedule.
    :param t1: Last step of the schedule.
    :param interval: Gradient steps between prune steps.
    :return: Whether ``step`` is a prune step.
    :raises ValueError, TypeError: If ``interval`` is not an integer ``>= 1``.
    """
    check_int("interval", interval, 1)
    if step < 1 or step > t1:
        return False
    if step == t1:
        return True
    return step > t0 and (step - t0) % interval == 0


def last_prune_step(step: int, t0: int, t1: int, interval: int) -> int:
    """
    :return: The latest prune step ``<= step`` (see :func:`is_prune_step`), or 0 if there is none yet.
    :raises ValueError, TypeError: If ``interval`` is not an integer ``>= 1``.
    """
    check_int("interval", interval, 1)
    if step >= t1:
        return t1 if t1 >= 1 else 0
    if step <= t0:
        return 0
    return t0 + (step - t0) // interval * interval if (step - t0) >= interval else 0


def cubic_progress(step: int, t0: int, t1: int) -> Fraction:
    """
    ``c_t = 1 - (1 - (t - t0) / (t1 - t0))^3``, clipped to ``[0, 1]`` (0 before ``t0``, 1 from ``t1`` on),
    as an exact fraction. With ``t1 == t0`` it jumps from 0 to 1 at ``t1``.

    :param step: Gradient step ``t``.
    :param t0: First step of the schedule.
    :param t1: Last step of the schedule.
    :return: ``c_t``; the sparsity is ``s_t = s_f * c_t``.
    """
    if step >= t1:
        return Fraction(1)
    if step <= t0:
        return Fraction(0)
    return 1 - (1 - Fraction(step - t0, t1 - t0)) ** 3


def _round_half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def final_kept(n_total: int, sparsity: float) -> int:
    """:return: ``K_f = round((1 - sparsity) * N)``, the kept count of a static run at that sparsity."""
    check_number("sparsity", sparsity, 0.0, 1.0, high_open=True)
    return round((1.0 - sparsity) * n_total)


def kept_at(progress: Fraction, n_total: int, n_final: int) -> int:
    """
    :param progress: ``c_t`` (:func:`cubic_progress`).
    :param n_total: Weights ``N``.
    :param n_final: Final kept count ``K_f``.
    :return: ``K_t = N - floor(c_t * (N - K_f) + 1/2)``.
    """
    if not 0 <= Fraction(progress) <= 1 or not 0 <= n_final <= n_total:
        raise ValueError(
            f"progress={progress} and n_final={n_final} are outside the allowed ranges [0, 1] and [0, n_total={n_total}]"
        )
    return n_total - _round_half_up(Fraction(progress) * (n_total - n_final))


def final_layer_counts(scope: str, shapes: Sequence[tuple[int, int]], n_final: int) -> list[int] | None:
    """
    :param scope: A value of :data:`GMP_SCOPES`.
    :param shapes: ``(n_out, n_in)`` of each layer.
    :param n_final: Final kept count of the network.
    :return: The final kept count of each layer (``None`` for ``"global"``: one ranking, no layer budget).
    """
    check_choice("scope", scope, GMP_SCOPES)
    if scope == "global":
        return None
    return layer_counts("erk" if scope == "erk" else "uniform", shapes, n_final)


@torch.no_grad()
def prune_step_masks(
    weights: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    n_keep: int,
    progress: Fraction,
    final_counts: Sequence[int] | None,
    generator: torch.Generator,
) -> list[torch.Tensor]:
    """
    The masks after one prune step: exactly ``n_keep`` weights, the largest ``|w|`` among those ``masks`` keep.

    :param weights: Each layer's weight.
    :param masks: Each layer's current mask (the result is a subset).
    :param n_keep: Weights to keep over the network (``K_t``).
    :param progress: ``c_t``, which sets each layer's share with a layer budget.
    :param final_counts: Final kept count of each layer (:func:`final_layer_counts`), or ``None`` for one global
        ranking. Layer ``l`` gets the share ``N_l - c_t * (N_l - F_l)``, apportioned to total ``n_keep`` exactly.
    :param generator: Seeded CPU generator (ties at the threshold).
    :return: One boolean CPU mask per layer.
    :raises ValueError: If ``n_keep`` exceeds the weights kept now.
    """
    check_lengths(weights=weights, masks=masks, **({} if final_counts is None else {"final_counts": final_counts}))
    current = [m.detach().to(device="cpu").bool() for m in masks]
    kept_now = [int(m.sum()) for m in current]
    if not 0 <= n_keep <= sum(kept_now):
        raise ValueError(f"n_keep={n_keep} is outside the allowed range [0, {sum(kept_now)}] (the weights kept now)")
    scores = [
        w.detach().abs().to(device="cpu", dtype=torch.float64).masked_fill(~m, -math.inf) for w, m in zip(weights, current)
    ]
    if final_counts is None:
        flat = top_k_mask(torch.cat([s.flatten() for s in scores]), n_keep, generator)
        return [part.view_as(s) for part, s in zip(torch.split(flat, [s.numel() for s in scores]), scores)]
    sizes = [m.numel() for m in current]
    shares = [n - Fraction(progress) * (n - f) for n, f in zip(sizes, final_counts)]
    counts = apportion(shares, n_keep, kept_now)
    return [top_k_mask(s, k, generator) for s, k in zip(scores, counts)]


def flops_per_sample(kept: int, bias_ops: int) -> int:
    """
    Training cost of a network per sample, in units of a forward multiply-add pair: ``2 K + B`` for ``K`` kept
    weights and ``B`` bias additions (the backward pass is twice the forward, a factor that cancels in ratios;
    see :func:`sb3_tar.core.masks.training_flops_ratio`).

    :param kept: Kept (or, dense, all) weights.
    :param bias_ops: Bias entries.
    :return: ``2 * kept + bias_ops``.
    """
    return 2 * int(kept) + int(bias_ops)


__all__ = [
    "DEFAULT_END_FRACTION",
    "DEFAULT_INTERVAL",
    "DEFAULT_START_FRACTION",
    "GMPConfig",
    "GMP_SCOPES",
    "cubic_progress",
    "final_kept",
    "final_layer_counts",
    "flops_per_sample",
    "is_prune_step",
    "kept_at",
    "last_prune_step",
    "prune_step_masks",
]
