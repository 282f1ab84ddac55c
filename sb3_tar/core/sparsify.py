"""Prune one network at initialization and revive part of it (pure PyTorch, ``docs/method.md``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from sb3_tar.core.config import SparsityConfig
from sb3_tar.core.criteria import ForwardFn, default_forward, static_masks
from sb3_tar.core.layer_report import LayerReport, NetworkReport
from sb3_tar.core.masks import apply_masks, dead_units, linear_layers, matrix_shape, training_flops_ratio
from sb3_tar.core.revival import connectivity_threshold, revival_counts, revive
from sb3_tar.core.streams import check_seed, stream_generator


def kept_counts(n_total: int, config: SparsityConfig) -> tuple[int, int, int]:
    """
    Exact counts for a network of ``n_total`` sparsifiable weights.

    :param n_total: Sparsifiable weights in the network.
    :param config: The configuration.
    :return: ``(static kept count, revival budget B, final kept count)``.
    """
    budget = round(config.effective_recovery_ratio * n_total)
    target = round((1.0 - config.sparsity) * n_total)
    static = target - budget if config.budget_mode == "reserve" else target
    if static < 0 or static + budget > n_total:
        raise ValueError(
            f"recovery_ratio={config.recovery_ratio} and sparsity={config.sparsity} give a kept count outside [0, {n_total}]"
        )
    return static, budget, static + budget


def max_sparsity(n_total: int, n_layers: int) -> float:
    """
    :param n_total: Sparsifiable weights in a network.
    :param n_layers: Its sparsifiable layers.
    :return: ``1 - n_layers / n_total`` rounded down to 4 decimals: a sparsity whose kept count
        ``round((1 - s) * n_total)`` leaves at least one weight per layer.
    """
    return max(0.0, math.floor((1.0 - n_layers / n_total) * 1e4) / 1e4)


@torch.no_grad()
def prune_and_revive(
    network: nn.Module,
    config: SparsityConfig,
    seed: int,
    *,
    layers: Sequence[tuple[str, nn.Linear]] | None = None,
    forward: ForwardFn = default_forward,
    name: str = "network",
    mirrors: Sequence[nn.Linear] | None = None,
) -> tuple[list[torch.Tensor], NetworkReport]:
    """
    Prune a network by a static criterion, revive connections, and zero the pruned weights.

    With ``budget_mode="reserve"`` the criterion first keeps ``round((1 - alpha) N)`` weights
    (the static baseline's mask) and then, within it, ``B`` fewer; revival brings the count
    back to ``round((1 - alpha) N)``. With ``"extra"`` the criterion keeps ``round((1 - alpha) N)``
    and revival adds ``B``. Every draw comes from its own stream named by ``(seed, name, purpose)``
    (:mod:`sb3_tar.core.streams`): the static stage, Uniform Revival's split and the revived positions.
    Runs that differ only in the revival method therefore share their static mask, and networks of
    different names (or seeds) draw independently.

    Everything is computed before the network is touched: on any error the network is unchanged.
    A network whose final kept count (``round((1 - alpha) N)``, plus ``B`` in ``"extra"`` mode) is smaller
    than its number of layers is refused with a ``ValueError``: at least one layer would keep no weight.
    (With enough kept weights, a criterion may still empty a layer, for example global magnitude pruning at
    high sparsity; that is the layer collapse TAR's connectivity floor repairs, and the report shows it.)

    :param network: The network to sparsify in place.
    :param config: Pruning and revival configuration.
    :param seed: Seed of the random draws (ties, random criteria, revival positions), an int.
    :param layers: Its sparsifiable layers (default: every ``nn.Linear`` of ``network``).
    :param forward: How SynFlow feeds an input through ``network``.
    :param name: Name of the network: it names the random streams and the report.
    :param mirrors: Layers that carry the same mask as ``layers`` without being pruned themselves
        (a target network that has drifted from the online one): their pruned weights are zeroed
        and, with ``revived_init="zero"``, their revived weights too, so they start where the online
        weights start; their kept weights are left as they are.
    :return: The final boolean mask of each layer (on the weight's device) and the report.
    """
    seed = check_seed(seed)
    if not isinstance(config, SparsityConfig):
        raise TypeError(f"config must be a SparsityConfig, got {type(config).__name__}")
    layers = list(linear_layers(network) if layers is None else layers)
    if not layers:
        raise TypeError(f"{name} has no nn.Linear layer to sparsify")
    mirrors = list(mirrors) if mirrors is not None else []
    if mirrors and [tuple(m.weight.shape) for m in mirrors] != [tuple(m.weight.shape) for _, m in layers]:
        raise ValueError(f"mirrors of {name} must match its layers' weight shapes one to one")
    names = [n for n, _ in layers]
    modules = [m for _, m in layers]
    for lname, module in layers:
        if module.weight.numel() == 0:
            n_out, n_in = matrix_shape(module)
            raise ValueError(
                f"Layer {lname!r} of {name} has a {n_out}x{n_in} weight (no connection): every layer needs at least "
                "one input and one output unit (for SB3, every net_arch entry must be >= 1)"
            )
    n_total = sum(m.weight.numel() for m in modules)
    n_static, budget, n_final = kept_counts(n_total, config)
    if n_final < len(layers):
        raise ValueError(
            f"sparsity={config.sparsity} keeps {n_final} of the {n_total} weights of {name}, fewer than its {len(layers)} "
            "layers: some layer would have no weight left and the network's output would not depend on its input. "
            f"Lower the sparsity (at most {max_sparsity(n_total, len(layers)):.4f} for this network) or widen the network"
        )
    n_target = round((1.0 - config.sparsity) * n_total)

    def stage(n_keep: int, within: list[torch.Tensor] | None) -> list[torch.Tensor]:
        return static_masks(
            network,
            names,
            n_keep,
            config.criterion,
            stream_generator(seed, name, "static"),
            magnitude_scope=config.magnitude_scope,
            synflow_iters=config.synflow_iters,
            forward=forward,
            within=within,
        )

    static = stage(n_target, None)
    if n_static < n_target:  # reserve mode: nest inside the static baseline's mask
        static = stage(n_static, static)
    counts, allocation = revival_counts(
        config.revival, static, budget, stream_generator(seed, name, "revival_split"), config.floor_fraction
    )
    revived = revive(static, counts, stream_generator(seed, name, "revival_positions"))
    final = [(s | r).to(m.weight.device) for s, r, m in zip(static, revived, modules)]

    reports = []
    for i, (lname, layer) in enumerate(layers):
        n_out, n_in = matrix_shape(layer)
        threshold = connectivity_threshold(n_in, n_out)
        kept_before = int(static[i].sum())
        reports.append(
            LayerReport(
                name=lname,
                shape=(n_out, n_in),
                threshold=threshold,
                kept_before=kept_before,
                need=max(0, threshold - kept_before),
                floor=allocation[i].floor if allocation is not None else 0,
                revived=counts[i],
                density=float(final[i].sum()) / final[i].numel(),
                dead_before=sum(dead_units(static[i])),
                dead_after=sum(dead_units(final[i])),
            )
        )
    report = NetworkReport(
        network=name,
        criterion=config.criterion,
        revival=config.revival,
        target_sparsity=config.sparsity,
        budget=budget,
        flops_ratio=training_flops_ratio(final, [m.bias is not None for m in modules]),
        layers=reports,
    )

    # Mutate only now that everything has been computed.
    for group in (modules, mirrors):
        if not group:
            continue
        apply_masks(group, [f.to(m.weight.device) for f, m in zip(final, group)])
        if config.revived_init == "zero":
            for layer, r in zip(group, revived):
                layer.weight.masked_fill_(r.to(layer.weight.device), 0.0)
    return final, report
