"""Sparse execution inside SB3: equivalence with the masked path, optimizer state for kept weights only,
save/load with and without the kernel, the option's errors and fallbacks. Real SAC/TD3/TQC training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sb3_contrib import TQC
from sb3_utils import SMALL, small_kwargs
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.save_util import load_from_zip_file
from torch import nn

from sb3_tar import DSTCallback, TARCallback, sac, td3, tqc
from sb3_tar.kernels import SparseLinear

POLICIES = {"sac": (SAC, sac.SparsePolicy), "td3": (TD3, td3.SparsePolicy), "tqc": (TQC, tqc.SparsePolicy)}
#: Float32 summation order differs between the kernel and dense matmuls; 200 gradient steps of Adam amplify
#: it a little. Weights agree to this absolute tolerance (weights are O(0.1)); masks agree exactly.
ATOL = 2e-4


def sparse_modules(model) -> list[SparseLinear]:
    return [m for m in model.policy.modules() if isinstance(m, SparseLinear)]


def dense_state(model) -> dict[str, torch.Tensor]:
    """The policy's state dict: the same keys and dense layout on both paths."""
    return {k: v.clone() for k, v in model.policy.state_dict().items() if k != "_extra_state"}


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_sparse_and_masked_paths_train_the_same_weights(algo: str) -> None:
    """From one seed, 200 gradient steps on each path: identical masks, weights within ATOL (targets too)."""
    cls, policy = POLICIES[algo]
    states = {}
    for option in (False, True):
        kwargs = dict(SMALL, sparsity=0.9, sparse_execution=option)
        model = cls(policy, "Pendulum-v1", policy_kwargs=kwargs, **small_kwargs(algo))
        assert bool(sparse_modules(model)) == option
        model.learn(250)  # learning_starts=50: 200 gradient steps
        states[option] = dense_state(model)
    masked, sparse = states[False], states[True]
    assert masked.keys() == sparse.keys()
    assert any(k.startswith("critic_target.") for k in masked)
    for key in masked:
        if key.endswith("weight_mask"):
            assert torch.equal(masked[key], sparse[key]), key
        elif masked[key].is_floating_point():
            torch.testing.assert_close(sparse[key], masked[key], atol=ATOL, rtol=0, msg=key)
            if key.endswith(".weight"):  # pruned weights are exactly zero on both paths
                mask = masked[key + "_mask"] if key + "_mask" in masked else None
                if mask is not None:
                    assert int((sparse[key] != 0)[mask == 0].sum()) == 0, key


def test_optimizer_state_only_for_kept_weights() -> None:
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparsity=0.9), **small_kwargs("sac"))
    model.learn(120)
    layers = sparse_modules(model)
    assert layers
    states = {**model.policy.actor.optimizer.state, **model.policy.critic.optimizer.state}
    for layer in layers:
        if layer.values in states:  # online layers (targets have no optimizer)
            assert states[layer.values]["exp_avg"].shape == (int(layer.weight_mask.sum()),)
            assert layer.bias in states  # the new layer's bias is the one being trained
    trained = [layer for layer in layers if layer.values in states]
    assert trained and all(layer.bias.grad is not None for layer in trained)


@pytest.mark.parametrize("algo", ["td3", "tqc"])
def test_callback_on_a_plain_model_runs_sparse_and_rebuilds_the_users_optimizer(algo: str) -> None:
    kwargs = small_kwargs(algo)
    policy_kwargs = dict(kwargs.pop("policy_kwargs", {}), **SMALL, optimizer_class=torch.optim.AdamW)
    model = POLICIES[algo][0]("MlpPolicy", "Pendulum-v1", policy_kwargs=policy_kwargs, **kwargs)
    callback = TARCallback(sparsity=0.9, sparse_execution=True)
    model.learn(200, callback=callback)
    assert callback.sparse_layers and sparse_modules(model)
    for holder in (model.policy.actor, model.policy.critic):
        assert type(holder.optimizer) is torch.optim.AdamW
        params = {id(p) for group in holder.optimizer.param_groups for p in group["params"]}
        assert params == {id(p) for p in holder.parameters()}  # every parameter of the new layers is trained
    # the target network runs on the same format, so Polyak pairs parameters one to one
    for online, target in zip(model.policy.critic.parameters(), model.policy.critic_target.parameters()):
        assert online.shape == target.shape


@pytest.mark.parametrize("algo", ["sac", "tqc"])
def test_save_load_with_and_without_the_kernel(algo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cls, policy = POLICIES[algo]
    kwargs = small_kwargs(algo)
    kwargs["policy_kwargs"] = dict(kwargs.get("policy_kwargs", {}), **SMALL, sparsity=0.9)
    model = cls(policy, "Pendulum-v1", **kwargs)
    model.learn(150)
    model.save(tmp_path / "m.zip")
    _, params, _ = load_from_zip_file(tmp_path / "m.zip", device="cpu", print_system_info=False)
    # the file is in the masked layout: dense weights with masks, dense optimizer state
    for key, value in params["policy"].items():
        if key.endswith(".weight_mask"):
            assert params["policy"][key[: -len("_mask")]].shape == value.shape
    for state in params["critic.optimizer"]["state"].values():
        assert all(v.dim() != 1 or v.numel() != 0 for v in state.values() if isinstance(v, torch.Tensor))
    obs = np.stack([model.observation_space.sample() for _ in range(16)])
    expected = model.predict(obs, deterministic=True)[0]

    with_kernel = cls.load(tmp_path / "m.zip", env=model.get_env())
    assert sparse_modules(with_kernel)
    np.testing.assert_allclose(with_kernel.predict(obs, deterministic=True)[0], expected, atol=1e-6)
    with_kernel.learn(60, reset_num_timesteps=False)

    monkeypatch.setattr("sb3_tar.kernels.kernel_available", lambda: False)  # a machine without the kernel
    monkeypatch.setattr("sb3_tar.sb3.execution.sparse_execution._warned", False)
    with pytest.warns(RuntimeWarning, match="masked dense path"):
        without = cls.load(tmp_path / "m.zip", env=model.get_env())
    assert not sparse_modules(without)
    np.testing.assert_allclose(without.predict(obs, deterministic=True)[0], expected, atol=1e-6)
    without.learn(60, reset_num_timesteps=False)  # dense optimizer state loaded into the masked path
    state = without.policy.state_dict()
    for key, value in state.items():
        if key.endswith(".weight_mask"):
            assert int((state[key[: -len("_mask")]] != 0)[value == 0].sum()) == 0, key


def test_masked_model_loads_onto_the_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A callback model trained where the kernel was missing ('auto') runs sparse where it builds."""
    monkeypatch.setattr("sb3_tar.kernels.kernel_available", lambda: False)
    monkeypatch.setattr("sb3_tar.sb3.execution.sparse_execution._warned", False)
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs("sac"))
    with pytest.warns(RuntimeWarning, match="masked dense path"):
        model.learn(150, callback=TARCallback(sparsity=0.9))
    assert not sparse_modules(model) and model.policy.sparse_layers == []
    model.save(tmp_path / "m.zip")
    monkeypatch.undo()
    loaded = SAC.load(tmp_path / "m.zip", env=model.get_env())
    assert sparse_modules(loaded) and loaded.policy.sparse_layers
    obs = np.stack([model.observation_space.sample() for _ in range(16)])
    np.testing.assert_allclose(
        loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0], atol=1e-6
    )
    loaded.learn(60, reset_num_timesteps=False)


def test_true_without_kernel_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sb3_tar.kernels.kernel_available", lambda: False)
    monkeypatch.setattr("sb3_tar.kernels.kernel_summary", lambda: "no C++ compiler (simulated)")
    with pytest.raises(RuntimeError, match=r"sparse_execution=True, but the sparse kernel is not available here: no C\+\+"):
        SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparse_execution=True), **small_kwargs("sac"))


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_bad_option_values_are_refused(bad) -> None:
    with pytest.raises(ValueError, match=r"sparse_execution=.* is not allowed: use 'auto', True or False"):
        TARCallback(sparse_execution=bad)
    with pytest.raises(ValueError, match=r"sparse_execution=.* is not allowed"):
        SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(SMALL, sparse_execution=bad), **small_kwargs("sac"))


def test_dst_runs_on_the_kernel_by_default() -> None:
    """SET/RigL: True is accepted, "auto" (the default of DSTCallback and SparsePolicy) converts, False does not."""
    model = SAC(
        sac.SparsePolicy,
        "Pendulum-v1",
        policy_kwargs=dict(SMALL, sparsity=0.9, dst_method="set", dst_total_steps=100, sparse_execution=True),
        **small_kwargs("sac"),
    )
    assert sparse_modules(model) and model.policy.sparse_layers
    for option, converted in (("auto", True), (False, False)):
        model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs("sac"))
        callback = DSTCallback("set", sparsity=0.9, update_interval=20) if option == "auto" else None
        callback = callback or DSTCallback("set", sparsity=0.9, update_interval=20, sparse_execution=option)
        model.learn(120, callback=callback)
        assert bool(sparse_modules(model)) == converted
        assert any(isinstance(m, nn.Linear) and not isinstance(m, SparseLinear) for m in model.policy.critic.qf0)
