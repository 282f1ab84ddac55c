"""Sparse TQC policy: ``TQC(SparsePolicy, env)`` is pruned and revived when built (TAR by default)."""

from sb3_contrib.tqc.policies import TQCPolicy

from sb3_tar.policies import SparsePolicyMixin


class SparsePolicy(SparsePolicyMixin, TQCPolicy):
    """
    TQC MLP policy whose actor and Q-networks are sparse (see :class:`~sb3_tar.policies.SparsePolicyMixin`
    for the sparsity options, passed through ``policy_kwargs``; the others are TQCPolicy's).
    """


MlpPolicy = SparsePolicy

__all__ = ["MlpPolicy", "SparsePolicy"]
