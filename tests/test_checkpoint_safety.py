"""What ``ExactCheckpointCallback`` must never do (issue 31): resume a run with other training settings, lose a
refused checkpoint, restart from zero when an older valid checkpoint is there, stop training when a checkpoint
cannot be written, delete the old checkpoint before the new one is on the disk, resume a finished run, or hide that
a run continues under another commit or on other hardware. Real SAC + TAR runs on Pendulum-v1 (16-wide networks,
150 to 250 steps), interrupted by a callback that stops ``learn()`` (its checkpoints are then those of a killed run:
``tests/test_checkpoint.py`` and ``tests/test_checkpoint_kills.py`` kill for real)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import torch
from cli_utils import REPO
from gymnasium.wrappers import TimeLimit
from kill_script import assert_same_bits
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env

from sb3_tar.callbacks import TARCallback
from sb3_tar.sb3.persistence.checkpoint import (
    META_FILE,
    MODEL_FILE,
    CheckpointMismatch,
    ExactCheckpointCallback,
    latest_checkpoint,
    list_checkpoints,
    read_meta,
    save_checkpoint,
)

ENV = "Pendulum-v1"
STEP_100 = "step_000000000100"
#: Where the run in progress stops (``None``: it runs to its end); read by :class:`Interrupt`, not an argument of it,
#: so that the interrupted and the resumed run have the same callbacks.
INTERRUPT: dict[str, int | None] = {"at": None}


class Interrupt(BaseCallback):
    """Ends ``learn()`` at step ``INTERRUPT["at"]``: the run stops before its end, as a killed one."""

    def _on_step(self) -> bool:
        return self.num_timesteps != INTERRUPT["at"]


def _run(
    folder: Path,
    interrupt_at: int | None = None,
    steps: int = 150,
    save_freq: int = 100,
    seed: int = 0,
    sparsity: float = 0.8,
    net_arch: tuple[int, ...] = (16, 16),
    env_kwargs: dict | None = None,
    wrapper_kwargs: dict | None = None,
    learning_rate: float = 3e-4,
    extra: tuple[BaseCallback, ...] = (),
    checkpoints: bool = True,
    **checkpoint_kwargs,
) -> tuple[SAC, ExactCheckpointCallback | None]:
    torch.set_num_threads(1)
    INTERRUPT["at"] = interrupt_at
    wrapper_kwargs = dict(max_episode_steps=200) if wrapper_kwargs is None else wrapper_kwargs  # the env's own limit
    env = make_vec_env(ENV, n_envs=1, seed=0, env_kwargs=env_kwargs, wrapper_class=TimeLimit, wrapper_kwargs=wrapper_kwargs)
    model = SAC(
        "MlpPolicy",
        env,
        learning_starts=50,
        batch_size=32,
        learning_rate=learning_rate,
        policy_kwargs=dict(net_arch=list(net_arch)),
        seed=seed,
    )
    progress_bar = bool(checkpoint_kwargs.pop("progress_bar", False))
    callbacks: list[BaseCallback] = [TARCallback(sparsity=sparsity, sparse_execution=False), *extra, Interrupt()]
    checkpoint = None
    if checkpoints:
        checkpoint = ExactCheckpointCallback(folder / "ck", save_freq=save_freq, verbose=1, **checkpoint_kwargs)
        callbacks.insert(0, checkpoint)
    model.learn(steps, callback=callbacks, progress_bar=progress_bar)
    INTERRUPT["at"] = None
    return model, checkpoint


def _actor_density(model: SAC) -> float:
    masks = [m for name, m in model.policy.state_dict().items() if name.startswith("actor.") and name.endswith("weight_mask")]
    return float(sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks))


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """A run (sparsity 0.8, seed 0, net_arch [16, 16]) stopped at step 120 with its checkpoint of step 100."""
    folder = tmp_path_factory.mktemp("interrupted")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _run(folder, interrupt_at=120)
    assert [p.name for p in list_checkpoints(folder / "ck")] == [STEP_100]
    return folder


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> SAC:
    """The same run, from step 0 to its end (150 steps) without checkpoints."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _run(tmp_path_factory.mktemp("uninterrupted"), checkpoints=False)[0]


def _copy(interrupted: Path, tmp_path: Path) -> Path:
    shutil.copytree(interrupted, tmp_path / "run")
    return tmp_path / "run"


# -- item 2: other training settings are refused, never resumed ----------------------------------------------
@pytest.mark.parametrize(
    "change, field",
    [
        (dict(sparsity=0.5), r"callbacks\[0\]\.settings\.configs\.actor\.sparsity: checkpoint 0\.8, this run 0\.5"),
        (dict(seed=1), r"seed: checkpoint 0, this run 1"),
        (dict(net_arch=(32, 32)), r"policy\.kwargs\.net_arch\[0\]: checkpoint 16, this run 32"),
        (dict(env_kwargs=dict(g=5.0)), r"env\[0\]\.kwargs\.g: checkpoint '<absent>', this run 5\.0"),
        (dict(learning_rate=1e-3), r"hyperparameters\.learning_rate: checkpoint 0\.0003, this run 0\.001"),
        (dict(wrapper_kwargs={"max_episode_steps": 100}), r"\.arguments\.max_episode_steps: checkpoint 200, this run 100"),
    ],
)
def test_a_run_with_other_training_settings_is_refused_and_starts_from_step_0(interrupted, tmp_path, change, field):
    run = _copy(interrupted, tmp_path)
    with pytest.warns(UserWarning, match=rf"{run / 'ck' / STEP_100 / META_FILE}.*{field}.*training starts from step 0"):
        model, checkpoint = _run(run, **change)
    assert checkpoint.resumed_from is None
    assert (run / "ck" / f"refused_{STEP_100}" / MODEL_FILE).is_file()  # set aside, not deleted
    # it trained from step 0 with its own settings (the checkpoint's would be sparsity 0.8, 16 wide)
    if "sparsity" in change:
        assert abs(_actor_density(model) - 0.5) < 0.03 and abs(_actor_density(model) - 0.2) > 0.2
    if "net_arch" in change:
        assert model.policy.actor.latent_pi[0].weight.shape == (32, 3)
    if "env_kwargs" in change:
        assert model.env.envs[0].unwrapped.g == 5.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = _run(tmp_path / "fresh", checkpoints=False, **change)[0]
    assert_same_bits(model.policy.state_dict(), fresh.policy.state_dict())


def test_strict_mode_raises_and_changes_nothing(interrupted, tmp_path):
    run = _copy(interrupted, tmp_path)
    with pytest.raises(CheckpointMismatch, match=r"configs\.actor\.sparsity: checkpoint 0\.8, this run 0\.5"):
        _run(run, sparsity=0.5, strict=True)
    assert [p.name for p in (run / "ck").iterdir()] == [STEP_100]


def test_a_seed_loop_sharing_a_folder_trains_every_seed(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finals = [_run(tmp_path, seed=seed, interrupt_at=120)[0] for seed in (0, 1)]
    assert finals[1].num_timesteps == 120 and not torch.equal(
        finals[0].policy.actor.mu.weight, finals[1].policy.actor.mu.weight
    )
    metas = sorted(json.loads(p.read_text())["signature"]["seed"] for p in (tmp_path / "ck").glob("*/meta.json"))
    assert metas == [0, 1]  # seed 1's own checkpoint, seed 0's set aside


# -- item 3: harmless differences resume; refusals never delete ----------------------------------------------
def test_progress_bar_and_a_deterministic_eval_callback_do_not_prevent_resume(interrupted, uninterrupted, tmp_path):
    run = _copy(interrupted, tmp_path)
    evaluation = EvalCallback(make_vec_env(ENV, n_envs=1, seed=9), eval_freq=20, n_eval_episodes=1, log_path=str(run))
    model, checkpoint = _run(run, extra=(evaluation,), progress_bar=True)
    assert checkpoint.resumed_from == run / "ck" / STEP_100
    assert list(evaluation.evaluations_timesteps) == [120, 140]  # counts from the resumed step, as if always there
    assert_same_bits(model.policy.state_dict(), uninterrupted.policy.state_dict())  # training unchanged


def _marker_module(folder: Path, name: str) -> type:
    """A callback class ``Marker`` defined in module ``name`` (the same class moved to another module)."""
    source = "from stable_baselines3.common.callbacks import BaseCallback\n\n\nclass Marker(BaseCallback):\n"
    source += "    def __init__(self, level=1):\n        super().__init__()\n        self.level = level\n\n"
    source += "    def _on_step(self):\n        return True\n"
    (folder / f"{name}.py").write_text(source)
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Marker


def test_a_callback_moved_to_another_module_matches_by_name_and_arguments(tmp_path):
    old, new = _marker_module(tmp_path, "old_place"), _marker_module(tmp_path, "new_place")
    assert old.__module__ != new.__module__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _run(tmp_path, interrupt_at=120, extra=(old(level=1),))
    shutil.copytree(tmp_path / "ck", tmp_path / "ck_copy")
    _, checkpoint = _run(tmp_path, extra=(new(level=1),))
    assert checkpoint.resumed_from == tmp_path / "ck" / STEP_100
    shutil.copytree(tmp_path / "ck_copy", tmp_path / "x" / "ck")
    with pytest.warns(UserWarning, match=r"callbacks\[1\]\.settings\.level: checkpoint 1, this run 2"):
        _, checkpoint = _run(tmp_path / "x", extra=(new(level=2),))
    assert checkpoint.resumed_from is None


def test_refusing_the_same_step_twice_keeps_both_refused_checkpoints(interrupted, tmp_path):
    """demo (sparsity 0.8) -> v2 (0.5) -> demo: v2 refuses demo's step 100 and leaves its own step 100; demo refuses
    that one. Both are kept: ``refused_step_100`` (demo's) and ``refused_step_100_2`` (v2's)."""
    run = _copy(interrupted, tmp_path)
    with pytest.warns(UserWarning, match="training starts from step 0"):
        _run(run, sparsity=0.5, interrupt_at=120)
    with pytest.warns(UserWarning, match="training starts from step 0"):
        _run(run, interrupt_at=120)
    refused = {p.name: read_meta(p) for p in (run / "ck").glob("refused_*")}
    assert sorted(refused) == [f"refused_{STEP_100}", f"refused_{STEP_100}_2"]
    sparsity = {
        name: meta["signature"]["callbacks"][0]["settings"]["configs"]["actor"]["sparsity"] for name, meta in refused.items()
    }
    assert sparsity == {f"refused_{STEP_100}": 0.8, f"refused_{STEP_100}_2": 0.5}
    assert [p.name for p in list_checkpoints(run / "ck")] == [STEP_100]  # demo's new one


# -- item 4: keep > 1 falls back to the newest valid checkpoint ---------------------------------------------
def test_a_truncated_newest_checkpoint_falls_back_to_the_older_valid_one(uninterrupted, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _run(tmp_path, interrupt_at=120, save_freq=50, keep=2)
    names = [p.name for p in list_checkpoints(tmp_path / "ck")]
    assert names == ["step_000000000050", STEP_100]
    newest = tmp_path / "ck" / STEP_100 / MODEL_FILE
    newest.write_bytes(newest.read_bytes()[:-100])
    with pytest.warns(UserWarning) as caught:
        model, checkpoint = _run(tmp_path, save_freq=50, keep=2)
    text = "\n".join(str(w.message) for w in caught)
    assert f"{newest} refused: truncated" in text and "trying the older checkpoint step_000000000050" in text
    assert "resumed from the older checkpoint" in text
    assert checkpoint.resumed_from == tmp_path / "ck" / "step_000000000050"
    assert (tmp_path / "ck" / f"refused_{STEP_100}").is_dir()
    assert_same_bits(model.policy.state_dict(), uninterrupted.policy.state_dict())  # from step 50, exactly


# -- item 5: a failed write warns and training goes on --------------------------------------------------------
class FillDisk(BaseCallback):
    """At step 110 (after the checkpoint of step 100) fills the file system of ``path`` up."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _on_step(self) -> bool:
        if self.num_timesteps == 110:
            with open(self.path, "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
        return True


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_warns_and_training_continues(small_disk, tmp_path):
    with pytest.warns(UserWarning) as caught:
        model, checkpoint = _run(small_disk, steps=250, extra=(FillDisk(small_disk / "filler"),))
    text = "\n".join(str(w.message) for w in caught)
    assert "the checkpoint of step 200 could not be written (OSError: [Errno 28] No space left on device" in text
    assert f"the previous checkpoint {small_disk / 'ck' / STEP_100} stays" in text and "training continues" in text
    assert model.num_timesteps == 250
    left = sorted(p.name for p in (small_disk / "ck").iterdir())
    assert left == [f"finished_{STEP_100}"]  # no .tmp_ folder; the run's end marked its checkpoint finished
    meta = read_meta(small_disk / "ck" / left[0])
    assert (
        meta["num_timesteps"] == 100
        and (small_disk / "ck" / left[0] / MODEL_FILE).stat().st_size == meta["files"][MODEL_FILE]["bytes"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = _run(tmp_path / "ref", steps=250, checkpoints=False)[0]
    assert_same_bits(model.policy.state_dict(), reference.policy.state_dict())


# -- item 6: what the new checkpoint needs is on the disk before the old one goes ----------------------------
def test_files_and_folders_are_fsynced_before_the_old_checkpoint_is_removed(tmp_path, monkeypatch):
    """Records (without replacing them) every ``os.fsync`` (by the path of its descriptor) and ``shutil.rmtree``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = _run(tmp_path, checkpoints=False)
    first = save_checkpoint(model, tmp_path / "ck")
    events: list[tuple[str, str]] = []
    real_fsync, real_rmtree = os.fsync, shutil.rmtree

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rmtree(path, *args, **kwargs) -> None:
        events.append(("rmtree", str(path)))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    model.num_timesteps += 50  # a later step of the same run
    second = save_checkpoint(model, tmp_path / "ck")
    monkeypatch.undo()
    assert second.name == "step_000000000200" and not first.exists()
    removed = events.index(("rmtree", str(first)))
    synced = [path for kind, path in events[:removed] if kind == "fsync"]
    tmp = [p for p in synced if Path(p).name.startswith(".tmp_step_000000000200")]
    assert {Path(p).name for p in synced if Path(p).parent.name.startswith(".tmp_")} == {
        "model.zip",
        "replay_buffer.pkl",
        "state.pkl",
        "meta.json",
    }
    assert len(tmp) == 1  # the new folder itself
    assert synced[-1] == str(tmp_path / "ck")  # the folder holding the renamed checkpoint, last, before the removal


# -- item 7: a finished run is not resumed ---------------------------------------------------------------------
def test_a_finished_run_is_not_resumed_when_its_script_runs_again(uninterrupted, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _run(tmp_path)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [f"finished_{STEP_100}"]
    with pytest.warns(
        UserWarning, match=r"holds a run that reached its end \(finished_step_000000000100\): it is not resumed"
    ):
        model, checkpoint = _run(tmp_path)
    assert checkpoint.resumed_from is None
    assert_same_bits(model.policy.state_dict(), uninterrupted.policy.state_dict())  # from step 0, not the tail
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [f"finished_{STEP_100}", f"finished_{STEP_100}_2"]


# -- items 8 and 9: each checkpoint says what ran it ------------------------------------------------------------
def _head() -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def test_checkpoints_record_commit_and_hardware_and_a_resume_elsewhere_is_said(interrupted, tmp_path):
    run = _copy(interrupted, tmp_path)
    meta_path = run / "ck" / STEP_100 / META_FILE
    meta = json.loads(meta_path.read_text())
    here = meta["provenance"]
    assert here["package"]["commit"] == _head() and len(here["package"]["source_sha256"]) == 64
    assert here["hardware"]["cpu_model"] == _cpu_model() and here["hardware"]["threads"] == torch.get_num_threads()
    assert here["hardware"]["torch"] == torch.__version__ and meta["history"] == [here] and here["from_step"] == 0
    # the same checkpoint as another checkout on another CPU would have written it
    elsewhere = json.loads(json.dumps(here))
    elsewhere["package"]["commit"] = "0" * 40
    elsewhere["hardware"]["cpu_model"] = "Other Xeon"
    elsewhere["hardware"]["isa"] = ["avx512f", "amx_tile"]
    meta["provenance"], meta["history"] = elsewhere, [elsewhere]
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(UserWarning) as caught:
        _, checkpoint = _run(run, steps=250)
    text = "\n".join(str(w.message) for w in caught)
    assert f"written by sb3-tar commit {'0' * 40}" in text and f"this run is commit {_head()}" in text
    assert "written on Other Xeon" in text and f"this run is on {_cpu_model()}" in text
    assert checkpoint.resumed_from == run / "ck" / STEP_100  # still resumed
    (latest,) = (run / "ck").glob("finished_step_000000000200")
    history = read_meta(latest)["history"]
    assert [h["package"]["commit"] for h in history] == ["0" * 40, _head()]
    assert [h["hardware"]["cpu_model"] for h in history] == ["Other Xeon", _cpu_model()]
    assert [h["from_step"] for h in history] == [0, 100]
    assert latest_checkpoint(run / "ck") is None


def test_a_later_learn_call_of_the_same_model_continues_without_resuming(tmp_path, recwarn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, checkpoint = _run(tmp_path)
    weights = model.policy.actor.mu.weight.detach().clone()
    model.learn(100, callback=[checkpoint, Interrupt()], reset_num_timesteps=False)
    assert model.num_timesteps == 250 and checkpoint.resumed_from is None
    assert not [w for w in recwarn if "reached its end" in str(w.message) or "refused" in str(w.message)]
    assert not torch.equal(weights, model.policy.actor.mu.weight)  # it trained on from step 150
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [f"finished_{STEP_100}"]  # next save due at 250: the end
