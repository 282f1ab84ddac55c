"""Which network a key of a saved SB3 policy's state dict belongs to, for every algorithm the sweep runs.

The sweep measures a finished cell from its saved weights alone (:func:`sb3_tar.experiments.runner.measured_sparsity`,
:func:`~sb3_tar.experiments.runner.final_masks`, :func:`sb3_tar.experiments.flops.training_flops`), with the network
names of :func:`sb3_tar.sb3.networks.sparse_networks`:

- SAC, TD3, TQC: ``actor`` (``actor.*``; TD3's ``actor_target.*`` is its target) and ``critic.qf<i>``
  (``critic.qf<i>.*``; ``critic_target.qf<i>.*`` is its target); layer names relative to the network;
- PPO, A2C: ``actor``, the policy branch (``mlp_extractor.policy_net.*`` and ``action_net``), and ``critic``, the
  value branch (``mlp_extractor.value_net.*`` and ``value_net``); layer names as in the policy;
- DQN: ``q_net`` (``q_net.q_net.*``; ``q_net_target.q_net.*`` is its target); layer names relative to ``q_net``.

Features extractors are left out everywhere (they stay dense).
"""

from __future__ import annotations

from typing import NamedTuple

#: Network name -> role (``sparse_networks``'s roles); networks not listed have their name's first part as role.
ROLE_OF: dict[str, str] = {"q_net": "critic"}


class KeyNetwork(NamedTuple):
    """
    Where a state-dict key belongs.

    :param network: The network's name (``actor``, ``critic.qf0``, ``critic``, ``q_net``).
    :param target: Whether the key is in the network's target copy.
    :param layer: The layer's name (the key without its network prefix and its last part).
    """

    network: str
    target: bool
    layer: str


def network_of_key(key: str) -> KeyNetwork | None:
    """
    :param key: A key of a saved policy's state dict, e.g. ``critic.qf0.2.weight``, ``action_net.bias``,
        ``q_net_target.q_net.0.weight``.
    :return: The network it belongs to (see the module docstring), or ``None`` for any other key (features
        extractors, ``log_std``, DQN-free buffers ...).
    """
    parts = key.split(".")
    if len(parts) < 2 or any(p.endswith("features_extractor") for p in parts):
        return None
    head, layer = parts[0], ".".join(parts[:-1])
    if head in ("actor", "actor_target"):
        return KeyNetwork("actor", head == "actor_target", ".".join(parts[1:-1]))
    if head in ("critic", "critic_target") and len(parts) > 2 and parts[1].startswith("qf"):
        return KeyNetwork(f"critic.{parts[1]}", head == "critic_target", ".".join(parts[2:-1]))
    if head in ("q_net", "q_net_target") and len(parts) > 2 and parts[1] == "q_net":
        return KeyNetwork("q_net", head == "q_net_target", ".".join(parts[1:-1]))
    if head == "mlp_extractor" and len(parts) > 2 and parts[1] in ("policy_net", "value_net"):
        return KeyNetwork("actor" if parts[1] == "policy_net" else "critic", False, layer)
    if head in ("action_net", "value_net") and len(parts) == 2:
        return KeyNetwork("actor" if head == "action_net" else "critic", False, layer)
    return None


def role_of(network: str) -> str:
    """
    :param network: A network name (``actor``, ``critic.qf0``, ``critic``, ``q_net``).
    :return: Its role, ``"actor"`` or ``"critic"``.
    """
    return ROLE_OF.get(network, network.split(".")[0])
