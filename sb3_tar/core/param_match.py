"""Dense networks of equal parameter count: solving the hidden width (pure Python, no SB3).

An MLP with ``n_in`` inputs, hidden layers of widths ``h_1 ... h_L`` and heads of ``n_out`` outputs in all
(SAC's actor: ``mu`` and ``log_std``, ``2 * action_dim``; a Q-network: 1; a TQC quantile network:
``n_quantiles``) has

    ``P(h) = n_in * h_1 + h_1 * h_2 + ... + h_(L-1) * h_L + h_L * n_out``

weights in its linear layers (the quantity masks count; biases are counted separately); with one width
``w``, ``P(w) = n_in * w + (L - 1) * w^2 + w * n_out``. The *small dense* baseline of a sparse network of width
``W`` at sparsity ``s`` is the dense network of the same shape whose hidden widths make ``P`` closest to the
sparse network's kept count ``K = round((1 - s) * P(W))`` (``docs/method.md``): the width ``w`` nearest to the
real root of ``P(w) = K``, each hidden layer then ``w`` or ``w + 1`` wide, whichever combination is closest
(a width step changes ``P`` by about ``2 (L - 1) w + n_in + n_out``; mixing ``w`` and ``w + 1`` cuts that
step to about ``w + n_in`` or ``w + n_out``, so at the widths of the paper's grids the count lands within 1%).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sb3_tar.core.config import check_int, check_number


@dataclass(frozen=True)
class MLPShape:
    """
    The width-independent shape of an MLP network.

    :param n_in: Inputs of the first layer.
    :param depth: Hidden layers (all of one width).
    :param n_out: Outputs of the heads that read the last hidden layer, summed.
    """

    n_in: int
    depth: int
    n_out: int

    def __post_init__(self) -> None:
        check_int("n_in", self.n_in, 1)
        check_int("depth", self.depth, 1)
        check_int("n_out", self.n_out, 1)

    def _widths(self, widths: int | Sequence[int]) -> list[int]:
        out = [widths] * self.depth if isinstance(widths, int) and not isinstance(widths, bool) else list(widths)
        if len(out) != self.depth:
            raise ValueError(f"Got {len(out)} hidden widths for a network of depth {self.depth}")
        for w in out:
            check_int("width", w, 1)
        return out

    def weights(self, widths: int | Sequence[int]) -> int:
        """
        :param widths: One width for every hidden layer, or a width per hidden layer.
        :return: ``P(h) = n_in * h_1 + sum_i h_i * h_(i+1) + h_L * n_out``.
        """
        h = self._widths(widths)
        return self.n_in * h[0] + sum(a * b for a, b in zip(h, h[1:])) + h[-1] * self.n_out

    def biases(self, widths: int | Sequence[int]) -> int:
        """:return: Bias entries: ``h_1 + ... + h_L + n_out``."""
        return sum(self._widths(widths)) + self.n_out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def solve_width(shape: MLPShape, target: int) -> int:
    """
    The single hidden width whose weight count is closest to ``target`` (ties: the smaller width).

    :param shape: The network's shape.
    :param target: Weight count to match (``>= 1``).
    :return: The width ``w >= 1`` minimizing ``|P(w) - target|``.
    """
    check_int("target", target, 1)
    a, b = shape.depth - 1, shape.n_in + shape.n_out
    guess = target / b if a == 0 else (-b + math.sqrt(b * b + 4 * a * target)) / (2 * a)  # real root of P(w) = target
    candidates = {max(1, math.floor(guess) + d) for d in (-1, 0, 1, 2)}
    return min(sorted(candidates), key=lambda w: abs(shape.weights(w) - target))


def solve_widths(shape: MLPShape, target: int) -> list[int]:
    """
    Hidden widths whose weight count is closest to ``target``: every layer ``w`` or ``w + 1`` wide, for ``w``
    the :func:`solve_width` width or the one below it (ties: the smaller total width, then the earlier layers
    narrower).

    :param shape: The network's shape.
    :param target: Weight count to match (``>= 1``).
    :return: One width per hidden layer.
    """
    base = solve_width(shape, target)
    candidates = [
        [w + bit for bit in bits] for w in {max(1, base - 1), base} for bits in itertools.product((0, 1), repeat=shape.depth)
    ]
    return min(candidates, key=lambda h: (abs(shape.weights(h) - target), sum(h), h))


@dataclass(frozen=True)
class SmallDenseMatch:
    """
    One network's small dense match.

    :param shape: The network's shape.
    :param reference_width: Width ``W`` of the sparse network.
    :param sparsity: Its sparsity ``s``.
    :param reference_weights: ``P(W)``.
    :param target: ``K = round((1 - s) * P(W))``, the sparse network's kept count.
    :param widths: The solved hidden widths.
    :param weights: ``P`` of the solved widths.
    """

    shape: MLPShape
    reference_width: int
    sparsity: float
    reference_weights: int
    target: int
    widths: tuple[int, ...]
    weights: int

    @property
    def relative_error(self) -> float:
        """``(P(w) - K) / K``."""
        return (self.weights - self.target) / self.target

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return out | {"shape": self.shape.to_dict(), "widths": list(self.widths), "relative_error": self.relative_error}


def match_small_dense(shape: MLPShape, reference_width: int, sparsity: float) -> SmallDenseMatch:
    """
    :param shape: The network's shape.
    :param reference_width: Width ``W`` of the sparse network.
    :param sparsity: Its sparsity, in ``[0, 1)``.
    :return: The match (:func:`solve_width` on the sparse network's kept count).
    """
    check_int("reference_width", reference_width, 1)
    check_number("sparsity", sparsity, 0.0, 1.0, high_open=True)
    reference = shape.weights(reference_width)
    target = max(1, round((1.0 - sparsity) * reference))
    widths = tuple(solve_widths(shape, target))
    return SmallDenseMatch(shape, reference_width, float(sparsity), reference, target, widths, shape.weights(widths))


__all__ = ["MLPShape", "SmallDenseMatch", "match_small_dense", "solve_width", "solve_widths"]
