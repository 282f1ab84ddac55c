"""Prune and revive every network of an SB3 policy (thin SB3 glue over :mod:`sb3_tar.core.sparsify`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sb3_tar.core.config import DEFAULT_SPARSITY, SparsityConfig, check_number
from sb3_tar.core.layer_report import NetworkReport
from sb3_tar.core.sparsify import prune_and_revive
from sb3_tar.sb3.networks import ROLES, SparseNetwork, sparse_networks

#: Criterion name of the sweep and the report for magnitude pruning with a per-layer scope.
MAGNITUDE_LAYER = "magnitude_layer"


def role_configs(
    sparsity: float | None = DEFAULT_SPARSITY,
    actor_sparsity: float | None = None,
    critic_sparsity: float | None = None,
    **options: Any,
) -> dict[str, SparsityConfig]:
    """
    Build the validated configuration of each role.

    :param sparsity: Sparsity of both roles, unless overridden.
    :param actor_sparsity: Sparsity of the actor (default: ``sparsity``).
    :param critic_sparsity: Sparsity of each Q-network (default: ``sparsity``).
    :param options: Other :class:`~sb3_tar.core.config.SparsityConfig` fields (criterion, revival,
        recovery_ratio, floor_fraction, budget_mode, revived_init, magnitude_scope, synflow_iters).
        ``criterion="magnitude_layer"`` (the name the sweep and the report use) is accepted as
        ``criterion="magnitude"`` with ``magnitude_scope="layer"``.
    :return: ``{"actor": config, "critic": config}``.
    :raises ValueError, TypeError: On any invalid value.
    """
    unknown = set(options) - set(SparsityConfig.__dataclass_fields__) - {"sparsity"}
    if unknown:
        raise TypeError(
            f"Unknown sparsity options {sorted(unknown)}: valid options are {sorted(SparsityConfig.__dataclass_fields__)}"
        )
    if options.get("criterion") == MAGNITUDE_LAYER:
        options = dict(options, criterion="magnitude", magnitude_scope="layer")
    if sparsity is None and (actor_sparsity is None or critic_sparsity is None):
        raise ValueError("sparsity=None needs both actor_sparsity and critic_sparsity")
    per_role = {"actor": actor_sparsity, "critic": critic_sparsity}
    configs = {}
    for role in ROLES:
        own = per_role[role] is not None
        value = per_role[role] if own else sparsity
        check_number(f"{role}_sparsity" if own else "sparsity", value, 0.0, 1.0, high_open=True)
        configs[role] = SparsityConfig(sparsity=value, **options)
    return configs


def draw_seed() -> int:
    """:return: A seed drawn from torch's global generator (reproducible once SB3 seeds it)."""
    return int(torch.randint(0, 2**31 - 1, (1,)).item())


@torch.no_grad()
def sparsify_policy(
    policy: nn.Module, configs: dict[str, SparsityConfig], seed: int
) -> tuple[list[SparseNetwork], dict[str, list[torch.Tensor]], dict[str, NetworkReport]]:
    """
    Prune and revive the actor and every Q-network of a policy, and mask the target networks.

    Every network draws from its own streams, named by ``(seed, network name, purpose)``
    (:mod:`sb3_tar.core.streams`), so no two networks or seeds share a mask. A target network that still equals its
    online network (as right after SB3 builds the policy) receives the pruned online weights
    exactly; otherwise (a model that trained dense first) its pruned entries are zeroed and, with
    ``revived_init="zero"``, its revived entries too, like the online network's. If anything fails, the policy's weights
    are restored and the error is raised again.

    :param policy: ``model.policy`` of an SAC, TD3 or TQC model.
    :param configs: ``{"actor": config, "critic": config}`` (see :func:`role_configs`).
    :param seed: Base seed.
    :return: The networks, their masks ``{name: [mask per layer]}`` and reports ``{name: report}``.
    """
    networks = sparse_networks(policy)
    backup = {k: v.clone() for k, v in policy.state_dict().items()}
    try:
        in_sync = {
            net.name: bool(net.target_layers)
            and all(torch.equal(t.weight, o.weight) for t, o in zip(net.target_layers, net.linears))
            for net in networks
        }
        masks: dict[str, list[torch.Tensor]] = {}
        reports: dict[str, NetworkReport] = {}
        for net in networks:
            masks[net.name], reports[net.name] = prune_and_revive(
                net.module,
                configs[net.role],
                seed,
                layers=net.layers,
                forward=net.forward,
                name=net.name,
                mirrors=None if in_sync[net.name] else net.target_layers,
            )
            if in_sync[net.name]:
                for target, online in zip(net.target_layers, net.linears):
                    target.weight.copy_(online.weight)
    except BaseException:
        policy.load_state_dict(backup)
        raise
    return networks, masks, reports
