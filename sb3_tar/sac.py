"""Sparse SAC policies.

- ``SAC(SparsePolicy, env)``: pruned and revived when built (TAR by default).
- ``MaskedPolicy`` (and ``MaskedCnnPolicy``, ``MaskedMultiInputPolicy``): the classes SB3 rebuilds when it
  loads a model that a callback made sparse (see :class:`~sb3_tar.sb3.policies.MaskedPolicyMixin`).
"""

from stable_baselines3.sac.policies import CnnPolicy, MultiInputPolicy, SACPolicy
from stable_baselines3.sac.sac import SAC

from sb3_tar.sb3.policies import MaskedPolicyMixin, SparsePolicyMixin, register_masked_class


class SparsePolicy(SparsePolicyMixin, SACPolicy):
    """
    SAC MLP policy whose actor and Q-networks are sparse (see :class:`~sb3_tar.sb3.policies.SparsePolicyMixin`
    for the sparsity options, passed through ``policy_kwargs``; the others are SACPolicy's).
    """

    algorithm_class = SAC


class MaskedPolicy(MaskedPolicyMixin, SACPolicy):
    """SACPolicy holding sb3-tar masks: what SB3 rebuilds when loading a model made sparse by a callback."""


class MaskedCnnPolicy(MaskedPolicyMixin, CnnPolicy):
    """SAC ``CnnPolicy`` holding sb3-tar masks (the features extractor stays dense)."""


class MaskedMultiInputPolicy(MaskedPolicyMixin, MultiInputPolicy):
    """SAC ``MultiInputPolicy`` holding sb3-tar masks (the features extractor stays dense)."""


for _plain, _masked in ((SACPolicy, MaskedPolicy), (CnnPolicy, MaskedCnnPolicy), (MultiInputPolicy, MaskedMultiInputPolicy)):
    register_masked_class(_plain, _masked)

MlpPolicy = SparsePolicy

__all__ = ["MaskedCnnPolicy", "MaskedMultiInputPolicy", "MaskedPolicy", "MlpPolicy", "SparsePolicy"]
