"""Callbacks that make an existing SB3 SAC/TD3/TQC project sparse without other code changes."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from sb3_tar.enforcement import MaskEnforcer, attached_enforcer
from sb3_tar.layer_report import NetworkReport
from sb3_tar.mask_store import MODEL_ATTRIBUTE, AttributeStore
from sb3_tar.model_masks import enforcer_of
from sb3_tar.networks import sparse_networks
from sb3_tar.policies import SparsePolicyMixin
from sb3_tar.pruning import draw_seed, role_configs, sparsify_policy
from sb3_tar.report_logging import log_reports


def check_supported(model: Any, who: str) -> None:
    """
    :param model: The model a callback is attached to.
    :param who: The callback's name, for the message.
    :raises TypeError: Unless ``model`` is an off-policy actor-critic (SAC, TD3, TQC, DDPG)
        whose networks hold ``nn.Linear`` layers. Raised before training starts; the model is
        not modified and stays usable.
    """
    if not isinstance(model, OffPolicyAlgorithm) or not hasattr(model.policy, "actor"):
        raise TypeError(
            f"{who} supports SAC, TD3 and TQC (off-policy actor-critic algorithms), "
            f"got {type(model).__name__}: remove the callback or switch algorithm"
        )
    sparse_networks(model.policy)


class TARCallback(BaseCallback):
    """
    Static sparse training with Topology-Aware Revival, attached to any SAC/TD3/TQC model.

    On training start, if the model is not sparse yet, the actor and every Q-network are
    pruned by ``criterion`` and revived by ``revival`` (TAR_SPEC.md), target networks are
    masked, and hooks on the actor and critic optimizers keep the pruned weights at exactly
    ``0.0`` for the rest of training. It never prunes twice: a second ``learn()``, a model
    built with ``SparsePolicy``, or a model loaded after a sparse run keep their masks.

    With a plain ``MlpPolicy`` the masks are kept in ``model.sb3_tar_masks``, which
    ``model.save()`` stores with the model: to resume, ``SAC.load(path, env)`` and call
    ``learn()`` again with a ``TARCallback`` (or :func:`sb3_tar.enforce_masks` without one).

    The per-layer report is logged to SB3's logger under ``sparsity/...`` and printed with
    ``verbose >= 1``.

    :param sparsity: Sparsity of actor and critic in ``[0, 1)``.
    :param actor_sparsity: Sparsity of the actor (default: ``sparsity``).
    :param critic_sparsity: Sparsity of each Q-network (default: ``sparsity``).
    :param criterion: ``"random"``, ``"erk"``, ``"magnitude"`` or ``"synflow"``.
    :param revival: ``"tar"``, ``"uniform"`` or ``"none"`` (the static baseline).
    :param recovery_ratio: Revival budget rr.
    :param floor_fraction: TAR's connectivity floor fraction phi in ``[0, 1]``.
    :param budget_mode: ``"reserve"`` or ``"extra"``.
    :param revived_init: ``"init"`` or ``"zero"``.
    :param magnitude_scope: ``"global"`` or ``"layer"``.
    :param synflow_iters: SynFlow rounds.
    :param seed: Seed of the masks (default: the model's ``seed``, else drawn from torch).
    :param verbose: 0: silent, 1: print the per-layer table.
    """

    def __init__(
        self,
        sparsity: float | None = 0.8,
        actor_sparsity: float | None = None,
        critic_sparsity: float | None = None,
        criterion: str = "magnitude",
        revival: str = "tar",
        recovery_ratio: float = 0.01,
        floor_fraction: float = 0.2,
        budget_mode: str = "reserve",
        revived_init: str = "init",
        magnitude_scope: str = "global",
        synflow_iters: int = 100,
        seed: int | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.configs = role_configs(
            sparsity,
            actor_sparsity,
            critic_sparsity,
            criterion=criterion,
            revival=revival,
            recovery_ratio=recovery_ratio,
            floor_fraction=floor_fraction,
            budget_mode=budget_mode,
            revived_init=revived_init,
            magnitude_scope=magnitude_scope,
            synflow_iters=synflow_iters,
        )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self.seed = seed
        self.reports: dict[str, NetworkReport] = {}
        self.pruned = False

    def _init_callback(self) -> None:
        check_supported(self.model, type(self).__name__)

    def _mask_seed(self) -> int:
        if self.seed is not None:
            return self.seed
        return self.model.seed if isinstance(self.model.seed, int) else draw_seed()

    def _on_training_start(self) -> None:
        policy = self.model.policy
        if isinstance(policy, SparsePolicyMixin):
            self._report_existing("the policy is a SparsePolicy, pruned when built", policy.sparsity_reports)
            return
        if enforcer_of(self.model) is not None:  # saved masks or a previous learn(): re-attached
            self._report_existing("the model already has masks", {})
            return
        seed = self._mask_seed()
        networks, masks, self.reports = sparsify_policy(policy, self.configs, seed)
        store = AttributeStore(self.model)
        for name, net_masks in masks.items():
            store.set(name, net_masks)
        MaskEnforcer(networks, store).attach(policy)
        self.pruned = True
        self.model.sb3_tar_config = {role: c.to_dict() for role, c in self.configs.items()} | {"seed": seed}
        log_reports(self.logger, self.reports)
        if self.verbose >= 1:
            print(f"{type(self).__name__}: pruned and revived with seed {seed}")
            for report in self.reports.values():
                print(report, end="\n\n")

    def _report_existing(self, why: str, reports: dict[str, NetworkReport]) -> None:
        self.reports = dict(reports)
        if reports:
            log_reports(self.logger, reports)
        if self.verbose >= 1:
            print(f"{type(self).__name__}: not pruning, {why}")

    def _on_step(self) -> bool:
        return True


def enforce_masks(model: Any) -> bool:
    """
    Re-attach the masks saved with a model (after ``load``) so that training keeps them,
    without a callback.

    :param model: An SB3 model.
    :return: Whether the model had masks.
    """
    return enforcer_of(model) is not None


__all__ = ["MODEL_ATTRIBUTE", "TARCallback", "attached_enforcer", "check_supported", "enforce_masks"]
