"""The DST and GMP schedules of Graesser et al. 2022 ("The State of Sparse Training in Deep Reinforcement Learning",
code: github.com/google-research/rigl, ``rigl/rl/tfagents/configs``) for PPO and DQN, as the defaults of
:class:`~sb3_tar.callbacks.DSTCallback`, :class:`~sb3_tar.baselines.GMPCallback` and a ``SparsePolicy``'s DST options
on these algorithms (``docs/method.md``, "PPO and DQN in the reference study").

Their configurations count *train steps*: one gradient update of one minibatch. So does sb3-tar's clock (gradient
steps): PPO takes ``n_epochs * ceil(n_steps * n_envs / batch_size)`` per rollout (the study's 10 epochs of minibatch
64 over 2,048 steps: 320), DQN ``gradient_steps`` per ``train_freq`` (the study: one per environment step, batch 128).
Intervals are kept in gradient steps; the study's start and end steps become fractions of its run (156,480 gradient
steps for PPO, 100,000 for DQN), applied to ``T``, the gradient steps the first ``learn()`` plans, so that at the
study's budget the steps are the study's:

- PPO (``ppo_mujoco_sparse_config.gin``, ``ppo_mujoco_pruning_config.gin``, ``ppo_mujoco_dense_config.gin``): mask
  update every 1,000 steps, drop fraction 0.1 (cosine), last update step 120,000 of 156,480; GMP from 32,000 to
  120,000 every 500.
- DQN (``dqn_gym_sparse_config.gin``, ``dqn_gym_pruning_config.gin``, ``dqn_gym_dense_config.gin``): every 1,000,
  drop fraction 0.1 (cosine), last update 75,000 of 100,000; GMP from 20,000 to 75,000 every 1,000.

The study has no A2C (nor TRPO/MaskablePPO) configuration: they take PPO's values (the same policy and value branches,
and the interval's meaning, gradient updates between mask changes, does not depend on the algorithm); QR-DQN takes
DQN's. SAC, TD3, TQC and CrossQ keep sb3-tar's own defaults.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from torch import nn

from sb3_tar.sb3.networks import is_actor_critic_policy, is_q_policy

#: The study's run length in gradient steps: PPO 489 iterations of 320 updates, DQN 100,000 train steps.
REFERENCE_STEPS: dict[str, int] = {"ppo": 489 * 320, "dqn": 100_000}
#: SET/RigL (both methods: the study switches ``update_alg`` in one config) in ``DSTCallback``'s argument names.
REFERENCE_DST: dict[str, dict[str, Any]] = {
    "ppo": {"update_interval": 1000, "drop_fraction": 0.1, "end_fraction": 120_000 / REFERENCE_STEPS["ppo"]},
    "dqn": {"update_interval": 1000, "drop_fraction": 0.1, "end_fraction": 75_000 / REFERENCE_STEPS["dqn"]},
}
#: GMP in ``GMPCallback``'s argument names.
REFERENCE_GMP: dict[str, dict[str, Any]] = {
    "ppo": {
        "start_fraction": 32_000 / REFERENCE_STEPS["ppo"],
        "end_fraction": 120_000 / REFERENCE_STEPS["ppo"],
        "update_interval": 500,
    },
    "dqn": {
        "start_fraction": 20_000 / REFERENCE_STEPS["dqn"],
        "end_fraction": 75_000 / REFERENCE_STEPS["dqn"],
        "update_interval": 1000,
    },
}
#: What the study calls its configurations, for messages.
STUDY = "Graesser et al. 2022"


def reference_family(policy: nn.Module | type) -> str | None:
    """
    :param policy: A policy, or a policy class.
    :return: ``"ppo"`` for an actor-critic policy (PPO, A2C, TRPO, MaskablePPO), ``"dqn"`` for a Q-network policy
        (DQN, QR-DQN), ``None`` otherwise (SAC, TD3, TQC, CrossQ: sb3-tar's own defaults).
    """
    if isinstance(policy, type):
        from stable_baselines3.common.policies import ActorCriticPolicy
        from stable_baselines3.dqn.policies import DQNPolicy

        try:
            from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
            from sb3_contrib.qrdqn.policies import QRDQNPolicy
        except ImportError:  # pragma: no cover - sb3-contrib is a dependency
            MaskableActorCriticPolicy = ActorCriticPolicy  # noqa: N806
            QRDQNPolicy = DQNPolicy  # noqa: N806
        if issubclass(policy, (ActorCriticPolicy, MaskableActorCriticPolicy)):
            return "ppo"
        return "dqn" if issubclass(policy, (DQNPolicy, QRDQNPolicy)) else None
    if is_actor_critic_policy(policy):
        return "ppo"
    return "dqn" if is_q_policy(policy) else None


def reference_values(table: dict[str, dict[str, Any]], family: str | None, given: Collection[str]) -> dict[str, Any]:
    """
    :param table: :data:`REFERENCE_DST` or :data:`REFERENCE_GMP`.
    :param family: :func:`reference_family`'s answer.
    :param given: The arguments the user set (never replaced).
    :return: The study's values for the arguments not given (empty for ``family=None``).
    """
    if family is None:
        return {}
    return {key: value for key, value in table[family].items() if key not in given}


def describe(who: str, family: str, taken: dict[str, Any]) -> str:
    """:return: The message naming the study's values a callback or policy took, in gradient steps."""
    total = REFERENCE_STEPS[family]
    parts = []
    for key, value in taken.items():
        if key.endswith("_fraction") and key != "drop_fraction":
            parts.append(f"{key}={value:.4f} (step {round(value * total)} of the study's {total})")
        else:
            parts.append(f"{key}={value!r}")
    algos = "PPO/A2C" if family == "ppo" else "DQN"
    return f"{who}: {algos} defaults of {STUDY} (rigl/rl/tfagents/configs, gradient steps): " + ", ".join(parts)


__all__ = ["REFERENCE_DST", "REFERENCE_GMP", "REFERENCE_STEPS", "describe", "reference_family", "reference_values"]
