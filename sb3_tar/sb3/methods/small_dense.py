"""Dense networks of the parameter count of a sparse one, for SAC/TD3/TQC, PPO/A2C and DQN (thin SB3 glue over
:mod:`sb3_tar.core.param_match`).

:func:`network_shapes` reads the width-independent shape (:class:`~sb3_tar.core.param_match.MLPShape`) of every
network from a built policy (:func:`sb3_tar.sb3.networks.sparse_networks`: SAC/TD3/TQC's actor and each Q-network;
PPO/A2C's policy branch ``actor`` and value branch ``critic``; DQN's ``q_net``, whose target is built alike);
:func:`small_dense_net_arch` builds the policy of an algorithm, environment and width once (no model, no replay
buffer) and returns the ``net_arch`` of its small dense counterpart: ``dict(pi=[actor widths], qf=[critic widths])``
for SAC/TD3/TQC, ``dict(pi=[policy branch widths], vf=[value branch widths])`` for PPO/A2C, ``[Q-network widths]``
for DQN.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sb3_tar.core.param_match import MLPShape, SmallDenseMatch, match_small_dense
from sb3_tar.sb3.networks import is_actor_critic_policy, is_q_policy, sparse_networks

#: The algorithms :func:`small_dense_net_arch` builds policies for.
SMALL_DENSE_ALGOS: tuple[str, ...] = ("sac", "td3", "tqc", "ppo", "a2c", "dqn")


def _role_arch(policy: nn.Module, role: str) -> list[int]:
    if is_actor_critic_policy(policy) or is_q_policy(policy):
        arch = getattr(policy, "net_arch", None)
        if isinstance(arch, dict) and is_actor_critic_policy(policy):
            arch = arch.get("pi" if role == "actor" else "vf")
    else:
        kwargs = getattr(policy, f"{role}_kwargs", None)
        arch = kwargs.get("net_arch") if isinstance(kwargs, dict) else None
    if not isinstance(arch, (list, tuple)) or not arch:
        raise TypeError(
            f"{type(policy).__name__} has no hidden layers for its {role} (net_arch {arch!r}): small dense matches MLP "
            "networks with at least one hidden layer (SAC/TD3/TQC, PPO/A2C or DQN policies)"
        )
    return list(arch)


def network_shapes(policy: nn.Module) -> dict[str, tuple[MLPShape, list[int]]]:
    """
    :param policy: A built SB3 SAC, TD3, TQC, PPO, A2C or DQN policy (or sb3-contrib's TRPO, MaskablePPO, QR-DQN).
    :return: ``{network name: (shape, hidden widths)}`` for each network of
        :func:`~sb3_tar.sb3.networks.sparse_networks`. The first ``depth`` linear layers of a network are its hidden
        layers, the rest its heads (SAC's ``mu`` and ``log_std``; PPO/A2C's ``action_net`` or ``value_net``; DQN's
        output layer).
    :raises TypeError: If a network is not such an MLP (a ``CnnPolicy``'s features extractor is not: small dense
        matches ``MlpPolicy`` networks).
    """
    out = {}
    for net in sparse_networks(policy):
        if net.name.endswith("features_extractor"):
            raise TypeError(
                f"{net.name} has sparsifiable layers ({type(net.module).__name__}): small dense matches the MLP "
                "networks of an MlpPolicy, not a features extractor's layers"
            )
        arch = _role_arch(policy, "actor" if net.role == "actor" else "critic")
        layers = net.linears
        depth = len(arch)
        hidden, heads = layers[:depth], layers[depth:]
        if not heads or [getattr(layer, "out_features", None) for layer in hidden] != arch:
            raise TypeError(f"{net.name} is not an MLP with hidden widths {arch} followed by its heads")
        shape = MLPShape(n_in=hidden[0].in_features, depth=depth, n_out=sum(layer.out_features for layer in heads))
        out[net.name] = (shape, arch)
    return out


def small_dense_matches(policy: nn.Module, reference_width: int, sparsities: dict[str, float]) -> dict[str, SmallDenseMatch]:
    """
    :param policy: A built policy (any width: only its shape is read).
    :param reference_width: Width of the sparse network matched.
    :param sparsities: Its sparsity per role (``actor``, ``critic``).
    :return: ``{network name: match}``.
    """
    matches = {}
    for net in sparse_networks(policy):
        shape, _ = network_shapes(policy)[net.name]
        matches[net.name] = match_small_dense(shape, reference_width, sparsities[net.role])
    return matches


def small_dense_net_arch(
    algo: str, env_id: str, reference_width: int, sparsity: float, policy_kwargs: dict[str, Any] | None = None
) -> tuple[dict[str, list[int]] | list[int], dict[str, SmallDenseMatch]]:
    """
    The ``net_arch`` of the dense network whose per-network weight count matches the kept count of the
    ``sparsity``-sparse network of width ``reference_width``.

    :param algo: One of :data:`SMALL_DENSE_ALGOS`: ``"sac"``, ``"td3"``, ``"tqc"``, ``"ppo"``, ``"a2c"`` or ``"dqn"``.
    :param env_id: Gymnasium environment id (made once to read its spaces).
    :param reference_width: Hidden width of the sparse network (``net_arch=[W] * depth``).
    :param sparsity: Its sparsity.
    :param policy_kwargs: Other policy keyword arguments (``n_quantiles``, ``n_critics``, ``activation_fn``, ...); a
        ``net_arch`` list gives the depth (default 2).
    :return: ``(net_arch, {network: match})``, ``net_arch`` being ``dict(pi=actor widths, qf=critic widths)`` for
        SAC/TD3/TQC, ``dict(pi=policy branch widths, vf=value branch widths)`` for PPO/A2C and the Q-network's widths
        (a list; its target is built alike) for DQN; each network's hidden widths are ``w`` or ``w + 1``
        (:func:`sb3_tar.core.param_match.solve_widths`).
    :raises ValueError: On another ``algo``.
    """
    import gymnasium as gym

    kwargs = dict(policy_kwargs or {})
    arch = kwargs.pop("net_arch", [reference_width, reference_width])
    depth = len(arch) if isinstance(arch, (list, tuple)) and arch else 2
    algorithm = _algorithm(algo)
    env = gym.make(env_id)
    try:
        policy_class = algorithm.policy_aliases["MlpPolicy"]
        arch = [reference_width] * depth
        policy = policy_class(env.observation_space, env.action_space, lambda _: 1e-3, net_arch=arch, **kwargs)
    finally:
        env.close()
    sparsities = {"actor": float(sparsity), "critic": float(sparsity)}
    matches = small_dense_matches(policy, reference_width, sparsities)
    widths = {net.role: list(matches[net.name].widths) for net in sparse_networks(policy)}
    if algo == "dqn":
        return widths["critic"], matches
    return {"pi": widths["actor"], "vf" if algo in ("ppo", "a2c") else "qf": widths["critic"]}, matches


def _algorithm(algo: str) -> Any:
    if algo == "tqc":
        from sb3_contrib import TQC

        return TQC
    from stable_baselines3 import A2C, DQN, PPO, SAC, TD3

    algorithms = {"sac": SAC, "td3": TD3, "ppo": PPO, "a2c": A2C, "dqn": DQN}
    if algo not in algorithms:
        raise ValueError(f"Unknown algo {algo!r}: valid values are {list(SMALL_DENSE_ALGOS)}")
    return algorithms[algo]
