"""Sparse TD3 policy: ``TD3(SparsePolicy, env)`` is pruned and revived when built (TAR by default)."""

from stable_baselines3.td3.policies import TD3Policy

from sb3_tar.policies import SparsePolicyMixin


class SparsePolicy(SparsePolicyMixin, TD3Policy):
    """
    TD3 MLP policy whose actor and Q-networks are sparse (see :class:`~sb3_tar.policies.SparsePolicyMixin`
    for the sparsity options, passed through ``policy_kwargs``; the others are TD3Policy's).
    """


MlpPolicy = SparsePolicy

__all__ = ["MlpPolicy", "SparsePolicy"]
