"""Sparse PPO policies (``ActorCriticPolicy``; the same classes serve A2C, see :mod:`sb3_tar.a2c`).

- ``PPO(SparsePolicy, env)``: pruned and revived when built (TAR by default); the ``actor`` network is the policy
  branch (``mlp_extractor.policy_net`` + ``action_net``), the ``critic`` network the value branch
  (``mlp_extractor.value_net`` + ``value_net``); ``docs/usage.md``, "PPO, A2C and DQN". Static or
  dynamic (``dst_method``) masks; layers below the density threshold run on the sparse kernel
  (``sparse_execution``, ``docs/sparse_execution.md``), the gradient PPO clips being the sparse network's.
- ``MaskedPolicy`` (and ``MaskedCnnPolicy``, ``MaskedMultiInputPolicy``): the classes SB3 rebuilds when it
  loads a PPO or A2C model that a callback made sparse (see :class:`~sb3_tar.sb3.policies.MaskedPolicyMixin`).
"""

from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy, MultiInputActorCriticPolicy
from stable_baselines3.ppo.ppo import PPO

from sb3_tar.sb3.policies import MaskedPolicyMixin, SparsePolicyMixin, register_masked_class


class SparsePolicy(SparsePolicyMixin, ActorCriticPolicy):
    """
    PPO MLP policy whose policy and value branches are sparse (see :class:`~sb3_tar.sb3.policies.SparsePolicyMixin`
    for the sparsity options, passed through ``policy_kwargs``: ``actor_sparsity`` is the policy branch's,
    ``critic_sparsity`` the value branch's; the others are ActorCriticPolicy's).
    """

    algorithm_class = PPO


class MaskedPolicy(MaskedPolicyMixin, ActorCriticPolicy):
    """ActorCriticPolicy holding sb3-tar masks: what SB3 rebuilds when loading a model made sparse by a callback."""


class MaskedCnnPolicy(MaskedPolicyMixin, ActorCriticCnnPolicy):
    """``ActorCriticCnnPolicy`` holding sb3-tar masks (the features extractor stays dense)."""


class MaskedMultiInputPolicy(MaskedPolicyMixin, MultiInputActorCriticPolicy):
    """``MultiInputActorCriticPolicy`` holding sb3-tar masks (the features extractor stays dense)."""


for _plain, _masked in (
    (ActorCriticPolicy, MaskedPolicy),
    (ActorCriticCnnPolicy, MaskedCnnPolicy),
    (MultiInputActorCriticPolicy, MaskedMultiInputPolicy),
):
    register_masked_class(_plain, _masked)

MlpPolicy = SparsePolicy

__all__ = ["MaskedCnnPolicy", "MaskedMultiInputPolicy", "MaskedPolicy", "MlpPolicy", "SparsePolicy"]
