"""Export the deterministic actor of an SAC/TD3/TQC/PPO/A2C/DQN model, sparse or not, to ONNX or TorchScript (thin SB3 glue).

:func:`export_actor` writes one file computing what ``model.predict(obs, deterministic=True)`` returns:
the observation is preprocessed as SB3 does (``float()``, images divided by 255), passed through the actor's
features extractor and layers, squashed with ``tanh`` (SAC/TQC; TD3's actor ends with its own ``Tanh``) and
unscaled from ``[-1, 1]`` to the action space's ``[low, high]``. The output is therefore the *environment*
action, not SB3's scaled action in ``[-1, 1]``. PPO and A2C: the Gaussian's mean (the policy branch and
``action_net``) clipped to ``[low, high]`` as ``predict`` clips it, or for a ``Discrete`` action space the most likely
action; DQN: the greedy action (``argmax`` of ``q_net``). A ``VecNormalize`` of the training environment is not in
the file (``predict`` does not apply it either): normalize the observations as the environment did.

The exported graph is *dense-equivalent*: every linear layer is a plain dense matrix product whose weight holds
the kept weights and exact zeros at pruned positions (a layer running on the sparse C++ kernel is converted
back to its dense form). ONNX Runtime and TorchScript then run their own dense kernels, so the file is as large
and, per call, as fast as the dense network's; the sparsity is recorded in the file's metadata
(:func:`read_export_metadata`): per layer, its shape and its kept count.

Image observations: SB3 trains on channels-first images (``VecTransposeImage`` transposes an environment's
channels-last images) and ``predict`` accepts either layout. An exported file has one fixed input shape, so
:func:`export_actor` takes the layout the file receives (``observation_layout``; by default the environment's:
channels-last when the model's environment is transposed, or when the model has no environment to tell) and
records it in the metadata (``observation_layout``, ``observation_shape``); a channels-last file transposes
inside its graph, as ``predict`` does.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from torch import nn

#: File suffixes and the format each selects when ``export_actor``'s ``format`` is not given.
SUFFIXES: dict[str, str] = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript", ".ts": "torchscript"}
FORMATS: tuple[str, ...] = ("onnx", "torchscript")
#: Key of the metadata: an ONNX ``metadata_props`` entry, a TorchScript extra file (``sb3_tar.json``).
METADATA_KEY = "sb3_tar"
_TORCHSCRIPT_FILE = METADATA_KEY + ".json"
ONNX_OPSET = 18
#: Layouts of image observations ``export_actor`` accepts: ``(C, H, W)`` as SB3's policy holds them, ``(H, W, C)``
#: as most image environments (and ``predict``) give them.
LAYOUTS: tuple[str, ...] = ("channels_first", "channels_last")


def _policy_of(model: Any) -> nn.Module:
    policy = getattr(model, "policy", model)
    from sb3_tar.sb3.networks import is_actor_critic_policy, is_q_policy

    if isinstance(policy, nn.Module) and (
        isinstance(getattr(policy, "actor", None), nn.Module) or is_actor_critic_policy(policy) or is_q_policy(policy)
    ):
        return policy
    raise TypeError(
        f"export_actor expects an SB3 SAC, TD3, TQC, PPO, A2C or DQN model (or its policy), got {type(model).__name__}: "
        "it has no policy.actor, ActorCriticPolicy or DQNPolicy"
    )


def _plain_linear(layer: nn.Linear) -> nn.Linear:
    """A plain ``nn.Linear`` (CPU, float32) with ``layer``'s weight, zeros at pruned positions baked in, and bias."""
    weight = layer.weight.detach().to("cpu", torch.float32)
    mask = getattr(layer, "weight_mask", None)
    if mask is not None:
        weight = torch.where(mask.detach().to("cpu") != 0, weight, torch.zeros_like(weight))
    plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        plain.weight.copy_(weight)
        if layer.bias is not None:
            plain.bias.copy_(layer.bias.detach().to("cpu", torch.float32))
    return plain.requires_grad_(False)


def _plain_copy(module: nn.Module, prefix: str, layers: list[dict[str, Any]]) -> nn.Module:
    """
    A CPU float32 copy of ``module`` whose linear layers (masked ``nn.Linear`` or ``SparseLinear``) are plain
    ``nn.Linear`` with the pruned weights at zero; appends one record per layer to ``layers``.
    """
    if isinstance(module, nn.Linear):
        mask = getattr(module, "weight_mask", None)
        total = module.in_features * module.out_features
        layers.append(
            {
                "name": prefix,
                "shape": [module.out_features, module.in_features],
                "kept": int((mask != 0).sum()) if mask is not None else total,
                "total": total,
            }
        )
        return _plain_linear(module)
    children = dict(module.named_children())
    copies = {name: _plain_copy(child, f"{prefix}.{name}" if prefix else name, layers) for name, child in children.items()}
    shell = copy.copy(module)  # the module's own parameters, buffers and settings, without its children
    shell._modules = {}  # type: ignore[assignment]
    shell = copy.deepcopy(shell)
    for name, child in copies.items():
        shell._modules[name] = child  # type: ignore[index]
    return shell.to("cpu", torch.float32).requires_grad_(False)


class DeterministicActor(nn.Module):
    """
    ``observation -> action`` as ``model.predict(observation, deterministic=True)`` computes it, from a copy of
    a policy's action path with dense (mask-baked) linear layers:

    - SAC, TQC (``"squashed_gaussian"``): ``tanh`` of the actor's mean, unscaled to ``[low, high]``;
    - TD3 (``"deterministic"``): the actor's output (it ends with ``Tanh``), unscaled to ``[low, high]``;
    - PPO, A2C with a ``Box`` action space (``"gaussian_mean"``): the mean, ``action_net`` on the policy branch
      ``mlp_extractor.policy_net``, clipped to ``[low, high]`` as ``predict`` does (``tanh`` and unscaled instead
      when the policy squashes its output, gSDE's ``squash_output=True``);
    - PPO, A2C with a ``Discrete`` action space (``"categorical"``): the most likely action, ``argmax`` of the logits;
    - DQN (``"q_argmax"``): the greedy action, ``argmax`` of ``q_net`` (``predict(deterministic=True)`` never
      explores).

    :param policy: ``model.policy`` of an SAC, TD3, TQC, PPO, A2C or DQN model with a ``Box`` observation space
        and a ``Box`` action space (``Discrete`` too for PPO, A2C and DQN).
    :param observation_layout: For image observations, the layout of the observations the actor receives:
        ``"channels_first"`` (the policy's own, ``(C, H, W)``) or ``"channels_last"`` (``(H, W, C)``, transposed
        in the graph as ``predict`` does). ``None``: the policy's own layout (and the only one for other spaces).
    :raises TypeError: If the policy is none of these.
    :raises ValueError: If the observation or action space is not one of these, or the layout is not one the
        observation space allows.
    """

    def __init__(self, policy: nn.Module, observation_layout: str | None = None) -> None:
        super().__init__()
        from sb3_tar.sb3.networks import is_actor_critic_policy, is_q_policy

        discrete_ok = is_actor_critic_policy(policy) or is_q_policy(policy)
        allowed = (spaces.Box, spaces.Discrete) if discrete_ok else (spaces.Box,)
        for what, space, kinds in (
            ("observation", policy.observation_space, (spaces.Box,)),
            ("action", policy.action_space, allowed),
        ):
            if not isinstance(space, kinds):
                raise ValueError(
                    f"export_actor supports {' and '.join(k.__name__ for k in kinds)} {what} spaces here, got "
                    f"{type(space).__name__}: export a Dict-observation policy with SB3's recipe instead"
                )
        #: One record per exported linear layer: ``name``, ``shape`` ``[out, in]``, ``kept`` and ``total`` weights.
        self.layer_records: list[dict[str, Any]] = []
        self.discrete = isinstance(policy.action_space, spaces.Discrete)
        self.squash = False
        self.clip = False
        if is_q_policy(policy):
            self.algorithm_actor = "q_argmax"  # DQN: the greedy action
            features, body, names = policy.q_net.features_extractor, [policy.q_net.q_net], ("q_net.q_net",)
        elif is_actor_critic_policy(policy):
            features = policy.pi_features_extractor
            body = [policy.mlp_extractor.policy_net, policy.action_net]
            names = ("mlp_extractor.policy_net", "action_net")
            if self.discrete:
                self.algorithm_actor = "categorical"  # PPO/A2C, Discrete: the mode of the categorical
            else:
                self.algorithm_actor = "gaussian_mean"  # PPO/A2C, Box: the Gaussian's mean, clipped as predict does
                self.squash = bool(policy.squash_output)
                self.clip = not self.squash
        else:
            actor = policy.actor
            features = actor.features_extractor
            if hasattr(actor, "latent_pi") and isinstance(getattr(actor, "mu", None), nn.Module):
                self.algorithm_actor = "squashed_gaussian"  # SAC, TQC: tanh of the mean
                body, names = [actor.latent_pi, actor.mu], ("latent_pi", "mu")
                self.squash = True
            elif isinstance(getattr(actor, "mu", None), nn.Module):
                self.algorithm_actor = "deterministic"  # TD3: mu ends with Tanh
                body, names = [actor.mu], ("mu",)
            else:
                raise TypeError(f"Unsupported actor {type(actor).__name__}: expected an SB3 SAC, TD3 or TQC actor")
        self.features_extractor = _plain_copy(features, "features_extractor", self.layer_records)
        self.body = nn.Sequential(
            *(_plain_copy(module, name, self.layer_records) for module, name in zip(body, names))
        ).requires_grad_(False)
        self.observation_space = policy.observation_space
        self.normalize_images = bool(getattr(policy, "normalize_images", True))
        #: The input layout (``None`` for non-image observations) and the input shape without the batch.
        self.observation_layout = _check_layout(policy.observation_space, observation_layout)
        self.transpose = self.observation_layout == "channels_last"
        shape = tuple(policy.observation_space.shape)
        self.input_shape = (shape[1], shape[2], shape[0]) if self.transpose else shape
        if not self.discrete:
            low = torch.as_tensor(policy.action_space.low, dtype=torch.float32)
            high = torch.as_tensor(policy.action_space.high, dtype=torch.float32)
            self.register_buffer("action_low", low)
            self.register_buffer("action_high", high)
            self.register_buffer("action_scale", high - low)
        self.eval()

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        """
        :param observation: ``(batch, *input_shape)``: ``observation_space.shape``, or its channels-last form.
        :return: Actions as ``predict`` returns them: ``(batch, *action_space.shape)`` float32 in the action space's
            bounds, or ``(batch,)`` int64 for a ``Discrete`` action space.
        """
        from stable_baselines3.common.preprocessing import preprocess_obs

        if self.transpose:  # (batch, H, W, C) -> (batch, C, H, W), as SB3's VecTransposeImage and predict do
            observation = observation.permute(0, 3, 1, 2)
        x = preprocess_obs(observation, self.observation_space, normalize_images=self.normalize_images)
        a = self.body(self.features_extractor(x))
        if self.discrete:
            return torch.argmax(a, dim=1)
        if self.clip:
            return torch.maximum(torch.minimum(a, self.action_high), self.action_low)
        if self.squash:
            a = torch.tanh(a)
        return self.action_low + 0.5 * (a + 1.0) * self.action_scale


def _check_layout(space: spaces.Space, layout: str | None) -> str | None:
    """
    :return: The layout of image observations (``layout``, or the space's own when ``None``), ``None`` for others.
    :raises ValueError: If ``layout`` is unknown, or not one the space allows (a non-image space, or a
        channels-last request for a space that is not channels-first).
    """
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"observation_layout={layout!r} is not allowed: use one of {list(LAYOUTS)} (or None)")
    image = isinstance(space, spaces.Box) and is_image_space(space, check_channels=False)
    if not image:
        if layout is not None:
            raise ValueError(
                f"observation_layout={layout!r} applies to image observations only; this observation space is {space}"
            )
        return None
    own = "channels_first" if is_image_space_channels_first(space) else "channels_last"  # type: ignore[arg-type]
    if layout is None or layout == own:
        return own
    if own == "channels_first":  # channels-last input, transposed in the graph as predict does
        return layout
    raise ValueError(
        f"observation_layout={layout!r}: the policy's observation space {space.shape} is {own.replace('_', '-')}, and "
        "SB3 transposes channels-last images to channels-first only (predict does not accept this layout either)"
    )


def _default_layout(model: Any, policy: nn.Module) -> str | None:
    """
    The layout ``predict`` receives from the model's environment: channels-last when SB3 transposed a channels-last
    image environment (``VecTransposeImage``) or when there is no environment to tell (a policy, a model loaded
    without one: image environments are mostly channels-last); the policy's own layout otherwise.
    """
    space = policy.observation_space
    if _check_layout(space, None) != "channels_first":
        return _check_layout(space, None)
    env = getattr(model, "env", None) if model is not policy else None
    if env is None:
        return "channels_last"
    from stable_baselines3.common.vec_env import VecTransposeImage, is_vecenv_wrapped

    return "channels_last" if is_vecenv_wrapped(env, VecTransposeImage) else "channels_first"


def _metadata(model: Any, policy: nn.Module, actor: DeterministicActor, fmt: str) -> dict[str, Any]:
    kept = sum(r["kept"] for r in actor.layer_records)
    total = sum(r["total"] for r in actor.layer_records)
    from sb3_tar import __version__

    return {
        "producer": f"sb3-tar {__version__}",
        "format": fmt,
        "algorithm": type(model).__name__ if model is not policy else None,
        "policy_class": type(policy).__name__,
        "input": "observation: float32 (batch, *observation_shape), as passed to model.predict",
        "output": (
            "action: int64 (batch,), the greedy/most likely action (what model.predict returns)"
            if actor.discrete
            else "action: float32 (batch, *action_space.shape), in the action space's bounds (what model.predict returns)"
        ),
        "actor": actor.algorithm_actor,
        "observation_shape": list(actor.input_shape),
        "observation_layout": actor.observation_layout,
        "policy_observation_shape": list(policy.observation_space.shape),
        **(
            {"action_n": int(policy.action_space.n)}
            if actor.discrete
            else {
                "action_low": np.asarray(policy.action_space.low, dtype=np.float64).tolist(),
                "action_high": np.asarray(policy.action_space.high, dtype=np.float64).tolist(),
            }
        ),
        "graph": "dense-equivalent: dense matrix products, pruned weights stored as exact zeros",
        "layers": actor.layer_records,
        "kept": kept,
        "total": total,
        "sparsity": 1.0 - kept / total if total else 0.0,
    }


def _resolve_format(path: str, fmt: str | None) -> str:
    if fmt is None:
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in SUFFIXES:
            raise ValueError(f"Cannot tell the format from the suffix of {path!r}: use one of {sorted(SUFFIXES)} or format=")
        return SUFFIXES[suffix]
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not allowed: use one of {list(FORMATS)}")
    return fmt


def _export_onnx(actor: DeterministicActor, example: torch.Tensor, path: str, metadata: dict[str, Any]) -> None:
    try:
        import onnx
    except ImportError as e:
        raise ImportError("ONNX export needs the onnx and onnxscript packages: pip install 'sb3-tar[export]'") from e
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        actor,
        (example,),
        input_names=["observation"],
        output_names=["action"],
        dynamic_shapes={"observation": {0: batch}},
        opset_version=ONNX_OPSET,
        dynamo=True,
        verbose=False,
    )
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    proto.doc_string = "Deterministic actor exported by sb3-tar: observation -> action (as model.predict)."
    onnx.save(proto, path)


def _export_torchscript(actor: DeterministicActor, example: torch.Tensor, path: str, metadata: dict[str, Any]) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(actor, example, check_inputs=[(example[:1],)])
    torch.jit.save(traced, path, _extra_files={_TORCHSCRIPT_FILE: json.dumps(metadata)})


def export_actor(
    model: Any,
    path: str | os.PathLike,
    format: str | None = None,  # noqa: A002
    observation_layout: str | None = None,
) -> dict[str, Any]:
    """
    Export the deterministic actor of an SAC, TD3, TQC, PPO, A2C or DQN model (sparse or dense, any execution path)
    to a file that computes ``model.predict(observation, deterministic=True)``: environment actions, ``tanh``
    squashing and unscaling to the action space included (SAC, TD3, TQC), the Gaussian's mean clipped to the
    action space (PPO, A2C with a ``Box`` action space), the most likely action (PPO, A2C with a ``Discrete`` one:
    int64) or the greedy action (DQN: int64); see :class:`DeterministicActor`. The model is not changed.

    ONNX needs the ``onnx`` and ``onnxscript`` packages (``pip install 'sb3-tar[export]'``); run the file with
    ``onnxruntime.InferenceSession(path).run(None, {"observation": obs})[0]``, ``obs`` a float32 array
    ``(batch, *observation_shape)``. A TorchScript file runs with ``torch.jit.load(path)(obs)``.

    Image observations: ``predict`` accepts channels-first and channels-last images, a file one layout (its
    metadata's ``observation_layout`` and ``observation_shape``): by default the environment's, i.e.
    channels-last ``(H, W, C)`` when SB3 transposed the model's environment or the model has none, else
    channels-first ``(C, H, W)`` (the policy's own).

    :param model: An SB3 SAC, TD3, TQC, PPO, A2C or DQN model (or its ``policy``) with a ``Box`` observation space
        and a ``Box`` action space (or ``Discrete`` for PPO, A2C and DQN).
    :param path: The file to write (its folder must exist).
    :param format: ``"onnx"`` or ``"torchscript"``; by default from the suffix (``.onnx``; ``.pt``, ``.pth``, ``.ts``).
    :param observation_layout: Image observations only: ``"channels_last"`` or ``"channels_first"``, the layout
        the file receives (default: the environment's, see above).
    :return: The metadata written into the file (see :func:`read_export_metadata`): per layer its name, shape,
        ``kept`` and ``total`` weight counts, and overall ``kept``, ``total`` and ``sparsity``; the input's
        ``observation_shape`` and ``observation_layout`` (``None`` for non-image observations).
    :raises TypeError: If ``model`` is not an SAC/TD3/TQC/PPO/A2C/DQN model or policy.
    :raises ValueError: If a space is not a ``Box``, the format is unknown, or ``observation_layout`` is given
        for a non-image observation space or is a layout its space does not allow.
    :raises ImportError: For ONNX without the ``onnx``/``onnxscript`` packages.
    """
    path = os.fspath(path)
    fmt = _resolve_format(path, format)
    policy = _policy_of(model)
    layout = observation_layout if observation_layout is not None else _default_layout(model, policy)
    actor = DeterministicActor(policy, layout)
    metadata = _metadata(model, policy, actor, fmt)
    low, high = policy.observation_space.low, policy.observation_space.high
    sample = np.where(np.isfinite(low) & np.isfinite(high), (np.nan_to_num(low) + np.nan_to_num(high)) / 2, 0.0)
    if actor.transpose:
        sample = np.transpose(sample, (1, 2, 0))
    example = torch.as_tensor(np.stack([sample, sample]), dtype=torch.float32)
    if fmt == "onnx":
        _export_onnx(actor, example, path, metadata)
    else:
        _export_torchscript(actor, example, path, metadata)
    return metadata


def read_export_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """
    The metadata :func:`export_actor` wrote into a file.

    :param path: An ``.onnx`` file (read with ``onnx``) or a TorchScript file.
    :return: The metadata dict (``layers``: per layer ``name``, ``shape``, ``kept``, ``total``; ``sparsity``; ...).
    :raises ValueError: If the file holds no sb3-tar metadata.
    """
    path = os.fspath(path)
    if _resolve_format(path, None) == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        if METADATA_KEY not in props:
            raise ValueError(f"{path} holds no sb3-tar metadata (no {METADATA_KEY!r} metadata entry)")
        return json.loads(props[METADATA_KEY])
    extra = {_TORCHSCRIPT_FILE: ""}
    torch.jit.load(path, map_location="cpu", _extra_files=extra)
    if not extra[_TORCHSCRIPT_FILE]:
        raise ValueError(f"{path} holds no sb3-tar metadata (no {_TORCHSCRIPT_FILE} extra file)")
    return json.loads(extra[_TORCHSCRIPT_FILE])
