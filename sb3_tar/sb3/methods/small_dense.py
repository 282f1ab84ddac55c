"""Dense SAC/TD3/TQC networks of the parameter count of a sparse one (thin SB3 glue over
:mod:`sb3_tar.core.param_match`).

:func:`network_shapes` reads the width-independent shape (:class:`~sb3_tar.core.param_match.MLPShape`) of the
actor and of every Q-network from a built policy; :func:`small_dense_net_arch` builds the policy of an
algorithm, environment and width once (no model, no replay buffer) and returns the ``net_arch`` of its small
dense counterpart: ``dict(pi=[actor widths], qf=[critic widths])``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sb3_tar.core.param_match import MLPShape, SmallDenseMatch, match_small_dense
from sb3_tar.sb3.networks import sparse_networks


def _role_arch(policy: nn.Module, role: str) -> list[int]:
    kwargs = getattr(policy, f"{role}_kwargs", None)
    arch = kwargs.get("net_arch") if isinstance(kwargs, dict) else None
    if not isinstance(arch, (list, tuple)) or not arch:
        raise TypeError(f"{type(policy).__name__} has no {role} net_arch list: expected an SB3 SAC/TD3/TQC policy")
    return list(arch)


def network_shapes(policy: nn.Module) -> dict[str, tuple[MLPShape, list[int]]]:
    """
    :param policy: A built SB3 SAC, TD3 or TQC policy.
    :return: ``{network name: (shape, hidden widths)}`` for the actor and each Q-network. The first ``depth``
        linear layers of a network are its hidden layers, the rest its heads (SAC's ``mu`` and ``log_std``).
    :raises TypeError: If a network is not such an MLP.
    """
    out = {}
    for net in sparse_networks(policy):
        arch = _role_arch(policy, "actor" if net.role == "actor" else "critic")
        layers = net.linears
        depth = len(arch)
        hidden, heads = layers[:depth], layers[depth:]
        if not heads or [layer.out_features for layer in hidden] != arch:
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
) -> tuple[dict[str, list[int]], dict[str, SmallDenseMatch]]:
    """
    The ``net_arch`` of the dense network whose per-network weight count matches the kept count of the
    ``sparsity``-sparse network of width ``reference_width``.

    :param algo: ``"sac"``, ``"td3"`` or ``"tqc"``.
    :param env_id: Gymnasium environment id (made once to read its spaces).
    :param reference_width: Hidden width of the sparse network (``net_arch=[W] * depth``).
    :param sparsity: Its sparsity.
    :param policy_kwargs: Other policy keyword arguments (``n_quantiles``, ``n_critics``, ...); a ``net_arch``
        list gives the depth (default 2).
    :return: ``(dict(pi=actor widths, qf=critic widths), {network: match})``; each network's hidden widths
        are ``w`` or ``w + 1`` (:func:`sb3_tar.core.param_match.solve_widths`).
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
    return {"pi": widths["actor"], "qf": widths["critic"]}, matches


def _algorithm(algo: str) -> Any:
    if algo == "tqc":
        from sb3_contrib import TQC

        return TQC
    from stable_baselines3 import SAC, TD3

    algorithms = {"sac": SAC, "td3": TD3}
    if algo not in algorithms:
        raise ValueError(f"Unknown algo {algo!r}: valid values are ['sac', 'td3', 'tqc']")
    return algorithms[algo]
