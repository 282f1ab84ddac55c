"""The shipped hyperparameter files cover Gymnasium's current MuJoCo ids (``-v5``) as well as ``-v4``, and an
environment without an entry, which falls back to a file's ``default`` entry, warns where the sweep is launched
(issue 32: ``--env HalfCheetah-v5`` silently trained with ``learning_starts`` 100 instead of 10,000)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml

from sb3_tar.cli import main
from sb3_tar.experiments.grid import GridSpec
from sb3_tar.experiments.runner import DefaultHyperparamsWarning, check_env_entries, find_conf_dir, policy_kwargs_for

ROOT = Path(__file__).resolve().parents[1]
MUJOCO = ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid")


@pytest.mark.parametrize("algo", ["sac", "td3", "tqc"])
def test_v5_entries_repeat_the_v4_ones(algo: str) -> None:
    data = yaml.safe_load((ROOT / "sb3_tar" / "hyperparams" / f"{algo}.yml").read_text())
    for task in MUJOCO:
        assert data[f"{task}-v5"] == data[f"{task}-v4"], task
        assert data[f"{task}-v5"]["learning_starts"] == 10000 != data["default"].get("learning_starts", 100)


def test_an_env_without_an_entry_warns_before_any_cell_runs() -> None:
    conf = find_conf_dir()
    grid = GridSpec(algos=("sac", "tqc"), envs=("HalfCheetah-v5", "Pendulum-v1"), methods=("tar",), seeds=(0,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an entry for every env: nothing to say
        check_env_entries(grid.expand(), conf)
    grid = GridSpec(algos=("sac", "td3"), envs=("HalfCheetah-v3", "Reacher-v5"), methods=("tar",), seeds=(0,))
    with pytest.warns(DefaultHyperparamsWarning) as caught:
        check_env_entries(grid.expand(), conf)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 4, messages  # once per (algorithm, environment) pair, not per cell
    cheetah = [m for m in messages if "'HalfCheetah-v3'" in m and "sac.yml" in m]
    assert cheetah and "falls back to the file's 'default' entry" in cheetah[0]
    assert "it has HalfCheetah-v4, HalfCheetah-v5" in cheetah[0]  # names the ids it does have
    assert all("it has" not in m for m in messages if "Reacher" in m)
    # the entry it falls back to is really the default one: the cell's policy_kwargs come from it
    (cell, *_) = [c for c in grid.expand() if c.env == "Reacher-v5"]
    with pytest.warns(DefaultHyperparamsWarning):
        assert policy_kwargs_for(cell, conf / f"{cell.algo}.yml")["net_arch"] == [cell.width, cell.width]


def test_sweep_dry_run_warns_for_an_env_falling_back_to_default(capsys) -> None:
    argv = ["sweep", "--dry-run", "--algos", "sac", "--envs", "Swimmer-v5", "--methods", "tar", "--seeds", "0"]
    with pytest.warns(DefaultHyperparamsWarning, match="'Swimmer-v5'"):
        assert main(argv) == 0
    assert "rl_zoo3.train" in capsys.readouterr().out
