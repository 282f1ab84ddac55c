"""save/load keeps masks, weights and predictions; further learning keeps the mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sb3_utils import ALGOS, SMALL, all_weights, assert_mask_invariants, clone_masks, small_kwargs
from stable_baselines3 import SAC

from sb3_tar import sac, td3, tqc
from sb3_tar.callbacks import TARCallback

POLICIES = {"sac": sac.SparsePolicy, "td3": td3.SparsePolicy, "tqc": tqc.SparsePolicy}


def _check_roundtrip(model, loaded, sparsity: float) -> None:
    masks, loaded_masks = clone_masks(model), clone_masks(loaded)
    assert masks.keys() == loaded_masks.keys()
    for name in masks:
        assert all(torch.equal(a, b) for a, b in zip(masks[name], loaded_masks[name]))
    weights, loaded_weights = all_weights(model), all_weights(loaded)
    assert weights.keys() == loaded_weights.keys()
    assert all(torch.equal(weights[k], loaded_weights[k]) for k in weights)
    obs = np.stack([model.observation_space.sample() for _ in range(16)])
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert_mask_invariants(loaded, sparsity, masks)


@pytest.mark.parametrize("algo", ["sac", "td3", "tqc"])
def test_sparse_policy_save_load_predict_and_resume(algo: str, tmp_path: Path) -> None:
    kwargs = small_kwargs(algo)
    kwargs["policy_kwargs"] = dict(
        kwargs.get("policy_kwargs", {}), **SMALL, sparsity=0.9, criterion="synflow", synflow_iters=5
    )
    model = ALGOS[algo](POLICIES[algo], "Pendulum-v1", **kwargs)
    model.learn(150)
    model.save(tmp_path / "model.zip")
    loaded = ALGOS[algo].load(tmp_path / "model.zip", env=model.get_env())
    _check_roundtrip(model, loaded, 0.9)
    masks = clone_masks(loaded)
    loaded.learn(100, reset_num_timesteps=False)
    assert_mask_invariants(loaded, 0.9, masks)


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_callback_model_save_load_and_resume(algo: str, tmp_path: Path) -> None:
    model = ALGOS[algo]("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs(algo))
    model.learn(150, callback=TARCallback(sparsity=0.85, criterion="erk"))
    masks = clone_masks(model)
    model.save(tmp_path / "model.zip")
    loaded = ALGOS[algo].load(tmp_path / "model.zip", env=model.get_env())
    _check_roundtrip(model, loaded, 0.85)
    # Resuming with a callback never prunes again, whatever its settings.
    callback = TARCallback(sparsity=0.5)
    loaded.learn(100, callback=callback, reset_num_timesteps=False)
    assert not callback.pruned
    assert_mask_invariants(loaded, 0.85, masks)


def test_callback_model_resume_without_callback(tmp_path: Path) -> None:
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs("sac"))
    model.learn(100, callback=TARCallback(sparsity=0.9))
    model.save(tmp_path / "model.zip")
    loaded = SAC.load(tmp_path / "model.zip", env=model.get_env())
    import sb3_tar

    assert sb3_tar.enforce_masks(loaded)
    masks = clone_masks(loaded)
    loaded.learn(100, reset_num_timesteps=False)
    assert_mask_invariants(loaded, 0.9, masks)
