"""Keep masks fixed through training: hooks on the policy's own optimizers (thin SB3 glue).

SAC, TD3 and TQC take every gradient step inside ``train()``, so callbacks cannot act after
each step. Instead hooks on ``policy.actor.optimizer`` / ``policy.critic.optimizer`` do it:

- the post-step hook re-zeros the pruned weights, so they are exactly ``0.0`` after every step,
  whenever anything (a forward pass, Polyak averaging, ``save()``) reads them;
- the pre-step hook first calls the pre-step listeners (RigL reads dense gradients there) and,
  with ``mask_gradients=True``, zeros the gradients of pruned weights.

Gradient masking is off by default for the optimizers known to be elementwise
(:data:`ELEMENTWISE_OPTIMIZERS`: SGD, Adam, AdamW, Adamax, NAdam, RAdam, RMSprop, Adagrad): with
them it changes no kept weight (the post-step hook zeros pruned weights either way, and each
kept weight's update reads only its own gradient), only the optimizer's state at pruned
positions, and it is costly on CPUs: Adam's ``exp_avg_sq.sqrt()`` on the exact zeros it creates
hits a slow path (on this project's x86 machine, ``sqrt`` of a tensor that is 90% zeros takes 25x
longer), which cost 8% of SAC's training time at width 256 and 14% at width 1024. Any other
optimizer (Adafactor, a custom class, even a subclass of Adam) may combine gradients across a
tensor (row/column statistics, norms), so gradients at pruned positions would change the kept
weights: for those, gradient masking is turned on automatically. ``mask_gradients=True`` turns it
on for every optimizer (optimizer state at pruned positions then stays exactly zero).

PPO, A2C and DQN step one optimizer, ``policy.optimizer``, over all their networks (PPO/A2C: both roles
share it), and clip the gradients by their global norm between ``backward()`` and the step. For them the
enforcer also registers a gradient hook on every sparsified weight (:func:`~sb3_tar.sb3.networks.clips_gradients`):
the gradient of a pruned weight is zero as soon as autograd computes it, so the clipped norm is the sparse
network's (kept weights only) and the optimizer's state (Adam's moments, A2C's RMSprop ``square_avg``) stays
exactly zero at pruned positions. A layer on the sparse kernel (:mod:`sb3_tar.sb3.execution.sparse_execution`) needs no such
hook: its only weight parameter holds the kept weights, so its gradient has no pruned position to zero.

Target networks are masked when the mask is made; Polyak averaging of two zeros keeps them at
exactly zero from then on.

Copies: ``copy.deepcopy(policy)`` and pickling copy an optimizer's state but not its hooks (torch's
``Optimizer`` keeps only ``defaults``, ``state`` and ``param_groups``). The enforcer therefore also sits in a
forward pre-hook of every sparse network (a bound method, which a deep copy rebinds to the copied
enforcer): a copied enforcer re-attaches itself to the copied policy's own optimizers on the copy's first
forward pass, before its first step, so a copy is an independent policy that stays sparse.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from sb3_tar.core.masks import apply_masks, is_compressed, mask_gradients
from sb3_tar.sb3.execution.mask_store import MaskStore
from sb3_tar.sb3.execution.sparse_execution import hook_optimizer, realign_state
from sb3_tar.sb3.networks import SparseNetwork, clips_gradients, role_optimizers

_ATTR = "_sb3_tar_enforcer"

#: ``listener(role, optimizer)``: called in an optimizer's pre-step hook while the gradients are
#: still dense, before any gradient masking (RigL reads its growth scores there).
PreStepListener = Callable[[str, torch.optim.Optimizer], None]

#: Optimizers whose update of a parameter entry reads only that entry's gradient and state.
ELEMENTWISE_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
)


def is_elementwise(optimizer: torch.optim.Optimizer) -> bool:
    """
    :param optimizer: An optimizer.
    :return: Whether its class is exactly one of :data:`ELEMENTWISE_OPTIMIZERS` (subclasses may
        change the update, so they count as not elementwise).
    """
    return type(optimizer) in ELEMENTWISE_OPTIMIZERS


class MaskEnforcer:
    """
    Holds the masks of a policy's networks and keeps its weights masked.

    :param networks: The policy's sparse networks.
    :param store: Where the masks live (policy buffers or a model attribute); they are looked up
        at every step, so changes made through the store take effect at once.
    :param mask_gradients: Zero the gradients of pruned weights before every optimizer's step (see
        the module docstring). With ``False`` (default) they are zeroed only before the steps of
        optimizers that are not elementwise (:func:`is_elementwise`); :attr:`gradient_masking`
        tells, per role, what was decided when the enforcer was attached.
    """

    def __init__(self, networks: Sequence[SparseNetwork], store: MaskStore, mask_gradients: bool = False) -> None:
        if not isinstance(mask_gradients, bool):
            raise TypeError(f"mask_gradients must be a bool, got {mask_gradients!r}")
        self.mask_gradients = mask_gradients
        missing = [n.name for n in networks if not store.has(n.name)]
        if missing:
            raise ValueError(f"No masks for networks {missing}")
        self.networks = list(networks)
        self.store = store
        self.pre_step_listeners: list[PreStepListener] = []
        #: Called after an optimizer's step, once the pruned weights are re-zeroed (exploration phases restore
        #: their frozen weights there, :mod:`sb3_tar.sb3.methods.iee`).
        self.post_step_listeners: list[PreStepListener] = []
        #: Per role (``"actor"``, ``"critic"``): whether that optimizer's gradients are masked
        #: because it is not elementwise (filled in by :meth:`attach`).
        self.auto_gradient_masking: dict[str, bool] = {}
        #: PPO/A2C/DQN: keep the dense gradients the gradient hooks see until the next step (set by SET/RigL before an
        #: update step whose method or prune criterion reads gradients).
        self.record_dense = False
        self.clipping = False  # set by attach
        self.dense_grads: dict[tuple[str, int], torch.Tensor] = {}
        self._handles: list = []
        self._module_handles: list = []
        self._policy: nn.Module | None = None
        self._reattach = False

    def __getstate__(self) -> dict[str, Any]:
        """A copy (deepcopy, pickle) drops the optimizer hooks, which copied optimizers do not carry, and re-attaches."""
        state = self.__dict__.copy()
        state["_reattach"] = bool(self._handles)
        state["_handles"] = []
        return state

    @property
    def gradient_masking(self) -> dict[str, bool]:
        """Per role: whether gradients of pruned weights are zeroed before that optimizer's step."""
        return {role: self.mask_gradients or auto for role, auto in self.auto_gradient_masking.items()}

    def role_networks(self, role: str) -> list[SparseNetwork]:
        """:return: The networks that ``role``'s optimizer steps."""
        return [n for n in self.networks if n.role == role]

    def optimizer_networks(self, role: str, optimizer: torch.optim.Optimizer) -> list[SparseNetwork]:
        """
        :param role: The role whose optimizer ``optimizer`` is.
        :param optimizer: An optimizer of the attached policy.
        :return: Every network ``optimizer`` steps: ``role``'s, and with PPO/A2C's one shared optimizer the other
            role's too (what the optimizer's layout hooks must know,
            :func:`~sb3_tar.sb3.execution.sparse_execution.register_owner`).
        """
        if self._policy is None:
            return self.role_networks(role)
        optimizers = role_optimizers(self._policy)
        return [n for n in self.networks if n.role == role or optimizers.get(n.role) is optimizer]

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

    def _pre_step(self, role: str) -> Callable:
        return functools.partial(self._pre_step_hook, role)  # picklable, and rebound to the copy by deepcopy

    def _pre_step_hook(self, role: str, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        realign_state(optimizer)  # a compressed layer's mask changed since the last step: state follows it
        for listener in self.pre_step_listeners:
            listener(role, optimizer)
        if self.mask_gradients or self.auto_gradient_masking.get(role, False):
            for net in self.role_networks(role):
                mask_gradients(net.linears, self.store.get(net.name))

    def _post_step(self, role: str) -> Callable:
        return functools.partial(self._post_step_hook, role)

    def _post_step_hook(self, role: str, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        for net in self.role_networks(role):
            apply_masks(net.linears, self.store.get(net.name))
        for listener in getattr(self, "post_step_listeners", ()):
            listener(role, optimizer)
        if getattr(self, "dense_grads", None):
            self.dense_grads.clear()  # recorded for this step's pre-step listeners only
        realign_state(optimizer, record_only=True)  # records the layout and the state tensors the step left

    def _grad_hook(self, name: str, index: int, grad: torch.Tensor) -> torch.Tensor:
        """
        The gradient of a sparsified weight with its pruned positions zeroed (before it is accumulated). While
        :attr:`record_dense` is set, the dense gradient is kept first (RigL and the gradient prune criteria read it in
        the next pre-step hook, :meth:`dense_grad`).
        """
        if getattr(self, "record_dense", False):
            grads = self.__dict__.setdefault("dense_grads", {})
            previous = grads.get((name, index))
            grads[(name, index)] = grad.detach().clone() if previous is None else previous + grad.detach()
        return grad * self.store.get(name)[index]

    def dense_grad(self, name: str, index: int) -> torch.Tensor | None:
        """
        :param name: Network name.
        :param index: Layer index in the network.
        :return: The dense gradient of that layer's weight recorded by the gradient hook since the last optimizer step
            (PPO/A2C/DQN with :attr:`record_dense` set), or ``None``.
        """
        return getattr(self, "dense_grads", {}).get((name, index))

    def _forward_pre_hook(self, module: nn.Module, args: tuple) -> None:
        """On a copy's first forward pass: attach to the copied policy's optimizers (see the module docstring)."""
        if self._reattach and self._policy is not None:
            self._reattach = False
            self.attach(self._policy)

    def attach(self, policy: nn.Module) -> None:
        """
        Register the hooks on the optimizer of each role (``policy.actor.optimizer`` and
        ``policy.critic.optimizer``; PPO/A2C/DQN: ``policy.optimizer``, :func:`~sb3_tar.sb3.networks.role_optimizers`),
        and for PPO/A2C/DQN the gradient hooks of the sparsified weights (see the module docstring), replacing any
        enforcer attached to this policy before.

        :param policy: The SB3 policy whose networks these are.
        """
        previous = getattr(policy, _ATTR, None)
        if previous is not None:
            previous.detach(policy if previous is not self else None)
        clipping = clips_gradients(policy)
        optimizers = role_optimizers(policy)
        for role, optimizer in optimizers.items():
            stepped = [n for n in self.networks if optimizers.get(n.role) is optimizer]  # PPO/A2C: both roles share one
            hook_optimizer(optimizer, stepped)
            self.auto_gradient_masking[role] = clipping or not is_elementwise(optimizer)
            self._handles.append(optimizer.register_step_pre_hook(self._pre_step(role)))
            self._handles.append(optimizer.register_step_post_hook(self._post_step(role)))
        #: Whether the algorithm clips gradients by their global norm (PPO, A2C, DQN): a weight grown by SET/RigL then
        #: takes gradient 0 at its first step, as on the masked path (:mod:`sb3_tar.sb3.methods.rewiring`).
        self.clipping = clipping
        if clipping:
            for net in self.networks:
                for index, layer in enumerate(net.linears):
                    if is_compressed(layer):  # on the sparse kernel: its gradient exists for kept weights only
                        continue
                    self._handles.append(layer.weight.register_hook(functools.partial(self._grad_hook, net.name, index)))
        if not self._module_handles:
            for net in self.networks:
                hooked = net.hook_module if net.hook_module is not None else net.module
                self._module_handles.append(hooked.register_forward_pre_hook(self._forward_pre_hook))
        self._policy = policy
        self._reattach = False
        object.__setattr__(policy, _ATTR, self)

    def detach(self, policy: nn.Module | None = None) -> None:
        """
        Remove the hooks.

        :param policy: The policy it was attached to (forgets the enforcer there).
        """
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if policy is not None:
            for handle in self._module_handles:
                handle.remove()
            self._module_handles.clear()
            self._policy = None
            self._reattach = False
        if policy is not None and getattr(policy, _ATTR, None) is self:
            object.__delattr__(policy, _ATTR)


def attached_enforcer(policy: nn.Module) -> MaskEnforcer | None:
    """
    :param policy: An SB3 policy.
    :return: The :class:`MaskEnforcer` attached to it, if any.
    """
    return getattr(policy, _ATTR, None)
