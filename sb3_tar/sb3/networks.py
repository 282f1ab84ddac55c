"""Which networks of an SB3 SAC/TD3/TQC policy are sparsified, and how (thin SB3 glue).

A *network* is the actor, or one Q-network of the critic (``critic.qf0``, ``critic.qf1``, ...).
Each has its own mask; the target networks (``critic_target``, TD3's ``actor_target``) carry
the mask of their online network. Features extractors stay dense.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from sb3_tar.core.criteria import ForwardFn, default_forward
from sb3_tar.core.masks import linear_layers

ROLES: tuple[str, ...] = ("actor", "critic")


def log_name(name: str) -> str:
    """
    The name of a network in logged keys (``sparse/``, ``gmp/``, ``diagnostics/``): its name with ``/`` for ``.``,
    ``actor``, ``critic/qf0``, ``critic/qf1``, ... (TensorBoard groups the Q-networks under ``critic``). Files and
    reports (``summary.json``, the pruning reports) keep the network's own name, ``critic.qf0``.

    :param name: A :attr:`SparseNetwork.name` (``"actor"``, ``"critic.qf<i>"``).
    :return: Its name in logged keys.
    """
    return name.replace(".", "/")


@dataclass
class SparseNetwork:
    """
    One sparsifiable network of an SB3 policy.

    :param name: ``"actor"`` or ``"critic.qf<i>"``.
    :param role: ``"actor"`` or ``"critic"`` (which optimizer steps it, which sparsity applies).
    :param module: The network module (what SynFlow runs).
    :param layers: Its sparsifiable ``(name, nn.Linear)`` layers, names relative to ``module``.
    :param target_layers: The matching layers of its target network (empty if it has none).
    :param forward: How SynFlow feeds an input through ``module``.
    :param target_module: Its target network (``None`` if it has none); layer names are relative to it too.
    """

    name: str
    role: str
    module: nn.Module
    layers: list[tuple[str, nn.Linear]]
    target_layers: list[nn.Linear] = field(default_factory=list)
    forward: ForwardFn = default_forward
    target_module: nn.Module | None = None

    @property
    def linears(self) -> list[nn.Linear]:
        """The online ``nn.Linear`` layers."""
        return [layer for _, layer in self.layers]


def _sac_actor_forward(actor: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SynFlow forward of an SAC/TQC actor: both heads (mean and log-std) on the shared trunk."""
    latent = actor.latent_pi(x)
    outputs = [actor.mu(latent)]
    if isinstance(actor.log_std, nn.Module):
        outputs.append(actor.log_std(latent))
    return torch.cat(outputs, dim=-1)


def _td3_actor_forward(actor: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SynFlow forward of a TD3 actor."""
    return actor.mu(x)


def _actor_network(policy: nn.Module) -> SparseNetwork:
    actor = policy.actor
    if hasattr(actor, "latent_pi"):
        forward = _sac_actor_forward
    elif isinstance(getattr(actor, "mu", None), nn.Module):
        forward = _td3_actor_forward
    else:
        raise TypeError(f"Unsupported actor {type(actor).__name__}: expected an SB3 SAC/TD3/TQC actor")
    exclude = [actor.features_extractor] if hasattr(actor, "features_extractor") else []
    layers = linear_layers(actor, exclude=exclude)
    target = getattr(policy, "actor_target", None)
    target_layers: list[nn.Linear] = []
    if target is not None:
        by_name = dict(target.named_modules())
        target_layers = [by_name[n] for n, _ in layers]
    return SparseNetwork("actor", "actor", actor, layers, target_layers, forward, target)


def _critic_networks(policy: nn.Module) -> list[SparseNetwork]:
    critic = policy.critic
    q_networks = getattr(critic, "q_networks", None)
    if not q_networks:
        raise TypeError(f"Unsupported critic {type(critic).__name__}: expected SB3 Q-networks in critic.q_networks")
    target = getattr(policy, "critic_target", None)
    networks = []
    for i, qf in enumerate(q_networks):
        layers = linear_layers(qf)
        target_layers: list[nn.Linear] = []
        target_q = target.q_networks[i] if target is not None else None
        if target_q is not None:
            by_name = dict(target_q.named_modules())
            target_layers = [by_name[n] for n, _ in layers]
        networks.append(SparseNetwork(f"critic.qf{i}", "critic", qf, layers, target_layers, target_module=target_q))
    return networks


def sparse_networks(policy: nn.Module) -> list[SparseNetwork]:
    """
    The sparsifiable networks of an SB3 SAC, TD3 or TQC policy.

    :param policy: ``model.policy`` of an SAC, TD3 or TQC model.
    :return: The actor, then each Q-network of the critic.
    :raises TypeError: If the policy has no SAC/TD3-style actor and critic, or a network has
        no ``nn.Linear`` layer.
    """
    if not (isinstance(policy, nn.Module) and hasattr(policy, "actor") and hasattr(policy, "critic")):
        raise TypeError(
            f"{type(policy).__name__} is not an off-policy actor-critic policy: sb3-tar supports "
            "SAC, TD3 and TQC (policy.actor and policy.critic with Q-networks)"
        )
    return [_actor_network(policy), *_critic_networks(policy)]
