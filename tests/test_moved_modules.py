"""The modules of ``sb3_tar/sb3/`` moved into subpackages keep their old paths: same objects, old files load.

In 0.2.0 and earlier they lay flat in ``sb3_tar/sb3/``; :data:`sb3_tar.sb3.MOVED` maps each old name to its new module.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import pickletools
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback

from sb3_tar import sac
from sb3_tar.sb3 import MOVED
from sb3_tar.sb3.persistence import checkpoint
from sb3_tar.sb3.persistence.checkpoint import BUFFER_FILE, ExactCheckpointCallback

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
SMALL = dict(learning_starts=10, batch_size=8, buffer_size=200, seed=0, device="cpu")
POLICY_KWARGS = dict(net_arch=[8, 8], sparsity=0.8, seed=1)


def run_python(code: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def pickled_globals(data: bytes) -> set[str]:
    """The ``module.name`` globals a pickle names, pickles nested in it as bytes included."""
    names, strings = set(), []
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        if op.name in ("GLOBAL", "INST"):
            names.add(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            names.add(f"{strings[-2]}.{strings[-1]}")
        if isinstance(arg, str):
            strings.append(arg)
        elif isinstance(arg, bytes) and arg[:1] == b"\x80":
            names |= pickled_globals(arg)
    return names


def model_file_globals(path: Path) -> set[str]:
    """The sb3-tar globals named by an SB3 model file's pickled entries (``data``'s ``:serialized:`` values)."""
    with zipfile.ZipFile(path) as z:
        data = json.loads(z.read("data"))
    names: set[str] = set()
    for value in data.values():
        if isinstance(value, dict) and ":serialized:" in value:
            names |= pickled_globals(base64.b64decode(value[":serialized:"]))
    return {name for name in names if name.startswith("sb3_tar")}


def test_old_paths_are_the_moved_modules() -> None:
    """In a fresh process: ``import``, ``from ... import`` and attribute access by an old path give the same objects."""
    out = run_python(
        """
        import importlib, sys, warnings
        from sb3_tar.sb3 import MOVED
        import sb3_tar.sb3
        for old, new in MOVED.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                module = importlib.import_module(f"sb3_tar.sb3.{old}")
            moved = importlib.import_module(f"sb3_tar.sb3.{new}")
            assert module is moved and sys.modules[f"sb3_tar.sb3.{old}"] is moved, old
            assert getattr(sb3_tar.sb3, old) is moved, old
            assert moved.__name__ == moved.__spec__.name == f"sb3_tar.sb3.{new}", old  # the module keeps its own name
            assert [w.category for w in caught] == [DeprecationWarning], (old, caught)
            assert f"sb3_tar.sb3.{new}" in str(caught[0].message)
        from sb3_tar.sb3.checkpoint import ExactCheckpointCallback, _Rows
        from sb3_tar.sb3.model_masks import masks_of
        from sb3_tar.sb3 import sparse_execution
        import sb3_tar.sb3.persistence.checkpoint as checkpoint
        assert ExactCheckpointCallback is checkpoint.ExactCheckpointCallback and _Rows is checkpoint._Rows
        assert masks_of is sb3_tar.masks_of and sparse_execution is sys.modules["sb3_tar.sb3.execution.sparse_execution"]
        print("ok", len(MOVED))
        """
    )
    assert out.split() == ["ok", str(len(MOVED))]


def test_the_package_imports_no_old_path() -> None:
    """sb3-tar's own modules use the new paths only (so a user never sees the DeprecationWarning because of them)."""
    out = run_python(
        """
        import importlib, pkgutil, sys
        import sb3_tar
        from sb3_tar.sb3 import MOVED
        for info in pkgutil.walk_packages(sb3_tar.__path__, "sb3_tar."):
            if not info.name.startswith("sb3_tar.kernels.csrc"):
                importlib.import_module(info.name)
        from stable_baselines3 import SAC
        model = SAC(sb3_tar.SACSparsePolicy, "Pendulum-v1", policy_kwargs=dict(net_arch=[8, 8]), buffer_size=100,
                    learning_starts=5, batch_size=8, device="cpu")
        model.learn(10, callback=[sb3_tar.DiagnosticsCallback(every=5, batch_size=8)])
        print(sorted(f"sb3_tar.sb3.{old}" for old in MOVED if f"sb3_tar.sb3.{old}" in sys.modules))
        """
    )
    assert out.strip() == "[]"


def test_unknown_names_still_fail() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("sb3_tar.sb3.no_such_module")


def test_model_file_names_top_level_classes_and_loads_in_a_fresh_process(tmp_path: Path) -> None:
    """
    A saved ``SparsePolicy`` model names sb3-tar only through ``sb3_tar.sac`` (a top-level module, which never moves),
    and loads in a fresh process.
    """
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=POLICY_KWARGS, **SMALL)
    model.learn(20)
    model.save(tmp_path / "model.zip")
    assert model_file_globals(tmp_path / "model.zip") == {"sb3_tar.sac.SparsePolicy"}
    obs = model.observation_space.sample()
    action, _ = model.predict(obs, deterministic=True)
    out = run_python(
        """
        import sys, numpy as np
        from stable_baselines3 import SAC
        model = SAC.load(sys.argv[1], device="cpu")
        action, _ = model.predict(np.array(eval(sys.argv[2]), dtype=np.float32), deterministic=True)
        print(type(model.policy).__module__, type(model.policy).__name__, repr(action.tolist()))
        """,
        str(tmp_path / "model.zip"),
        repr(obs.tolist()),
    )
    module, name, loaded_action = out.split(maxsplit=2)
    assert (module, name) == ("sb3_tar.sac", "SparsePolicy")
    assert eval(loaded_action) == action.tolist()


class _StopAt(BaseCallback):
    checkpoint_harmless = True  # only ends the first run early, as a kill would

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def _on_step(self) -> bool:
        return self.num_timesteps < self.step


def test_checkpoint_naming_old_paths_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """
    An exact checkpoint written before the move names ``sb3_tar.sb3.checkpoint._Rows`` in its replay buffer (checkpoints
    match classes by name, not module, so that is the one old path in them): a fresh process resumes it.
    """
    monkeypatch.setattr(checkpoint._Rows, "__module__", "sb3_tar.sb3.checkpoint")  # what sb3-tar 0.2.0 wrote
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=POLICY_KWARGS, **SMALL)
    model.learn(60, callback=[ExactCheckpointCallback(tmp_path / "ck", save_freq=20, verbose=0), _StopAt(40)])
    monkeypatch.undo()
    (step,) = (tmp_path / "ck").glob("step_*")
    assert "sb3_tar.sb3.checkpoint._Rows" in pickled_globals((step / BUFFER_FILE).read_bytes())
    out = run_python(
        """
        import sys, warnings
        if sys.argv[4] == "1":  # RL-Zoo3's gym patches, as in the writing process (they rename TimeLimit's class)
            import rl_zoo3.gym_patches
        from stable_baselines3 import SAC
        from sb3_tar import sac
        from sb3_tar.sb3.persistence.checkpoint import ExactCheckpointCallback
        model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=eval(sys.argv[2]), **eval(sys.argv[3]))
        callback = ExactCheckpointCallback(sys.argv[1], save_freq=20, verbose=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.learn(60, callback=[callback])
        moved = [str(w.message) for w in caught if " is now sb3_tar.sb3." in str(w.message)]
        assert not moved, moved  # sb3-tar loading an old file of its own is not a deprecated import
        print(callback.resumed_from.name, model.num_timesteps, "sb3_tar.sb3.checkpoint" in sys.modules)
        """,
        str(tmp_path / "ck"),
        repr(POLICY_KWARGS),
        repr(SMALL),
        "1" if "rl_zoo3.gym_patches" in sys.modules else "0",
    )
    assert out.split()[-3:] == [step.name, "60", "True"]


#: The callbacks' top-level import paths (RL-Zoo files, sweep commands, user code) and the modules that hold them.
CALLBACK_PATHS = {
    "sb3_tar.callbacks": {"TARCallback": "tar", "DSTCallback": "dst", "SparseCallback": "sparse", "enforce_masks": "tar"},
    "sb3_tar.baselines": {"GMPCallback": "baselines", "SmallDenseCallback": "baselines", "CyclicCallback": "cyclic"},
    "sb3_tar.cyclic_methods": {"SculptCallback": "cyclic", "IEECallback": "cyclic"},
    "sb3_tar.diagnostics": {"DiagnosticsCallback": "diagnostics", "read_diagnostics_csv": "diagnostics"},
}


@pytest.mark.parametrize("path", sorted(CALLBACK_PATHS))
def test_callback_import_paths_name_the_classes_of_sb3_callbacks(path: str) -> None:
    """Each top-level path names the very object that ``sb3_tar.sb3.callbacks.<module>`` defines, as RL-Zoo resolves a
    ``callback:`` entry (``module.Class`` by import); the top-level module defines nothing itself."""
    from rl_zoo3.utils import get_class_by_name

    module = importlib.import_module(path)
    for name, home in CALLBACK_PATHS[path].items():
        obj = getattr(module, name)
        assert obj is getattr(importlib.import_module(f"sb3_tar.sb3.callbacks.{home}"), name)
        assert obj.__module__ == f"sb3_tar.sb3.callbacks.{home}"
        if isinstance(obj, type):
            assert get_class_by_name(f"{path}.{name}") is obj
    defined = [n for n, v in vars(module).items() if getattr(v, "__module__", None) == path]
    assert defined == []
