"""Sparse DQN policies.

- ``DQN(SparsePolicy, env)``: the Q-network (network ``q_net``, role ``critic``: set its sparsity with ``sparsity``
  or ``critic_sparsity``) pruned and revived when built (TAR by default); ``q_net_target`` carries its mask through
  every hard target copy. Static or dynamic (``dst_method``) masks; layers below the density threshold run on the
  sparse kernel in ``q_net`` and ``q_net_target`` alike (``sparse_execution``), so each hard copy copies kept weights.
- ``MaskedPolicy`` (and ``MaskedCnnPolicy``, ``MaskedMultiInputPolicy``): the classes SB3 rebuilds when it
  loads a DQN model that a callback made sparse (see :class:`~sb3_tar.sb3.policies.MaskedPolicyMixin`).
"""

from stable_baselines3.dqn.dqn import DQN
from stable_baselines3.dqn.policies import CnnPolicy, DQNPolicy, MultiInputPolicy

from sb3_tar.sb3.policies import MaskedPolicyMixin, SparsePolicyMixin, register_masked_class


class SparsePolicy(SparsePolicyMixin, DQNPolicy):
    """
    DQN MLP policy whose Q-network is sparse (see :class:`~sb3_tar.sb3.policies.SparsePolicyMixin` for the
    sparsity options, passed through ``policy_kwargs``; the others are DQNPolicy's).
    """

    algorithm_class = DQN


class MaskedPolicy(MaskedPolicyMixin, DQNPolicy):
    """DQNPolicy holding sb3-tar masks: what SB3 rebuilds when loading a model made sparse by a callback."""


class MaskedCnnPolicy(MaskedPolicyMixin, CnnPolicy):
    """DQN ``CnnPolicy`` holding sb3-tar masks (the features extractor stays dense)."""


class MaskedMultiInputPolicy(MaskedPolicyMixin, MultiInputPolicy):
    """DQN ``MultiInputPolicy`` holding sb3-tar masks (the features extractor stays dense)."""


for _plain, _masked in ((DQNPolicy, MaskedPolicy), (CnnPolicy, MaskedCnnPolicy), (MultiInputPolicy, MaskedMultiInputPolicy)):
    register_masked_class(_plain, _masked)

MlpPolicy = SparsePolicy

__all__ = ["MaskedCnnPolicy", "MaskedMultiInputPolicy", "MaskedPolicy", "MlpPolicy", "SparsePolicy"]
