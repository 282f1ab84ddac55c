"""Exporting sparse SAC/TD3/TQC actors: SB3's own recipes (torch.jit.trace, torch.onnx.export) on both execution
paths, and ``sb3_tar.export_actor`` to ONNX / TorchScript, run the way a user runs the files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
from sb3_utils import ALGOS, SMALL, small_kwargs
from torch import nn

import sb3_tar
from sb3_tar.sb3.export import read_export_metadata

POLICIES = {"sac": sb3_tar.SACSparsePolicy, "td3": sb3_tar.TD3SparsePolicy, "tqc": sb3_tar.TQCSparsePolicy}


def sparse_model(algo: str, sparse_execution: bool):
    kwargs = small_kwargs(algo)
    policy_kwargs = dict(kwargs.pop("policy_kwargs", {}), **SMALL, sparsity=0.9, sparse_execution=sparse_execution)
    model = ALGOS[algo](POLICIES[algo], "Pendulum-v1", policy_kwargs=policy_kwargs, **kwargs)
    assert bool(model.policy.sparse_layers) == sparse_execution  # the kernel path really runs where asked
    return model


def hand_scaled_action(policy, obs: torch.Tensor) -> torch.Tensor:
    """The deterministic scaled action computed from the actor's dense weights (``x @ W.T + b``), not by its modules."""
    actor = policy.actor
    modules = [*actor.latent_pi, actor.mu] if hasattr(actor, "latent_pi") else list(actor.mu)
    x = obs.double()
    for module in modules:
        if isinstance(module, nn.Linear):
            x = x @ module.weight.detach().double().T + module.bias.detach().double()
        elif isinstance(module, nn.ReLU):
            x = x.clamp_min(0)
        elif isinstance(module, nn.Tanh):
            x = x.tanh()
        else:
            raise AssertionError(f"unexpected module {module}")
    return (x.tanh() if hasattr(actor, "latent_pi") else x).float()


class OnnxableActor(nn.Module):
    """SB3's documented wrapper around ``policy.actor`` (TD3's actor takes no ``deterministic``)."""

    def __init__(self, actor: nn.Module, deterministic_kwarg: bool) -> None:
        super().__init__()
        self.actor = actor
        self.deterministic_kwarg = deterministic_kwarg

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.actor(observation, deterministic=True) if self.deterministic_kwarg else self.actor(observation)


class OnnxableSB3Policy(nn.Module):
    """SB3's documented wrapper around the policy."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.policy(observation, deterministic=True)


@pytest.mark.parametrize("sparse_execution", [True, False])
@pytest.mark.parametrize("algo", ["sac", "td3", "tqc"])
def test_sb3_recipes_on_sparse_models(algo, sparse_execution, tmp_path):
    model = sparse_model(algo, sparse_execution)
    torch.manual_seed(1)
    obs = torch.rand(100, 3) * 2 - 1
    expected = hand_scaled_action(model.policy, obs)
    actor = OnnxableActor(model.policy.actor, algo != "td3").eval()
    dummy = torch.randn(1, 3)
    # torch.jit.trace, with and without no_grad (under no_grad the kernel used to be invisible to the tracer)
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            traced = torch.jit.trace(actor, dummy)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        with torch.no_grad():
            torch.testing.assert_close(traced(obs), expected, atol=1e-5, rtol=0)
            torch.testing.assert_close(frozen(obs), expected, atol=1e-5, rtol=0)
    # torch.onnx.export of the policy wrapper, TorchScript-based exporter, run in onnxruntime
    path = str(tmp_path / "policy.onnx")
    torch.onnx.export(
        OnnxableSB3Policy(model.policy),
        dummy,
        path,
        opset_version=17,
        input_names=["input"],
        dynamic_axes={"input": {0: "batch"}},
        dynamo=False,
    )
    onnx_actions = ort.InferenceSession(path).run(None, {"input": obs.numpy()})[0]
    np.testing.assert_allclose(onnx_actions, expected.numpy(), atol=1e-5, rtol=0)
    if algo == "td3" and sparse_execution:  # the default exporter (torch.export); SAC/TQC: see the next test
        path = str(tmp_path / "actor_dynamo.onnx")
        torch.onnx.export(actor, (dummy,), path, input_names=["input"], dynamo=True, verbose=False)
        onnx_actions = ort.InferenceSession(path).run(None, {"input": obs[:1].numpy()})[0]
        np.testing.assert_allclose(onnx_actions, expected[:1].numpy(), atol=1e-5, rtol=0)
    # recording left the layers on their path, and the model still predicts from its own weights
    assert bool(model.policy.sparse_layers) == sparse_execution
    with torch.no_grad():
        torch.testing.assert_close(actor(obs), expected, atol=1e-5, rtol=0)


def test_default_onnx_exporter_with_validate_args_off(tmp_path):
    """SAC's documented ONNX recipe on the default exporter, with the workaround the docs give (sparse kernel path)."""
    model = sparse_model("sac", True)
    obs = torch.rand(1, 3) * 2 - 1
    path = str(tmp_path / "sac_actor.onnx")
    previous = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        torch.onnx.export(
            OnnxableActor(model.policy.actor, True).eval(), (obs,), path, input_names=["input"], dynamo=True, verbose=False
        )
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)
    onnx_actions = ort.InferenceSession(path).run(None, {"input": obs.numpy()})[0]
    np.testing.assert_allclose(onnx_actions, hand_scaled_action(model.policy, obs).numpy(), atol=1e-5, rtol=0)


RUN_EXPORTED = """
import sys
sys.modules["sb3_tar"] = None  # the files must run without sb3-tar (and without SB3: only torch and onnxruntime)
import json
import numpy as np
import onnxruntime as ort
import torch

files, obs_path = json.loads(sys.argv[1]), sys.argv[2]
obs = np.load(obs_path)
for path in files:
    if path.endswith(".onnx"):
        session = ort.InferenceSession(path)
        actions = session.run(None, {"observation": obs})[0]
        meta = session.get_modelmeta().custom_metadata_map["sb3_tar"]
    else:
        extra = {"sb3_tar.json": ""}
        actions = torch.jit.load(path, _extra_files=extra)(torch.as_tensor(obs)).numpy()
        meta = extra["sb3_tar.json"].decode("utf-8")
    np.save(path + ".actions.npy", actions)
    with open(path + ".meta.json", "w") as f:
        f.write(meta)
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each algorithm's sparse model (kernel path), its actor exported to ONNX and TorchScript, run in a fresh process."""
    folder = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1.0, 1.0, size=(1000, 3)).astype(np.float32)  # Pendulum: cos, sin, angular velocity / 8
    obs[:, 2] *= 8.0
    np.save(folder / "obs.npy", obs)
    out = {}
    for algo in ("sac", "td3", "tqc"):
        model = sparse_model(algo, True)
        model.learn(60)  # a few gradient steps: weights away from their initialization
        files = {fmt: str(folder / f"{algo}{suffix}") for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt"))}
        returned = {fmt: sb3_tar.export_actor(model, path) for fmt, path in files.items()}
        out[algo] = dict(model=model, files=files, returned=returned, predicted=model.predict(obs, deterministic=True)[0])
    all_files = [f for entry in out.values() for f in entry["files"].values()]
    env = dict(os.environ, PYTHONPATH="", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", RUN_EXPORTED, json.dumps(all_files), str(folder / "obs.npy")],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("algo", ["sac", "td3", "tqc"])
def test_export_actor_matches_predict(exported, algo, fmt):
    entry = exported[algo]
    path = entry["files"][fmt]
    actions = np.load(path + ".actions.npy")
    predicted = entry["predicted"]
    assert actions.shape == predicted.shape == (1000, 1)
    assert np.abs(predicted).max() > 0.1  # env actions (Pendulum: [-2, 2]), not all zero
    np.testing.assert_allclose(actions, predicted, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("algo", ["sac", "td3", "tqc"])
def test_export_actor_records_sparsity(exported, algo, fmt):
    entry = exported[algo]
    meta = json.loads(open(entry["files"][fmt] + ".meta.json").read())
    assert meta == json.loads(json.dumps(entry["returned"][fmt])) == read_export_metadata(entry["files"][fmt])
    masks = sb3_tar.masks_of(entry["model"])["actor"]
    actor = entry["model"].policy.actor
    in_graph = [*actor.latent_pi, actor.mu] if algo != "td3" else list(actor.mu)
    layers = [m for m in in_graph if isinstance(m, nn.Linear)]  # SAC/TQC: the log_std head is not exported
    by_layer = {id(m): mask for m, mask in zip([m for m in actor.modules() if isinstance(m, nn.Linear)], masks)}
    expected = [(list(m.weight.shape), int(by_layer[id(m)].sum())) for m in layers]
    assert [(r["shape"], r["kept"]) for r in meta["layers"]] == expected
    assert meta["kept"] == sum(k for _, k in expected)
    assert meta["total"] == sum(s[0] * s[1] for s, _ in expected)
    assert meta["sparsity"] == pytest.approx(1 - meta["kept"] / meta["total"])
    assert meta["algorithm"] == algo.upper()
    assert meta["action_low"] == [-2.0] and meta["action_high"] == [2.0]


def test_export_actor_leaves_model_unchanged_and_validates(tmp_path):
    model = sparse_model("td3", True)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    with pytest.raises(ValueError, match="suffix"):
        sb3_tar.export_actor(model, tmp_path / "actor.bin")
    with pytest.raises(ValueError, match="format='tflite'"):
        sb3_tar.export_actor(model, tmp_path / "actor.onnx", format="tflite")
    with pytest.raises(TypeError, match="SAC, TD3 or TQC"):
        sb3_tar.export_actor(object(), tmp_path / "actor.onnx")
    sb3_tar.export_actor(model, tmp_path / "actor.ts")
    assert not (tmp_path / "actor.bin").exists()
    after = model.policy.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert model.policy.sparse_layers  # still on the kernel


def test_sparse_linear_is_recorded_exactly_by_tracers(tmp_path):
    """One SparseLinear on the kernel, traced under no_grad and exported while its values require grad."""
    from sb3_tar.kernels import SparseLinear

    torch.manual_seed(0)
    dense = nn.Linear(16, 8)
    mask = torch.rand(8, 16) < 0.2
    layer = SparseLinear.from_linear(dense, mask)
    assert layer.values.requires_grad
    x = torch.randn(5, 16)
    expected = x.double() @ torch.where(mask, dense.weight, 0.0).detach().double().T + dense.bias.detach().double()
    with torch.no_grad():
        traced = torch.jit.trace(layer, torch.randn(1, 16))
        torch.testing.assert_close(traced(x).double(), expected, atol=1e-6, rtol=0)
    path = str(tmp_path / "layer.onnx")
    torch.onnx.export(layer, torch.randn(1, 16), path, input_names=["x"], dynamic_axes={"x": {0: "n"}}, dynamo=False)
    out = ort.InferenceSession(path).run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-6, rtol=0)
