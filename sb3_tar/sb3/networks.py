"""Which networks of an SB3 policy are sparsified, and how (thin SB3 glue).

- SAC, TD3, TQC (and DDPG): a *network* is the actor, or one Q-network of the critic (``critic.qf0``,
  ``critic.qf1``, ...); roles ``"actor"`` and ``"critic"``.
- PPO, A2C (``ActorCriticPolicy``; also sb3-contrib's TRPO and MaskablePPO, whose policies are
  ``ActorCriticPolicy`` subclasses): the network ``actor`` (role ``"actor"``) is the policy branch,
  ``mlp_extractor.policy_net`` + ``action_net``; the network ``critic`` (role ``"critic"``) is the value
  branch, ``mlp_extractor.value_net`` + ``value_net``. SB3 2.x's ``MlpExtractor`` shares no layer between
  them (``net_arch=[64, 64]`` and ``dict(pi=..., vf=...)`` both build two separate branches). A features
  extractor with sparsifiable layers (``CnnPolicy``'s ``NatureCNN``, ``MultiInputPolicy``'s ``CombinedExtractor``
  with an image key, or a custom one; ``MlpPolicy``'s ``FlattenExtractor`` has none) is a network of its own,
  named after its attribute: with ``share_features_extractor=True`` (SB3's default) the shared
  ``features_extractor``, role ``"actor"`` (the role of the deployed network; SB3's SAC likewise trains a shared
  extractor with the actor's optimizer); with ``share_features_extractor=False`` ``pi_features_extractor``
  (role ``"actor"``) and ``vf_features_extractor`` (role ``"critic"``).
- DQN (and sb3-contrib's QR-DQN): the network ``q_net`` (QR-DQN: ``quantile_net``; role ``"critic"``) is the
  whole Q-network, its features extractor's sparsifiable layers (convolutions of ``CnnPolicy``) first, then its
  MLP (``q_net.q_net``); the target network ``q_net_target`` (``quantile_net_target``) carries its mask (every hard
  copy then copies zeros onto zeros).

Each network has its own mask (one kept count per network); the target networks (``critic_target``, TD3's
``actor_target``, DQN's ``q_net_target``) carry the mask of their online network. The features extractors of
SAC, TD3 and TQC stay dense. Convolutions are sparsified like linear layers (:mod:`sb3_tar.core.masks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sb3_tar.core.criteria import ForwardFn, default_forward
from sb3_tar.core.masks import is_sparsifiable, linear_layers

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
    :param hook_module: The module whose forward pass re-attaches a copied policy's enforcer (default:
        ``module``; a branch of an ``ActorCriticPolicy`` is a view that is never called itself, so there it is
        the policy).
    """

    name: str
    role: str
    module: nn.Module
    layers: list[tuple[str, nn.Linear]]
    target_layers: list[nn.Linear] = field(default_factory=list)
    forward: ForwardFn = default_forward
    target_module: nn.Module | None = None
    hook_module: nn.Module | None = None

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


class _Branch(nn.Module):
    """
    A view of one branch of an ``ActorCriticPolicy`` (its ``mlp_extractor`` part and its head), so that the
    branch is one network with layer names as in the policy (``mlp_extractor.policy_net.0``, ``action_net``).
    It is never registered in the policy: the policy's ``state_dict`` is unchanged.

    :param branch: ``"policy_net"`` or ``"value_net"`` (the ``mlp_extractor`` attribute).
    :param body: ``mlp_extractor.<branch>``.
    :param head_name: ``"action_net"`` or ``"value_net"``.
    :param head: The head layer.
    """

    def __init__(self, branch: str, body: nn.Module, head_name: str, head: nn.Module) -> None:
        super().__init__()
        self.mlp_extractor = nn.Module()
        self.mlp_extractor.add_module(branch, body)
        self.add_module(head_name, head)
        self._branch, self._head = branch, head_name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """SynFlow's forward: the head on the branch's latent."""
        return getattr(self, self._head)(getattr(self.mlp_extractor, self._branch)(x))


def replace_layer(net: SparseNetwork, name: str, layer: nn.Module, target: bool = False) -> None:
    """
    Put ``layer`` in place of the layer ``name`` of a network (or of its target network), where the policy's forward
    pass reads it: a branch head of an ``ActorCriticPolicy`` (``action_net``, ``value_net``) is an attribute of the
    policy itself, which the branch view only points to, so it is replaced in both.

    :param net: The network.
    :param name: A layer name of ``net.layers`` (relative to ``net.module``).
    :param layer: The new layer.
    :param target: Replace the layer of ``net.target_module`` instead.
    """
    root = net.target_module if target else net.module
    if root is None:
        raise ValueError(f"network {net.name!r} has no target network")
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, layer)
    if not target and not parent_name and isinstance(root, _Branch) and net.hook_module is not None:
        setattr(net.hook_module, child, layer)  # the policy's own head


def is_actor_critic_policy(policy: nn.Module) -> bool:
    """
    :return: Whether ``policy`` is an SB3 ``ActorCriticPolicy`` (PPO, A2C, TRPO) or sb3-contrib's
        ``MaskableActorCriticPolicy`` (MaskablePPO; not an ``ActorCriticPolicy`` subclass, same networks), with an
        ``MlpExtractor``, ``action_net`` and ``value_net``.
    """
    from stable_baselines3.common.policies import ActorCriticPolicy

    try:
        from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    except ImportError:  # pragma: no cover - sb3-contrib is a dependency
        MaskableActorCriticPolicy = ActorCriticPolicy  # noqa: N806
    return isinstance(policy, (ActorCriticPolicy, MaskableActorCriticPolicy)) and all(
        hasattr(policy, name) for name in ("mlp_extractor", "action_net", "value_net")
    )


#: The Q-network attributes of the value-based policies: SB3's DQN, sb3-contrib's QR-DQN.
Q_NETWORKS: tuple[tuple[str, str, str], ...] = (
    ("q_net", "q_net_target", "q_net"),
    ("quantile_net", "quantile_net_target", "quantile_net"),
)


def _q_attributes(policy: nn.Module) -> tuple[str, str, str] | None:
    """:return: ``(online, target, MLP attribute)`` names of a value-based policy's Q-network, or ``None``."""
    from stable_baselines3.common.policies import BasePolicy

    if not isinstance(policy, BasePolicy):
        return None
    return next((names for names in Q_NETWORKS if isinstance(getattr(policy, names[0], None), nn.Module)), None)


def is_q_policy(policy: nn.Module) -> bool:
    """
    :return: Whether ``policy`` is an SB3 ``DQNPolicy`` (``q_net`` and ``q_net_target``) or sb3-contrib's
        ``QRDQNPolicy`` (``quantile_net`` and ``quantile_net_target``).
    """
    return _q_attributes(policy) is not None


def observation_ones(space: Any, dtype: torch.dtype = torch.float64) -> torch.Tensor | dict[str, torch.Tensor]:
    """
    SynFlow's all-ones input for a network that reads observations (a features extractor), preprocessed as SB3 does
    with ``normalize_images=True``: images are divided by 255, ``Discrete``/``MultiDiscrete`` become one-hot widths.

    :param space: The policy's observation space (``Box``, ``Discrete``, ``MultiDiscrete``, ``MultiBinary``, or a
        ``Dict`` of these).
    :param dtype: The input's dtype.
    :return: A batch of one observation of ones (a dict for a ``Dict`` space).
    :raises TypeError: On another space.
    """
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space

    if isinstance(space, spaces.Dict):
        return {key: observation_ones(sub, dtype) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Box):
        ones = torch.ones((1, *space.shape), dtype=dtype)
        return ones / 255.0 if is_image_space(space, check_channels=False) else ones
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        return torch.ones((1, get_flattened_obs_dim(space)), dtype=dtype)
    raise TypeError(
        f"SynFlow cannot build an input for observation space {space!r}: Box, Discrete, MultiDiscrete, "
        "MultiBinary or a Dict of these"
    )


def _extractor_forward(space: Any) -> ForwardFn:
    """SynFlow forward of a features extractor: its preprocessed all-ones observation, whatever ``x`` is."""

    def forward(extractor: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return extractor(_cast(observation_ones(space), x.dtype))

    return forward


def _q_forward(space: Any, mlp: str) -> ForwardFn:
    """SynFlow forward of a whole Q-network (features extractor, then its MLP ``mlp``)."""

    def forward(q_net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return getattr(q_net, mlp)(q_net.features_extractor(_cast(observation_ones(space), x.dtype)))

    return forward


def _cast(obs: torch.Tensor | dict[str, torch.Tensor], dtype: torch.dtype) -> torch.Tensor | dict[str, torch.Tensor]:
    return {k: v.to(dtype) for k, v in obs.items()} if isinstance(obs, dict) else obs.to(dtype)


def has_sparsifiable_layers(module: nn.Module) -> bool:
    """:return: Whether ``module`` holds an ``nn.Linear`` or a convolution (:func:`~sb3_tar.core.masks.is_sparsifiable`)."""
    return any(is_sparsifiable(m) for m in module.modules())


def _extractor_networks(policy: nn.Module) -> list[SparseNetwork]:
    """The features extractor networks of an ``ActorCriticPolicy`` (see the module docstring)."""
    if getattr(policy, "share_features_extractor", True):
        named = [("features_extractor", "actor")]
    else:
        named = [("pi_features_extractor", "actor"), ("vf_features_extractor", "critic")]
    networks = []
    for name, role in named:
        extractor = getattr(policy, name)
        if has_sparsifiable_layers(extractor):
            forward = _extractor_forward(policy.observation_space)
            layers = linear_layers(extractor)
            networks.append(SparseNetwork(name, role, extractor, layers, forward=forward, hook_module=policy))
    return networks


def _actor_critic_networks(policy: nn.Module) -> list[SparseNetwork]:
    extractor = policy.mlp_extractor
    networks = []
    for name, branch, head_name in (("actor", "policy_net", "action_net"), ("critic", "value_net", "value_net")):
        view = _Branch(branch, getattr(extractor, branch), head_name, getattr(policy, head_name))
        networks.append(SparseNetwork(name, name, view, linear_layers(view), hook_module=policy))
    return networks + _extractor_networks(policy)


def _q_networks(policy: nn.Module) -> list[SparseNetwork]:
    online, target_name, mlp = _q_attributes(policy)
    q_net, target = getattr(policy, online), getattr(policy, target_name)
    layers = linear_layers(q_net)  # the features extractor's layers first (module order), then the MLP's
    by_name = dict(target.named_modules())
    target_layers = [by_name[n] for n, _ in layers]
    forward = _q_forward(policy.observation_space, mlp)
    return [SparseNetwork(online, "critic", q_net, layers, target_layers, forward=forward, target_module=target)]


#: What :func:`sparse_networks` supports, for messages.
SUPPORTED = (
    "SAC, TD3, TQC, CrossQ (policy.actor and policy.critic), PPO, A2C, TRPO, MaskablePPO (ActorCriticPolicy), DQN "
    "(DQNPolicy) and QR-DQN (QRDQNPolicy)"
)


def sparse_networks(policy: nn.Module) -> list[SparseNetwork]:
    """
    The sparsifiable networks of an SB3 SAC, TD3, TQC, PPO, A2C or DQN policy (see the module docstring).

    :param policy: ``model.policy`` of an SAC, TD3, TQC, PPO, A2C or DQN model.
    :return: SAC/TD3/TQC: the actor, then each Q-network of the critic; PPO/A2C: ``actor`` (policy branch),
        then ``critic`` (value branch); DQN: ``q_net``.
    :raises TypeError: If the policy is none of these, or a network has no ``nn.Linear`` layer.
    """
    if isinstance(policy, nn.Module) and is_actor_critic_policy(policy):
        return _actor_critic_networks(policy)
    if isinstance(policy, nn.Module) and is_q_policy(policy):
        return _q_networks(policy)
    if not (isinstance(policy, nn.Module) and hasattr(policy, "actor") and hasattr(policy, "critic")):
        raise TypeError(f"{type(policy).__name__} is not a policy sb3-tar can sparsify: sb3-tar supports {SUPPORTED}")
    return [_actor_network(policy), *_critic_networks(policy)]


def role_optimizers(policy: nn.Module) -> dict[str, torch.optim.Optimizer]:
    """
    The optimizer that steps each role's networks.

    :param policy: An SB3 policy :func:`sparse_networks` supports, built (its optimizers exist).
    :return: SAC/TD3/TQC: ``{"actor": policy.actor.optimizer, "critic": policy.critic.optimizer}``; PPO/A2C: both
        roles share ``policy.optimizer`` (critic first: its hooks run first); DQN: ``{"critic": policy.optimizer}``.
    :raises TypeError: If an optimizer is missing.
    """
    if is_actor_critic_policy(policy) or is_q_policy(policy):
        optimizer = getattr(policy, "optimizer", None)
        if optimizer is None:
            raise TypeError("policy.optimizer is missing: build the policy first")
        # the critic first: on a shared optimizer its pre-step hook runs first, so a schedule's clock (GMP) advances
        # before the actor's hook reads it, and both roles change their masks at the same gradient step
        return {"critic": optimizer} if is_q_policy(policy) else {"critic": optimizer, "actor": optimizer}
    optimizers = {}
    for role in ROLES:
        optimizer = getattr(getattr(policy, role), "optimizer", None)
        if optimizer is None:
            raise TypeError(f"policy.{role} has no optimizer to hook: build the policy first")
        optimizers[role] = optimizer
    return optimizers


def clips_gradients(policy: nn.Module) -> bool:
    """
    :param policy: An SB3 policy.
    :return: Whether its algorithm clips the gradients by their global norm between ``backward()`` and the
        optimizer's step (PPO, A2C and DQN do, with ``max_grad_norm``): the gradients of pruned weights must
        then be zero as soon as they are computed, so that the clipped norm is the sparse network's.
    """
    return is_actor_critic_policy(policy) or is_q_policy(policy)
