"""Dynamic sparse training: SET and RigL mask updates (pure PyTorch, no SB3; ``docs/dst.md``).

Both methods start from a static mask (ERK by default) and keep every layer's kept count
``K_l`` fixed. At an update step ``t`` each layer drops the ``k_l`` active weights that the prune
criterion ranks lowest (smallest ``|w|`` by default; the other criteria of Nowak et al. 2023 are in
:mod:`sb3_tar.core.prune_criteria`) and grows ``k_l`` inactive ones, with

- ``zeta_t = zeta / 2 * (1 + cos(pi * t / T_end))`` (cosine-decayed drop fraction),
- ``k_l = min(round(zeta_t * K_l), K_l, N_l - K_l)`` (``N_l``: the layer's size),
- SET (Mocanu et al. 2018) grows uniformly at random, RigL (Evci et al. 2020) where the dense
  gradient ``|dL/dw|`` is largest.

**Regrowth.** Growth candidates are the positions that were inactive *before* the update, so a
weight dropped at step ``t`` cannot be regrown at the same step. Every update therefore changes
exactly ``k_l`` positions from active to inactive and ``k_l`` others from inactive to active, and
"grown weights start at 0" has one meaning. (RigL's reference implementation scores every
position inactive *after* the drop, so a just-dropped weight may come back; it then keeps its
value and the update changes fewer than ``k_l`` connections. This is why ``k_l`` is capped by
``N_l - K_l`` here: a dense layer, ``K_l = N_l``, is never rewired.)

Ties (equal ``|w|`` or equal ``|grad|``) are broken at random with the update's seeded
generator, so counts are exact and a run is reproducible from its seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from sb3_tar.core.config import check_choice, check_int, check_lengths, check_number, set_checked
from sb3_tar.core.prune_criteria import drop_positions, prune_criterion_name
from sb3_tar.core.role_methods import DYNAMIC_ROLE_METHODS, ROLE_NAMES, check_role_methods
from sb3_tar.core.selection import sample_positions, top_k_mask
from sb3_tar.core.streams import stream_generator

DST_METHODS: tuple[str, ...] = ("set", "rigl")

#: Per-method defaults (Graesser et al. 2022, SAC): ``update_interval`` in gradient steps and
#: the initial drop fraction ``zeta``.
DST_DEFAULTS: dict[str, dict[str, Any]] = {
    "set": {"update_interval": 250, "drop_fraction": 0.3},
    "rigl": {"update_interval": 1000, "drop_fraction": 0.5},
}
DEFAULT_END_FRACTION = 0.8


@dataclass(frozen=True)
class DSTConfig:
    """
    Validated settings of one dynamic sparse training run.

    :param method: ``"set"`` or ``"rigl"``.
    :param update_interval: Gradient steps between mask updates (``>= 1``).
    :param drop_fraction: Initial drop fraction ``zeta`` in ``(0, 1)``.
    :param end_fraction: Fraction of the planned gradient steps after which the mask is frozen,
        in ``(0, 1]``.
    :param prune_criterion: Which active weights an update drops, one of
        :data:`~sb3_tar.core.prune_criteria.PRUNE_CRITERIA` (default ``"magnitude"``); the former name ``"set"`` of
        ``"sign_balanced_magnitude"`` is accepted with a ``FutureWarning``.
    :param role_methods: Method of each role (:mod:`sb3_tar.core.role_methods`); only roles whose method
        is ``"set"`` or ``"rigl"`` are rewired, each growing by its own method. ``None``: every role runs
        ``method``.
    """

    method: str
    update_interval: int
    drop_fraction: float
    end_fraction: float = DEFAULT_END_FRACTION
    prune_criterion: str = "magnitude"
    role_methods: dict[str, str] | None = None

    def __post_init__(self) -> None:
        check_choice("method", self.method, DST_METHODS)
        set_checked(self, "update_interval", check_int, 1)
        set_checked(self, "drop_fraction", check_number, 0.0, 1.0, low_open=True, high_open=True)
        set_checked(self, "end_fraction", check_number, 0.0, 1.0, low_open=True)
        # a former name (``"set"``) warns once, here, and is stored under its name now
        object.__setattr__(self, "prune_criterion", prune_criterion_name(self.prune_criterion, stacklevel=6))
        if self.role_methods is not None:
            methods = check_role_methods(self.role_methods)
            if set(methods) != set(ROLE_NAMES) or not any(m in DYNAMIC_ROLE_METHODS for m in methods.values()):
                raise ValueError(
                    f"role_methods={self.role_methods!r} must name every role {list(ROLE_NAMES)}, at least one of them "
                    f"with a method in {list(DYNAMIC_ROLE_METHODS)}"
                )
            object.__setattr__(self, "role_methods", methods)

    def role_method(self, role: str) -> str | None:
        """:return: ``"set"`` or ``"rigl"``: how ``role``'s networks are rewired; ``None``: their mask stays fixed."""
        method = self.method if self.role_methods is None else self.role_methods[role]
        return method if method in DYNAMIC_ROLE_METHODS else None

    def end_step(self, total_steps: int) -> float:
        """:return: ``T_end = end_fraction * total_steps``."""
        return end_step(total_steps, self.end_fraction)

    def is_update_step(self, step: int, total_steps: int) -> bool:
        """:return: Whether gradient step ``step`` updates the mask (see :func:`is_update_step`)."""
        return is_update_step(step, self.update_interval, self.end_step(total_steps))

    def fraction(self, step: int, total_steps: int) -> float:
        """:return: The drop fraction ``zeta_t`` at ``step``."""
        return cosine_drop_fraction(step, self.drop_fraction, self.end_step(total_steps))

    def last_update_step(self, step: int, total_steps: int) -> int:
        """:return: The latest update step ``<= step`` (0 if there is none)."""
        return last_update_step(step, self.update_interval, self.end_step(total_steps))

    def to_dict(self) -> dict[str, Any]:
        """:return: The settings as a plain dict."""
        return asdict(self)


def dst_config(
    method: str,
    update_interval: int | None = None,
    drop_fraction: float | None = None,
    end_fraction: float = DEFAULT_END_FRACTION,
    prune_criterion: str = "magnitude",
    role_methods: dict[str, str] | None = None,
) -> DSTConfig:
    """
    Build a :class:`DSTConfig`, filling ``None`` values with the method's defaults
    (SET: ``update_interval=250``, ``drop_fraction=0.3``; RigL: 1000 and 0.5).
    ``prune_criterion`` and ``role_methods`` are passed through (see :class:`DSTConfig`).

    :raises ValueError, TypeError: On any invalid value (the message names it and its range).
    """
    check_choice("method", method, DST_METHODS)
    defaults = DST_DEFAULTS[method]
    return DSTConfig(
        method=method,
        update_interval=defaults["update_interval"] if update_interval is None else update_interval,
        drop_fraction=defaults["drop_fraction"] if drop_fraction is None else drop_fraction,
        end_fraction=end_fraction,
        prune_criterion=prune_criterion,
        role_methods=role_methods,
    )


def end_step(total_steps: int, end_fraction: float) -> float:
    """
    :param total_steps: Planned gradient steps of the whole run.
    :param end_fraction: Fraction of them during which the mask is updated.
    :return: ``T_end = end_fraction * total_steps`` (a real number; no rounding).
    """
    return end_fraction * total_steps


def cosine_drop_fraction(step: int, drop_fraction: float, t_end: float) -> float:
    """
    ``zeta_t = zeta / 2 * (1 + cos(pi * t / T_end))`` for ``0 <= t <= T_end``, and 0 after.

    :param step: Gradient step ``t``.
    :param drop_fraction: Initial drop fraction ``zeta``.
    :param t_end: ``T_end``.
    :return: ``zeta_t``.
    """
    if t_end <= 0 or step >= t_end:
        return 0.0
    return drop_fraction / 2.0 * (1.0 + math.cos(math.pi * step / t_end))


def is_update_step(step: int, update_interval: int, t_end: float) -> bool:
    """
    The mask is updated at gradient steps ``t = update_interval, 2 * update_interval, ...``
    with ``t < T_end`` (at ``T_end`` the drop fraction is 0 anyway). Steps count from 1.

    :param step: Gradient step ``t`` (1 for the first step of the run).
    :param update_interval: Gradient steps between updates.
    :param t_end: ``T_end``.
    :raises ValueError, TypeError: If ``update_interval`` is not an integer ``>= 1``.
    """
    check_int("update_interval", update_interval, 1)
    return step > 0 and step % update_interval == 0 and step < t_end


def last_update_step(step: int, update_interval: int, t_end: float) -> int:
    """
    :param step: Gradient step ``t``.
    :param update_interval: Gradient steps between updates.
    :param t_end: ``T_end``.
    :return: The latest update step ``<= step``, or 0 if there is none yet.
    :raises ValueError, TypeError: If ``update_interval`` is not an integer ``>= 1``.
    """
    check_int("update_interval", update_interval, 1)
    if t_end <= 0:
        return 0
    last = min(step // update_interval, math.ceil(t_end / update_interval) - 1)  # m * interval < T_end
    while last > 0 and last * update_interval >= t_end:  # guard against float rounding in the division
        last -= 1
    return max(last, 0) * update_interval


def update_count(step: int, update_interval: int, t_end: float) -> int:
    """
    :param step: Gradient step ``t``.
    :param update_interval: Gradient steps between updates.
    :param t_end: ``T_end``.
    :return: Mask updates taken by step ``t`` (the update steps ``m * update_interval <= t`` with ``< T_end``).
    """
    return last_update_step(step, update_interval, t_end) // update_interval


def dense_gradient_flops(updates: int, gradient_steps: int, pruned: int, dense_cost: int) -> float:
    """
    RigL's extra training cost, relative to the dense networks: at each of its ``U`` updates it reads the dense
    weight gradient of the networks it grows, whose ``P`` pruned weights cost ``2 P`` more multiply-add FLOPs per
    sample than the sparse weight gradient (Evci et al. 2020, appendix H). A dense gradient step costs ``3 D``
    per sample (forward ``D = 2 N + B`` for ``N`` weights and ``B`` biases, backward twice that), so over ``T``
    gradient steps the extra is ``U * 2 P / (3 T D)``. SET grows at random and needs no dense gradient.

    :param updates: ``U``, mask updates that read the dense gradient.
    :param gradient_steps: ``T``, gradient steps of the run (``>= 1``).
    :param pruned: ``P``, pruned weights of the networks grown by gradient.
    :param dense_cost: ``D``, the dense forward cost per sample of all of the model's networks.
    :return: The extra cost as a fraction of dense training (0 when nothing reads the dense gradient).
    """
    check_int("updates", updates, 0)
    check_int("gradient_steps", gradient_steps, 1)
    check_int("pruned", pruned, 0)
    check_int("dense_cost", dense_cost, 1)
    return updates * 2 * pruned / (3 * gradient_steps * dense_cost)


def drop_count(fraction: float, kept: int, size: int) -> int:
    """
    Connections one layer drops (and grows) at an update.

    :param fraction: Drop fraction ``zeta_t``.
    :param kept: Active weights ``K_l`` of the layer.
    :param size: Weights ``N_l`` of the layer.
    :return: ``min(round(zeta_t * K_l), K_l, N_l - K_l)`` (Python's ``round``).
    """
    check_number("fraction", fraction, 0.0, 1.0)
    if not 0 <= kept <= size:
        raise ValueError(f"kept={kept} is outside the allowed range [0, {size}] (the layer's size)")
    return max(0, min(round(fraction * kept), kept, size - kept))


def update_generator(seed: int, step: int, network: str) -> torch.Generator:
    """
    The generator of one network's update: the stream ``(seed, network, "dst_update", step)``
    (:mod:`sb3_tar.core.streams`), so that a resumed run draws exactly what an uninterrupted one would
    and no two networks or seeds share draws.

    :param seed: The run's mask seed.
    :param step: The update step (``>= 0``).
    :param network: Name of the network (``"actor"``, ``"critic.qf0"``, ...).
    :return: A seeded CPU generator.
    """
    return stream_generator(seed, network, "dst_update", check_int("step", int(step), 0))


@dataclass
class RewireResult:
    """
    One network's mask update.

    :param masks: New boolean mask of each layer.
    :param dropped: Positions turned off in each layer (boolean).
    :param grown: Positions turned on in each layer (boolean; disjoint from the old mask).
    :param previous: The masks before the update.
    """

    masks: list[torch.Tensor]
    dropped: list[torch.Tensor]
    grown: list[torch.Tensor]
    previous: list[torch.Tensor]

    @property
    def dropped_counts(self) -> list[int]:
        """Dropped connections per layer."""
        return [int(d.sum()) for d in self.dropped]

    @property
    def grown_counts(self) -> list[int]:
        """Grown connections per layer."""
        return [int(g.sum()) for g in self.grown]

    @property
    def kept_counts(self) -> list[int]:
        """Active connections per layer after the update (equal to before)."""
        return [int(m.sum()) for m in self.masks]


@torch.no_grad()
def rewire_layer(
    weight: torch.Tensor,
    mask: torch.Tensor,
    k: int,
    method: str,
    generator: torch.Generator,
    grad: torch.Tensor | None = None,
    prune_criterion: str = "magnitude",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Drop the ``k`` active weights that ``prune_criterion`` ranks lowest (smallest ``|w|`` by default) and
    grow ``k`` positions that were inactive before the update.

    :param weight: The layer's weight.
    :param mask: Its current mask (boolean, weight's shape).
    :param k: Connections to drop and grow, ``0 <= k <= min(K, N - K)``.
    :param method: ``"set"`` (grow uniformly at random) or ``"rigl"`` (grow the largest ``|grad|``).
    :param generator: Seeded CPU generator (ties and random growth).
    :param grad: Dense gradient of the layer's loss with respect to ``weight`` (RigL's growth, and the
        gradient prune criteria). ``None`` scores every growth candidate 0, so RigL's growth is uniformly random.
    :param prune_criterion: One of :data:`~sb3_tar.core.prune_criteria.PRUNE_CRITERIA` (the drop step,
        :func:`~sb3_tar.core.prune_criteria.drop_positions`).
    :return: ``(new mask, dropped positions, grown positions)``, boolean CPU tensors.
    """
    check_choice("method", method, DST_METHODS)
    mask = mask.detach().bool().cpu()
    kept = int(mask.sum())
    if not 0 <= k <= min(kept, mask.numel() - kept):
        raise ValueError(f"k={k} is outside the allowed range [0, {min(kept, mask.numel() - kept)}] (min(K, N - K))")
    inactive = ~mask
    dropped = drop_positions(prune_criterion, weight, mask, k, generator, grad)
    survivors = mask & ~dropped
    if method == "set":
        grown = sample_positions(inactive, k, generator)
    else:
        scores = (
            torch.zeros(mask.shape, dtype=torch.float64)
            if grad is None
            else grad.detach().abs().to(device="cpu", dtype=torch.float64)
        )
        grown = top_k_mask(scores.masked_fill(mask, -math.inf), k, generator)
    return survivors | grown, dropped, grown


def rewire_masks(
    weights: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    fraction: float,
    method: str,
    generator: torch.Generator,
    grads: Sequence[torch.Tensor | None] | None = None,
    prune_criterion: str = "magnitude",
) -> RewireResult:
    """
    One SET/RigL update of a network: every layer drops and grows
    ``drop_count(fraction, K_l, N_l)`` connections (see :func:`rewire_layer`).

    :param weights: Weight of each layer.
    :param masks: Current mask of each layer.
    :param fraction: Drop fraction ``zeta_t``.
    :param method: ``"set"`` or ``"rigl"``.
    :param generator: Seeded CPU generator, used layer after layer.
    :param grads: Dense gradient of each layer (RigL, and the gradient prune criteria).
    :param prune_criterion: Which active weights are dropped (see :func:`rewire_layer`).
    :return: The new masks and the dropped/grown positions (CPU tensors).
    """
    check_choice("method", method, DST_METHODS)
    check_number("fraction", fraction, 0.0, 1.0)
    if len(weights) != len(masks):
        raise ValueError(f"Got {len(weights)} weights for {len(masks)} masks")
    if grads is None:
        grads = [None] * len(weights)
    check_lengths(weights=weights, grads=grads)
    result = RewireResult([], [], [], [m.detach().bool().cpu().clone() for m in masks])
    for weight, mask, grad in zip(weights, masks, grads):
        if tuple(weight.shape) != tuple(mask.shape):
            raise ValueError(f"Mask shape {tuple(mask.shape)} does not match weight shape {tuple(weight.shape)}")
        k = drop_count(fraction, int(mask.sum()), mask.numel())
        new, dropped, grown = rewire_layer(weight, mask, k, method, generator, grad, prune_criterion)
        result.masks.append(new)
        result.dropped.append(dropped)
        result.grown.append(grown)
    return result


def planned_gradient_steps(
    total_timesteps: int,
    num_timesteps: int,
    learning_starts: int,
    train_freq: int,
    train_freq_unit: str,
    gradient_steps: int,
    n_envs: int = 1,
) -> int:
    """
    Gradient steps an SB3 off-policy ``learn()`` call will take (its training loop, replayed).

    With ``train_freq`` in steps, each rollout collects ``f * E`` timesteps (``f = train_freq``,
    ``E = n_envs``) while ``num_timesteps < total_timesteps``, and trains ``G`` gradient steps
    after it if ``num_timesteps > learning_starts`` (``G = gradient_steps``, or ``f * E`` when
    ``gradient_steps = -1``). Starting at ``n0 = num_timesteps``::

        R    = ceil((total_timesteps - n0) / (f * E))            # rollouts
        skip = min(R, max(0, floor((learning_starts - n0) / (f * E))))  # rollouts before learning starts
        T    = G * (R - skip)

    (for one env, ``train_freq=1``, ``gradient_steps=1``: ``T = total_timesteps - learning_starts``).
    With ``train_freq`` in episodes the count depends on episode lengths: for
    ``gradient_steps = -1`` (one gradient step per collected timestep) it is estimated as
    ``total_timesteps - max(n0, learning_starts)``; a fixed ``gradient_steps`` is refused.

    :param total_timesteps: ``learn()``'s total (absolute, as SB3 sets ``model._total_timesteps``).
    :param num_timesteps: The model's timestep count when ``learn()`` starts.
    :param learning_starts: The model's ``learning_starts``.
    :param train_freq: ``model.train_freq.frequency``.
    :param train_freq_unit: ``"step"`` or ``"episode"``.
    :param gradient_steps: The model's ``gradient_steps`` (``-1``: as many as timesteps collected).
    :param n_envs: Number of parallel environments.
    :return: The planned number of gradient steps (``>= 0``).
    :raises ValueError: For episodic ``train_freq`` with a fixed ``gradient_steps``.
    """
    check_int("train_freq", train_freq, 1)
    check_int("n_envs", n_envs, 1)
    remaining = total_timesteps - num_timesteps
    if remaining <= 0:
        return 0
    if train_freq_unit == "episode":
        if gradient_steps >= 0:
            raise ValueError(
                f"Cannot plan the dynamic sparse training schedule with train_freq=({train_freq}, 'episode') and "
                f"gradient_steps={gradient_steps}: the number of gradient steps depends on episode lengths. Use "
                "train_freq in steps, gradient_steps=-1, or SparsePolicy's dst_total_steps"
            )
        return max(0, total_timesteps - max(num_timesteps, learning_starts))
    if train_freq_unit != "step":
        raise ValueError(f"Unknown train_freq_unit {train_freq_unit!r}: valid values are ['step', 'episode']")
    per_rollout = train_freq * n_envs
    rollouts = math.ceil(remaining / per_rollout)
    skipped = min(rollouts, max(0, (learning_starts - num_timesteps) // per_rollout))
    per_train = gradient_steps if gradient_steps >= 0 else per_rollout
    return per_train * (rollouts - skipped)
