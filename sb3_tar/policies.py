"""``SparsePolicy`` mixin: SB3 SAC/TD3/TQC policies that are pruned and revived when built."""

from __future__ import annotations

from typing import Any

from sb3_tar.enforcement import MaskEnforcer
from sb3_tar.layer_report import NetworkReport
from sb3_tar.mask_store import BufferStore
from sb3_tar.pruning import draw_seed, role_configs, sparsify_policy

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
)


class SparsePolicyMixin:
    """
    Adds static sparsity with Topology-Aware Revival to an SB3 actor-critic policy.

    When the policy is built, the actor and every Q-network are pruned by ``criterion`` and
    revived by ``revival`` (TAR_SPEC.md); their masks are registered as ``weight_mask`` buffers
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
    """

    sparsity_reports: dict[str, NetworkReport]
    mask_enforcer: MaskEnforcer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        options = {key: kwargs.pop(key, default) for key, default in SPARSITY_DEFAULTS.items()}
        seed = options.pop("sparsity_seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"sparsity_seed must be an int or None, got {seed!r}")
        self.sparsity_configs = role_configs(**options)  # validated before anything is built
        self.sparsity_options = dict(options, sparsity_seed=seed)
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        seed = self.sparsity_options["sparsity_seed"]
        self.sparsity_seed_used = draw_seed() if seed is None else seed
        networks, masks, self.sparsity_reports = sparsify_policy(self, self.sparsity_configs, self.sparsity_seed_used)
        self.mask_enforcer = MaskEnforcer(networks, BufferStore.register(networks, masks))
        self.mask_enforcer.attach(self)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(self.sparsity_options)
        return data
