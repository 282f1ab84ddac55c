"""The report's P(X > Y) counts pairs: the same numbers as rliable's SciPy-based metric, by hand and at random."""

from __future__ import annotations

import numpy as np
import pytest
from rliable import metrics

from sb3_tar.experiments.tables import probability_of_improvement


def test_by_hand_with_a_tie() -> None:
    x = np.array([[3.0], [5.0]])
    y = np.array([[1.0], [3.0], [6.0]])
    # pairs x > y: (3,1), (5,1), (5,3) = 3; ties: (3,3) = 1 -> (3 + 0.5) / 6
    assert probability_of_improvement(x, y) == 3.5 / 6
    assert probability_of_improvement(y, x) == 2.5 / 6
    # two tasks: their mean
    assert probability_of_improvement(np.hstack([x, x + 10]), np.hstack([y, y])) == (3.5 / 6 + 1.0) / 2


@pytest.mark.parametrize("seed", range(20))
def test_equals_rliable_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_x, n_y, tasks = rng.integers(1, 8, size=3)
    x = rng.integers(0, 6, size=(n_x, tasks)).astype(float)  # few values: many ties
    y = rng.integers(0, 6, size=(n_y, tasks)).astype(float)
    assert probability_of_improvement(x, y) == metrics.probability_of_improvement(x, y)
    assert probability_of_improvement(x, x) == metrics.probability_of_improvement(x, x) == 0.5
