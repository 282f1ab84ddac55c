"""Run sweep cells with RL-Zoo3: one ``python -m rl_zoo3.train`` subprocess per cell.

Layout of a results directory (``root``)::

    root/sweep.json                                   the last grid run into this directory
    root/<algo>/<env>/<label>/seed_<k>/               one cell (RL-Zoo's ``-f`` log folder)
        cell.json                                     the cell's configuration (written first)
        train.log                                     stdout and stderr of RL-Zoo
        <algo>/<env>_1/evaluations.npz                RL-Zoo's own layout (EvalCallback output)
        <algo>/<env>_1/<env>.zip                      final model (not meant for version control)
        summary.json                                  compact record: package commit, measured final sparsity
                                                      of every network (online and target), pruning report
        diagnostics.csv                               plasticity diagnostics through training (dormant units,
                                                      srank, weight and gradient norms; docs/diagnostics.md)
        runs.jsonl                                    one line per attempt (first run, each resume): the commit
                                                      and the hardware (CPU model, instruction set, torch) that ran it
        done.json                                     written last: the cell is finished (with the commit, the
                                                      hardware and every attempt)
        checkpoints/step_<n>/                         the latest checkpoint of an unfinished cell (never committed;
                                                      removed when the cell finishes), see below
    root/zoo/<label>/<algo>/<env>_seed<k>             symlinks: every seed of one configuration in one
                                                      folder, for ``python -m rl_zoo3.plots.all_plots``

A cell without ``done.json`` is unfinished (interrupted or failed): on the next sweep it resumes from its
latest checkpoint (written every ``checkpoint_every`` steps by
:class:`sb3_tar.sb3.persistence.checkpoint.ExactCheckpointCallback`, the first callback of the cell's RL-Zoo run), ending
with the same ``evaluations.npz`` as an uninterrupted run; without a checkpoint it is wiped and run again
from step 0. Finished cells are never touched again. The compact files (``cell.json``, ``train.log``,
``evaluations.npz``, ``summary.json``, ``diagnostics.csv``, ``done.json``) are all that ``sb3-tar report`` reads, so a results
directory can be committed without its model zips and a sweep resumes from the committed cells.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sb3_tar.experiments.flops import dst_state, training_flops
from sb3_tar.experiments.grid import Cell, GridSpec, check_callback_values
from sb3_tar.experiments.provenance import RUNS_FILE, hardware_info, read_attempts, record_attempt
from sb3_tar.experiments.state_networks import network_of_key

CELL_FILE = "cell.json"
DONE_FILE = "done.json"
SUMMARY_FILE = "summary.json"
LOG_FILE = "train.log"
DIAGNOSTICS_FILE = "diagnostics.csv"
DIAGNOSTICS_CALLBACK = "sb3_tar.diagnostics.DiagnosticsCallback"
BACKENDS: tuple[str, ...] = ("local", "ray")

#: Environment variables that pin every numerical library to one thread per cell.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
#: A cell's checkpoint folder (inside the cell folder).
CHECKPOINT_DIR = "checkpoints"
#: In ``CHECKPOINT_DIR``: when the cell's current attempt started and the training time credited to earlier ones.
TIMING_FILE = "timing.json"
#: What the sweep writes into a cell's log when it resumes the cell from a checkpoint.
RESUME_MARKER = "--- sb3-tar: resuming from the latest checkpoint"
CHECKPOINT_CALLBACK = "sb3_tar.sb3.persistence.checkpoint.ExactCheckpointCallback"
#: Default steps between checkpoints of a cell: about every 10 minutes of a 300k-step CPU cell (~1 hour).
DEFAULT_CHECKPOINT_EVERY = 50_000
#: Algorithms whose cells take no checkpoint (:class:`~sb3_tar.sb3.persistence.checkpoint.ExactCheckpointCallback` covers
#: off-policy algorithms only): an interrupted cell of these starts again from step 0.
UNCHECKPOINTED_ALGOS: tuple[str, ...] = ("ppo", "a2c")
#: Algorithms whose cells run without :class:`~sb3_tar.diagnostics.DiagnosticsCallback`: none (it supports every
#: algorithm of the grid; PPO/A2C measure on a batch of the first full rollout, ``docs/usage.md``), so every cell
#: has its ``diagnostics.csv``.
UNDIAGNOSED_ALGOS: tuple[str, ...] = ()
#: Times Ray runs a cell's task again after its worker died.
RAY_MAX_RETRIES = 3

_REPO_ROOT = Path(__file__).resolve().parents[2]
#: The hyperparameter files shipped with the package (``sac.yml``, ``td3.yml``, ``tqc.yml``; package data, so
#: they are in the wheel; the repository's top-level ``hyperparams/`` is a link to this folder).
PACKAGE_CONF_DIR = Path(__file__).resolve().parents[1] / "hyperparams"


def find_conf_dir(conf_dir: str | os.PathLike | None = None) -> Path:
    """
    Locate the folder holding ``sac.yml`` / ``td3.yml`` / ``tqc.yml``.

    :param conf_dir: An explicit folder; ``None``: the files shipped with the package (:data:`PACKAGE_CONF_DIR`,
        also in an installed wheel).
    :return: The folder (absolute).
    :raises FileNotFoundError: If no such folder exists.
    """
    candidates = [Path(conf_dir)] if conf_dir is not None else [PACKAGE_CONF_DIR]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise FileNotFoundError(
        f"No hyperparameter folder found (tried {[str(c) for c in candidates]}); pass --conf-dir pointing to the "
        "folder with sac.yml/td3.yml/tqc.yml of the sb3-tar repository"
    )


def conf_file(conf_dir: Path, algo: str) -> Path:
    """
    :param conf_dir: Folder of hyperparameter files.
    :param algo: Algorithm name.
    :return: ``<conf_dir>/<algo>.yml``.
    :raises FileNotFoundError: If the file does not exist.
    """
    path = Path(conf_dir) / f"{algo}.yml"
    if not path.is_file():
        raise FileNotFoundError(f"No hyperparameter file {path} for algo {algo!r}")
    return path


class DefaultHyperparamsWarning(UserWarning):
    """An environment has no entry in a hyperparameter file and falls back to the file's ``default`` entry."""


def _env_hyperparams(conf: Path, env: str) -> dict[str, Any]:
    """
    The entry of ``env`` in a hyperparameter file, else its ``default`` entry, as RL-Zoo3 picks it. Falling back
    to ``default`` warns (:class:`DefaultHyperparamsWarning`, naming an entry for another version of the same
    task when there is one): its values, tuned for no task in particular (``learning_starts`` 100 rather than
    MuJoCo's 10,000, for example), would otherwise train silently.

    :param conf: A hyperparameter file (RL-Zoo3 format).
    :param env: A Gymnasium environment id.
    :return: The entry's hyperparameters.
    :raises ValueError: If the file has neither an entry for ``env`` nor a ``default`` one.
    """
    with open(conf) as f:
        data = yaml.safe_load(f)
    if env in data:
        return dict(data[env])
    if "default" in data:
        task = env.rsplit("-v", 1)[0]
        versions = sorted(key for key in data if key.rsplit("-v", 1)[0] == task)
        hint = f" (it has {', '.join(versions)}: add an entry for {env}, or use that id)" if versions else ""
        warnings.warn(
            f"{conf} has no entry for {env!r}: it falls back to the file's 'default' entry{hint}",
            DefaultHyperparamsWarning,
            stacklevel=2,
        )
        return dict(data["default"])
    raise ValueError(f"Environment {env!r} has no entry (and there is no 'default') in {conf}")


def check_env_entries(cells: Sequence[Cell], conf_dir: Path) -> None:
    """
    Read each (algorithm, environment) pair's hyperparameters once, before any cell starts, so that an
    environment falling back to a file's ``default`` entry warns (:class:`DefaultHyperparamsWarning`) where the
    sweep is launched rather than only inside each cell's log.

    :param cells: The cells about to run.
    :param conf_dir: Folder of hyperparameter files.
    :raises FileNotFoundError: If an algorithm has no hyperparameter file.
    :raises ValueError: If an environment has no entry and the file no ``default`` one.
    """
    for algo, env in sorted({(c.algo, c.env) for c in cells}):
        _env_hyperparams(conf_file(conf_dir, algo), env)


def check_env_ids(cells: Sequence[Cell]) -> None:
    """
    Refuse, before any cell starts, an environment id that RL-Zoo3's train script would refuse in every cell:
    ``rl_zoo3.train`` imports ``rl_zoo3.import_envs`` and stops on an id missing from Gymnasium's registry. The
    same imports here give the same registry (a sweep passes no ``--gym-packages``).

    :param cells: The cells about to run.
    :raises ValueError: Naming each unknown id and the closest registered one.
    """
    import difflib

    import gymnasium as gym
    import rl_zoo3.import_envs  # noqa: F401  (registers RL-Zoo3's environments, as rl_zoo3.train does)

    registered = set(gym.envs.registry.keys())
    unknown = sorted({c.env for c in cells} - registered)
    if unknown:
        hints = []
        for env in unknown:
            close = difflib.get_close_matches(env, registered, n=1)
            hints.append(f"{env!r} (did you mean {close[0]!r}?)" if close else repr(env))
        raise ValueError(
            f"Environment {', '.join(hints)} is not registered in Gymnasium (after importing rl_zoo3.import_envs, "
            "as rl_zoo3.train does): every cell of it would fail"
        )


def check_cells(cells: Sequence[Cell], conf_dir: Path) -> None:
    """
    Every check of the cells that can fail before any of them starts, for a real run (:func:`run_sweep`) and a dry
    one (``sb3-tar sweep --dry-run``) alike: environment ids (:func:`check_env_ids`), hyperparameter entries
    (:func:`check_env_entries`, which warns) and each distinct callback's arguments
    (:func:`~sb3_tar.experiments.grid.check_callback_values`).

    :param cells: The cells about to run.
    :param conf_dir: Folder of hyperparameter files.
    :raises ValueError, TypeError, FileNotFoundError: From those checks.
    """
    check_env_ids(cells)
    check_env_entries(cells, conf_dir)
    check_callback_values(cells)


def policy_kwargs_for(cell: Cell, conf: Path) -> dict[str, Any]:
    """
    The cell's ``policy_kwargs``: the hyperparameter file's (for the env), updated with any
    ``policy_kwargs`` override in ``cell.hyperparams``, with ``net_arch=[width, width]`` (``small_dense``:
    ``dict(pi=[w_actor] * 2, qf=[w_critic] * 2)``, PPO/A2C ``dict(pi=..., vf=...)``, DQN ``[w_q] * 2``, the widths
    matching the sparse network's kept counts, :func:`sb3_tar.sb3.methods.small_dense.small_dense_net_arch`).

    :param cell: The cell.
    :param conf: Its hyperparameter file.
    :return: The policy keyword arguments.
    """
    base = _env_hyperparams(conf, cell.env).get("policy_kwargs", {})
    kwargs = dict(_eval_zoo(base) if isinstance(base, str) else base or {})  # RL-Zoo evals these strings too
    override = dict(cell.hyperparams).get("policy_kwargs")
    if override is not None:
        kwargs.update(_eval_zoo(override))
    kwargs["net_arch"] = [cell.width, cell.width]
    if cell.method == "small_dense":
        from sb3_tar.sb3.methods.small_dense import small_dense_net_arch

        kwargs["net_arch"] = small_dense_net_arch(cell.algo, cell.env, cell.width, cell.sparsity, kwargs)[0]
    return kwargs


def _eval_zoo(expression: str) -> Any:
    """A hyperparameter's Python expression evaluated as RL-Zoo3 does, with ``nn`` (``torch.nn``) and ``th`` at hand."""
    import torch

    return eval(expression, {"nn": torch.nn, "th": torch})


def python_expression(value: Any) -> str:
    """
    Text that RL-Zoo3's ``-params`` evaluates back to ``value`` (it evaluates with ``nn``, ``torch.nn``, at hand).

    :param value: Plain data (numbers, strings, ``None``, lists, tuples, dicts) and ``torch.nn`` classes
        (``activation_fn=nn.ReLU`` in RL-Zoo's tuned PPO entries).
    :return: The expression: ``repr`` of plain data, ``nn.<Name>`` for a ``torch.nn`` class.
    :raises ValueError: If a value is a class outside ``torch.nn`` (it would not survive the command line).
    """
    if isinstance(value, dict):
        return "{" + ", ".join(f"{python_expression(k)}: {python_expression(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(python_expression(v) for v in value) + "]"
    if isinstance(value, tuple):
        items = [python_expression(v) for v in value]
        return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
    if isinstance(value, type):
        import torch

        if getattr(torch.nn, value.__name__, None) is value:
            return f"nn.{value.__name__}"
        raise ValueError(f"policy_kwargs holds the class {value!r}: only torch.nn classes (nn.ReLU, ...) can be passed")
    return repr(value)


def zoo_command(
    cell: Cell,
    folder: Path,
    conf: Path,
    python: str = sys.executable,
    diagnostics_every: int | None = None,
    checkpoint_every: int = 0,
) -> list[str]:
    """
    The RL-Zoo3 command line that trains one cell.

    :param cell: The cell.
    :param folder: RL-Zoo log folder (``-f``) for the cell.
    :param conf: Hyperparameter file (``-conf``).
    :param python: Python interpreter.
    :param diagnostics_every: Also attach :class:`~sb3_tar.diagnostics.DiagnosticsCallback` with this interval,
        writing ``<folder>/diagnostics.csv`` (what :func:`run_cell` does, see :func:`diagnostics_interval`);
        ``None``: no diagnostics.
    :param checkpoint_every: Steps between checkpoints in ``<folder>/checkpoints`` (``0``: none); with a
        positive value the run also resumes from the latest checkpoint there.
    :return: The argument list (no shell quoting needed).
    """
    callbacks = cell.callback()
    if diagnostics_every is not None:
        diagnostics = {"every": diagnostics_every, "path": str(Path(folder) / DIAGNOSTICS_FILE)}
        callbacks = [*(callbacks or []), {DIAGNOSTICS_CALLBACK: diagnostics}]
    if checkpoint_every > 0:  # first, so that the sparse callback finds the restored masks and schedule
        checkpoint = {"save_path": str(Path(folder) / CHECKPOINT_DIR), "save_freq": checkpoint_every, "config": cell.to_dict()}
        callbacks = [{CHECKPOINT_CALLBACK: checkpoint}, *(callbacks or [])]
    params = [f"policy_kwargs:{python_expression(policy_kwargs_for(cell, conf))}", f"callback:{callbacks!r}"]
    params += [f"{key}:{value}" for key, value in cell.hyperparams if key != "policy_kwargs"]
    cmd = [python, "-m", "rl_zoo3.train", "--algo", cell.algo, "--env", cell.env, "-conf", str(conf)]
    cmd += ["-f", str(folder), "--seed", str(cell.seed), "--num-threads", "1"]
    cmd += ["--eval-freq", str(cell.eval_freq), "--eval-episodes", str(cell.eval_episodes), "--log-interval", "-1"]
    if cell.n_timesteps is not None:
        cmd += ["-n", str(cell.n_timesteps)]
    return [*cmd, "-params", *params]


def cell_checkpoint_every(cell: Cell, checkpoint_every: int) -> int:
    """
    :param cell: The cell.
    :param checkpoint_every: The sweep's steps between checkpoints.
    :return: The cell's: ``checkpoint_every``, or 0 for an algorithm of :data:`UNCHECKPOINTED_ALGOS` (PPO, A2C).
    """
    return 0 if cell.algo in UNCHECKPOINTED_ALGOS else checkpoint_every


def cell_command(
    cell: Cell,
    root: str | os.PathLike,
    conf: Path,
    python: str = sys.executable,
    checkpoint_every: int = 0,
) -> tuple[list[str], dict[str, str]]:
    """
    What :func:`run_cell` runs for a cell: the RL-Zoo3 command line (with the diagnostics callback every cell of an
    algorithm outside :data:`UNDIAGNOSED_ALGOS` gets, and the checkpoint callback with ``checkpoint_every > 0``) and
    the environment variables it sets.

    :param cell: The cell.
    :param root: Results directory.
    :param conf: Hyperparameter file (``-conf``).
    :param python: Python interpreter.
    :param checkpoint_every: Steps between checkpoints (``0``: none; always 0 for PPO and A2C,
        :func:`cell_checkpoint_every`).
    :return: ``(argument list, environment variables set on top of the caller's)``.
    """
    folder = cell_dir(Path(root).resolve(), cell)
    checkpoint_every = cell_checkpoint_every(cell, checkpoint_every)
    diagnostics = diagnostics_interval(cell) if cell.algo not in UNDIAGNOSED_ALGOS else None
    cmd = zoo_command(cell, folder, conf, python, diagnostics, checkpoint_every)
    env = dict(SINGLE_THREAD_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(_REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return cmd, env


def diagnostics_interval(cell: Cell) -> int:
    """
    :param cell: The cell.
    :return: The interval of its diagnostics: :data:`sb3_tar.diagnostics.DEFAULT_EVERY`, or a twentieth of the
        budget (at least 1) when that is shorter, so that a short run still gets twenty measurements.
    """
    from sb3_tar.sb3.callbacks.diagnostics import DEFAULT_EVERY

    if cell.n_timesteps is None:
        return DEFAULT_EVERY
    return max(1, min(DEFAULT_EVERY, cell.n_timesteps // 20))


def package_commit() -> dict[str, Any]:
    """
    :return: ``{"commit": <git HEAD of the sb3-tar checkout or None>, "dirty": <uncommitted changes to the
        package or hyperparameters>, "version": <sb3_tar.__version__>}``, recorded in every finished cell so
        that cells drawn by different mask-drawing code are never mixed unknowingly.
    """
    from sb3_tar import __version__

    info: dict[str, Any] = {"commit": None, "dirty": None, "version": __version__}
    try:
        head = subprocess.run(["git", "-C", str(_REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            info["commit"] = head.stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(_REPO_ROOT), "status", "--porcelain", "--", "sb3_tar", "hyperparams"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            info["dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def measured_sparsity(params: dict[str, Any]) -> dict[str, dict[str, float]]:
    """
    Measure a saved policy's sparsity from its weights alone (no sb3-tar state is trusted).

    :param params: ``policy`` state dict of a saved model of any algorithm the sweep runs.
    :return: ``{network: {"total", "nonzero", "sparsity", "target_nonzero", "pattern_sha256"}}`` for every network
        (:mod:`sb3_tar.experiments.state_networks`: ``actor`` and each ``critic.qf<i>``; PPO/A2C ``actor`` and
        ``critic``; DQN ``q_net``), counting the 2-D ``.weight`` tensors of its linear layers (features extractors
        excluded); ``target_nonzero`` counts the nonzero weights of its target network (absent if none), and
        ``pattern_sha256`` fingerprints where the online weights are nonzero (SHA-256 of each layer's nonzero
        pattern as bytes, in state-dict order), so two runs can be checked for the same mask without their models.
    """
    out: dict[str, dict[str, float]] = {}
    digests: dict[str, Any] = {}
    for key, tensor in params.items():
        if not key.endswith(".weight") or getattr(tensor, "dim", lambda: 0)() != 2:
            continue
        found = network_of_key(key)
        if found is None:
            continue
        name, is_target = found.network, found.target
        entry = out.setdefault(name, {"total": 0, "nonzero": 0})
        if is_target:
            entry["target_nonzero"] = entry.get("target_nonzero", 0) + int((tensor != 0).sum())
        else:
            entry["total"] += tensor.numel()
            entry["nonzero"] += int((tensor != 0).sum())
            digests.setdefault(name, hashlib.sha256()).update((tensor != 0).cpu().numpy().tobytes())
    for name, entry in out.items():
        entry["sparsity"] = 1.0 - entry["nonzero"] / entry["total"] if entry["total"] else float("nan")
        if name in digests:
            entry["pattern_sha256"] = digests[name].hexdigest()
    return out


def final_masks(params: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """
    The final mask of every network, layer by layer, read from a saved policy's weights alone (a weight that is
    exactly zero counts as pruned).

    :param params: ``policy`` state dict of a saved model of any algorithm the sweep runs.
    :return: ``{network: [{"name", "shape", "kept", "dead_out", "dead_in"}, ...]}`` for every network
        (:mod:`sb3_tar.experiments.state_networks`; online networks, linear layers in state-dict order, features
        extractors excluded): the kept weights, the outputs with no incoming and the inputs with no outgoing nonzero weight.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for key, tensor in params.items():
        if not key.endswith(".weight") or getattr(tensor, "dim", lambda: 0)() != 2:
            continue
        found = network_of_key(key)
        if found is None or found.target:
            continue
        network, name = found.network, found.layer
        nonzero = tensor != 0
        out.setdefault(network, []).append(
            {
                "name": name,
                "shape": list(tensor.shape),
                "kept": int(nonzero.sum()),
                "dead_out": int((~nonzero.any(dim=1)).sum()),
                "dead_in": int((~nonzero.any(dim=0)).sum()),
            }
        )
    return out


def write_cell_summary(
    root: str | os.PathLike, cell: Cell, commit: dict[str, Any] | None = None, hardware: dict[str, Any] | None = None
) -> dict[str, Any]:
    """
    Write the cell's ``summary.json`` from its saved model: the package commit, the measured final sparsity
    of every network (:func:`measured_sparsity`), every network's final mask layer by layer (:func:`final_masks`),
    the pruning/revival report stored with the model and the hardware that wrote it
    (:func:`sb3_tar.experiments.provenance.hardware_info`).

    :param root: Results directory.
    :param cell: A cell whose model was saved.
    :param commit: Output of :func:`package_commit` (default: computed now).
    :param hardware: Output of :func:`~sb3_tar.experiments.provenance.hardware_info` (default: computed now).
    :return: The summary.
    """
    from stable_baselines3.common.save_util import load_from_zip_file

    data, params, _ = load_from_zip_file(run_dir(root, cell) / f"{cell.env}.zip", device="cpu", print_system_info=False)
    summary = {
        "cell_id": cell.cell_id,
        "package": commit if commit is not None else package_commit(),
        "final_sparsity": measured_sparsity(params["policy"]),
        "final_masks": final_masks(params["policy"]),
        "config": data.get("sb3_tar_config"),
        "reports": data.get("sb3_tar_reports"),
        "training_flops": training_flops(data, params),
        "hardware": hardware if hardware is not None else hardware_info(),
    }
    state = dst_state(data, params)
    if state is not None:
        summary["dst_state"] = state
    (cell_dir(root, cell) / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    return summary


def cell_dir(root: str | os.PathLike, cell: Cell) -> Path:
    """:return: The cell's folder inside ``root``."""
    return Path(root) / cell.cell_id


def run_dir(root: str | os.PathLike, cell: Cell) -> Path:
    """:return: RL-Zoo's run folder of the cell (``<cell dir>/<algo>/<env>_1``)."""
    return cell_dir(root, cell) / cell.algo / f"{cell.env}_1"


def cell_state(root: str | os.PathLike, cell: Cell) -> str:
    """
    :param root: Results directory.
    :param cell: The cell.
    :return: ``"done"`` (finished with this configuration), ``"stale"`` (finished with another
        configuration, e.g. another budget), ``"partial"`` (started, not finished) or ``"new"``.
    """
    folder = cell_dir(root, cell)
    if (folder / DONE_FILE).is_file():
        try:
            stored = json.loads((folder / CELL_FILE).read_text())
        except (OSError, ValueError):
            return "stale"
        return "done" if stored == cell.to_dict() else "stale"
    return "partial" if folder.exists() else "new"


def _link_zoo_view(root: Path, cell: Cell) -> None:
    """Symlink the cell's run folder into ``root/zoo/<label>/<algo>/<env>_seed<k>`` (best effort)."""
    link = root / "zoo" / cell.label / cell.algo / f"{cell.env}_seed{cell.seed}"
    try:
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(run_dir(root, cell), link.parent), target_is_directory=True)
    except OSError:
        pass


@dataclass
class CellResult:
    """
    Outcome of one cell.

    :param cell_id: The cell's id.
    :param status: ``"done"`` (ran now), ``"skipped"`` (finished before), ``"busy"`` (another sweep is running it:
        left alone) or ``"failed"``.
    :param wall_s: Seconds spent running it now.
    :param returncode: Exit code of RL-Zoo (``None`` if skipped).
    :param log: Path of the cell's log.
    """

    cell_id: str
    status: str
    wall_s: float = 0.0
    returncode: int | None = None
    log: str = ""


class _ProcessRegistry:
    """Running subprocesses, so an interrupted sweep can stop them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()
        self.stopping = False

    def add(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.add(proc)

    def remove(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def terminate_all(self) -> None:
        self.stopping = True
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_cell(
    cell: Cell,
    root: str | os.PathLike,
    conf_dir: str | os.PathLike | None = None,
    python: str = sys.executable,
    registry: _ProcessRegistry | None = None,
    checkpoint_every: int = 0,
) -> CellResult:
    """
    Run one cell unless it is already finished. An unfinished cell resumes from its latest checkpoint
    (with ``checkpoint_every > 0``; everything but the checkpoints and ``train.log`` is removed first, the
    checkpoint restores the evaluation history); otherwise its folder is wiped first. A cell that another sweep
    is running at the moment (it holds the cell's lock, :func:`_lock_cell`) is left alone and reported ``"busy"``.

    :param cell: The cell.
    :param root: Results directory.
    :param conf_dir: Folder of hyperparameter files (see :func:`find_conf_dir`).
    :param python: Python interpreter for the RL-Zoo subprocess.
    :param registry: Where to register the subprocess (for interruption); internal.
    :param checkpoint_every: Steps between checkpoints of the cell (``0``: none, and no resume; PPO and A2C cells
        take none, :func:`cell_checkpoint_every`).
    :return: The outcome.
    """
    checkpoint_every = cell_checkpoint_every(cell, check_checkpoint_every(checkpoint_every))
    root = Path(root).resolve()
    folder = cell_dir(root, cell)
    if cell_state(root, cell) == "done":
        return CellResult(cell.cell_id, "skipped", log=str(folder / LOG_FILE))
    lock = _lock_cell(folder)
    if lock is None:  # another sweep (another process, or another machine on a shared disk) runs this cell now
        return CellResult(cell.cell_id, "busy", log=str(folder / LOG_FILE))
    try:
        if cell_state(root, cell) == "done":  # finished by that other sweep while this one waited to look
            return CellResult(cell.cell_id, "skipped", log=str(folder / LOG_FILE))
        return _run_cell_locked(cell, root, folder, conf_dir, python, registry, checkpoint_every)
    finally:
        lock.close()  # closing the file releases the lock


def _lock_cell(folder: Path) -> Any:
    """
    Take the cell's lock, ``.<seed folder>.lock`` beside its folder (kept across the folder's wipes), so that two
    sweeps into one results directory never run the same cell at once.

    :return: The open lock file (close it to release), or ``None`` if another process holds the lock; where
        ``fcntl`` does not exist (Windows), an open file without a lock.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    handle = open(folder.parent / f".{folder.name}.lock", "a+")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _run_cell_locked(
    cell: Cell,
    root: Path,
    folder: Path,
    conf_dir: str | os.PathLike | None,
    python: str,
    registry: _ProcessRegistry | None,
    checkpoint_every: int,
) -> CellResult:
    """The body of :func:`run_cell`, run while this process holds the cell's lock."""
    resume = checkpoint_every > 0 and _has_checkpoint(folder)
    if resume:
        _clear_for_resume(folder)
    elif folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CELL_FILE).write_text(json.dumps(cell.to_dict(), indent=2))
    conf = conf_file(find_conf_dir(conf_dir), cell.algo)
    cmd, cell_env = cell_command(cell, root, conf, python, checkpoint_every)
    commit = package_commit()
    hardware = hardware_info(threads=int(SINGLE_THREAD_ENV["OMP_NUM_THREADS"]))
    env = dict(os.environ, **cell_env)
    start = time.time()
    credited = _credited_seconds(folder) if resume else 0.0
    if checkpoint_every > 0:
        _write_timing(folder, start, credited)
    if registry is not None and registry.stopping:  # the sweep is being interrupted: do not start
        return CellResult(cell.cell_id, "failed", 0.0, None, str(folder / LOG_FILE))
    record_attempt(folder, commit, hardware, resume)
    with open(folder / LOG_FILE, "a" if resume else "w") as log:
        if resume:
            log.write(f"\n{RESUME_MARKER} in {folder / CHECKPOINT_DIR}\n")
        log.write(" ".join(cmd) + "\n\n")
        log.flush()
        guard = _die_with_parent if _PRCTL is not None else None
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=guard)
        if registry is not None:
            registry.add(proc)
            if registry.stopping:  # interrupted between the check above and the start
                proc.terminate()
        try:
            returncode = proc.wait()
        finally:
            if registry is not None:
                registry.remove(proc)
    wall = time.time() - start
    evaluations = run_dir(root, cell) / "evaluations.npz"
    model = run_dir(root, cell) / f"{cell.env}.zip"
    if returncode != 0 or not evaluations.is_file() or not model.is_file():
        return CellResult(cell.cell_id, "failed", wall, returncode, str(folder / LOG_FILE))
    write_cell_summary(root, cell, commit, hardware)
    attempts = read_attempts(folder)
    done = {
        "cell_id": cell.cell_id,
        "returncode": returncode,
        "wall_s": round(wall + (credited or 0.0), 2),
        "finished": time.time(),
        "package": commit,
        "resumed": resume,
        "wall_s_complete": credited is not None,
        "hardware": hardware,
        # every commit and machine that ran part of the cell, in order (one entry per start: the first run and
        # each resume); a cell resumed across checkouts or CPU types says so here
        "attempts": [{key: a.get(key) for key in ("package", "hardware", "resumed")} for a in attempts],
    }
    (folder / DONE_FILE).write_text(json.dumps(done, indent=2))
    shutil.rmtree(folder / CHECKPOINT_DIR, ignore_errors=True)
    _link_zoo_view(root, cell)
    return CellResult(cell.cell_id, "done", wall, returncode, str(folder / LOG_FILE))


def check_jobs(value: Any, name: str = "jobs") -> int:
    """
    :param value: Cells at once (``None``: the number of CPU cores).
    :param name: The option's name in the error message (``--jobs`` on the command line).
    :return: The number of cells at once, if an int ``>= 1``.
    :raises ValueError: Otherwise.
    """
    jobs = (os.cpu_count() or 1) if value is None else value
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"{name}={jobs!r} is outside the allowed range [1, inf)")
    return jobs


def check_checkpoint_every(value: Any) -> int:
    """
    :param value: Steps between checkpoints.
    :return: It, if an int ``>= 0``.
    :raises ValueError: Otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"checkpoint_every={value!r} is outside the allowed range [0, inf) (0: no checkpoints)")
    return value


def _has_checkpoint(folder: Path) -> bool:
    from sb3_tar.sb3.persistence.checkpoint import latest_checkpoint

    return latest_checkpoint(folder / CHECKPOINT_DIR) is not None


def _credited_seconds(folder: Path) -> float | None:
    """
    Training time of the cell's earlier attempts up to the checkpoint it resumes from: the previous attempt's
    credit plus the time from its start to that checkpoint's ``meta.json`` (work after the checkpoint is lost
    and not counted). ``None`` if unknown (a checkpoint written by a sweep that did not record its timing).
    """
    from sb3_tar.sb3.persistence.checkpoint import META_FILE, latest_checkpoint

    latest = latest_checkpoint(folder / CHECKPOINT_DIR)
    try:
        timing = json.loads((folder / CHECKPOINT_DIR / TIMING_FILE).read_text())
        credited = float(timing["credited_s"]) if timing["credited_s"] is not None else None
        started = float(timing["attempt_start"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if latest is None or credited is None:
        return None
    return credited + max(0.0, (latest / META_FILE).stat().st_mtime - started)


def _write_timing(folder: Path, start: float, credited: float | None) -> None:
    """Record when this attempt started and the time credited to earlier ones (read by a later resume)."""
    (folder / CHECKPOINT_DIR).mkdir(exist_ok=True)
    (folder / CHECKPOINT_DIR / TIMING_FILE).write_text(json.dumps({"attempt_start": start, "credited_s": credited}))


def _clear_for_resume(folder: Path) -> None:
    """Remove what the interrupted run wrote after its last checkpoint (RL-Zoo starts a fresh run folder)."""
    for path in folder.iterdir():
        if path.name in (CHECKPOINT_DIR, LOG_FILE, RUNS_FILE):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # resolved here: the forked child only calls it (no import between fork and exec)


def _die_with_parent() -> None:
    """
    In the RL-Zoo child, before it runs: ask Linux to kill it if the thread that started it dies (a sweep or a
    Ray worker killed with SIGKILL), so that a resumed or retried cell never runs beside an orphan writing
    the same folder. The starting thread waits for the child, so it outlives it in normal operation.
    """
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


@dataclass
class SweepSummary:
    """
    Outcome of a sweep.

    :param results: One :class:`CellResult` per cell.
    :param interrupted: Whether the sweep was stopped before the end.
    """

    results: list[CellResult] = field(default_factory=list)
    interrupted: bool = False

    def count(self, status: str) -> int:
        """:return: The number of cells with this status."""
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[CellResult]:
        """The failed cells."""
        return [r for r in self.results if r.status == "failed"]


def check_stale(cells: Sequence[Cell], root: str | os.PathLike, overwrite: bool = False) -> list[Cell]:
    """
    :param cells: Cells of the sweep.
    :param root: Results directory.
    :param overwrite: Allow re-running cells finished with a different configuration.
    :return: The stale cells (finished with another configuration, e.g. another budget).
    :raises ValueError: If there are stale cells and ``overwrite`` is false.
    """
    stale = [c for c in cells if cell_state(root, c) == "stale"]
    if stale and not overwrite:
        example = stale[0]
        stored = json.loads((cell_dir(root, example) / CELL_FILE).read_text())
        diff = {k: (stored.get(k), v) for k, v in example.to_dict().items() if stored.get(k) != v}
        raise ValueError(
            f"{len(stale)} cell(s) in {root} finished with a different configuration, e.g. {example.cell_id}: "
            f"(stored, requested) = {diff}. Use another results directory, or --overwrite to run them again."
        )
    return stale


def run_sweep(
    grid: GridSpec | Sequence[Cell],
    root: str | os.PathLike,
    jobs: int | None = None,
    backend: str = "local",
    conf_dir: str | os.PathLike | None = None,
    progress: bool = True,
    overwrite: bool = False,
    ray_address: str | None = None,
    on_result: Callable[[CellResult], None] | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
) -> SweepSummary:
    """
    Run every cell of a grid, skipping finished ones, ``jobs`` at a time, seed by seed (all configurations
    of the first seed, then of the next).

    :param grid: A grid, or an explicit list of cells.
    :param root: Results directory (created if needed).
    :param jobs: Cells run at once (local backend; default: number of CPU cores).
    :param backend: ``"local"`` (threads driving subprocesses) or ``"ray"`` (one Ray task per cell,
        ``num_cpus=1``; ``root`` must be on a filesystem shared by all Ray nodes).
    :param conf_dir: Folder of hyperparameter files (see :func:`find_conf_dir`).
    :param progress: Show a tqdm progress bar over cells.
    :param overwrite: Re-run cells finished with a different configuration instead of refusing.
    :param ray_address: Address of an existing Ray cluster (``None``: ``ray.init()`` default).
    :param on_result: Called with each cell's outcome as it arrives.
    :param checkpoint_every: Steps between checkpoints of a cell (``0``: none); an unfinished cell with a
        checkpoint resumes from it (see the module docstring).
    :return: The summary.
    :raises ValueError: On an unknown backend, ``jobs < 1``, ``checkpoint_every < 0``, an environment id
        Gymnasium does not know (:func:`check_env_ids`) or stale cells without ``overwrite``.
    :raises ImportError: If ``backend="ray"`` and Ray is not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}: valid backends are {list(BACKENDS)}")
    jobs = check_jobs(jobs)
    check_checkpoint_every(checkpoint_every)
    if backend == "ray":
        _import_ray()  # fail before touching the results directory
    cells = grid.expand() if isinstance(grid, GridSpec) else list(grid)
    root = Path(root).resolve()
    conf = find_conf_dir(conf_dir)
    check_cells(cells, conf)
    check_stale(cells, root, overwrite)
    root.mkdir(parents=True, exist_ok=True)
    if isinstance(grid, GridSpec):
        (root / "sweep.json").write_text(json.dumps({"grid": grid.to_dict(), "argv": sys.argv}, indent=2))
    summary = SweepSummary()
    todo = []
    for cell in cells:
        if cell_state(root, cell) == "done":
            summary.results.append(CellResult(cell.cell_id, "skipped", log=str(cell_dir(root, cell) / LOG_FILE)))
        else:
            todo.append(cell)
    # Seed-major order: every configuration's seed 0 first, then seed 1, ...; a sweep stopped part-way
    # leaves complete paired comparisons over its first seeds rather than all seeds of a few methods.
    todo.sort(key=lambda c: c.seed)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="cells", unit="cell", disable=not progress)

    def record(result: CellResult) -> None:
        summary.results.append(result)
        bar.update(1)
        bar.set_postfix(failed=summary.count("failed"))
        if on_result is not None:
            on_result(result)

    try:
        if backend == "local":
            _run_local(todo, root, jobs, conf, record, summary, checkpoint_every)
        else:
            _run_ray(todo, root, conf, record, ray_address, summary, checkpoint_every)
    finally:
        bar.close()
    return summary


def _run_local(
    cells: list[Cell],
    root: Path,
    jobs: int,
    conf: Path,
    record: Callable[[CellResult], None],
    summary: SweepSummary,
    checkpoint_every: int = 0,
) -> None:
    registry = _ProcessRegistry()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None
    previous_int = signal.getsignal(signal.SIGINT) if main_thread else None
    if previous is not None:
        # SIGTERM (e.g. from a job scheduler) stops the sweep like Ctrl-C: children are terminated.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    if previous_int == signal.SIG_IGN:
        # A process started in the background of a non-interactive shell (``nohup sweep ... &``), or by a parent that
        # ignores SIGINT, inherits SIGINT ignored: ``kill -INT`` would then leave the sweep and its children running.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    executor = ThreadPoolExecutor(max_workers=jobs)
    try:
        pending: set[Future] = {executor.submit(_run_cell_safely, c, root, conf, registry, checkpoint_every) for c in cells}
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                record(future.result())
    except KeyboardInterrupt:
        summary.interrupted = True
        executor.shutdown(wait=False, cancel_futures=True)
        registry.terminate_all()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_int == signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous_int)


def _run_cell_safely(cell: Cell, root: Path, conf: Path, registry: _ProcessRegistry, checkpoint_every: int = 0) -> CellResult:
    """:func:`run_cell`, with an unexpected error (e.g. a full disk) reported as a failed cell instead of ending the sweep."""
    try:
        return run_cell(cell, root, conf, sys.executable, registry, checkpoint_every)
    except Exception as e:  # reported with the cell; the other cells go on
        log = cell_dir(root, cell) / LOG_FILE
        try:
            with open(log, "a") as f:
                f.write(f"\nsb3-tar: {type(e).__name__}: {e}\n")
        except OSError:
            pass
        return CellResult(cell.cell_id, "failed", 0.0, None, str(log))


def _run_ray(
    cells: list[Cell],
    root: Path,
    conf: Path,
    record: Callable[[CellResult], None],
    address: str | None,
    summary: SweepSummary,
    checkpoint_every: int = 0,
) -> None:
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(address=address)
    # A task whose worker dies (node lost, preempted, killed) is run again by Ray, and resumes from the cell's
    # latest checkpoint (the RL-Zoo child of the dead worker dies with it, see _die_with_parent).
    remote = ray.remote(num_cpus=1, max_retries=RAY_MAX_RETRIES)(_run_cell_dict)
    refs = [remote.remote(c.to_dict(), str(root), str(conf), checkpoint_every) for c in cells]
    try:
        while refs:
            ready, refs = ray.wait(refs, num_returns=1)
            record(CellResult(**ray.get(ready[0])))
    except KeyboardInterrupt:
        summary.interrupted = True
        for ref in refs:
            ray.cancel(ref, force=True)
        raise


def _import_ray() -> Any:
    """Import Ray, or explain how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            "The Ray backend needs Ray, which is not installed: `pip install 'sb3-tar[ray]'` "
            "(or `pip install 'ray[default]'`), or use --backend local"
        ) from e
    return ray


def _run_cell_dict(cell: dict[str, Any], root: str, conf: str, checkpoint_every: int = 0) -> dict[str, Any]:
    """Ray task body: plain types in and out; runs RL-Zoo with the worker's own Python."""
    result = run_cell(Cell.from_dict(cell), root, conf, sys.executable, checkpoint_every=checkpoint_every)
    return result.__dict__
