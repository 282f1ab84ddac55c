"""``SparsePolicy`` mixin: SB3 SAC/TD3/TQC policies that are pruned and revived when built,
or trained with dynamic sparse training (SET/RigL) from an initial static mask."""

from __future__ import annotations

from typing import Any

from sb3_tar.config import check_int
from sb3_tar.dynamic import DEFAULT_END_FRACTION, DSTConfig, dst_config
from sb3_tar.enforcement import MaskEnforcer
from sb3_tar.layer_report import NetworkReport
from sb3_tar.mask_store import BufferStore
from sb3_tar.pruning import draw_seed, role_configs, sparsify_policy
from sb3_tar.rewiring import UNKNOWN_TOTAL, BufferState, Rewirer

#: Sparsity options a ``SparsePolicy`` takes through ``policy_kwargs``, with their defaults.
SPARSITY_DEFAULTS: dict[str, Any] = dict(
    sparsity=0.8,
    actor_sparsity=None,
    critic_sparsity=None,
    criterion="magnitude",
    revival="tar",
    recovery_ratio=0.01,
    floor_fraction=0.2,
    budget_mode="reserve",
    revived_init="init",
    magnitude_scope="global",
    synflow_iters=100,
    sparsity_seed=None,
    mask_gradients=False,
)

#: Dynamic sparse training options of a ``SparsePolicy`` (``policy_kwargs``), with their defaults.
DST_DEFAULTS: dict[str, Any] = dict(
    dst_method=None,
    update_interval=None,
    drop_fraction=None,
    end_fraction=DEFAULT_END_FRACTION,
    dst_total_steps=None,
)


def _dst_setup(dst: dict[str, Any], options: dict[str, Any], criterion_given: bool, revival_given: bool) -> DSTConfig | None:
    """Validate the DST options; with a method, the static stage is ``criterion`` (ERK by default) without revival."""
    if dst["dst_method"] is None:
        given = [key for key in ("update_interval", "drop_fraction", "dst_total_steps") if dst[key] is not None]
        if dst["end_fraction"] != DEFAULT_END_FRACTION:
            given.append("end_fraction")
        if given:
            raise ValueError(f"{given} only apply to dynamic sparse training: set dst_method to one of ['set', 'rigl']")
        return None
    config = dst_config(dst["dst_method"], dst["update_interval"], dst["drop_fraction"], dst["end_fraction"])
    if dst["dst_total_steps"] is not None:
        check_int("dst_total_steps", dst["dst_total_steps"], 0)
    if revival_given and options["revival"] != "none":
        raise ValueError(
            f"revival={options['revival']!r} cannot be combined with dst_method={config.method!r}: "
            "SET/RigL start from a static mask without revival (revival='none')"
        )
    options["revival"] = "none"
    if not criterion_given:
        options["criterion"] = "erk"
    return config


class SparsePolicyMixin:
    """
    Adds static sparsity with Topology-Aware Revival to an SB3 actor-critic policy.

    When the policy is built, the actor and every Q-network are pruned by ``criterion`` and
    revived by ``revival`` (``docs/method.md``); their masks are registered as ``weight_mask`` buffers
    of each ``nn.Linear`` (online and target networks), so ``save()``/``load()`` keep them, and
    hooks on the actor and critic optimizers keep pruned weights at exactly ``0.0``.

    :param sparsity: Sparsity of actor and critic, in ``[0, 1)`` (default 0.8).
    :param actor_sparsity: Sparsity of the actor (default: ``sparsity``).
    :param critic_sparsity: Sparsity of each Q-network (default: ``sparsity``).
    :param criterion: ``"random"``, ``"erk"``, ``"magnitude"`` (default) or ``"synflow"``.
    :param revival: ``"tar"`` (default), ``"uniform"`` or ``"none"`` (static baseline).
    :param recovery_ratio: Revival budget rr (default 0.01).
    :param floor_fraction: TAR's connectivity floor fraction phi (default 0.2).
    :param budget_mode: ``"reserve"`` (default) or ``"extra"``.
    :param revived_init: ``"init"`` (default) or ``"zero"``.
    :param magnitude_scope: ``"global"`` (default) or ``"layer"``.
    :param synflow_iters: SynFlow rounds (default 100).
    :param sparsity_seed: Seed of the masks; default: drawn from torch's global generator, which
        SB3 seeds from the model's ``seed``.
    :param mask_gradients: Also zero the gradients of pruned weights before each optimizer step
        (default ``False``: pruned weights are re-zeroed after every step either way; see
        :mod:`sb3_tar.enforcement` for why gradient masking is off by default).
    :param dst_method: ``None`` (default: static sparse training, pruned and revived once), or
        ``"set"`` / ``"rigl"``: dynamic sparse training (``docs/dst.md``). The initial mask is then
        drawn by ``criterion`` (default ``"erk"``) with ``revival="none"``, and the mask is updated
        during training; the schedule's position is kept in the buffers ``dst_step``,
        ``dst_total_steps``, ``dst_actor_step`` and ``dst_seed``, saved with the policy.
    :param update_interval: Gradient steps between mask updates (default: SET 250, RigL 1000).
    :param drop_fraction: Initial drop fraction zeta in ``(0, 1)`` (default: SET 0.3, RigL 0.5).
    :param end_fraction: Fraction of the planned gradient steps during which the mask is updated,
        in ``(0, 1]`` (default 0.8).
    :param dst_total_steps: Planned gradient steps of the whole run, which the schedule needs
        (``T_end = end_fraction * dst_total_steps``). The policy cannot know it: give it here, or
        leave it ``None`` and pass ``callback=sb3_tar.DSTCallback()`` to ``learn()``, which fills it
        in from the ``learn()`` call (and sends the updates to SB3's logger).
    """

    sparsity_reports: dict[str, NetworkReport]
    mask_enforcer: MaskEnforcer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        dst = {key: kwargs.pop(key, default) for key, default in DST_DEFAULTS.items()}
        criterion_given, revival_given = "criterion" in kwargs, "revival" in kwargs
        options = {key: kwargs.pop(key, default) for key, default in SPARSITY_DEFAULTS.items()}
        seed = options.pop("sparsity_seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"sparsity_seed must be an int or None, got {seed!r}")
        mask_gradients = options.pop("mask_gradients")
        if not isinstance(mask_gradients, bool):
            raise TypeError(f"mask_gradients must be a bool, got {mask_gradients!r}")
        self.dst_config = _dst_setup(dst, options, criterion_given, revival_given)
        self.dst_options = dst
        self.sparsity_configs = role_configs(**options)  # validated before anything is built
        self.sparsity_options = dict(options, sparsity_seed=seed, mask_gradients=mask_gradients)
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        seed = self.sparsity_options["sparsity_seed"]
        self.sparsity_seed_used = draw_seed() if seed is None else seed
        networks, masks, self.sparsity_reports = sparsify_policy(self, self.sparsity_configs, self.sparsity_seed_used)
        self.mask_enforcer = MaskEnforcer(
            networks, BufferStore.register(networks, masks), mask_gradients=self.sparsity_options["mask_gradients"]
        )
        self.mask_enforcer.attach(self)
        self.dst_rewirer: Rewirer | None = None
        if self.dst_config is not None:
            total = self.dst_options["dst_total_steps"]
            state = BufferState.register(self, UNKNOWN_TOTAL if total is None else total, self.sparsity_seed_used)
            self.dst_rewirer = Rewirer(self.mask_enforcer, self.dst_config, state)
            self.dst_rewirer.attach(self)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(self.sparsity_options)
        data.update(self.dst_options)
        return data
