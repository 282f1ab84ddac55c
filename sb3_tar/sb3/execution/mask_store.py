"""Where the masks of an SB3 model live, so they survive ``save()`` / ``load()`` (thin SB3 glue).

Every sparse model, built with a ``SparsePolicy`` or made sparse by a callback, holds its masks
in a ``weight_mask`` buffer on every sparsified ``nn.Linear`` of the policy, online and target
networks alike: part of ``policy.state_dict()``, saved and loaded by SB3 itself. (A callback
model's saved policy class is switched to a masked variant that registers these buffers when
SB3 rebuilds it, see :class:`sb3_tar.sb3.policies.MaskedPolicyMixin`.)

Stored masks are 0/1 tensors of the weights' dtype (float32), so that masking a weight or a
gradient is one multiplication with no conversion on the training hot path; :func:`sb3_tar.masks_of`
returns boolean copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from sb3_tar.sb3.networks import SparseNetwork

MASK_BUFFER = "weight_mask"


class MaskStore(Protocol):
    """Read and write the masks of named networks."""

    def has(self, name: str) -> bool: ...

    def get(self, name: str) -> list[torch.Tensor]: ...

    def set(self, name: str, masks: Sequence[torch.Tensor]) -> None: ...


class BufferStore:
    """
    Masks in ``weight_mask`` buffers of the online and target layers.

    :param networks: The policy's sparse networks.
    """

    def __init__(self, networks: Sequence[SparseNetwork]) -> None:
        self.networks = {n.name: n for n in networks}

    @staticmethod
    def register(networks: Sequence[SparseNetwork], masks: dict[str, list[torch.Tensor]]) -> BufferStore:
        """
        Register the buffers (on online and target layers) holding ``masks``.

        :param networks: The policy's sparse networks.
        :param masks: Initial masks per network.
        :return: The store.
        """
        for net in networks:
            for i, mask in enumerate(masks[net.name]):
                net.linears[i].register_buffer(MASK_BUFFER, mask.detach().to(net.linears[i].weight.dtype))
                if net.target_layers:
                    net.target_layers[i].register_buffer(MASK_BUFFER, mask.detach().to(net.target_layers[i].weight.dtype))
        return BufferStore(networks)

    def has(self, name: str) -> bool:
        return name in self.networks and all(hasattr(layer, MASK_BUFFER) for layer in self.networks[name].linears)

    def get(self, name: str) -> list[torch.Tensor]:
        return [getattr(layer, MASK_BUFFER) for layer in self.networks[name].linears]

    @torch.no_grad()
    def set(self, name: str, masks: Sequence[torch.Tensor]) -> None:
        net = self.networks[name]
        for layers in (net.linears, net.target_layers):
            for layer, mask in zip(layers, masks):
                getattr(layer, MASK_BUFFER).copy_(mask)
