"""Exporting sparse SAC/TD3/TQC actors: SB3's own recipes (torch.jit.trace, torch.onnx.export) on both execution
paths, and ``sb3_tar.export_actor`` to ONNX / TorchScript, run the way a user runs the files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import onnxruntime as ort
import pytest
import torch
from fresh_process import run_fresh
from sb3_utils import ALGOS, SMALL, small_kwargs
from torch import nn

import sb3_tar
from sb3_tar.kernels import SparseLinear
from sb3_tar.sb3.persistence.export import read_export_metadata

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
import gymnasium as gym
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
    (job,) = run_fresh([(RUN_EXPORTED, [json.dumps(all_files), folder / "obs.npy"])], without="sb3_tar")
    assert job.error is None, job.error
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
    with pytest.raises(TypeError, match="SAC, TD3, TQC, PPO, A2C or DQN"):
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


class AsymmetricBoundsEnv(gym.Env):
    """Pendulum-like observations, a 2-d action space with ``low != -high`` (``[-1, 0]`` to ``[3, 2]``)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([3.0, 2.0], np.float32))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), float(-np.sum(np.square(action))), False, False, {}


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_export_actor_unscales_asymmetric_action_bounds(algo, tmp_path):
    """Unscaling from [-1, 1] to [low, high] where low != -high (every other export test uses Pendulum's [-2, 2]):
    an exported actor that assumed symmetric bounds (``a * high``) would be off by up to 2 here."""
    kwargs = small_kwargs(algo)
    policy_kwargs = dict(kwargs.pop("policy_kwargs", {}), **SMALL, sparsity=0.9)
    model = ALGOS[algo](POLICIES[algo], AsymmetricBoundsEnv(), policy_kwargs=policy_kwargs, **kwargs)
    model.learn(60)
    obs = np.random.default_rng(0).uniform(-1.0, 1.0, size=(500, 3)).astype(np.float32)
    predicted = model.predict(obs, deterministic=True)[0]
    low, high = AsymmetricBoundsEnv.action_space.low, AsymmetricBoundsEnv.action_space.high
    assert (predicted >= low).all() and (predicted <= high).all()
    symmetric = model.policy.scale_action(predicted) * high  # what an unscaling assuming low == -high returns
    assert np.abs(symmetric - predicted).min() > 0.1  # so this test tells the two apart on every action
    meta = sb3_tar.export_actor(model, tmp_path / "actor.onnx")
    assert meta["action_low"] == [-1.0, 0.0] and meta["action_high"] == [3.0, 2.0]
    onnx_actions = ort.InferenceSession(str(tmp_path / "actor.onnx")).run(None, {"observation": obs})[0]
    sb3_tar.export_actor(model, tmp_path / "actor.pt")
    script_actions = torch.jit.load(str(tmp_path / "actor.pt"))(torch.as_tensor(obs)).numpy()
    for actions in (onnx_actions, script_actions):
        np.testing.assert_allclose(actions, predicted, atol=1e-5, rtol=0)


class ImageEnv(gym.Env):
    """36x36 RGB images (the smallest NatureCNN takes), channels-last like most image environments."""

    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, channels_first: bool = False) -> None:
        shape = (3, 36, 36) if channels_first else (36, 36, 3)
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def run_file(path, obs: np.ndarray) -> np.ndarray:
    """Run an exported ONNX or TorchScript file the way a user does (float32 observations)."""
    obs = obs.astype(np.float32)
    if str(path).endswith(".onnx"):
        return ort.InferenceSession(str(path)).run(None, {"observation": obs})[0]
    return torch.jit.load(str(path))(torch.as_tensor(obs)).numpy()


@pytest.fixture(scope="module")
def image_model():
    from stable_baselines3 import SAC

    return SAC("CnnPolicy", ImageEnv(), buffer_size=100, seed=0, device="cpu")


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_export_actor_takes_images_in_the_layout_predict_takes(image_model, suffix, tmp_path):
    """SB3 trains on channels-first images (VecTransposeImage) while the environment and ``predict`` give
    channels-last ones: the file takes the environment's layout by default, records it, and channels-first
    when asked; both compute ``predict``'s actions."""
    model = image_model
    assert model.policy.observation_space.shape == (3, 36, 36)  # SB3 transposed the environment
    images = np.random.default_rng(0).integers(0, 256, size=(20, 36, 36, 3), dtype=np.uint8)  # the env's layout
    predicted = model.predict(images, deterministic=True)[0]
    meta = sb3_tar.export_actor(model, tmp_path / f"last{suffix}")
    assert meta["observation_layout"] == "channels_last" and meta["observation_shape"] == [36, 36, 3]
    assert meta["policy_observation_shape"] == [3, 36, 36]
    np.testing.assert_allclose(run_file(tmp_path / f"last{suffix}", images), predicted, atol=1e-5, rtol=0)

    first = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(model.predict(first, deterministic=True)[0], predicted, atol=1e-6, rtol=0)
    meta = sb3_tar.export_actor(model, tmp_path / f"first{suffix}", observation_layout="channels_first")
    assert meta["observation_layout"] == "channels_first" and meta["observation_shape"] == [3, 36, 36]
    np.testing.assert_allclose(run_file(tmp_path / f"first{suffix}", first), predicted, atol=1e-5, rtol=0)
    assert sb3_tar.read_export_metadata(tmp_path / f"first{suffix}")["observation_layout"] == "channels_first"


def test_export_actor_image_layout_defaults_and_refusals(image_model, tmp_path):
    """No environment to tell (a loaded model, a bare policy): channels-last. A channels-first environment:
    channels-first. A layout for non-image observations, or an unknown one, is refused with the reason."""
    from stable_baselines3 import SAC

    image_model.save(tmp_path / "model.zip")
    loaded = SAC.load(tmp_path / "model.zip", device="cpu")
    assert loaded.env is None
    assert sb3_tar.export_actor(loaded, tmp_path / "a.pt")["observation_layout"] == "channels_last"
    assert sb3_tar.export_actor(image_model.policy, tmp_path / "b.pt")["observation_layout"] == "channels_last"
    native = SAC("CnnPolicy", ImageEnv(channels_first=True), buffer_size=100, seed=0, device="cpu")
    assert sb3_tar.export_actor(native, tmp_path / "c.pt")["observation_layout"] == "channels_first"
    flat = SAC("MlpPolicy", "Pendulum-v1", buffer_size=100, device="cpu")
    assert sb3_tar.export_actor(flat, tmp_path / "d.pt")["observation_layout"] is None
    with pytest.raises(ValueError, match="image observations only"):
        sb3_tar.export_actor(flat, tmp_path / "e.pt", observation_layout="channels_last")
    with pytest.raises(ValueError, match="observation_layout='NHWC' is not allowed"):
        sb3_tar.export_actor(native, tmp_path / "f.pt", observation_layout="NHWC")


def test_read_export_metadata_is_a_top_level_name(tmp_path):
    """``sb3_tar.read_export_metadata`` in a fresh process that never ran ``export_actor``."""
    from stable_baselines3 import SAC

    sb3_tar.export_actor(SAC("MlpPolicy", "Pendulum-v1", buffer_size=100, device="cpu"), tmp_path / "actor.onnx")
    code = (
        "import sys; from sb3_tar import read_export_metadata; "
        "assert 'sb3_tar.sb3.persistence.export' in sys.modules "
        "and read_export_metadata(sys.argv[1])['observation_shape'] == [3]"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-c", code, str(tmp_path / "actor.onnx")]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def _clipped_gaussian_case(algo: str, folder) -> tuple[list[str], np.ndarray, np.ndarray]:
    """PPO/A2C on :class:`AsymmetricBoundsEnv` with its head scaled so that the means fall below ``low``, above
    ``high`` and between, exported to ONNX and TorchScript (checked here): the files, the observations and the
    actions ``predict(deterministic=True)`` gives for them."""
    from stable_baselines3 import A2C, PPO

    from sb3_tar.callbacks import TARCallback

    settings = dict(n_steps=64, batch_size=32, n_epochs=2) if algo == "ppo" else dict(n_steps=8)
    model = {"ppo": PPO, "a2c": A2C}[algo](
        "MlpPolicy", AsymmetricBoundsEnv(), seed=0, device="cpu", policy_kwargs=dict(net_arch=[32, 32]), **settings
    )
    model.learn(128, callback=TARCallback(sparsity=0.9, seed=0))
    head = model.policy.action_net
    with torch.no_grad():
        kept_weights = head.values if isinstance(head, SparseLinear) else head.weight  # on the kernel: its kept values
        kept_weights.copy_(torch.sign(kept_weights) * 40.0)  # pruned weights are 0.0: their sign keeps them at zero
        head.bias.zero_()
    obs = np.random.default_rng(0).uniform(-1.0, 1.0, size=(500, 3)).astype(np.float32)
    low, high = AsymmetricBoundsEnv.action_space.low, AsymmetricBoundsEnv.action_space.high
    with torch.no_grad():  # centre each dimension's means on its interval, whatever the trained signs made of them
        means = model.policy.get_distribution(torch.as_tensor(obs)).distribution.mean.numpy()
        head.bias.copy_(torch.as_tensor((low + high) / 2 - np.median(means, axis=0)))
    predicted = model.predict(obs, deterministic=True)[0]
    for dim in range(2):  # clipped below, clipped above and inside, in each dimension
        column = predicted[:, dim]
        assert (column == low[dim]).sum() > 10 and (column == high[dim]).sum() > 10
        assert ((column > low[dim]) & (column < high[dim])).sum() > 10
    files = [str(folder / "actor.onnx"), str(folder / "actor.pt")]
    metas = [sb3_tar.export_actor(model, path) for path in files]
    assert all(m["actor"] == "gaussian_mean" and m["action_low"] == [-1.0, 0.0] for m in metas)
    names = [layer["name"] for layer in metas[0]["layers"]]
    assert names == ["mlp_extractor.policy_net.0", "mlp_extractor.policy_net.2", "action_net"]
    kept = sum(int((layer.weight != 0).sum()) for layer in (*model.policy.mlp_extractor.policy_net[::2], head))
    assert metas[0]["kept"] == kept == round(0.1 * (3 * 32 + 32 * 32 + 32 * 2))
    return files, obs, predicted


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_export_actor_of_ppo_a2c_clips_the_mean_as_predict_does(algo, exported_on_policy_dqn):
    """PPO/A2C on a Box action space with low != -high: the exported file returns the Gaussian's mean clipped to
    [low, high], as ``predict(deterministic=True)`` does, in a fresh process. The trained head is scaled up (its pruned
    weights stay zero: kept weights become +-40) so that the means fall below ``low``, above ``high`` and between: every
    branch of the clip runs."""
    files, predicted = exported_on_policy_dqn["clip", algo]
    for path in files:
        np.testing.assert_allclose(np.load(path + ".actions.npy"), predicted, atol=1e-5, rtol=0)


def _discrete_case(algo: str, folder) -> tuple[list[str], np.ndarray, np.ndarray]:
    """90%-sparse PPO or DQN on CartPole-v1 exported to ONNX and TorchScript (checked here): the files, the
    observations and the actions ``predict(deterministic=True)`` gives for them (both actions among them)."""
    from stable_baselines3 import DQN, PPO

    from sb3_tar.callbacks import TARCallback

    if algo == "ppo":
        model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu")
    else:
        model = DQN("MlpPolicy", "CartPole-v1", learning_starts=50, train_freq=8, seed=0, device="cpu")
    model.learn(256, callback=TARCallback(sparsity=0.9, seed=0))
    scale = np.array([2.4, 3.0, 0.21, 3.0], np.float32)
    obs = (np.random.default_rng(0).uniform(-1.0, 1.0, size=(1000, 4)) * scale).astype(np.float32)
    predicted = model.predict(obs, deterministic=True)[0]
    assert predicted.dtype == np.int64 and predicted.shape == (1000,)
    assert set(np.unique(predicted).tolist()) == {0, 1}  # the argmax is exercised both ways
    files = [str(folder / "actor.onnx"), str(folder / "actor.pt")]
    metas = [sb3_tar.export_actor(model, path) for path in files]
    assert all(m["actor"] == ("categorical" if algo == "ppo" else "q_argmax") and m["action_n"] == 2 for m in metas)
    assert metas[0]["kept"] == round(0.1 * (4 * 64 + 64 * 64 + 64 * 2))
    return files, obs, predicted


@pytest.fixture(scope="module")
def exported_on_policy_dqn(tmp_path_factory) -> dict:
    """The PPO/A2C clipped-mean and the PPO/DQN discrete exports, run in one fresh process where sb3-tar cannot be
    imported (onnxruntime and TorchScript only): by (case, algo), the files (each ``.actions.npy`` beside it) and
    ``predict``'s actions."""
    root = tmp_path_factory.mktemp("export_on_policy_dqn")
    out, jobs = {}, []
    for case, algo, build in [*(("clip", a, _clipped_gaussian_case) for a in ("ppo", "a2c"))] + [
        *(("discrete", a, _discrete_case) for a in ("ppo", "dqn"))
    ]:
        folder = root / f"{case}-{algo}"
        folder.mkdir()
        files, obs, predicted = build(algo, folder)
        np.save(folder / "obs.npy", obs)
        out[case, algo] = (files, predicted)
        jobs.append((RUN_EXPORTED, [json.dumps(files), folder / "obs.npy"]))
    for job in run_fresh(jobs, without="sb3_tar"):
        assert job.error is None, job.error
    return out


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_export_actor_of_discrete_ppo_and_dqn_gives_predicts_actions(algo, exported_on_policy_dqn):
    """PPO (the categorical's most likely action) and DQN (the greedy action) on CartPole-v1, 90%-sparse: the exported
    file's int64 actions are ``predict(deterministic=True)``'s, both actions among them, in a fresh process."""
    files, predicted = exported_on_policy_dqn["discrete", algo]
    for path in files:
        actions = np.load(path + ".actions.npy")
        assert actions.dtype == np.int64
        np.testing.assert_array_equal(actions, predicted)
