"""The package as a user installs it: a wheel in a fresh virtual environment, without the source tree (issue 20, point 4).

The wheel is built from a copy of what an sdist holds (pyproject.toml, README.md, sb3_tar/), installed with
``--no-deps`` into a venv that sees the already installed dependencies, and run from an empty folder with no
``PYTHONPATH``: ``sb3-tar hyperparams`` finds the shipped files and a one-cell
``sb3-tar sweep`` (TQC, so ``tqc.yml`` too) trains through RL-Zoo3 to the end.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALGOS = ("sac", "td3", "tqc")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _see_installed_packages(venv: Path) -> None:
    """Let ``venv`` import the packages of the interpreter running the tests, after its own.

    ``python -m venv --system-site-packages`` would expose the packages of the *base* interpreter, which inside a
    virtual environment (where a user installs the README's way) are not the ones installed: the dependencies
    (torch, SB3) would be missing (issue 32). A ``.pth`` file in the new venv adds this interpreter's site-packages
    folders with ``site.addsitedir``, so their own ``.pth`` files (editable installs) are processed as well, and
    appended: the wheel installed into ``venv`` comes first, in the system Python (CI) and in a venv alike.

    :param venv: a virtual environment made without ``--system-site-packages``
    """
    folders = [folder for folder in site.getsitepackages() if Path(folder).is_dir()]
    if site.ENABLE_USER_SITE and Path(site.getusersitepackages()).is_dir():
        folders.append(site.getusersitepackages())
    (purelib,) = {Path(p) for p in venv.glob("lib/python*/site-packages")}
    lines = [f"import site; site.addsitedir({folder!r})" for folder in folders]
    (purelib / "_sb3_tar_test_outer_site.pth").write_text("\n".join(lines) + "\n")


def test_top_level_hyperparams_are_the_packaged_ones() -> None:
    for algo in ALGOS:
        top, packaged = ROOT / "hyperparams" / f"{algo}.yml", ROOT / "sb3_tar" / "hyperparams" / f"{algo}.yml"
        assert top.read_bytes() == packaged.read_bytes()
        data = yaml.safe_load(packaged.read_text())
        assert data["default"]["callback"][0]["sb3_tar.callbacks.TARCallback"]["sparsity"] == 0.9
        assert all("256, 256" in entry["policy_kwargs"] for entry in data.values())  # the paper's width everywhere


def test_wheel_in_a_fresh_venv_runs_a_sweep(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "sb3_tar", source / "sb3_tar", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    work = tmp_path / "work"  # an empty folder: no hyperparams/, no sb3_tar/ to import from
    work.mkdir()
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
        work,
        env,
    )
    (wheel,) = dist.glob("sb3_tar-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"sb3_tar/hyperparams/{algo}.yml" for algo in ALGOS} <= names
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], work, env)
    _see_installed_packages(venv)
    python = venv / "bin" / "python"
    # the venv imports torch from the interpreter running the tests (missing before issue 32 inside a venv)
    _run([str(python), "-c", "import torch, stable_baselines3, rl_zoo3"], work, env)
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
        work,
        env,
    )
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"

    # the console script prints a path inside the sb3_tar package it imported: the wheel's, not the source tree's
    printed = Path(_run([str(venv / "bin" / "sb3-tar"), "hyperparams", "tqc"], work, env).stdout.strip())
    assert (
        printed.is_relative_to(venv)
        and printed.name == "tqc.yml"
        and printed.read_text() == (ROOT / "hyperparams" / "tqc.yml").read_text()
    )

    sweep = [str(venv / "bin" / "sb3-tar"), "sweep", "--algos", "tqc", "--envs", "Pendulum-v1", "--methods", "tar"]
    sweep += ["--criteria", "magnitude", "--sparsities", "0.9", "--recovery-ratios", "0.01", "--widths", "32", "--seeds", "0"]
    sweep += ["-n", "300", "--eval-freq", "300", "--eval-episodes", "1", "--params", "learning_starts:100"]
    sweep += ["--tar-kwargs", "sparse_execution:False", "-j", "1", "--no-progress", "-o", "out"]
    _run(sweep, work, env)
    (done,) = (work / "out").rglob("done.json")
    summary = json.loads((done.parent / "summary.json").read_text())
    # TQC, width 32 on Pendulum-v1: actor 32x3 + 32x32 + 1x32 + 1x32 = 1184 weights, keeps round(0.1 * 1184) = 118;
    # each critic 32x4 + 32x32 + 25x32 (25 quantiles) = 1952 weights, keeps round(195.2) = 195
    final = summary["final_sparsity"]
    assert (final["actor"]["total"], final["actor"]["nonzero"]) == (1184, 118)
    assert (final["critic.qf0"]["total"], final["critic.qf0"]["nonzero"]) == (1952, 195)
    assert summary["reports"]["actor"]["revival"] == "tar"


def test_package_version_is_one_number() -> None:
    """pyproject.toml's version is the one `sb3_tar.__version__` reports (checkpoints and sweep cells record it)."""
    import tomllib

    import sb3_tar

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == sb3_tar.__version__ == "0.2.0"
