"""``sb3_tar.to_sb3`` / ``sb3-tar to-sb3``: plain SB3 files that ``SAC.load`` / ``TD3.load`` / ``TQC.load`` open in a
process where sb3-tar cannot be imported, and that predict the same actions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sb3_contrib.tqc.policies import TQCPolicy
from sb3_utils import ALGOS, SMALL, small_kwargs
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy

import sb3_tar
from sb3_tar.cli import main
from sb3_tar.sb3.networks import sparse_networks

POLICIES = {"sac": sb3_tar.SACSparsePolicy, "td3": sb3_tar.TD3SparsePolicy, "tqc": sb3_tar.TQCSparsePolicy}
PLAIN = {"sac": SACPolicy, "td3": TD3Policy, "tqc": TQCPolicy}

LOAD_WITHOUT_SB3_TAR = """
import sys
sys.modules["sb3_tar"] = None  # as if sb3-tar were not installed
try:
    import sb3_tar  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("sb3_tar is importable")
import json
import warnings

import numpy as np
from sb3_contrib import TQC
from stable_baselines3 import SAC, TD3

cases, obs = json.loads(sys.argv[1]), np.load(sys.argv[2])
for name, (algo, path) in cases.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = {"sac": SAC, "td3": TD3, "tqc": TQC}[algo].load(path, device="cpu")
    problems = [str(w.message) for w in caught if "deserializ" in str(w.message) or "sb3_tar" in str(w.message)]
    assert not problems, problems
    np.save(path + ".actions.npy", model.predict(obs, deterministic=True)[0])
    with open(path + ".class", "w") as f:
        f.write(type(model.policy).__module__ + "." + type(model.policy).__qualname__)
"""


def sparse_policy_model(algo: str, sparse_execution: bool):
    kwargs = small_kwargs(algo)
    policy_kwargs = dict(kwargs.pop("policy_kwargs", {}), **SMALL, sparsity=0.9, sparse_execution=sparse_execution)
    return ALGOS[algo](POLICIES[algo], "Pendulum-v1", policy_kwargs=policy_kwargs, **kwargs)


def callback_model(algo: str):
    kwargs = small_kwargs(algo)
    kwargs["policy_kwargs"] = dict(kwargs.get("policy_kwargs", {}), **SMALL)
    model = ALGOS[algo]("MlpPolicy", "Pendulum-v1", **kwargs)
    model.learn(80, callback=sb3_tar.TARCallback(sparsity=0.9))
    return model


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Sparse models converted by to_sb3 (from the model and from its file, and by the CLI), loaded without sb3-tar."""
    folder = tmp_path_factory.mktemp("share")
    obs = np.random.default_rng(0).uniform(-1.0, 1.0, size=(200, 3)).astype(np.float32)
    np.save(folder / "obs.npy", obs)
    cases = {}
    for name, algo, make, source in (
        ("sac_policy_kernel", "sac", lambda: sparse_policy_model("sac", True), "model"),
        ("td3_policy_masked", "td3", lambda: sparse_policy_model("td3", False), "path"),
        ("tqc_policy_kernel", "tqc", lambda: sparse_policy_model("tqc", True), "cli"),
        ("sac_callback", "sac", lambda: callback_model("sac"), "path"),
        ("td3_callback", "td3", lambda: callback_model("td3"), "model"),
    ):
        model = make()
        out = str(folder / f"{name}_plain.zip")
        if source == "model":
            written = sb3_tar.to_sb3(model, out)
        elif source == "path":
            model.save(folder / name)
            written = sb3_tar.to_sb3(folder / f"{name}.zip", out)
        else:  # the command line, in this process, writing over its input
            model.save(out)
            assert main(["to-sb3", out, out]) == 0
            written = out
        assert written == out
        cases[name] = dict(algo=algo, model=model, out=out, predicted=model.predict(obs, deterministic=True)[0])
    env = dict(os.environ, PYTHONPATH="", OMP_NUM_THREADS="1")  # not this checkout; the prelude blocks the installed one
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_WITHOUT_SB3_TAR,
            json.dumps({name: (c["algo"], c["out"]) for name, c in cases.items()}),
            str(folder / "obs.npy"),
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return cases


CASES = ["sac_policy_kernel", "td3_policy_masked", "tqc_policy_kernel", "sac_callback", "td3_callback"]


@pytest.mark.parametrize("name", CASES)
def test_plain_file_loads_without_sb3_tar_and_predicts_the_same(shared, name):
    case = shared[name]
    plain = PLAIN[case["algo"]]
    assert open(case["out"] + ".class").read() == f"{plain.__module__}.{plain.__qualname__}"
    actions = np.load(case["out"] + ".actions.npy")
    if case["model"].policy.sparse_layers:  # the kernel sums in another order than a dense product
        np.testing.assert_allclose(actions, case["predicted"], atol=1e-5, rtol=0)
    else:  # the masked dense path is the same computation
        np.testing.assert_array_equal(actions, case["predicted"])


@pytest.mark.parametrize("name", CASES)
def test_plain_file_holds_baked_weights_and_no_sb3_tar_entries(shared, name):
    case = shared[name]
    model = case["model"]
    data, params, _ = load_from_zip_file(case["out"], device="cpu")
    assert data["policy_class"] is PLAIN[case["algo"]]
    assert not {"sparsity", "sparse_execution", "criterion"} & set(data["policy_kwargs"])
    assert "sb3_tar_reports" not in data
    state = params["policy"]
    assert not [k for k in state if "weight_mask" in k or "sb3_tar" in k or "extra_state" in k or k.startswith("dst_")]
    masks = sb3_tar.masks_of(model)
    original = model.policy.state_dict()
    n_layers = 0
    for net in sparse_networks(model.policy):
        target = net.name.replace("actor", "actor_target").replace("critic", "critic_target")  # TD3 has an actor target
        targets = [net.name + "."] + ([target + "."] if net.target_layers else [])
        for layer_name, mask in zip([n for n, _ in net.layers], masks[net.name]):
            for target in targets:
                key = f"{target}{layer_name}.weight"
                weight = state[key]
                assert torch.all(weight[~mask] == 0.0), key
                assert torch.equal(weight[mask], original[key][mask]), key
                assert torch.equal(state[key.removesuffix("weight") + "bias"], original[key.removesuffix("weight") + "bias"])
                n_layers += 1
    assert n_layers >= 3 * len(masks)
    assert data["num_timesteps"] == model.num_timesteps


def test_to_sb3_validates_its_input(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="No saved model"):
        sb3_tar.to_sb3(tmp_path / "missing.zip", tmp_path / "out.zip")
    with pytest.raises(TypeError, match="SB3 model or the path"):
        sb3_tar.to_sb3(object(), tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()
    assert main(["to-sb3", str(tmp_path / "missing.zip"), str(tmp_path / "out.zip")]) == 2
    assert "No saved model" in capsys.readouterr().err


def test_to_sb3_writes_a_dense_model_unchanged(tmp_path):
    model = ALGOS["sac"]("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(SMALL), **small_kwargs("sac"))
    out = sb3_tar.to_sb3(model, tmp_path / "dense")
    assert out == str(tmp_path / "dense.zip")
    data, params, _ = load_from_zip_file(out, device="cpu")
    assert data["policy_class"] is SACPolicy and data["policy_kwargs"] == model.policy_kwargs
    original = model.policy.state_dict()
    assert params["policy"].keys() == original.keys()
    assert all(torch.equal(params["policy"][k], v) for k, v in original.items())
