"""Sparse SAC policy: ``SAC(SparsePolicy, env)`` is pruned and revived when built (TAR by default)."""

from stable_baselines3.sac.policies import SACPolicy

from sb3_tar.policies import SparsePolicyMixin


class SparsePolicy(SparsePolicyMixin, SACPolicy):
    """
    SAC MLP policy whose actor and Q-networks are sparse (see :class:`~sb3_tar.policies.SparsePolicyMixin`
    for the sparsity options, passed through ``policy_kwargs``; the others are SACPolicy's).
    """


MlpPolicy = SparsePolicy

__all__ = ["MlpPolicy", "SparsePolicy"]
