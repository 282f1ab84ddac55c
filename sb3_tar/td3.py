"""Sparse TD3 policies.

- ``TD3(SparsePolicy, env)``: pruned and revived when built (TAR by default).
- ``MaskedPolicy`` (and ``MaskedCnnPolicy``, ``MaskedMultiInputPolicy``): the classes SB3 rebuilds when it
  loads a model that a callback made sparse (see :class:`~sb3_tar.sb3.policies.MaskedPolicyMixin`).
"""

from stable_baselines3.td3.policies import CnnPolicy, MultiInputPolicy, TD3Policy
from stable_baselines3.td3.td3 import TD3

from sb3_tar.sb3.policies import MaskedPolicyMixin, SparsePolicyMixin, register_masked_class


class SparsePolicy(SparsePolicyMixin, TD3Policy):
    """
    TD3 MLP policy whose actor and Q-networks are sparse (see :class:`~sb3_tar.sb3.policies.SparsePolicyMixin`
    for the sparsity options, passed through ``policy_kwargs``; the others are TD3Policy's).
    """

    algorithm_class = TD3


class MaskedPolicy(MaskedPolicyMixin, TD3Policy):
    """TD3Policy holding sb3-tar masks: what SB3 rebuilds when loading a model made sparse by a callback."""


class MaskedCnnPolicy(MaskedPolicyMixin, CnnPolicy):
    """TD3 ``CnnPolicy`` holding sb3-tar masks (the features extractor stays dense)."""


class MaskedMultiInputPolicy(MaskedPolicyMixin, MultiInputPolicy):
    """TD3 ``MultiInputPolicy`` holding sb3-tar masks (the features extractor stays dense)."""


for _plain, _masked in ((TD3Policy, MaskedPolicy), (CnnPolicy, MaskedCnnPolicy), (MultiInputPolicy, MaskedMultiInputPolicy)):
    register_masked_class(_plain, _masked)

MlpPolicy = SparsePolicy

__all__ = ["MaskedCnnPolicy", "MaskedMultiInputPolicy", "MaskedPolicy", "MlpPolicy", "SparsePolicy"]
