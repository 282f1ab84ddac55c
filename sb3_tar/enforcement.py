"""Keep masks fixed through training: hooks on the policy's own optimizers (thin SB3 glue).

SAC, TD3 and TQC take every gradient step inside ``train()``, so callbacks cannot act after
each step. Instead a pre-step hook on ``policy.actor.optimizer`` / ``policy.critic.optimizer``
zeros the gradients of pruned weights, and a post-step hook re-zeros the pruned weights, so
they are exactly ``0.0`` after every step. Target networks are masked when the mask is made;
Polyak averaging of two zeros keeps them at exactly zero from then on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from sb3_tar.mask_store import MaskStore
from sb3_tar.masks import apply_masks
from sb3_tar.networks import SparseNetwork

_ATTR = "_sb3_tar_enforcer"

#: ``listener(role, optimizer)``: called in an optimizer's pre-step hook *before* the gradients
#: are masked, while they are still dense (RigL reads its growth scores there).
PreStepListener = Callable[[str, torch.optim.Optimizer], None]


class MaskEnforcer:
    """
    Holds the masks of a policy's networks and keeps its weights masked.

    :param networks: The policy's sparse networks.
    :param store: Where the masks live (policy buffers or a model attribute); they are looked up
        at every step, so changes made through the store take effect at once.
    """

    def __init__(self, networks: Sequence[SparseNetwork], store: MaskStore) -> None:
        missing = [n.name for n in networks if not store.has(n.name)]
        if missing:
            raise ValueError(f"No masks for networks {missing}")
        self.networks = list(networks)
        self.store = store
        self.pre_step_listeners: list[PreStepListener] = []
        self._handles: list = []

    def role_networks(self, role: str) -> list[SparseNetwork]:
        """:return: The networks that ``role``'s optimizer steps."""
        return [n for n in self.networks if n.role == role]

    @torch.no_grad()
    def apply(self, targets: bool = True) -> None:
        """
        Zero the pruned weights of every online network and, if ``targets``, of its target.

        :param targets: Also mask the target networks.
        """
        for net in self.networks:
            apply_masks(net.linears, self.store.get(net.name))
            if targets and net.target_layers:
                apply_masks(net.target_layers, self.store.get(net.name))

    @torch.no_grad()
    def update_masks(self, name: str, masks: Sequence[torch.Tensor]) -> None:
        """
        Replace the masks of one network (dynamic sparse training), copy them to its target
        network's masks, and zero the newly pruned weights online and in the target.

        :param name: Network name.
        :param masks: New mask per layer.
        """
        net = next((n for n in self.networks if n.name == name), None)
        if net is None:
            raise ValueError(f"Unknown network {name!r}: valid names are {[n.name for n in self.networks]}")
        self.store.set(name, masks)
        apply_masks(net.linears, self.store.get(name))
        if net.target_layers:
            apply_masks(net.target_layers, self.store.get(name))

    def _role_tensors(self, role: str, grads: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        tensors, masks = [], []
        for net in self.role_networks(role):
            for layer, mask in zip(net.linears, self.store.get(net.name)):
                tensor = layer.weight.grad if grads else layer.weight
                if tensor is not None:
                    tensors.append(tensor)
                    masks.append(mask if mask.dtype == tensor.dtype else mask.to(tensor.dtype))
        return tensors, masks

    def _pre_step(self, role: str) -> Callable:
        @torch.no_grad()
        def hook(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
            for listener in self.pre_step_listeners:
                listener(role, optimizer)
            grads, masks = self._role_tensors(role, grads=True)
            if grads:
                torch._foreach_mul_(grads, masks)

        return hook

    def _post_step(self, role: str) -> Callable:
        @torch.no_grad()
        def hook(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
            weights, masks = self._role_tensors(role, grads=False)
            if weights:
                torch._foreach_mul_(weights, masks)

        return hook

    def attach(self, policy: nn.Module) -> None:
        """
        Register the hooks on ``policy.actor.optimizer`` and ``policy.critic.optimizer``,
        replacing any enforcer attached to this policy before.

        :param policy: The SB3 policy whose networks these are.
        """
        previous = getattr(policy, _ATTR, None)
        if previous is not None:
            previous.detach(policy)
        for role in ("actor", "critic"):
            optimizer = getattr(getattr(policy, role), "optimizer", None)
            if optimizer is None:
                raise TypeError(f"policy.{role} has no optimizer to hook: build the policy first")
            self._handles.append(optimizer.register_step_pre_hook(self._pre_step(role)))
            self._handles.append(optimizer.register_step_post_hook(self._post_step(role)))
        object.__setattr__(policy, _ATTR, self)

    def detach(self, policy: nn.Module | None = None) -> None:
        """
        Remove the hooks.

        :param policy: The policy it was attached to (forgets the enforcer there).
        """
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if policy is not None and getattr(policy, _ATTR, None) is self:
            object.__delattr__(policy, _ATTR)


def attached_enforcer(policy: nn.Module) -> MaskEnforcer | None:
    """
    :param policy: An SB3 policy.
    :return: The :class:`MaskEnforcer` attached to it, if any.
    """
    return getattr(policy, _ATTR, None)
