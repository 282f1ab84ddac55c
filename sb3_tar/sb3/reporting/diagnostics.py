"""Plasticity diagnostics of an SB3 policy on a fixed batch of its replay buffer (SAC/TD3/TQC/CrossQ, DQN,
QR-DQN) or of one rollout (PPO, A2C, TRPO, MaskablePPO) (thin SB3 glue over :mod:`sb3_tar.core.diagnostics`).

The batch is drawn once, with its own random generator (the global NumPy and torch streams are not touched,
so a run with diagnostics trains exactly like one without), and copied, so later writes into the buffer do
not change it. Each measurement runs the networks without gradients and without sampling: the actor's
deterministic trunk and heads, each Q-network on the stored actions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from sb3_tar.core.diagnostics import dormant_ratio, hidden_activations, l2_norm, srank
from sb3_tar.core.masks import is_compressed
from sb3_tar.sb3.networks import is_actor_critic_policy, is_q_policy, log_name, sparse_networks


@dataclass
class FixedBatch:
    """
    A copy of some replay-buffer transitions.

    :param observations: Raw (not normalised) observations, ``(batch, *obs_shape)`` or a dict of those.
    :param actions: The stored actions (as the critic sees them in training), ``(batch, action_dim)``.
    """

    observations: np.ndarray | dict[str, np.ndarray]
    actions: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)


def draw_fixed_batch(replay_buffer: Any, batch_size: int, seed: int) -> FixedBatch | None:
    """
    :param replay_buffer: An SB3 ``ReplayBuffer`` or ``DictReplayBuffer`` (or a full ``RolloutBuffer`` /
        ``DictRolloutBuffer``: the same layout, ``(steps, n_envs, ...)``).
    :param batch_size: Transitions to draw (without replacement).
    :param seed: Seed of the draw (a private ``numpy.random.Generator``).
    :return: The batch, or ``None`` while the buffer holds fewer than ``batch_size`` transitions per env.
    """
    filled = replay_buffer.size()
    if filled < batch_size:
        return None
    rng = np.random.default_rng(seed)
    positions = rng.choice(filled, size=batch_size, replace=False)
    envs = rng.integers(replay_buffer.n_envs, size=batch_size)
    stored = replay_buffer.observations
    if isinstance(stored, dict):
        observations: np.ndarray | dict[str, np.ndarray] = {k: v[positions, envs].copy() for k, v in stored.items()}
    else:
        observations = stored[positions, envs].copy()
    return FixedBatch(observations, replay_buffer.actions[positions, envs].copy())


def draw_rollout_batch(rollout_buffer: Any, batch_size: int, seed: int) -> FixedBatch | None:
    """
    The fixed batch of an on-policy model (PPO/A2C), drawn from its first full rollout: :func:`draw_fixed_batch`'s
    batch when the rollout holds ``batch_size`` steps per env; else (a short rollout, e.g. PPO's ``n_steps=32`` or
    A2C's ``n_steps=5`` with several envs) ``min(batch_size, n_steps * n_envs)`` distinct transitions of the rollout,
    drawn with ``seed`` without replacement over its ``(step, env)`` pairs.

    :param rollout_buffer: A full SB3 ``RolloutBuffer`` or ``DictRolloutBuffer``.
    :param batch_size: Transitions to draw.
    :param seed: Seed of the draw (a private ``numpy.random.Generator``).
    :return: The batch, or ``None`` if the rollout is empty.
    """
    batch = draw_fixed_batch(rollout_buffer, batch_size, seed)
    filled, n_envs = rollout_buffer.size(), rollout_buffer.n_envs
    if batch is not None or filled * n_envs == 0:
        return batch
    flat = np.random.default_rng(seed).choice(filled * n_envs, size=min(batch_size, filled * n_envs), replace=False)
    positions, envs = flat // n_envs, flat % n_envs
    stored = rollout_buffer.observations
    if isinstance(stored, dict):
        observations: np.ndarray | dict[str, np.ndarray] = {k: v[positions, envs].copy() for k, v in stored.items()}
    else:
        observations = stored[positions, envs].copy()
    return FixedBatch(observations, rollout_buffer.actions[positions, envs].copy())


def _tensor(value: np.ndarray | dict[str, np.ndarray], device: torch.device) -> torch.Tensor | dict[str, torch.Tensor]:
    if isinstance(value, dict):
        return {k: torch.as_tensor(v, device=device) for k, v in value.items()}
    return torch.as_tensor(value, device=device)


def _layer_tensors(layers: Sequence[nn.Module], gradients: bool) -> Iterator[torch.Tensor]:
    """The weights and biases of ``layers`` (or their gradients), pruned positions excluded: a masked dense
    weight counts only where its ``weight_mask`` keeps it, a compressed layer holds only kept weights."""
    for layer in layers:
        mask = None if is_compressed(layer) else getattr(layer, "weight_mask", None)
        for name, param in layer.named_parameters(recurse=False):
            tensor = param.grad if gradients else param
            if tensor is None:
                continue
            if name == "weight" and mask is not None:
                tensor = tensor * mask.to(tensor.dtype)
            yield tensor


def weight_and_grad_norms(layers: Sequence[nn.Module]) -> tuple[float, float]:
    """
    :param layers: A network's linear layers.
    :return: ``(weight norm, gradient norm)``: L2 norms over the kept weights and the biases, and over their
        current ``.grad`` (those of the latest update); the gradient norm is NaN while no layer has a gradient.
    """
    grads = list(_layer_tensors(layers, gradients=True))
    return l2_norm(_layer_tensors(layers, gradients=False)), (l2_norm(grads) if grads else math.nan)


def tau_key(tau: float) -> str:
    """:return: The metric name of the tau-dormant ratio, e.g. ``dormant_0.1`` (``dormant_0`` for tau = 0)."""
    return f"dormant_{float(tau):g}"


@torch.no_grad()
def measure_policy(
    policy: nn.Module,
    batch: FixedBatch,
    taus: Sequence[float] = (0.0, 0.1),
    delta: float = 0.01,
    vec_normalize: Any = None,
) -> dict[str, float]:
    """
    Diagnostics of every network of a policy (the actor and each Q-network) on a batch.

    :param policy: ``model.policy`` of a model :func:`~sb3_tar.sb3.networks.sparse_networks` supports, dense or
        sparse.
    :param batch: The batch (see :func:`draw_fixed_batch`).
    :param taus: Dormancy thresholds.
    :param delta: srank's ``delta``.
    :param vec_normalize: The model's ``VecNormalize`` wrapper (``model.get_vec_normalize_env()``), whose
        current statistics normalise the observations as in training; ``None`` if there is none.
    :return: ``{"<network>/<metric>": value}`` with network ``actor``, ``critic/qf0``, ... and metrics
        ``dormant_<tau>`` (fraction of tau-dormant hidden units), ``srank`` (of the last hidden layer's
        outputs), ``weight_norm`` and ``grad_norm`` (see :func:`weight_and_grad_norms`).
    """
    observations = batch.observations
    if vec_normalize is not None:
        observations = vec_normalize.normalize_obs(observations)
    obs = _tensor(observations, policy.device)
    actions = torch.as_tensor(batch.actions, device=policy.device, dtype=torch.float32)
    runs = _runs(policy, obs, actions)
    out: dict[str, float] = {}
    for net in sparse_networks(policy):
        hidden = hidden_activations(net.linears, runs[net.name])
        key = log_name(net.name)
        if hidden:
            for tau in taus:
                out[f"{key}/{tau_key(tau)}"] = dormant_ratio(hidden, tau)
            out[f"{key}/srank"] = srank(hidden[-1], delta)
        out[f"{key}/weight_norm"], out[f"{key}/grad_norm"] = weight_and_grad_norms(net.linears)
    return out


def _runs(policy: nn.Module, obs: Any, actions: torch.Tensor) -> dict[str, Callable[[], object]]:
    """
    How each network runs on the observations ``obs``: SAC/TD3/TQC's actor on its features, each Q-network on its
    features and the stored ``actions``; PPO/A2C's features extractors on the preprocessed observations, each branch
    on its features; DQN's Q-network on the observations.
    """
    from stable_baselines3.common.preprocessing import preprocess_obs

    networks = sparse_networks(policy)
    if is_q_policy(policy):
        return {net.name: (lambda net=net: net.module(obs)) for net in networks}
    runs: dict[str, Callable[[], object]] = {}
    if is_actor_critic_policy(policy):
        features = policy.extract_features(obs)
        pi, vf = features if isinstance(features, tuple) else (features, features)
        processed = preprocess_obs(obs, policy.observation_space, normalize_images=policy.normalize_images)
        for net in networks:
            x = {"actor": pi, "critic": vf}.get(net.name, processed)  # else a features extractor
            runs[net.name] = lambda net=net, x=x: net.module(x)
        return runs
    inputs: dict[str, torch.Tensor] = {}
    for net in networks:
        if net.role not in inputs:
            holder = policy.actor if net.role == "actor" else policy.critic
            features = holder.extract_features(obs, holder.features_extractor)
            inputs[net.role] = features if net.role == "actor" else torch.cat([features, actions.to(features.dtype)], 1)
        runs[net.name] = lambda net=net, x=inputs[net.role]: net.forward(net.module, x)
    return runs
