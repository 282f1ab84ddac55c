"""The hyperparameter files run as a new user runs them (``python -m rl_zoo3.train ... -conf hyperparams/<algo>.yml``)
and leave a saved model that, loaded, is sparse (exact zero counts) and revived."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch as th
from stable_baselines3 import SAC, TD3
from torch import nn

REPO = Path(__file__).resolve().parents[1]
ENV = "HalfCheetah-v4"


def _train(algo: str, folder: Path, *params: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rl_zoo3.train", "--algo", algo, "--env", ENV, "-conf", f"hyperparams/{algo}.yml"]
    cmd += ["-n", "300", "-f", str(folder), "--seed", "0", "--num-threads", "1", "-params", "learning_starts:100", *params]
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """SAC with the yml's default callback (TAR, reserve budget) and TD3 with TAR in ``extra`` budget mode, in parallel."""
    root = tmp_path_factory.mktemp("zoo")
    extra = "callback:[{'sb3_tar.callbacks.TARCallback': dict(sparsity=0.9, recovery_ratio=0.01, budget_mode='extra')}]"
    procs = {"sac": _train("sac", root / "sac_default"), "td3": _train("td3", root / "td3_extra", extra)}
    paths = {}
    for algo, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-5000:]
        folder = root / ("sac_default" if algo == "sac" else "td3_extra") / algo / f"{ENV}_1"
        assert (folder / f"{ENV}.zip").is_file(), out[-3000:]
        paths[algo] = folder
    return paths


def _networks(model) -> dict[str, tuple[list[nn.Linear], list[nn.Linear] | None]]:
    """Each sparse network's Linear layers, with its target network's where there is one."""
    nets = {"actor": (_linears(model.actor), _linears(model.actor_target) if hasattr(model, "actor_target") else None)}
    for i, (q, q_target) in enumerate(zip(model.critic.q_networks, model.critic_target.q_networks)):
        nets[f"critic.qf{i}"] = (_linears(q), _linears(q_target))  # sb3_tar.masks_of names
    return nets


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _check_counts(model, extra_fraction: float) -> None:
    """Every network keeps exactly round(0.1 N) weights (+ round(rr N) revived in extra mode); targets share the zeros."""
    for name, (layers, targets) in _networks(model).items():
        total = sum(layer.weight.numel() for layer in layers)
        nonzero = sum(int((layer.weight != 0).sum()) for layer in layers)
        expected = round(0.1 * total) + round(extra_fraction * total)
        assert nonzero == expected, f"{name}: {nonzero} non-zero weights of {total}, expected {expected}"
        for layer in layers:  # every layer keeps connections (small output layers may be dense: TAR's need)
            assert int((layer.weight != 0).sum()) > 0
        if targets is not None:
            for layer, target in zip(layers, targets):
                assert th.equal(layer.weight == 0, target.weight == 0), f"{name}: target zeros differ"
    from sb3_tar import masks_of

    masks = masks_of(model)
    assert masks is not None
    for name, (layers, _) in _networks(model).items():
        for layer, mask in zip(layers, masks[name]):
            assert th.equal(mask.bool(), layer.weight != 0)


def test_default_yml_gives_a_sparse_tar_model(trained):
    folder = trained["sac"]
    config = (folder / ENV / "config.yml").read_text()  # RL-Zoo's record of the hyperparameters used
    assert "sb3_tar.callbacks.TARCallback" in config and "recovery_ratio: 0.01" in config and "sparsity: 0.9" in config
    model = SAC.load(folder / f"{ENV}.zip", device="cpu")
    assert model.policy_kwargs["net_arch"] == [256, 256]
    _check_counts(model, extra_fraction=0.0)  # reserve mode: exactly 90% sparse, like the static baseline
    from sb3_tar import pruning_reports

    reports = pruning_reports(model)  # the documented place for the reports, on a model RL-Zoo trained and saved
    assert set(reports) == {"actor", "critic.qf0", "critic.qf1"} and reports["actor"].revival == "tar"
    assert all(r.kept == round(0.1 * r.total) for r in reports.values())


def test_params_override_revives_on_top_of_the_static_mask(trained):
    model = TD3.load(trained["td3"] / f"{ENV}.zip", device="cpu")
    _check_counts(model, extra_fraction=0.01)  # extra mode: rr = 1% of each network revived on top of 10%


def test_rl_zoo_resume_with_i_keeps_the_masks(trained, tmp_path):
    """``python -m rl_zoo3.train -i model.zip`` continues a sparse run; with no callback at all the mask still holds."""
    from stable_baselines3.common.save_util import load_from_zip_file

    zip_path = trained["sac"] / f"{ENV}.zip"
    _, saved, _ = load_from_zip_file(zip_path, device="cpu", print_system_info=False)
    pruned = {k[: -len("_mask")]: v == 0 for k, v in saved["policy"].items() if k.endswith(".weight_mask")}
    assert pruned
    proc = _train("sac", tmp_path / "resumed", "callback:None", "-i", str(zip_path))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-5000:]
    assert "Loading pretrained agent" in out
    _, resumed, _ = load_from_zip_file(tmp_path / "resumed" / "sac" / f"{ENV}_1" / f"{ENV}.zip", device="cpu")
    state = resumed["policy"]
    for key, where in pruned.items():  # online and target weights, straight from the resumed file
        assert th.equal(state[key + "_mask"] == 0, where), key
        assert int((state[key] != 0)[where].sum()) == 0, key
        assert not th.equal(state[key], saved["policy"][key]), f"{key} did not train"


def test_rl_zoo_enjoy_replays_the_saved_model_and_push_to_hub_imports(trained):
    """``docs/export.md`` sends users to ``python -m rl_zoo3.enjoy`` and ``rl_zoo3.push_to_hub``: after the README
    install both work (rl-zoo3 2.9.2's push_to_hub fails to import, and enjoy needs ``requests``, issue 32)."""
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    imports = subprocess.run(
        [sys.executable, "-c", "import requests, rl_zoo3.load_from_hub, rl_zoo3.push_to_hub"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert imports.returncode == 0, f"reinstall sb3-tar (pip install -e .) for its rl-zoo3 pins:\n{imports.stderr[-2000:]}"
    folder = trained["sac"].parents[1]  # <folder>/sac/HalfCheetah-v4_1
    cmd = [sys.executable, "-m", "rl_zoo3.enjoy", "--algo", "sac", "--env", ENV, "-f", str(folder), "--exp-id", "1"]
    cmd += ["-n", "50", "--no-render", "--deterministic", "--num-threads", "1"]
    enjoy = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert enjoy.returncode == 0, enjoy.stdout[-2000:] + enjoy.stderr[-3000:]
    assert f"Loading {trained['sac'] / ENV}.zip" in enjoy.stdout, enjoy.stdout[-2000:]
