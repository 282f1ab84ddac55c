"""Write a sparse model as a plain SB3 file that loads without sb3-tar (thin SB3 glue).

A model saved by a ``SparsePolicy`` or a sb3-tar callback names an sb3-tar policy class and holds
``weight_mask`` buffers and a few sb3-tar buffers in its policy's state dict, so loading it needs sb3-tar.
:func:`to_sb3` rewrites such a file (or a model in memory) for SB3's own policy class (``MlpPolicy``,
``CnnPolicy`` or ``MultiInputPolicy`` of SAC, TD3, TQC, PPO, A2C or DQN): the masks are baked into the weights (exact zeros
at pruned positions) and dropped with the other sb3-tar entries; everything else (hyperparameters, the
optimizers' state, the entropy coefficient, ``num_timesteps``) is kept as saved. ``SAC.load`` /
``TD3.load`` / ``TQC.load`` then open it where sb3-tar is not installed, and it predicts the same actions.

The plain model is a *dense* model with zeros in it: nothing keeps those zeros if it is trained further.
"""

from __future__ import annotations

import inspect
import io
import os
import pathlib
import pickle
from typing import Any

import cloudpickle
import torch
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import load_from_zip_file, save_to_zip_file

from sb3_tar.sb3.execution.mask_store import MASK_BUFFER
from sb3_tar.sb3.policies import DST_DEFAULTS, SPARSITY_DEFAULTS

_PACKAGE = "sb3_tar"
#: Model attributes sb3-tar adds (the callbacks' per-layer reports): not part of a plain SB3 file.
_SB3_TAR_DATA = ("sb3_tar_reports",)


def plain_policy_class(policy_class: type) -> type:
    """
    :param policy_class: The policy class a model was saved with (a ``SparsePolicy``, a ``MaskedPolicy``, or plain).
    :return: The first SB3 policy class among its bases that is not sb3-tar's (``SACPolicy`` for ``sb3_tar.sac.SparsePolicy``).
    :raises TypeError: If there is none.
    """
    for cls in getattr(policy_class, "__mro__", ()):
        if isinstance(cls, type) and issubclass(cls, BasePolicy) and not cls.__module__.startswith(_PACKAGE):
            return cls
    raise TypeError(f"{policy_class!r} is not an SB3 policy class")


def _plain_kwargs(plain_class: type, policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``policy_kwargs`` without the sb3-tar options (those of ``SparsePolicy``, and any the plain class does not take)."""
    parameters = inspect.signature(plain_class.__init__).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    return {
        k: v
        for k, v in policy_kwargs.items()
        if k not in SPARSITY_DEFAULTS and k not in DST_DEFAULTS and (open_ended or k in parameters)
    }


def _sb3_tar_modules(value: Any) -> set[str]:
    """The sb3-tar modules that unpickling ``value`` (as SB3 saves it, with cloudpickle) would import."""
    found: set[str] = set()

    class _Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if module == _PACKAGE or module.startswith(_PACKAGE + "."):
                found.add(module)
            return super().find_class(module, name)

    try:
        _Recorder(io.BytesIO(cloudpickle.dumps(value))).load()
    except Exception:  # not picklable: SB3 does not save it either
        pass
    return found


def _read(model_or_path: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The saved ``(data, params, pytorch_variables)`` of a model, from its file or by saving it into memory."""
    if isinstance(model_or_path, (str, os.PathLike)):
        path = pathlib.Path(model_or_path)
        if not path.exists() and path.with_suffix(".zip").exists():
            path = path.with_suffix(".zip")
        if not path.is_file():
            raise FileNotFoundError(f"No saved model at {os.fspath(model_or_path)!r}")
        source: Any = path
    elif hasattr(model_or_path, "save") and hasattr(model_or_path, "policy"):
        source = io.BytesIO()
        model_or_path.save(source)
        source.seek(0)
    else:
        raise TypeError(f"to_sb3 expects an SB3 model or the path of a saved one, got {type(model_or_path).__name__}")
    data, params, variables = load_from_zip_file(source, device="cpu")
    if data is None or "policy_class" not in data or "policy" not in params:
        raise ValueError(f"{model_or_path!r} is not a saved SB3 model (no policy class or policy parameters)")
    return data, params, variables


def _plain_state_dict(policy_state: dict[str, torch.Tensor], plain_policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The entries of a plain policy's state dict from a sparse one: masks baked into the weights, sb3-tar entries dropped."""
    state = dict(policy_state)
    for key, mask in policy_state.items():
        if key.endswith("." + MASK_BUFFER):
            weight_key = key[: -len(MASK_BUFFER)] + "weight"
            weight = state[weight_key]
            state[weight_key] = torch.where(mask.to(weight.device) != 0, weight, torch.zeros_like(weight))
    expected = plain_policy.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise ValueError(f"The saved policy lacks entries a plain {type(plain_policy).__name__} needs: {missing}")
    out = {}
    for key, want in expected.items():
        if state[key].shape != want.shape:
            raise ValueError(f"{key} has shape {tuple(state[key].shape)}, a plain policy needs {tuple(want.shape)}")
        out[key] = state[key]
    plain_policy.load_state_dict(out, strict=True)  # what SB3's load will do
    return out


def to_sb3(model_or_path: Any, out_path: str | os.PathLike) -> str:
    """
    Write a sparse SAC, TD3, TQC, PPO, A2C or DQN model (a ``SparsePolicy`` model or one made sparse by a sb3-tar callback)
    as a plain SB3 file: SB3's own policy class (``MlpPolicy`` for a ``SparsePolicy``), the pruned weights
    baked in as exact zeros, no ``weight_mask`` buffers and no sb3-tar entries. ``SAC.load`` (``TD3.load``,
    ``TQC.load``) opens it where sb3-tar is not installed and it predicts the same actions (identical on the
    masked dense path; the sparse kernel's sums may differ in the last float bit). Use it to share a model,
    upload it to the Hugging Face Hub (``rl_zoo3.push_to_hub``) or deploy it with plain SB3. A dense model
    (or a file that needs no change) is written as it is. The input is not changed.

    :param model_or_path: An SB3 model, or the path of a saved one (``.zip`` may be left out).
    :param out_path: The file to write (SB3 adds ``.zip`` when there is no suffix); its folder must exist.
    :return: The path written.
    :raises TypeError: If ``model_or_path`` is neither an SB3 model nor a path, or its policy is not an SB3 policy.
    :raises FileNotFoundError: If the path does not exist.
    :raises ValueError: If the saved policy cannot be expressed as a plain SB3 policy.
    """
    out = pathlib.Path(out_path)
    if out.suffix == "":
        out = out.with_suffix(".zip")
    data, params, variables = _read(model_or_path)
    plain_class = plain_policy_class(data["policy_class"])
    kwargs = _plain_kwargs(plain_class, data.get("policy_kwargs", {}))
    build_kwargs = {k: v for k, v in kwargs.items() if k != "device"}
    with torch.random.fork_rng(devices=[]):  # building the policy draws weights: leave torch's global stream as it was
        plain_policy = plain_class(data["observation_space"], data["action_space"], lambda _: 0.0, **build_kwargs)
    params = dict(params, policy=_plain_state_dict(params["policy"], plain_policy))
    data = dict(data, policy_class=plain_class, policy_kwargs=kwargs)
    for key in _SB3_TAR_DATA:
        data.pop(key, None)
    needing = {key: sorted(mods) for key, value in data.items() if (mods := _sb3_tar_modules(value))}
    if needing:
        raise ValueError(f"Saved entries {needing} still need sb3-tar to load; the plain file was not written")
    save_to_zip_file(out, data=data, params=params, pytorch_variables=variables)
    return os.fspath(out)
