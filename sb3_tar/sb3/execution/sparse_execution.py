"""Sparse execution of a fixed mask inside an SB3 policy (thin SB3 glue over :mod:`sb3_tar.kernels`).

With a fixed mask (static sparse training, TAR), every sparse layer whose density is below
:data:`DENSITY_THRESHOLD` is replaced, in the online *and* the target network, by a
:class:`~sb3_tar.kernels.SparseLinear`: its only weight parameter holds the kept weights, the C++
kernel computes forward, input gradient and the gradient of kept weights in time proportional to
their number, and the optimizer keeps state for kept weights only. Denser layers (the input layer
often stays ~75% dense under global magnitude pruning) keep the masked dense path.

- The actor and critic optimizers are rebuilt with the same class, parameter groups and options,
  their state (if any) gathered at the kept positions; the mask-enforcement hooks move to them.
- Polyak averaging stays exact: online and target networks are converted alike, so
  ``critic.parameters()`` and ``critic_target.parameters()`` still pair up one to one.
- Files are those of the masked path: a :class:`~sb3_tar.kernels.SparseLinear` saves a dense
  ``weight`` with its ``weight_mask``, and hooks on the optimizers save their per-weight state in the
  dense layout (zeros at pruned positions) and read either layout back. A model trained with sparse
  execution therefore loads with or without the kernel, and the other way round.
- SET and RigL change the mask during training: their layers stay converted and are rebuilt in place
  at each update (:mod:`sb3_tar.sb3.execution.compressed_dst`).
- PPO, A2C (``ActorCriticPolicy``) and DQN step one optimizer, ``policy.optimizer``
  (:func:`optimizer_holders`): it is rebuilt once over all its networks (PPO/A2C: the policy and value branches,
  heads included, whose layers are replaced in the policy itself; DQN: ``q_net``, with ``q_net_target`` converted
  alike, so each hard target copy pairs kept values one to one). The gradient they clip by its global norm holds
  kept weights only on converted layers (their ``values``), and is masked by the enforcer's gradient hooks on the
  denser layers (:mod:`sb3_tar.sb3.execution.enforcement`), so the clipped norm is the sparse network's on both paths. A
  CNN or multi-input features extractor is a sparse network too: its convolutions stay on the masked path (the
  kernel is for ``nn.Linear``), its linear layer runs on the kernel. sb3-contrib's QR-DQN, MaskablePPO and CrossQ run
  as DQN, PPO and SAC; TRPO cannot (:func:`kernel_refusal`).

``sparse_execution`` takes ``"auto"`` (default: sparse execution where the kernel builds, else the
masked path with one warning), ``True`` (raise a clear error if the kernel is not available) or
``False`` (the masked path).

- The device decides: the kernel runs on the CPU only, so a model on another device stays on (or
  returns to) the masked path without compiling anything; moving a policy to the CPU converts it back
  (:func:`follow_device`).
- ``True`` is a training-time request: a model *loaded* where the kernel cannot run (no compiler,
  another device) lands on the masked path with a warning instead of an error, so every file loads.
- Optimizer state follows the mask: when a compressed layer's mask changes (``load_state_dict`` with
  other masks), the optimizer's per-weight state is re-gathered at the new kept positions before the
  next step (:func:`realign_state`); newly kept weights start with zero state.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from sb3_tar.core.masks import is_compressed
from sb3_tar.sb3.networks import SparseNetwork, replace_layer, role_optimizers

#: Layers whose mask density is below this run on the sparse kernel (measured: see docs/benchmarks.md).
DENSITY_THRESHOLD = 0.3
#: Allowed values of the ``sparse_execution`` option.
CHOICES: tuple[Any, ...] = ("auto", True, False)
#: Policy buffer recording the option (0: False, 1: True, 2: "auto"), saved with the policy.
FLAG_BUFFER = "sb3_tar_sparse_execution"
_CODES = {False: 0, True: 1, "auto": 2}
_warned = False


def check_option(value: Any) -> bool | str:
    """
    :param value: The ``sparse_execution`` option.
    :return: ``value`` if it is ``"auto"``, ``True`` or ``False``.
    :raises ValueError: Otherwise (the message lists the allowed values).
    """
    if not (value is True or value is False or value == "auto"):
        raise ValueError(f"sparse_execution={value!r} is not allowed: use 'auto', True or False")
    return value


def option_code(value: bool | str) -> int:
    """:return: The integer stored in the policy buffer for ``value``."""
    return _CODES[check_option(value)]


def option_from_code(code: int) -> bool | str:
    """:return: The option stored as ``code``."""
    return {v: k for k, v in _CODES.items()}[int(code)]


def resolve(value: bool | str, device: torch.device | str = "cpu", loading: bool = False) -> bool:
    """
    Decide whether sparse execution runs.

    :param value: ``"auto"``, ``True`` or ``False``.
    :param device: The device the model runs on: only the CPU runs the kernel (on another device nothing is
        compiled, and ``"auto"`` says nothing: it is the documented masked path).
    :param loading: The option comes from a saved file being loaded: ``True`` then falls back to the masked
        path with a warning instead of raising, so that every file loads.
    :return: Whether to convert the sparse layers.
    :raises RuntimeError: With ``True`` (not loading) when the kernel cannot run here (the message says why).
    """
    global _warned
    value = check_option(value)
    if value is False:
        return False
    device = torch.device(device)
    if device.type != "cpu":
        available, reason = False, f"the model is on {device}, and the sparse kernel runs on the CPU only"
    else:
        try:
            from sb3_tar.kernels import kernel_available, kernel_summary
        except ImportError as e:  # a broken installation: no kernel package
            available, reason = False, f"sb3_tar.kernels cannot be imported ({e})"
        else:
            available, reason = kernel_available(), kernel_summary()
    if available:
        return True
    if value is True and not loading:
        raise RuntimeError(
            f"sparse_execution=True, but the sparse kernel is not available here: {reason}. "
            "Use sparse_execution='auto' (falls back to the masked dense path) or False."
        )
    if value is True:  # a file saved with True: load it anyway
        warnings.warn(
            f"sb3-tar: this model was saved with sparse_execution=True, but {reason}; loaded on the masked dense path",
            RuntimeWarning,
            stacklevel=3,
        )
    elif device.type == "cpu" and not _warned:
        _warned = True
        warnings.warn(
            f"sb3-tar: sparse execution is not available ({reason}); training on the masked dense path",
            RuntimeWarning,
            stacklevel=3,
        )
    return False


#: The algorithms whose training the kernel supports (for messages).
KERNEL_ALGORITHMS = "SAC, TD3, TQC, CrossQ, PPO, A2C, DQN, MaskablePPO and QR-DQN"


def kernel_refusal(model: Any) -> str | None:
    """
    Why an algorithm's training cannot run on the sparse kernel.

    sb3-contrib's TRPO moves its actor by a conjugate-gradient line search: it needs second-order gradients
    (Fisher-vector products, ``create_graph=True``), which the kernel's backward does not provide, and it picks
    the actor's parameters by name, skipping every parameter whose name holds ``"value"``, so the kernel layers'
    ``values`` would never move. Its masked dense path keeps every invariant (the gradient hooks zero pruned
    positions of both gradients, so the search direction is zero there).

    :param model: An SB3 or sb3-contrib model.
    :return: The reason (``None``: the kernel trains this algorithm).
    """
    try:
        from sb3_contrib import TRPO
    except ImportError:  # pragma: no cover - sb3-contrib is a dependency
        return None
    if isinstance(model, TRPO):
        return (
            f"{type(model).__name__} moves its actor by a line search that needs second-order gradients (Fisher-vector "
            "products), which the sparse kernel does not compute, and it skips parameters named 'value*' (the kernel "
            "layers' 'values')"
        )
    return None


def option_for_model(model: Any, value: bool | str, who: str) -> bool | str:
    """
    The ``sparse_execution`` option a callback applies to a model: the option itself, or ``False`` (the masked
    dense path, recorded so in the saved policy) for ``"auto"`` on an algorithm the kernel cannot train.

    :param model: The model the callback is attached to.
    :param value: The callback's ``sparse_execution`` option.
    :param who: The callback's name, for the message.
    :return: The option to apply.
    :raises ValueError: ``value=True`` on such an algorithm (raised before anything is modified; the message says
        why and names the algorithms the kernel supports).
    """
    value = check_option(value)
    reason = kernel_refusal(model)
    if reason is None or value is False:
        return value
    if value is True:
        raise ValueError(
            f"{who}: sparse_execution=True is not supported for {type(model).__name__}: {reason}. Sparse execution "
            f"supports {KERNEL_ALGORITHMS}; use sparse_execution='auto' or False (the masked dense path) for "
            f"{type(model).__name__}"
        )
    return False


def sb3_context(policy: nn.Module) -> tuple[torch.device, bool]:
    """
    Where a policy will run and whether SB3 is loading it, read from the calls under way.

    SB3 builds a policy on the CPU and moves it to the model's device afterwards, so while an algorithm's
    ``_setup_model`` builds it, the algorithm's ``device`` is the one that counts; SB3's ``load`` (of a model
    or of a policy) builds the policy before the saved state is loaded into it.

    :param policy: The policy being built or converted.
    :return: ``(device, loading)``.
    """
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.policies import BaseModel

    from sb3_tar.sb3.call_stack import caller_frames, frame_algorithm

    loads = {BaseAlgorithm.load.__func__.__code__, BaseModel.load.__func__.__code__}
    device, loading = None, False
    for frame in caller_frames(1):
        if frame.f_code in loads:
            loading = True
        elif device is None and frame.f_code.co_name == "_setup_model":
            owner = frame_algorithm(frame)
            if owner is not None:
                device = owner.device
    if device is None:
        device = next((p.device for p in policy.parameters()), torch.device("cpu"))
    return torch.device(device), loading


def optimizer_holders(policy: nn.Module) -> list[tuple[nn.Module, list[str]]]:
    """
    Each optimizer of a policy once, with the module that holds it (as its ``optimizer`` attribute) and the roles
    it steps: SAC/TD3/TQC ``[(policy.actor, ["actor"]), (policy.critic, ["critic"])]``; PPO/A2C
    ``[(policy, ["critic", "actor"])]`` (one optimizer for both branches); DQN ``[(policy, ["critic"])]``.

    :param policy: A built SB3 policy that :func:`~sb3_tar.sb3.networks.sparse_networks` supports.
    :return: ``[(holder, roles)]``.
    """
    holders: dict[int, tuple[nn.Module, list[str]]] = {}
    for role, optimizer in role_optimizers(policy).items():
        if id(optimizer) not in holders:
            holder = policy if getattr(policy, "optimizer", None) is optimizer else getattr(policy, role)
            holders[id(optimizer)] = (holder, [])
        holders[id(optimizer)][1].append(role)
    return list(holders.values())


@torch.no_grad()
def convert_networks(
    policy: nn.Module, networks: Sequence[SparseNetwork], threshold: float = DENSITY_THRESHOLD
) -> dict[nn.Parameter, tuple[nn.Parameter, torch.Tensor | None]]:
    """
    Replace every masked ``nn.Linear`` of density below ``threshold`` by a
    :class:`~sb3_tar.kernels.SparseLinear`, in the online network and its target, updating ``networks``.

    :param policy: The policy the networks belong to.
    :param networks: Its sparse networks, holding ``weight_mask`` buffers.
    :param threshold: Density below which a layer is converted.
    :return: ``{old parameter: (new parameter, boolean mask or None)}`` for the online layers: each dense
        weight maps to the kept values (with its mask), each bias to the new layer's bias (what
        :func:`rebuild_optimizer` needs).
    """
    from sb3_tar.kernels import SparseLinear

    replaced: dict[nn.Parameter, tuple[nn.Parameter, torch.Tensor | None]] = {}
    for net in networks:
        for i, (name, layer) in enumerate(net.layers):
            if is_compressed(layer) or type(layer) is not nn.Linear:
                continue  # already on the kernel, or a convolution (the kernel is for linear layers)
            mask = layer.weight_mask.bool()
            if float(mask.float().mean()) >= threshold:
                continue
            sparse = SparseLinear.from_linear(layer, mask)
            replace_layer(net, name, sparse)
            net.layers[i] = (name, sparse)
            replaced[layer.weight] = (sparse.values, mask)
            if layer.bias is not None:
                replaced[layer.bias] = (sparse.bias, None)
            if net.target_layers:
                target = net.target_layers[i]
                target_sparse = SparseLinear.from_linear(target, mask)
                target_sparse.values.requires_grad_(target.weight.requires_grad)
                replace_layer(net, name, target_sparse, target=True)
                net.target_layers[i] = target_sparse
    return replaced


def rebuild_optimizer(
    optimizer: torch.optim.Optimizer, replaced: dict[nn.Parameter, tuple[nn.Parameter, torch.Tensor | None]]
) -> torch.optim.Optimizer:
    """
    A new optimizer of the same class over the same parameter groups and options, with each replaced
    parameter swapped for its new one (a dense weight for its kept values, a bias for the new layer's
    bias, or the way back); existing state moves with it, gathered at the kept positions for weights
    (scattered into the dense layout on the way back). The new
    optimizer saves per-weight state in the dense layout and loads either layout (see the module doc).

    :param optimizer: The policy's actor or critic optimizer.
    :param replaced: Output of :func:`convert_networks`.
    :return: The new optimizer (the old one is left as it is).
    """
    from sb3_tar.kernels import dense_to_values, values_to_dense

    def convert(v: Any, target: nn.Parameter, mask: torch.Tensor | None) -> Any:
        if not isinstance(v, torch.Tensor):
            return v
        if v.dim() > 0:  # per-weight state lives with its parameter (0-dim counters such as Adam's step stay put)
            v = v.to(target.device)
        if mask is None:
            return v
        if v.shape == mask.shape and target.dim() == 1:  # dense state of a weight now held compressed
            return dense_to_values(v, mask)
        if v.dim() == 1 and target.shape == mask.shape and v.numel() == int(mask.sum()):  # the way back
            return values_to_dense(v, mask)
        return v

    groups = []
    for group in optimizer.param_groups:
        options = {k: v for k, v in group.items() if k != "params"}
        groups.append({"params": [replaced[p][0] if p in replaced else p for p in group["params"]], **options})
    accepted = inspect.signature(type(optimizer).__init__).parameters
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted}  # e.g. AdamW records a key it does not take
    new = type(optimizer)(groups, **defaults)
    realign_state(optimizer)  # state of a mask changed since the last step: at the current kept positions first
    for old, state in optimizer.state.items():
        target, mask = replaced.get(old, (old, None))
        new.state[target] = {k: convert(v, target, mask) for k, v in state.items()}
    add_layout_hooks(new)
    return new


def _compressed_params(optimizer: torch.optim.Optimizer) -> dict[int, nn.Parameter]:
    """``{state-dict index: values parameter}`` of the optimizer's SparseLinear parameters."""
    owners = getattr(optimizer, "_sb3_tar_masks", {})
    index = 0
    out = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p in owners:
                out[index] = p
            index += 1
    return out


def add_layout_hooks(optimizer: torch.optim.Optimizer) -> None:
    """
    Make ``optimizer.state_dict()`` hold per-weight state of SparseLinear values in the dense layout, and
    ``optimizer.load_state_dict()`` accept either layout. The mask of each values parameter is read from its
    layer when the hook runs (:func:`register_owner` records which layer that is).

    :param optimizer: An optimizer built by :func:`rebuild_optimizer`.
    """
    from sb3_tar.kernels import dense_to_values, values_to_dense

    def convert(state_dict: dict[str, Any], to_dense_layout: bool) -> dict[str, Any]:
        if to_dense_layout:
            realign_state(optimizer)
        state = dict(state_dict["state"])
        for index, p in _compressed_params(optimizer).items():
            if index not in state:
                continue
            mask = optimizer._sb3_tar_masks[p]().bool()  # type: ignore[attr-defined]
            layout = p.shape if to_dense_layout else mask.shape  # the layout the entry is converted from
            change = values_to_dense if to_dense_layout else dense_to_values
            state[index] = {
                k: change(v, mask) if isinstance(v, torch.Tensor) and v.shape == layout else v for k, v in state[index].items()
            }
        return dict(state_dict, state=state)

    def to_dense(opt: torch.optim.Optimizer, state_dict: dict[str, Any]) -> dict[str, Any]:
        return convert(state_dict, to_dense_layout=True)

    def to_values(opt: torch.optim.Optimizer, state_dict: dict[str, Any]) -> dict[str, Any]:
        return convert(state_dict, to_dense_layout=False)

    def forget_alignment(opt: torch.optim.Optimizer) -> None:  # loaded state is in the current layout: record it so
        opt.__dict__.pop("_sb3_tar_aligned", None)
        realign_state(opt, record_only=True)

    optimizer.register_state_dict_post_hook(to_dense)
    optimizer.register_load_state_dict_pre_hook(to_values)
    optimizer.register_load_state_dict_post_hook(forget_alignment)


def register_owner(optimizer: torch.optim.Optimizer, networks: Sequence[SparseNetwork]) -> None:
    """Record, for the optimizer's layout hooks, which layer's mask belongs to each values parameter."""
    owners: dict[nn.Parameter, Any] = {}
    layers: dict[nn.Parameter, nn.Module] = {}
    for net in networks:
        for _, layer in net.layers:
            if is_compressed(layer):
                owners[layer.values] = lambda layer=layer: layer.weight_mask
                layers[layer.values] = layer
    optimizer._sb3_tar_masks = owners  # type: ignore[attr-defined]
    optimizer._sb3_tar_layers = layers  # type: ignore[attr-defined]


def hook_optimizer(optimizer: torch.optim.Optimizer, networks: Sequence[SparseNetwork]) -> None:
    """
    Give an optimizer over compressed layers its layout hooks and owners if it lacks them (an optimizer
    copied by ``copy.deepcopy`` or pickling keeps its state but loses hooks and attributes).

    :param optimizer: The actor's or the critic's optimizer.
    :param networks: The networks it steps.
    """
    if any(is_compressed(layer) for net in networks for layer in net.linears) and not hasattr(optimizer, "_sb3_tar_masks"):
        add_layout_hooks(optimizer)
        register_owner(optimizer, networks)


@torch.no_grad()
def realign_state(optimizer: torch.optim.Optimizer, record_only: bool = False) -> None:
    """
    Keep an optimizer's per-weight state on the right weights when a compressed layer's mask changed.

    Called before and after every optimizer step (by the mask enforcer) and before the state is saved. It
    records, per compressed parameter, the layer's index arrays and the state tensors it saw (optimizers
    update their state in place); if the layer's mask changed since while the optimizer still holds those
    same state tensors (``load_state_dict`` with other masks, ``set_mask``), each per-weight state tensor is
    re-gathered: a kept weight keeps its state where it was kept before, a newly kept weight starts at zero.
    State that was replaced meanwhile (by ``optimizer.load_state_dict``, which converts with the current
    mask, or by code that converted it itself along with the mask) is taken as it is. When nothing changed it
    costs one identity check per compressed parameter.

    :param optimizer: An optimizer of a policy with compressed layers (a no-op for any other).
    :param record_only: Only record the current layout and state (after a step: a mask changed inside the step's
        pre-hooks, as SET/RigL do, came with its state already moved).
    """
    layers = getattr(optimizer, "_sb3_tar_layers", None)
    if not layers:
        return
    aligned = optimizer.__dict__.setdefault("_sb3_tar_aligned", {})
    for p, layer in layers.items():
        index = layer.structure.kept_index  # a plain attribute: cheaper than the buffer lookup
        record = aligned.get(id(p))  # keyed by id: hashing a tensor is a Python call
        if record is not None and record[0] is index and record[1]:  # the hot path: nothing changed
            continue
        state = optimizer.state.get(p)
        if state and record is not None and record[0] is not index and not record_only:
            old_index, tensors = record
            if tensors and all(state.get(k) is v for k, v in tensors.items()):
                size = layer.out_features * layer.in_features
                for k, v in tensors.items():
                    if v.dim() == 1 and v.numel() == old_index.numel():
                        dense = v.new_zeros(size)
                        dense[old_index.to(v.device)] = v
                        state[k] = dense[index.to(v.device)]
        aligned[id(p)] = (index, {k: v for k, v in (state or {}).items() if isinstance(v, torch.Tensor)})


@torch.no_grad()
def disable(policy: nn.Module, networks: Sequence[SparseNetwork]) -> None:
    """
    The way back from :func:`enable`: replace every compressed layer (online and target) by a masked
    ``nn.Linear`` equal to it, and rebuild the policy's optimizers with their per-weight state in the
    dense layout (zeros at pruned positions). The caller re-attaches the mask enforcer.

    :param policy: A policy converted by :func:`enable`.
    :param networks: Its sparse networks (updated in place).
    """
    replaced: dict[nn.Parameter, tuple[nn.Parameter, torch.Tensor | None]] = {}

    def dense_copy(layer: nn.Module) -> nn.Linear:
        linear = layer.to_linear()
        linear.weight.requires_grad_(layer.values.requires_grad)
        if layer.bias is not None:
            linear.bias.requires_grad_(layer.bias.requires_grad)
        return linear

    for net in networks:
        for i, (name, layer) in enumerate(net.layers):
            if not is_compressed(layer):
                continue
            linear = dense_copy(layer)
            replace_layer(net, name, linear)
            net.layers[i] = (name, linear)
            replaced[layer.values] = (linear.weight, layer.mask)
            if layer.bias is not None:
                replaced[layer.bias] = (linear.bias, None)
            if net.target_layers:
                target = dense_copy(net.target_layers[i])
                replace_layer(net, name, target, target=True)
                net.target_layers[i] = target
    for holder, roles in optimizer_holders(policy):
        if any(p in replaced for group in holder.optimizer.param_groups for p in group["params"]):
            holder.optimizer = rebuild_optimizer(holder.optimizer, replaced)
        register_owner(holder.optimizer, [n for n in networks if n.role in roles])


def enable(policy: nn.Module, networks: Sequence[SparseNetwork], threshold: float = DENSITY_THRESHOLD) -> list[str]:
    """
    Convert the policy's sparse layers (online and target) and rebuild its optimizers (SAC/TD3/TQC: the actor's and
    the critic's; PPO/A2C/DQN: ``policy.optimizer``).
    The caller re-attaches the mask enforcer to the new optimizers.

    :param policy: An SB3 SAC/TD3/TQC, PPO/A2C or DQN policy holding masks (:func:`optimizer_holders`: its
        optimizers, one per role or one shared).
    :param networks: Its sparse networks (updated in place).
    :param threshold: Density below which a layer is converted.
    :return: The qualified names (``"<network>/<layer>"``) of the converted layers.
    """
    replaced = convert_networks(policy, networks, threshold)
    for holder, roles in optimizer_holders(policy):
        if any(p in replaced for group in holder.optimizer.param_groups for p in group["params"]):
            holder.optimizer = rebuild_optimizer(holder.optimizer, replaced)
        elif not hasattr(holder.optimizer, "_sb3_tar_masks"):
            add_layout_hooks(holder.optimizer)
        register_owner(holder.optimizer, [n for n in networks if n.role in roles])
    return [f"{net.name}/{name}" for net in networks for name, layer in net.layers if is_compressed(layer)]
