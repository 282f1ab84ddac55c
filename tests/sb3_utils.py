"""Shared helpers of the SB3 integration tests: build small real models, check mask invariants."""

from __future__ import annotations

import torch
from sb3_contrib import TQC
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback

from sb3_tar.sb3.networks import is_actor_critic_policy, sparse_networks
from sb3_tar.sb3.reporting.model_masks import masks_of, sparsity_summary

torch.set_num_threads(1)  # tiny networks: one thread is fastest and keeps parallel runs fair

ALGOS = {"sac": SAC, "td3": TD3, "tqc": TQC}
SMALL = dict(net_arch=[64, 64])


def small_kwargs(algo: str, **overrides) -> dict:
    """Fast settings for a few-hundred-step run."""
    kwargs = dict(learning_starts=50, batch_size=64, buffer_size=5_000, seed=0, device="cpu")
    if algo == "tqc":
        kwargs["policy_kwargs"] = dict(n_critics=2, n_quantiles=5)
    kwargs.update(overrides)
    return kwargs


def expected_kept(model, sparsity: float) -> dict[str, int]:
    """round((1 - sparsity) * N) for every sparse network of the model."""
    return {
        net.name: round((1 - sparsity) * sum(layer.weight.numel() for layer in net.linears))
        for net in sparse_networks(model.policy)
    }


def clone_masks(model) -> dict[str, list[torch.Tensor]]:
    masks = masks_of(model)
    assert masks is not None, "model is not sparse"
    return masks


def assert_mask_invariants(model, sparsity: float, initial_masks: dict | None = None) -> None:
    """Exact kept counts, pruned weights exactly 0.0 online and in every target, masks unchanged."""
    summary = sparsity_summary(model)
    kept = expected_kept(model, sparsity)
    networks = {n.name: n for n in sparse_networks(model.policy)}
    masks = clone_masks(model)
    assert set(summary) == set(kept)
    for name, stats in summary.items():
        assert stats["kept"] == kept[name], (name, stats)
        assert stats["pruned_nonzero"] == 0, (name, stats)
        net = networks[name]
        for layers in (net.linears, net.target_layers):
            if not layers:  # SAC/TQC actors have no target network
                continue
            for layer, mask in zip(layers, masks[name], strict=True):
                assert torch.all(layer.weight[~mask] == 0.0)
        if initial_masks is not None:
            for a, b in zip(masks[name], initial_masks[name], strict=True):
                assert torch.equal(a, b), f"mask of {name} changed"
    # target networks exist where SB3 has them (not in PPO/A2C) and are covered above
    assert is_actor_critic_policy(model.policy) or any(networks[n].target_layers for n in networks)


def all_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


class Recorder(BaseCallback):
    """Records the masks and the weights right after the callbacks before it in the list pruned the model."""

    def _on_training_start(self) -> None:
        self.masks = clone_masks(self.model)
        self.weights = {k: v.clone() for k, v in self.model.policy.state_dict().items()}

    def _on_step(self) -> bool:
        return True
