"""Exact checkpoints of an SB3 off-policy run, sparse state included, and their resume (thin SB3 glue).

A checkpoint is a folder ``<directory>/step_<num_timesteps>/`` written under a temporary name and renamed
when complete (a killed run leaves either a whole checkpoint or none), holding:

- ``model.zip``: the model as ``model.save()`` writes it: the policy with its ``weight_mask`` buffers (online
  and target), the actor/critic optimizers (and SAC/TQC's entropy-coefficient optimizer), the DST schedule
  (``model.sb3_tar_dst_state`` or a ``SparsePolicy``'s buffers), ``num_timesteps``, ``_n_updates``,
  ``_episode_num``, the last observation, the episode-info buffers and TD3's action noise;
- ``replay_buffer.pkl``: the replay buffer, its filled part only (SB3 allocates all ``buffer_size`` rows up
  front; the rows not yet written are zeros and are allocated again on load);
- ``state.pkl``: what ``model.save()`` does not keep: the random state of Python's ``random``, NumPy and
  torch, the random state of the model's action and observation spaces, the state of every layer of the
  training environment (vectorized env wrappers, each env's gymnasium wrappers and the env itself: its own
  random generator, physical state, step counters, the ``Monitor``'s episode counters and CSV file), the
  counters of every callback of the run and the evaluation history of each ``EvalCallback`` with the state of
  its evaluation environment (and its ``best_model.zip``);
- ``meta.json`` (written last): format, package versions, the run's configuration and training settings
  (:func:`_signature`), the size and SHA-256 of every file, and what ran the run (:func:`provenance`: package
  commit and source digest, hardware), one entry per start of the run.

:func:`load_checkpoint` checks all of it and reads every file *before* it changes anything, then restores the
run in place: the model object (and the callbacks, environments and replay buffer it trains with) continue
from the checkpoint's step as if never interrupted. A checkpoint of another run (another configuration,
other training settings or package versions) raises :class:`CheckpointMismatch` naming every differing
field, a truncated or corrupted file :class:`CheckpointError` naming the file; the run is then unchanged
(global random state included), so it can start from step 0. Like an SB3 ``.zip``, a checkpoint is unpickled:
load only checkpoints your own runs wrote.

:class:`ExactCheckpointCallback` does both inside ``learn()``: it resumes from the latest checkpoint when
training starts and writes one every ``save_freq`` steps, between a gradient step and the next environment
step, where the whole state of the loop is in the objects above.

Exactness: on CPU of the same type (instruction set), with the same torch and number of threads, a run resumed
from a checkpoint takes the same actions, gradient steps and evaluations as the uninterrupted run, bit for bit
(tested with SAC, TD3, TARCallback, DSTCallback and RL-Zoo's ``EvalCallback``). Not covered: ``SubprocVecEnv``
(its envs live in other processes: refused), gSDE (``use_sde=True``: its noise is redrawn at the start of each
rollout, after the checkpoint), callbacks with state other than the counters of SB3's own callbacks (unless
they define ``checkpoint_state()`` / ``restore_checkpoint_state(state)``) and env attributes that cannot be
pickled (listed in ``meta.json`` under ``not_saved``).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import inspect
import json
import math
import os
import pickle
import random
import shutil
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    EventCallback,
    EveryNTimesteps,
    ProgressBarCallback,
    StopTrainingOnMaxEpisodes,
    StopTrainingOnNoModelImprovement,
)
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper
from torch import nn

from sb3_tar.core.config import check_int

#: Version of the checkpoint layout; a checkpoint of another version is refused (2: the match covers what changes
#: training, ``meta.json`` records the package commit and the hardware).
CHECKPOINT_FORMAT = 2
META_FILE = "meta.json"
MODEL_FILE = "model.zip"
BUFFER_FILE = "replay_buffer.pkl"
STATE_FILE = "state.pkl"
PREFIX = "step_"
_TMP_PREFIX = ".tmp_"
_REFUSED_PREFIX = "refused_"
#: Prefix of the checkpoints of a run that reached its end (never resumed, never deleted).
FINISHED_PREFIX = "finished_"
#: Default ``save_freq`` (environment steps): a checkpoint every ~10 minutes of a one-hour CPU cell.
DEFAULT_SAVE_FREQ = 50_000

#: Attributes of an environment layer that link to the next layer (restored by walking the chain, not copied).
_LINKS = frozenset({"env", "venv", "envs"})
#: Model attributes bound to this process (its environment, logger, device), never taken from a checkpoint.
_MODEL_KEEP = frozenset(
    {"env", "_vec_normalize_env", "_logger", "_custom_logger", "replay_buffer", "observation_space", "action_space"}
    | {"device", "tensorboard_log", "verbose", "n_envs"}
)
#: State (besides ``n_calls`` and ``num_timesteps``) of SB3's own callbacks.
_CALLBACK_STATE: dict[type, tuple[str, ...]] = {
    EvalCallback: (
        "best_mean_reward",
        "last_mean_reward",
        "evaluations_results",
        "evaluations_timesteps",
        "evaluations_length",
        "evaluations_successes",
        "_is_success_buffer",
    ),
    StopTrainingOnNoModelImprovement: ("last_best_mean_reward", "no_improvement_evals"),
    EveryNTimesteps: ("last_time_trigger",),
    StopTrainingOnMaxEpisodes: ("n_episodes",),
}


class CheckpointError(ValueError):
    """
    A checkpoint that cannot be resumed (incomplete, truncated, corrupted, of another configuration or of other
    package versions). Raised before anything of the run is changed.

    :param path: The file (or checkpoint folder) at fault.
    :param reason: Why it is refused.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"checkpoint file {self.path} refused: {reason}")


class CheckpointMismatch(CheckpointError):
    """
    A whole checkpoint written by another run: another ``config``, other training settings (callback arguments,
    seed, policy architecture, algorithm hyperparameters, environment id and arguments, environment layers) or
    other package versions. Never resumed; :class:`ExactCheckpointCallback` sets the folder's checkpoints aside
    (or raises it, with ``strict=True``) instead of falling back to an older one.

    :param path: The checkpoint's ``meta.json``.
    :param reason: What differs.
    """


# -- helpers -------------------------------------------------------------------------------------------------
def package_versions() -> dict[str, str]:
    """:return: The versions a checkpoint must be resumed with (exactness depends on every one of them)."""
    from sb3_tar import __version__

    return {
        "sb3_tar": __version__,
        "stable_baselines3": stable_baselines3.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
        "python": ".".join(map(str, sys.version_info[:2])),
        "format": str(CHECKPOINT_FORMAT),
    }


def _normalized(config: Any) -> Any:
    """``config`` as JSON reads it back (tuples become lists), so stored and requested compare equal."""
    return json.loads(json.dumps(config, sort_keys=True, default=repr))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rng_state() -> dict[str, Any]:
    state = {"random": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])


def _name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _describe(value: Any, depth: int = 0) -> Any:
    """
    A JSON description of a setting that is the same in two processes given the same setting: numbers, strings,
    containers and dataclasses by value, arrays by value (or a digest when large), classes and functions by
    qualified name (not module: a class moved to another module still matches), objects by their ``repr`` unless it
    holds a memory address (then by class name).
    """
    if depth > 8:
        return type(value).__qualname__
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # NaN != NaN: compare its text
    if isinstance(value, enum.Enum):
        return _describe(value.value, depth + 1)
    if isinstance(value, np.generic):
        return _describe(value.item(), depth + 1)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.size <= 64:
            return {"array": _describe(value.tolist(), depth + 1), "dtype": str(value.dtype)}
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return {"shape": list(value.shape), "dtype": str(value.dtype), "sha256": digest}
    if isinstance(value, type):
        return value.__qualname__
    if dataclasses.is_dataclass(value):
        fields = {f.name: _describe(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
        return {"class": type(value).__qualname__, **fields}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple (SB3's TrainFreq)
        return {key: _describe(item, depth + 1) for key, item in zip(value._fields, value)}
    if isinstance(value, (list, tuple)):
        return [_describe(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): _describe(item, depth + 1) for key, item in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (set, frozenset)):
        return sorted((_describe(item, depth + 1) for item in value), key=repr)
    if isinstance(value, (gym.Env, VecEnv, BaseCallback, nn.Module, torch.optim.Optimizer)):
        return {"class": type(value).__qualname__}
    if callable(value) and hasattr(value, "__qualname__"):  # a function (e.g. a learning-rate schedule)
        return value.__qualname__
    text = repr(value)
    if " at 0x" in text or len(text) > 2000:
        return {"class": type(value).__qualname__}
    return text


#: Algorithm arguments that do not change what is trained (or are matched on their own).
_NOT_HYPERPARAMETERS = frozenset(
    {"self", "policy", "env", "seed", "policy_kwargs", "verbose", "tensorboard_log", "device", "_init_setup_model"}
    | {"stats_window_size", "supported_action_spaces"}
)
#: Arguments of a callback that only change what it prints.
_NOT_SETTINGS = frozenset({"self", "verbose", "args", "kwargs"})


def _init_arguments(obj: Any, skip: frozenset[str]) -> dict[str, Any]:
    """The arguments of ``type(obj).__init__`` that ``obj`` keeps under their own name (or with a leading ``_``), described."""
    try:
        names = list(inspect.signature(type(obj).__init__).parameters)
    except (TypeError, ValueError):
        return {}
    out: dict[str, Any] = {}
    for name in names:
        if name in skip:
            continue
        for attribute in (name, f"_{name}"):
            if attribute in vars(obj):
                out[name] = _describe(vars(obj)[attribute])
                break
    return out


def callback_settings(callback: BaseCallback) -> dict[str, Any]:
    """
    :param callback: A callback of a checkpointed run.
    :return: Its settings as they enter the checkpoint match: ``callback.checkpoint_settings()`` if it defines it (as
        sb3-tar's sparse callbacks do), else its constructor's arguments that it keeps as attributes of the same
        name (``verbose`` left out).
    """
    own = getattr(callback, "checkpoint_settings", None)
    if callable(own):
        return _describe(own())
    return _init_arguments(callback, _NOT_SETTINGS)


#: Callbacks that never change what is trained: they only display, log or write files of their own.
HARMLESS_CALLBACKS: tuple[type, ...] = (ProgressBarCallback, CheckpointCallback, CallbackList)


def is_harmless(callback: BaseCallback) -> bool:
    """
    Whether a callback can be added to, removed from or changed in a resumed run without changing its training.

    Harmless: SB3's ``ProgressBarCallback`` (``learn(progress_bar=True)``), ``CheckpointCallback`` and
    ``CallbackList`` (structure only), :class:`ExactCheckpointCallback`, a callback whose class sets
    ``checkpoint_harmless = True``, and an ``EvalCallback`` with ``deterministic=True`` and no callback of its own
    (``callback_on_new_best`` / ``callback_after_eval``, which may stop training): its evaluation episodes run on
    their own environment and a deterministic policy draws no random number. An ``EvalCallback`` with
    ``deterministic=False`` draws SAC/TQC's action noise from the global torch generator, which training shares:
    it changes the run and is matched like any other callback.

    :param callback: A callback.
    :return: ``True`` if harmless.
    """
    if isinstance(callback, (ExactCheckpointCallback, *HARMLESS_CALLBACKS)) or getattr(callback, "checkpoint_harmless", False):
        return True
    if type(callback) is EvalCallback:  # a subclass may do more than evaluate
        children = (callback.callback, getattr(callback, "callback_after_eval", None))
        return bool(callback.deterministic) and all(child is None for child in children)
    return False


def _policy_kind(policy: Any) -> str:
    """The class of a policy as its user built it (a policy that a callback gave masks keeps its plain class's name)."""
    from sb3_tar.sb3.policies import MaskedPolicyMixin

    for cls in type(policy).__mro__:
        if not issubclass(cls, MaskedPolicyMixin):
            return cls.__qualname__
    return type(policy).__qualname__  # pragma: no cover - the mixin alone is never a policy


def _env_description(venv: VecEnv) -> list[Any]:
    """
    Each env's id and arguments (its ``EnvSpec``; its class where it has none) and the arguments of its gymnasium
    wrappers (those that record them, e.g. ``TimeLimit``'s ``max_episode_steps``).
    """
    out: list[Any] = []
    for env in getattr(venv.unwrapped, "envs", []):
        spec = getattr(env.unwrapped, "spec", None) or getattr(env, "spec", None)
        if spec is None:
            entry: dict[str, Any] = {"class": type(env.unwrapped).__qualname__}
        else:
            entry = {"id": spec.id, "kwargs": _describe(spec.kwargs), "max_episode_steps": spec.max_episode_steps}
        wrappers = []
        layer = env
        while isinstance(layer, gym.Wrapper):
            saved = getattr(layer, "_saved_kwargs", None)  # gymnasium's RecordConstructorArgs
            arguments = {k: v for k, v in saved.items() if k != "env"} if isinstance(saved, dict) else {}
            wrappers.append({"class": type(layer).__qualname__, "arguments": _describe(arguments)})
            layer = layer.env
        entry["wrappers"] = wrappers
        out.append(entry)
    return out


def flatten_callbacks(callback: BaseCallback | Iterable[BaseCallback] | None) -> list[BaseCallback]:
    """
    :param callback: A callback (a ``CallbackList`` included) or a list of them.
    :return: Every callback of the tree, depth first (a ``CallbackList`` before its children, an
        ``EventCallback`` before the callback it triggers), each once.
    """
    out: list[BaseCallback] = []
    seen: set[int] = set()

    def visit(cb: Any) -> None:
        if not isinstance(cb, BaseCallback) or id(cb) in seen:
            return
        seen.add(id(cb))
        out.append(cb)
        if isinstance(cb, CallbackList):
            for child in cb.callbacks:
                visit(child)
        if isinstance(cb, EventCallback):
            visit(cb.callback)
        visit(getattr(cb, "callback_after_eval", None))

    if callback is None:
        return out
    for cb in [callback] if isinstance(callback, BaseCallback) else list(callback):
        visit(cb)
    return out


# -- environments --------------------------------------------------------------------------------------------
def _env_layers(venv: VecEnv) -> list[Any]:
    """Every layer of a vectorized env: its wrappers, the ``DummyVecEnv``, then each env's gymnasium wrappers and the env."""
    layers: list[Any] = []
    while isinstance(venv, VecEnvWrapper):
        layers.append(venv)
        venv = venv.venv
    if not isinstance(venv, DummyVecEnv):
        raise TypeError(
            f"Exact checkpoints need the environments in this process (DummyVecEnv), got {type(venv).__name__}: "
            "use vec_env_cls=DummyVecEnv (RL-Zoo: --vec-env dummy, its default)"
        )
    layers.append(venv)
    for env in venv.envs:
        while True:
            layers.append(env)
            if not isinstance(env, gym.Wrapper):
                break
            env = env.env
    return layers


def _capture_env(venv: VecEnv, not_saved: list[str], where: str) -> list[dict[str, Any]]:
    states = []
    for layer in _env_layers(venv):
        attributes = {}
        for key, value in vars(layer).items():
            if key in _LINKS:
                continue
            if isinstance(layer, Monitor) and key == "results_writer":
                continue  # its CSV's content is saved below
            try:
                attributes[key] = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # a renderer, an open file, a lock: reported in meta.json
                not_saved.append(f"{where}: {type(layer).__name__}.{key}")
        state: dict[str, Any] = {"class": _name(layer), "attributes": attributes}
        writer = getattr(layer, "results_writer", None) if isinstance(layer, Monitor) else None
        if writer is not None and getattr(writer, "file_handler", None) is not None:
            writer.file_handler.flush()
            state["monitor_csv"] = Path(writer.file_handler.name).read_text()
        states.append(state)
    return states


def _check_env(venv: VecEnv, states: list[dict[str, Any]], path: Path, where: str) -> list[Any]:
    layers = _env_layers(venv)
    found = [_name(layer) for layer in layers]
    stored = [state["class"] for state in states]
    if found != stored:
        raise CheckpointError(path, f"the {where} environment differs: stored layers {stored}, this run's {found}")
    return layers


def _unpickle_env(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(state, attributes={k: pickle.loads(v) for k, v in state["attributes"].items()}) for state in states]


def _restore_space(current: gym.spaces.Space, saved: gym.spaces.Space) -> None:
    """Give ``current`` the state (random generator included) of ``saved``, keeping the object (it is shared)."""
    vars(current).update(vars(saved))


def _restore_value(layer: Any, key: str, value: Any) -> None:
    current = vars(layer).get(key)
    if isinstance(current, gym.spaces.Space) and type(current) is type(value):
        _restore_space(current, value)
    elif isinstance(current, np.random.Generator) and isinstance(value, np.random.Generator):
        current.bit_generator.state = value.bit_generator.state
    else:
        vars(layer)[key] = value


def _restore_env(layers: list[Any], states: list[dict[str, Any]]) -> None:
    for layer, state in zip(layers, states):
        for key, value in state["attributes"].items():
            _restore_value(layer, key, value)
        if "monitor_csv" in state and getattr(layer, "results_writer", None) is not None:
            handle = layer.results_writer.file_handler
            handle.seek(0)
            handle.truncate()
            handle.write(state["monitor_csv"])
            handle.flush()


# -- callbacks -----------------------------------------------------------------------------------------------
def _callback_state(cb: BaseCallback, not_saved: list[str], index: int) -> dict[str, Any]:
    state: dict[str, Any] = {"class": _name(cb), "n_calls": cb.n_calls, "num_timesteps": cb.num_timesteps, "attributes": {}}
    for kind, keys in _CALLBACK_STATE.items():
        if isinstance(cb, kind):
            state["attributes"].update({key: getattr(cb, key) for key in keys if hasattr(cb, key)})
    if hasattr(cb, "checkpoint_state") and callable(cb.checkpoint_state):
        state["custom"] = cb.checkpoint_state()
    if isinstance(cb, EvalCallback):
        state["eval_env"] = _capture_env(cb.eval_env, not_saved, f"callback {index} ({type(cb).__name__}) eval_env")
        best = Path(cb.best_model_save_path) / "best_model.zip" if cb.best_model_save_path else None
        if best is not None and best.is_file():
            state["best_model"] = best.read_bytes()
    return state


def _restore_callback(cb: BaseCallback, state: dict[str, Any], eval_layers: list[Any] | None) -> None:
    cb.n_calls = state["n_calls"]
    cb.num_timesteps = state["num_timesteps"]
    for key, value in state["attributes"].items():
        setattr(cb, key, value)
    if "custom" in state:
        cb.restore_checkpoint_state(state["custom"])
    if isinstance(cb, EvalCallback):
        if eval_layers is not None:
            _restore_env(eval_layers, state["eval_env"])
        if "best_model" in state and cb.best_model_save_path:
            os.makedirs(cb.best_model_save_path, exist_ok=True)
            (Path(cb.best_model_save_path) / "best_model.zip").write_bytes(state["best_model"])
        if cb.log_path is not None and len(cb.evaluations_timesteps) > 0:  # the file as EvalCallback last wrote it
            kwargs = {"successes": cb.evaluations_successes} if len(cb.evaluations_successes) > 0 else {}
            os.makedirs(os.path.dirname(cb.log_path) or ".", exist_ok=True)
            np.savez(
                cb.log_path,
                timesteps=cb.evaluations_timesteps,
                results=cb.evaluations_results,
                ep_lengths=cb.evaluations_length,
                **kwargs,
            )


# -- replay buffer -------------------------------------------------------------------------------------------
class _Rows:
    """The first ``rows`` rows of a ``buffer_size``-row array of a replay buffer (the rest are zeros)."""

    def __init__(self, array: np.ndarray, rows: int) -> None:
        self.shape, self.dtype, self.rows = array.shape, array.dtype, np.ascontiguousarray(array[:rows])

    def expand(self) -> np.ndarray:
        array = np.zeros(self.shape, dtype=self.dtype)
        array[: len(self.rows)] = self.rows
        return array


def _save_buffer(buffer: Any, path: Path) -> None:
    """Pickle a replay buffer with only its written rows (its ``buffer_size``-row arrays cut to ``pos``)."""
    size = int(buffer.buffer_size)
    rows = size if buffer.full else int(buffer.pos)
    state = dict(buffer.__getstate__())

    def compact(value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == size:
            return _Rows(value, rows)
        if isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
            return {k: compact(v) for k, v in value.items()}
        return value

    with open(path, "wb") as f:
        pickle.dump((type(buffer), {key: compact(value) for key, value in state.items()}), f, protocol=pickle.HIGHEST_PROTOCOL)


def _load_buffer(path: Path) -> Any:
    with open(path, "rb") as f:
        cls, state = pickle.load(f)

    def expand(value: Any) -> Any:
        if isinstance(value, _Rows):
            return value.expand()
        if isinstance(value, dict):
            return {k: expand(v) for k, v in value.items()}
        return value

    buffer = cls.__new__(cls)
    state = {key: expand(value) for key, value in state.items()}
    if hasattr(buffer, "__setstate__"):
        buffer.__setstate__(state)
    else:
        vars(buffer).update(state)
    return buffer


# -- save ----------------------------------------------------------------------------------------------------
def _check_model(model: Any) -> None:
    if not isinstance(model, OffPolicyAlgorithm):
        raise TypeError(f"Exact checkpoints support off-policy algorithms (SAC, TD3, TQC, DDPG), got {type(model).__name__}")
    if model.env is None:
        raise ValueError("The model has no environment: checkpoints are taken while it trains (inside learn())")


def _signature(model: Any, callbacks: Sequence[BaseCallback]) -> dict[str, Any]:
    """
    What must match between a checkpoint and the run resuming it, besides the user's configuration: everything that
    changes training. The algorithm and its hyperparameters, the model's seed, the policy's class and ``policy_kwargs``
    (``net_arch`` ...), the spaces, ``n_envs``, each env's id and arguments, and each callback that may change training
    (class name, not module, and settings: a sparse callback's sparsity, seed, schedule ...). Harmless callbacks
    (:func:`is_harmless`) are left out.
    """
    return {
        "algorithm": _name(model),
        "hyperparameters": _init_arguments(model, _NOT_HYPERPARAMETERS),
        "seed": _describe(model.seed),
        "policy": {"class": _policy_kind(model.policy), "kwargs": _describe(model.policy_kwargs)},
        "observation_space": repr(model.observation_space),
        "action_space": repr(model.action_space),
        "n_envs": int(model.n_envs),
        "env": _env_description(model.env),
        "callbacks": [
            {"class": type(cb).__qualname__, "settings": callback_settings(cb)} for cb in callbacks if not is_harmless(cb)
        ],
    }


def _callback_keys(callbacks: Sequence[BaseCallback]) -> list[str]:
    """A key per callback that survives harmless callbacks added or removed: class name and its occurrence index."""
    seen: dict[str, int] = {}
    keys = []
    for cb in callbacks:
        name = type(cb).__qualname__
        keys.append(f"{name}#{seen.get(name, 0)}")
        seen[name] = seen.get(name, 0) + 1
    return keys


def provenance(threads: int | None = None) -> dict[str, Any]:
    """
    What ran a checkpoint: the package (``commit``: git HEAD of the sb3-tar checkout, ``dirty``, ``version``, and
    ``source_sha256``: a digest of the package's Python sources, which tells two installed wheels without git apart)
    and the hardware (:func:`sb3_tar.experiments.provenance.hardware_info`: CPU model and instruction set, torch
    version and CPU kernel level, threads). Exact resume needs the same hardware and code; a resume under other ones
    is allowed but said (:class:`ExactCheckpointCallback`).

    :param threads: The run's thread count (default: see ``hardware_info``).
    :return: ``{"package": {...}, "hardware": {...}}``.
    """
    from sb3_tar.experiments.provenance import hardware_info
    from sb3_tar.experiments.runner import package_commit

    package = dict(package_commit())
    package["source_sha256"] = _source_digest()
    return {"package": package, "hardware": hardware_info(threads)}


def _source_digest() -> str:
    """SHA-256 over the package's ``.py`` files (relative path and content, in sorted order)."""
    root = Path(__file__).resolve().parents[2]  # sb3_tar/
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*.py")):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file or a folder (its entries: a rename inside it) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    model: OffPolicyAlgorithm,
    directory: str | os.PathLike,
    callbacks: BaseCallback | Iterable[BaseCallback] | None = None,
    config: Any = None,
    keep: int = 1,
    history: list[dict[str, Any]] | None = None,
) -> Path:
    """
    Write a checkpoint of a training run into ``directory/step_<num_timesteps>/`` (see the module docstring),
    atomically: it is written under a temporary name, every file and the folder are flushed to the disk
    (``fsync``), and it is renamed when complete; only then (the rename flushed too) are older checkpoints
    removed. A failed write (a full disk: ``OSError``) removes the partial folder and raises; the checkpoints
    already there are untouched.

    :param model: The SAC/TD3/TQC/DDPG model being trained (with its env).
    :param directory: Folder of the run's checkpoints (created if needed).
    :param callbacks: The callbacks of the ``learn()`` call (their counters and evaluation history are saved).
    :param config: A JSON-serialisable description of the run's configuration; resuming with another is refused.
    :param keep: How many checkpoints to keep in ``directory`` (the oldest are removed), ``>= 1``.
    :param history: What ran the run so far, one :func:`provenance` entry (with ``from_step``) per start: the first
        run and each resume, recorded in ``meta.json`` (default: this process only).
    :return: The checkpoint's folder.
    :raises TypeError: For a model that is not off-policy, or envs outside this process (``SubprocVecEnv``).
    :raises ValueError: If ``keep < 1`` or the model has no environment.
    :raises OSError: If the checkpoint cannot be written (nothing of it is left behind).
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep={keep!r} is outside the allowed range [1, inf)")
    _check_model(model)
    callbacks = flatten_callbacks(callbacks)
    if history is None:
        history = [dict(provenance(), from_step=0)]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob(f"{_TMP_PREFIX}*"):  # from a save killed part-way
        shutil.rmtree(leftover, ignore_errors=True)
    name = f"{PREFIX}{int(model.num_timesteps):012d}"
    tmp = directory / f"{_TMP_PREFIX}{name}_{os.getpid()}"
    try:
        _write(model, tmp, callbacks, config, history)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final = directory / name
    replaced = None
    if final.exists():  # the same step saved again (e.g. a resumed run): replace it, removing the old one last
        replaced = directory / f"{_TMP_PREFIX}old_{name}_{os.getpid()}"
        os.replace(final, replaced)
    os.replace(tmp, final)
    _fsync(directory)  # the rename is on the disk before any older checkpoint goes
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    for old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write(model: Any, tmp: Path, callbacks: list[BaseCallback], config: Any, history: list[dict[str, Any]]) -> None:
    """Write a checkpoint's files into ``tmp`` (``meta.json`` last), each flushed to the disk, then the folder."""
    tmp.mkdir()
    not_saved: list[str] = []
    keys = _callback_keys(callbacks)
    state = {
        "rng": _rng_state(),
        "action_space": pickle.dumps(model.action_space),
        "observation_space": pickle.dumps(model.observation_space),
        "env": _capture_env(model.env, not_saved, "training env"),
        "callbacks": [dict(_callback_state(cb, not_saved, i), key=keys[i]) for i, cb in enumerate(callbacks)],
    }
    model.save(tmp / MODEL_FILE)
    _save_buffer(model.replay_buffer, tmp / BUFFER_FILE)
    with open(tmp / STATE_FILE, "wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
    for file in (MODEL_FILE, BUFFER_FILE, STATE_FILE):
        _fsync(tmp / file)
    files = {
        file: {"bytes": (tmp / file).stat().st_size, "sha256": _sha256(tmp / file)}
        for file in (MODEL_FILE, BUFFER_FILE, STATE_FILE)
    }
    meta = {
        "format": CHECKPOINT_FORMAT,
        "num_timesteps": int(model.num_timesteps),
        "versions": package_versions(),
        "config": _normalized(config),
        "signature": _normalized(_signature(model, callbacks)),
        "harmless_callbacks": [type(cb).__qualname__ for cb in callbacks if is_harmless(cb)],
        "provenance": history[-1] if history else None,
        "history": history,
        "files": files,
        "not_saved": not_saved,
    }
    with open(tmp / META_FILE, "w") as f:
        json.dump(meta, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    _fsync(tmp)


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """
    :param directory: Folder of a run's checkpoints.
    :return: Its complete checkpoints (folders ``step_<n>`` with a ``meta.json``), oldest first.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.glob(f"{PREFIX}*"):
        step = path.name[len(PREFIX) :]
        if path.is_dir() and step.isdigit() and (path / META_FILE).is_file():
            found.append((int(step), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """:return: The newest complete checkpoint in ``directory``, or ``None``."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


# -- load ----------------------------------------------------------------------------------------------------
def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """
    :param path: A checkpoint folder.
    :return: Its ``meta.json``.
    :raises CheckpointError: If it is missing or unreadable.
    """
    meta_path = Path(path) / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError as e:
        raise CheckpointError(meta_path, "missing: the checkpoint is incomplete") from e
    except (OSError, ValueError) as e:
        raise CheckpointError(meta_path, f"unreadable ({e})") from e
    if not isinstance(meta, dict) or not {"format", "versions", "config", "signature", "files"} <= set(meta):
        raise CheckpointError(meta_path, "not a checkpoint description of this package")
    return meta


def _differences(stored: Any, requested: Any) -> str:
    if isinstance(stored, dict) and isinstance(requested, dict):
        keys = sorted(set(stored) | set(requested))
        diff = {k: (stored.get(k), requested.get(k)) for k in keys if stored.get(k) != requested.get(k)}
        return f"(stored, requested) = {diff}"
    return f"stored {stored!r}, requested {requested!r}"


_MISSING = "<absent>"


def differing_fields(stored: Any, requested: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """
    :param stored: A JSON value (e.g. a checkpoint's signature).
    :param requested: Another one (this run's).
    :param prefix: The dotted path of these two values inside the whole (``""`` at the top; used by the recursion).
    :return: ``(path, stored, requested)`` for each leaf that differs, ``path`` dotted (``callbacks[1].settings.seed``).
    """
    if isinstance(stored, dict) and isinstance(requested, dict):
        out = []
        for key in sorted(set(stored) | set(requested)):
            where = f"{prefix}.{key}" if prefix else str(key)
            out += differing_fields(stored.get(key, _MISSING), requested.get(key, _MISSING), where)
        return out
    if isinstance(stored, list) and isinstance(requested, list) and len(stored) == len(requested):
        out = []
        for i, (a, b) in enumerate(zip(stored, requested)):
            out += differing_fields(a, b, f"{prefix}[{i}]")
        return out
    return [] if stored == requested else [(prefix or "value", stored, requested)]


def _describe_fields(fields: list[tuple[str, Any, Any]], limit: int = 12) -> str:
    text = "; ".join(f"{path}: checkpoint {a!r}, this run {b!r}" for path, a, b in fields[:limit])
    return text + (f"; and {len(fields) - limit} more" if len(fields) > limit else "")


def _prepare(model: Any, path: Path, callbacks: list[BaseCallback], config: Any) -> dict[str, Any]:
    """Check a checkpoint and read all of it, changing nothing of the run (global random state aside)."""
    meta = read_meta(path)
    meta_path = path / META_FILE
    if meta["format"] != CHECKPOINT_FORMAT:
        raise CheckpointMismatch(
            meta_path, f"checkpoint format {meta['format']}, this package reads format {CHECKPOINT_FORMAT}"
        )
    for file, expected in meta["files"].items():
        file_path = path / file
        if not file_path.is_file():
            raise CheckpointError(file_path, "missing")
        size = file_path.stat().st_size
        if size != expected["bytes"]:
            raise CheckpointError(file_path, f"truncated or changed: {size} bytes, {expected['bytes']} written")
        if _sha256(file_path) != expected["sha256"]:
            raise CheckpointError(file_path, "corrupted: its SHA-256 differs from the one written")
    versions = package_versions()
    changed = {k: (meta["versions"].get(k), v) for k, v in versions.items() if meta["versions"].get(k) != v}
    if changed:
        described = ", ".join(f"{k} {old} (this run: {new})" for k, (old, new) in changed.items())
        raise CheckpointMismatch(meta_path, f"written with other package versions: {described}; exact resume needs the same")
    if meta["config"] != _normalized(config):
        difference = _differences(meta["config"], _normalized(config))
        raise CheckpointMismatch(meta_path, f"written for another configuration: {difference}")
    signature = _normalized(_signature(model, callbacks))
    if meta["signature"] != signature:
        fields = differing_fields(meta["signature"], signature)
        raise CheckpointMismatch(meta_path, f"written by a run with other training settings: {_describe_fields(fields)}")
    try:
        with open(path / STATE_FILE, "rb") as f:
            state = pickle.load(f)
        state["env"] = _unpickle_env(state["env"])
        for cb_state in state["callbacks"]:
            if "eval_env" in cb_state:
                cb_state["eval_env"] = _unpickle_env(cb_state["eval_env"])
        state["action_space"] = pickle.loads(state["action_space"])
        state["observation_space"] = pickle.loads(state["observation_space"])
    except Exception as e:
        raise CheckpointError(path / STATE_FILE, f"unreadable ({type(e).__name__}: {e})") from e
    env_layers = _check_env(model.env, state["env"], meta_path, "training")
    stored = {cb_state.get("key"): cb_state for cb_state in state["callbacks"]}
    pairs, notes = [], []
    for cb, key in zip(callbacks, _callback_keys(callbacks)):
        cb_state = stored.get(key)
        if cb_state is None:  # a harmless callback this run added (the match refused any other)
            notes.append(f"{type(cb).__name__} is new in this run: it starts with no history")
            pairs.append((cb, None, None))
            continue
        layers = None
        if "eval_env" in cb_state:
            try:
                layers = _check_env(cb.eval_env, cb_state["eval_env"], meta_path, "evaluation")
            except CheckpointError:
                if not is_harmless(cb):
                    raise
                notes.append(f"{type(cb).__name__}'s evaluation environment changed: it starts with no history")
                pairs.append((cb, None, None))
                continue
        pairs.append((cb, cb_state, layers))
    try:
        buffer = _load_buffer(path / BUFFER_FILE)
    except Exception as e:
        raise CheckpointError(path / BUFFER_FILE, f"unreadable ({type(e).__name__}: {e})") from e
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = type(model).load(path / MODEL_FILE, env=None, device=model.device, print_system_info=False)
    except Exception as e:
        raise CheckpointError(path / MODEL_FILE, f"unreadable ({type(e).__name__}: {e})") from e
    counters = next(
        (c for c in state["callbacks"] if c.get("key", "").startswith(f"{ExactCheckpointCallback.__qualname__}#")), None
    )
    return {
        "state": state,
        "buffer": buffer,
        "model": loaded,
        "env_layers": env_layers,
        "pairs": pairs,
        "notes": notes,
        "meta": meta,
        "n_calls": None if counters is None else counters["n_calls"],
    }


def load_checkpoint(
    model: OffPolicyAlgorithm,
    path: str | os.PathLike,
    callbacks: BaseCallback | Iterable[BaseCallback] | None = None,
    config: Any = None,
) -> int:
    """
    Restore a training run from a checkpoint written by :func:`save_checkpoint`, in place: ``model`` takes the
    checkpoint's policy (weights, masks, optimizers, DST schedule), counters and replay buffer; its environment
    and the callbacks' evaluation environments, counters and history, and the global random state, are set
    back to the checkpoint's. Everything is checked and read before anything changes.

    Call it when ``learn()`` has set the run up and before its first step (:class:`ExactCheckpointCallback`
    does, when training starts, before the sparse callbacks' own start), with ``learn(..., reset_num_timesteps=True)``:
    the loop then runs from the checkpoint's ``num_timesteps`` to the ``total_timesteps`` it was given.

    The checkpoint must come from a run with the same training settings (see :func:`_signature`: algorithm and
    hyperparameters, seed, policy class and ``policy_kwargs``, env id and arguments, the settings of every callback
    that may change training) and the same ``config``. Harmless callbacks (:func:`is_harmless`) may differ: one
    that the checkpoint does not know starts with no history (its counters set to the run's).

    Like an SB3 ``.zip``, a checkpoint is unpickled: load only checkpoints you wrote yourself.

    :param model: The model of the resumed run, built as in the interrupted one.
    :param path: A checkpoint folder (``.../step_<n>``).
    :param callbacks: The callbacks of the ``learn()`` call, as passed when the checkpoint was saved.
    :param config: The run's configuration, as passed when the checkpoint was saved.
    :return: The restored ``num_timesteps``.
    :raises CheckpointMismatch: If the checkpoint was written by another run (other ``config``, training settings or
        package versions).
    :raises CheckpointError: If it is incomplete, truncated or corrupted (the run is then unchanged, global random
        state included).
    """
    _check_model(model)
    callbacks = flatten_callbacks(callbacks)
    path = Path(path)
    before = _rng_state()
    try:
        prepared = _prepare(model, path, callbacks, config)
    except BaseException:
        _set_rng_state(before)  # loading the model reseeds the global generators
        raise
    state, loaded = prepared["state"], prepared["model"]
    for key, value in vars(loaded).items():
        if key not in _MODEL_KEEP:
            vars(model)[key] = value
    buffer = prepared["buffer"]
    buffer.device = model.device
    model.replay_buffer = buffer
    if hasattr(buffer, "set_env"):  # HerReplayBuffer: its env is not saved
        buffer.set_env(model.get_env())
    _restore_env(prepared["env_layers"], state["env"])
    _restore_space(model.observation_space, state["observation_space"])
    _restore_space(model.action_space, state["action_space"])
    for cb, cb_state, eval_layers in prepared["pairs"]:
        if cb_state is not None:
            _restore_callback(cb, cb_state, eval_layers)
        else:  # a new harmless callback: counts from the run's step, as if it had been there
            cb.num_timesteps = int(model.num_timesteps)
            if prepared["n_calls"] is not None:
                cb.n_calls = int(prepared["n_calls"])
    for note in prepared["notes"]:
        print(f"sb3-tar checkpoint {path}: {note}", file=sys.stderr, flush=True)
    _set_rng_state(state["rng"])
    return int(model.num_timesteps)


# -- callback ------------------------------------------------------------------------------------------------
class ExactCheckpointCallback(BaseCallback):
    """
    Checkpoint a run every ``save_freq`` environment steps and resume it exactly after an interruption.

    When training starts, if ``save_path`` holds a checkpoint, the run is restored from the newest one
    (:func:`load_checkpoint`): model, optimizers, replay buffer, masks and DST schedule, the environments,
    the other callbacks' counters and evaluation history, the random state. Then, every ``save_freq`` steps,
    between a gradient step and the next environment step, a checkpoint is written (:func:`save_checkpoint`;
    the older ones are removed once the new one is on the disk). Running the same script again after a kill
    therefore continues the run and ends where the uninterrupted run ends, bit for bit on CPU of the same type
    with the same number of threads.

    Put it first in the callback list, before ``TARCallback`` / ``DSTCallback``, so that they find the
    restored masks and schedule (they then continue, instead of pruning again); call ``learn()`` with the
    total number of steps of the whole run, as the first time.

    What is never resumed, and what is said:

    - **Another run** (:class:`CheckpointMismatch`): another ``config``, other training settings (a callback's
      arguments such as ``sparsity`` or ``seed``, the model's seed, ``policy_kwargs`` such as ``net_arch``, the
      algorithm's hyperparameters, the env id and arguments) or other package versions. Refused with a warning
      naming every differing field; all the folder's checkpoints are set aside (renamed ``refused_step_<n>``, with
      ``_2``, ``_3``, ... if that name is taken: never deleted) and the run starts from step 0. With
      ``strict=True`` it raises instead, changing nothing. Harmless callbacks (:func:`is_harmless`: progress bar,
      SB3's ``CheckpointCallback``, a deterministic ``EvalCallback`` ...) may be added, removed or changed.
    - **A damaged checkpoint** (missing, truncated or corrupted file): set aside as ``refused_step_<n>`` with a
      warning naming the file; the next older checkpoint is tried (with ``keep > 1``), and the run says which one
      it resumed from; if none is valid it starts from step 0.
    - **A finished run**: when ``learn()`` reaches its ``total_timesteps`` the run's checkpoints are renamed
      ``finished_step_<n>``. Running the script again says so and trains from step 0 (it neither resumes nor
      retrains the tail); the finished run's checkpoints stay.
    - **Other code or hardware**: each checkpoint records the package commit (or a digest of its sources) and the
      hardware (CPU model and instruction set, torch, threads), with one entry per start of the run
      (``meta.json``: ``history``). A resume under another commit or on other hardware is allowed, with a warning
      naming both: it is then not bit-identical to an uninterrupted run.
    - **A failed write** (a full disk): warned, the partial folder removed; training continues and the previous
      checkpoint stays. The next try comes ``save_freq`` steps later.

    A checkpoint, like an SB3 ``.zip``, is unpickled when resumed: keep only your own runs' files in ``save_path``.

    :param save_path: Folder of the checkpoints.
    :param save_freq: Environment steps between checkpoints (``>= 1``; ``0``: only resume, never save).
    :param config: JSON-serialisable description of the run (e.g. its hyperparameters): a checkpoint written
        with another one is refused.
    :param keep: Checkpoints kept in ``save_path`` (the newest), ``>= 1``.
    :param resume: Resume from the newest checkpoint when training starts (from step 0: a later ``learn()`` call
        of the same model, or a loaded model, continues as it is).
    :param strict: Raise :class:`CheckpointMismatch` when ``save_path`` holds a checkpoint of another run, instead
        of setting it aside and starting from step 0.
    :param verbose: 0: silent, 1: say when a run resumes and when a checkpoint is written.
    """

    def __init__(
        self,
        save_path: str | os.PathLike,
        save_freq: int = DEFAULT_SAVE_FREQ,
        config: Any = None,
        keep: int = 1,
        resume: bool = True,
        verbose: int = 1,
        strict: bool = False,
    ) -> None:
        super().__init__(check_int("verbose", verbose, 0))
        if not isinstance(save_path, (str, os.PathLike)):
            raise TypeError(f"save_path must be a str or os.PathLike, got {save_path!r}")
        if Path(save_path).exists() and not Path(save_path).is_dir():
            raise ValueError(f"save_path={str(save_path)!r} is a file, not a folder: checkpoints are folders inside it")
        if isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 0:
            raise ValueError(f"save_freq={save_freq!r} is outside the allowed range [0, inf)")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep={keep!r} is outside the allowed range [1, inf)")
        if not isinstance(resume, bool):
            raise TypeError(f"resume must be a bool, got {resume!r}")
        if not isinstance(strict, bool):
            raise TypeError(f"strict must be a bool, got {strict!r}")
        try:
            json.dumps(config)
        except TypeError as e:
            raise TypeError(f"config must be JSON-serialisable, got {config!r}: {e}") from e
        self.save_path = Path(save_path)
        self.save_freq = save_freq
        self.config = config
        self.keep = keep
        self.resume = resume
        self.strict = strict
        self.resumed_from: Path | None = None
        self.last_saved: Path | None = None
        #: What ran this run: one :func:`provenance` entry (with ``from_step``) per start, the resumed ones included.
        self.history: list[dict[str, Any]] = []
        self._callbacks: list[BaseCallback] = [self]
        self._saved_at = 0

    def _init_callback(self) -> None:
        _check_model(self.model)

    def _on_training_start(self) -> None:
        root = self.locals.get("callback") if self.locals else None
        self._callbacks = flatten_callbacks(root) if root is not None else [self]
        from sb3_tar.sb3.callbacks.sparse import SparseCallback

        mine = self._callbacks.index(self) if self in self._callbacks else 0
        early = [type(cb).__name__ for cb in self._callbacks[:mine] if isinstance(cb, SparseCallback)]
        if early:
            raise ValueError(
                f"{type(self).__name__} must come before {', '.join(early)} in the callback list, so that they "
                "find the restored masks and schedule"
            )
        _env_layers(self.model.env)  # refuse environments in other processes now, not at the first checkpoint
        for cb in self._callbacks:
            if isinstance(cb, EvalCallback):
                _env_layers(cb.eval_env)
        if getattr(self.model, "use_sde", False):
            warnings.warn(
                f"{type(self).__name__}: with use_sde=True a resumed run is not exact (gSDE redraws its noise at the "
                "start of each rollout, after the checkpoint)",
                stacklevel=2,
            )
        here = provenance()
        self.history = [dict(here, from_step=int(self.model.num_timesteps))]
        if self.resume and self.model.num_timesteps > 0:  # a later learn() call, or a loaded model: it goes on as it is
            if self.verbose >= 1 and list_checkpoints(self.save_path):
                print(
                    f"{type(self).__name__}: the model is at step {self.model.num_timesteps} already (a later learn() "
                    f"call or a loaded model): it continues as it is, nothing is resumed from {self.save_path}",
                    flush=True,
                )
        elif self.resume:
            self._resume(here)
        self._saved_at = int(self.model.num_timesteps)

    def _warn(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)
        warnings.warn(message, stacklevel=3)

    def _resume(self, here: dict[str, Any]) -> None:
        name = type(self).__name__
        candidates = list_checkpoints(self.save_path)
        if not candidates:
            finished = (
                sorted(p.name for p in self.save_path.glob(f"{FINISHED_PREFIX}{PREFIX}*")) if self.save_path.is_dir() else []
            )
            if finished:
                self._warn(
                    f"{name}: {self.save_path} holds a run that reached its end ({', '.join(finished)}): it is not resumed; "
                    "this run trains from step 0 (the finished run's checkpoints stay)"
                )
            return
        damaged: list[str] = []
        for path in reversed(candidates):
            try:
                step = load_checkpoint(self.model, path, self._callbacks, self.config)
            except CheckpointMismatch as e:
                if self.strict:
                    raise
                moved = [_set_aside(p, _REFUSED_PREFIX).name for p in list_checkpoints(self.save_path)]
                self._warn(
                    f"{name}: {e}. It belongs to another run and is not resumed; the checkpoints of {self.save_path} are "
                    f"kept as {', '.join(moved)}; training starts from step 0 (strict=True raises instead)"
                )
                return
            except CheckpointError as e:
                moved = _set_aside(path, _REFUSED_PREFIX)
                damaged.append(path.name)
                older = [p for p in candidates if p < path]
                then = f"trying the older checkpoint {older[-1].name}" if older else "training starts from step 0"
                self._warn(f"{name}: {e}; moved to {moved.name}, {then}")
                continue
            self.resumed_from = path
            self._check_provenance(path, here)
            if damaged:
                self._warn(
                    f"{name}: resumed from the older checkpoint {path} at step {step}, the newer {', '.join(damaged)} "
                    "being damaged: the steps after it are trained again"
                )
            if self.verbose >= 1:
                print(f"{name}: resumed from {path} at step {step}", flush=True)
            return

    def _check_provenance(self, path: Path, here: dict[str, Any]) -> None:
        """Keep the run's history and say when it continues under another commit or on other hardware."""
        from sb3_tar.experiments.provenance import same_hardware

        meta = read_meta(path)
        history = [entry for entry in meta.get("history") or [] if isinstance(entry, dict)]
        self.history = history + [dict(here, from_step=int(self.model.num_timesteps))]
        written = meta.get("provenance") or (history[-1] if history else {})
        problems = []
        package, theirs = here["package"], written.get("package") or {}
        if (theirs.get("commit"), theirs.get("source_sha256")) != (package.get("commit"), package.get("source_sha256")):
            problems.append(
                f"the checkpoint was written by sb3-tar commit {theirs.get('commit')} "
                f"(sources {_short(theirs.get('source_sha256'))}), this run is commit {package.get('commit')} "
                f"(sources {_short(package.get('source_sha256'))})"
            )
        if not same_hardware(written.get("hardware"), here["hardware"]):
            problems.append(
                f"the checkpoint was written on {_hardware_text(written.get('hardware'))}, this run is on "
                f"{_hardware_text(here['hardware'])}"
            )
        if problems:
            self._warn(
                f"{type(self).__name__}: resuming {path} under other code or hardware: {'; '.join(problems)}. The run "
                "continues, but may differ from an uninterrupted one; meta.json's history lists what ran each part"
            )

    def _on_rollout_start(self) -> None:
        if self.save_freq > 0 and self.model.num_timesteps - self._saved_at >= self.save_freq:
            self._saved_at = int(self.model.num_timesteps)
            try:
                self.last_saved = save_checkpoint(
                    self.model, self.save_path, self._callbacks, self.config, self.keep, self.history
                )
            except OSError as e:
                previous = latest_checkpoint(self.save_path)
                kept = (
                    f"the previous checkpoint {previous} stays" if previous is not None else "there is no earlier checkpoint"
                )
                self._warn(
                    f"{type(self).__name__}: the checkpoint of step {self.model.num_timesteps} could not be written "
                    f"({type(e).__name__}: {e}); its partial folder was removed, {kept}; training continues and tries "
                    f"again in {self.save_freq} steps"
                )
                return
            if self.verbose >= 1:
                print(f"{type(self).__name__}: checkpoint {self.last_saved}", flush=True)

    def _on_training_end(self) -> None:
        total = getattr(self.model, "_total_timesteps", None)
        if total is None or self.model.num_timesteps < total:
            return  # stopped early by a callback: the checkpoints stay resumable
        finished = [_set_aside(p, FINISHED_PREFIX) for p in list_checkpoints(self.save_path)]
        if finished and self.verbose >= 1:
            print(
                f"{type(self).__name__}: the run reached its end (step {self.model.num_timesteps}); its checkpoints are "
                f"kept as {', '.join(p.name for p in finished)} and will not be resumed",
                flush=True,
            )

    def _on_step(self) -> bool:
        return True


def _short(digest: Any) -> str:
    return digest[:12] if isinstance(digest, str) else str(digest)


def _hardware_text(info: Any) -> str:
    if not isinstance(info, dict):
        return "unknown hardware"
    isa = info.get("isa")
    return (
        f"{info.get('cpu_model')} (cpu {info.get('cpu_id')}, {'/'.join(isa) if isinstance(isa, list) else isa}), "
        f"torch {info.get('torch')} ({info.get('torch_cpu_capability')}), {info.get('threads')} threads"
    )


def _set_aside(path: Path, prefix: str) -> Path:
    """Rename a checkpoint ``<prefix><name>`` (``_2``, ``_3``, ... if taken; nothing is ever overwritten)."""
    target = path.with_name(prefix + path.name)
    number = 2
    while target.exists():
        target = path.with_name(f"{prefix}{path.name}_{number}")
        number += 1
    os.replace(path, target)
    return target


__all__ = [
    "CheckpointError",
    "CheckpointMismatch",
    "ExactCheckpointCallback",
    "callback_settings",
    "differing_fields",
    "flatten_callbacks",
    "is_harmless",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "provenance",
    "read_meta",
    "save_checkpoint",
]
