"""Sparse A2C policies: ``A2C(SparsePolicy, env)``, as :mod:`sb3_tar.ppo` (the same ``ActorCriticPolicy`` roles).

A model a callback made sparse is rebuilt on load with :class:`sb3_tar.ppo.MaskedPolicy` (A2C and PPO share SB3's
policy classes).
"""

from stable_baselines3.a2c.a2c import A2C
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_tar.ppo import MaskedCnnPolicy, MaskedMultiInputPolicy, MaskedPolicy
from sb3_tar.sb3.policies import SparsePolicyMixin


class SparsePolicy(SparsePolicyMixin, ActorCriticPolicy):
    """
    A2C MLP policy whose policy and value branches are sparse (see :class:`~sb3_tar.sb3.policies.SparsePolicyMixin`;
    A2C's RMSprop state stays zero at pruned positions).
    """

    algorithm_class = A2C


MlpPolicy = SparsePolicy

__all__ = ["MaskedCnnPolicy", "MaskedMultiInputPolicy", "MaskedPolicy", "MlpPolicy", "SparsePolicy"]
