"""Which active weights SET and RigL drop at a mask update: the prune criteria of Nowak et al. 2023 (pure PyTorch).

"Fantastic Weights and How to Find Them: Where to Prune in Dynamic Sparse Training" (Nowak, Grooten, Mocanu,
Tabor, NeurIPS 2023) compares these criteria inside SET and RigL; ``docs/method.md`` gives each formula, its
source and what was confirmed. With ``w`` a layer's weight and ``g = dL/dw`` the dense gradient of the
network's own loss at the update step, each criterion scores every *active* weight, and the ``k`` active
weights of lowest score are dropped:

=========================== ============================================== =================
criterion                   score (lowest dropped)                         needs gradient
=========================== ============================================== =================
``magnitude`` (default)     ``|w|``                                        no
``sign_balanced_magnitude`` ``w`` on each sign: ``ceil(k/2)`` smallest     no
                            positive, ``floor(k/2)`` largest non-positive
``mest``                    ``|w| + gamma * |g|`` (``gamma = 1``)          yes
``snip``                    ``|w * g|``                                    yes
``sensitivity``             ``|g| / (|w| + eps)`` (``eps = 1e-8``)         yes
``reciprocal_sensitivity``  ``|w| / (|g| + eps)``                          yes
``random``                  uniformly random                               no
=========================== ============================================== =================

Ties are broken at random with the update's seeded generator, so every layer drops exactly ``k``
weights and a run is reproducible from its seed. ``sign_balanced_magnitude`` (SET's own drop rule, Mocanu et al.
2018: magnitude pruning with the quota split evenly between the two signs) takes its quotas from the other sign when
one sign has too few active weights (so it too drops exactly ``k``); a weight at exactly 0.0 counts as non-positive,
the "largest negative" end. Its former name ``"set"`` (beside ``method="set"``, which names the growth rule too) is
accepted everywhere with a ``FutureWarning`` until the next release (:func:`prune_criterion_name`).
"""

from __future__ import annotations

import math

import torch

from sb3_tar.core.config import check_choice, renamed_value
from sb3_tar.core.selection import sample_positions, top_k_mask

PRUNE_CRITERIA: tuple[str, ...] = (
    *("magnitude", "sign_balanced_magnitude", "mest", "snip", "sensitivity", "reciprocal_sensitivity", "random"),
)
#: Former names of prune criteria -> their names now (accepted with a ``FutureWarning`` until the next release).
FORMER_PRUNE_CRITERIA: dict[str, str] = {"set": "sign_balanced_magnitude"}
#: Criteria that read the dense gradient of the network's loss.
GRADIENT_CRITERIA: tuple[str, ...] = ("mest", "snip", "sensitivity", "reciprocal_sensitivity")
#: MEST's weight of the gradient term, ``gamma`` (the default of the authors' code for Nowak et al. 2023).
MEST_GAMMA = 1.0
#: The ``eps`` that keeps the sensitivity ratios finite (as in the authors' code).
SENSITIVITY_EPS = 1e-8


def prune_criterion_name(criterion: str, owner: str = "sb3-tar", stacklevel: int = 4) -> str:
    """
    :param criterion: A prune criterion, under its name or a former one (:data:`FORMER_PRUNE_CRITERIA`: a
        ``FutureWarning``).
    :param owner: Who takes it (for the warning).
    :param stacklevel: Of the warning (4: the caller of the function that calls this one).
    :return: Its name, one of :data:`PRUNE_CRITERIA`.
    :raises TypeError, ValueError: If it is neither (the message lists :data:`PRUNE_CRITERIA`).
    """
    criterion = renamed_value(owner, "prune_criterion", criterion, FORMER_PRUNE_CRITERIA, stacklevel)
    return check_choice("prune_criterion", criterion, PRUNE_CRITERIA)


def needs_gradient(criterion: str) -> bool:
    """:return: Whether prune criterion ``criterion`` reads the dense gradient."""
    return prune_criterion_name(criterion) in GRADIENT_CRITERIA


def prune_scores(criterion: str, weight: torch.Tensor, grad: torch.Tensor | None = None) -> torch.Tensor:
    """
    The score of every position under a score-based criterion (higher is kept); float64 on the CPU.

    :param criterion: One of :data:`PRUNE_CRITERIA` except ``"sign_balanced_magnitude"`` and ``"random"`` (no single
        score).
    :param weight: The layer's weight.
    :param grad: Dense gradient of the loss with respect to ``weight`` (required by :data:`GRADIENT_CRITERIA`).
    :return: The scores, ``weight``'s shape.
    :raises ValueError: For ``"sign_balanced_magnitude"``/``"random"``, or a gradient criterion without ``grad``.
    """
    criterion = prune_criterion_name(criterion)
    if criterion in ("sign_balanced_magnitude", "random"):
        raise ValueError(f"prune_criterion={criterion!r} has no single score: use drop_positions")
    w = weight.detach().to(device="cpu", dtype=torch.float64).abs()
    if criterion == "magnitude":
        return w
    if grad is None:
        raise ValueError(
            f"prune_criterion={criterion!r} needs the dense gradient of the weight (None given): it is read in the "
            "optimizer's pre-step hook, after the loss's backward pass"
        )
    if tuple(grad.shape) != tuple(weight.shape):
        raise ValueError(f"Gradient shape {tuple(grad.shape)} does not match weight shape {tuple(weight.shape)}")
    g = grad.detach().to(device="cpu", dtype=torch.float64).abs()
    if criterion == "mest":
        return w + MEST_GAMMA * g
    if criterion == "snip":
        return w * g
    if criterion == "sensitivity":
        return g / (w + SENSITIVITY_EPS)
    return w / (g + SENSITIVITY_EPS)  # reciprocal_sensitivity


def _drop_lowest(scores: torch.Tensor, candidates: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """The ``k`` candidates of lowest score (ties at random): the candidates minus the top ``n - k``."""
    survivors = top_k_mask(scores.masked_fill(~candidates, -math.inf), int(candidates.sum()) - k, generator)
    return candidates & ~survivors


@torch.no_grad()
def drop_positions(
    criterion: str,
    weight: torch.Tensor,
    mask: torch.Tensor,
    k: int,
    generator: torch.Generator,
    grad: torch.Tensor | None = None,
) -> torch.Tensor:
    """
    The ``k`` active positions that ``criterion`` ranks lowest (the drop step of SET/RigL).

    :param criterion: One of :data:`PRUNE_CRITERIA` (or a former name: :func:`prune_criterion_name`).
    :param weight: The layer's weight.
    :param mask: Its current mask (boolean, weight's shape).
    :param k: Positions to drop, ``0 <= k <= mask.sum()``.
    :param generator: Seeded CPU generator (ties; ``random`` draws from it).
    :param grad: Dense gradient of the loss with respect to ``weight`` (gradient criteria).
    :return: Boolean CPU tensor with exactly ``k`` ``True`` entries, all inside ``mask``.
    """
    criterion = prune_criterion_name(criterion)
    mask = mask.detach().bool().cpu()
    kept = int(mask.sum())
    if not 0 <= k <= kept:
        raise ValueError(f"k={k} is outside the allowed range [0, {kept}] (the active weights)")
    if criterion == "random":
        return sample_positions(mask, k, generator)
    if criterion != "sign_balanced_magnitude":
        return _drop_lowest(prune_scores(criterion, weight, grad), mask, k, generator)
    w = weight.detach().to(device="cpu", dtype=torch.float64)
    positive, other = mask & (w > 0), mask & ~(w > 0)
    n_pos, n_other = int(positive.sum()), int(other.sum())
    k_pos = min(math.ceil(k / 2), n_pos)
    k_other = min(k - k_pos, n_other)
    k_pos = k - k_other  # the quota one sign cannot fill goes to the other (k <= n_pos + n_other)
    drop_pos = _drop_lowest(w, positive, k_pos, generator)  # the smallest positive weights
    drop_other = _drop_lowest(-w, other, k_other, generator)  # the largest non-positive weights (closest to 0)
    return drop_pos | drop_other
