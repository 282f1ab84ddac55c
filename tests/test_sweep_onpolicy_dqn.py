"""``sb3-tar sweep --algos ppo a2c dqn`` end to end (issue 30): real RL-Zoo3 trainings on CartPole-v1 at width 32 through
the CLI, their summaries checked against hand counts and the saved models, ``sb3-tar verify-masks`` and ``sb3-tar report``
on them, checkpoints asked of every algorithm and taken by DQN's cells only, and the methods these algorithms do not
take refused."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_utils import run_cli
from stable_baselines3 import A2C, DQN, PPO
from sweep_utils import failed_logs

ENV = "CartPole-v1"
#: Weights of the width-32 networks on CartPole (4 observations, 2 actions): by hand.
TOTALS = {"actor": 4 * 32 + 32 * 32 + 32 * 2, "critic": 4 * 32 + 32 * 32 + 32 * 1, "q_net": 4 * 32 + 32 * 32 + 32 * 2}
#: Small dense of the 0.9-sparse width-32 networks, by hand: policy branch and Q-network keep round(0.1 * 1216) = 122,
#: widths [8, 9] give 4 * 8 + 8 * 9 + 9 * 2 = 122 exactly; value branch keeps round(118.4) = 118, [9, 8] give
#: 36 + 72 + 8 = 116 ([8, 9] 113, [9, 9] 126, [8, 8] 104).
SMALL = {"actor": ([8, 9], 122), "critic": ([9, 8], 116), "q_net": ([8, 9], 122)}
COMMON = ["--envs", ENV, "--criteria", "magnitude", "--sparsities", "0.9", "--recovery-ratios", "0.01", "--widths", "32"]
COMMON += ["--seeds", "0", "--eval-episodes", "2", "--dst-kwargs", "update_interval:10", "--gmp-kwargs", "update_interval:10"]
COMMON += ["--jobs", "2", "--no-progress"]
#: One sweep per algorithm into one results directory (DQN's CartPole entry learns from step 1000: earlier here). Each
#: cell is an RL-Zoo process (seconds of imports alone), so the grid is the least that runs every code path once: dense
#: and small dense on PPO stand for A2C's ActorCriticPolicy too, A2C (RMSprop, its own rollouts) runs one sparse cell,
#: and DQN every sparse kind of cell (its target copies the mask).
SWEEPS = {
    "ppo": ["--methods", "dense", "tar", "rigl", "gmp", "small_dense", "-n", "512", "--eval-freq", "256"],
    "a2c": ["--methods", "static", "-n", "256", "--eval-freq", "128"],
    "dqn": ["--methods", "tar", "rigl", "gmp", "small_dense", "-n", "640", "--eval-freq", "320"],
}
#: Every sweep asks for checkpoints: DQN's cells take them, PPO's and A2C's run without (a killed one starts again
#: from step 0, as any cell without a checkpoint does: test_sweep.py kills and resumes such a sweep).
CHECKPOINTS = ["--checkpoint-every", "320"]
DQN_PARAMS = ["--params", "learning_starts:100", "train_freq:64", "gradient_steps:8"]
CLASSES = {"ppo": PPO, "a2c": A2C, "dqn": DQN}


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """The three sweeps, run one after the other into one results directory (the CLI's ``main`` in this process; each
    cell is its own RL-Zoo process)."""
    from sb3_tar.cli import main

    root = tmp_path_factory.mktemp("onpolicy_dqn") / "results"
    for algo, args in SWEEPS.items():
        extra = DQN_PARAMS if algo == "dqn" else []
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(["sweep", "--algos", algo, *COMMON, *args, *extra, *CHECKPOINTS, "-o", str(root)])
        assert code == 0, out.getvalue() + failed_logs(root)
        assert "0 failed" in out.getvalue()
    return root


def cells(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob(f"*/{ENV}/*/seed_0/done.json"))


def test_cells_finish_with_evaluations_and_exact_counts(swept: Path) -> None:
    """Every cell finished, evaluated on the sweep's schedule; each summary's counts are the hand counts, read again from
    the saved model loaded with plain SB3 (pattern fingerprint included); DQN's target holds the same nonzero count."""
    found = cells(swept)
    assert [str(p.relative_to(swept)).split("/")[0] for p in found].count("ppo") == 5
    assert len(found) == 5 + 1 + 4
    for cell in found:
        config = json.loads((cell / "cell.json").read_text())
        algo, method = config["algo"], config["method"]
        run = cell / algo / f"{ENV}_1"
        with np.load(run / "evaluations.npz") as data:
            assert data["results"].shape[1] == 2 and len(data["timesteps"]) >= 1
        summary = json.loads((cell / "summary.json").read_text())
        networks = ["q_net"] if algo == "dqn" else ["actor", "critic"]
        assert sorted(summary["final_sparsity"]) == sorted(networks), cell
        model = CLASSES[algo].load(run / f"{ENV}.zip", device="cpu")
        state = model.policy.state_dict()
        for name in networks:
            entry = summary["final_sparsity"][name]
            total = SMALL[name][1] if method == "small_dense" else TOTALS[name]
            assert entry["total"] == total
            kept = total if method in ("dense", "small_dense") else round(0.1 * TOTALS[name])
            prefix = {
                "actor": ("mlp_extractor.policy_net.", "action_net."),
                "critic": ("mlp_extractor.value_net.", "value_net."),
            }
            keys = [
                k
                for k in state
                if k.endswith(".weight") and state[k].dim() == 2 and k.startswith(prefix.get(name, ("q_net.q_net.",)))
            ]
            assert sum(state[k].numel() for k in keys) == total
            if method == "small_dense":  # the widths solved by the sweep, recorded by SmallDenseCallback
                hidden = [state[k].shape[0] for k in keys[:-1]]
                assert hidden == SMALL[name][0] == summary["config"]["small_dense"][name]["widths"], (cell, name)
                assert summary["config"]["small_dense"][name]["target"] == round(0.1 * TOTALS[name])
            if method in ("dense", "small_dense", "static", "tar", "gmp"):
                assert entry["nonzero"] == kept, (cell, name)
            else:  # RigL grows weights at zero: a grown weight may still be exactly zero
                assert entry["nonzero"] <= kept, (cell, name)
            if method not in ("dense", "small_dense"):  # the saved masks keep the hand count; pruned weights are zero
                masks = [state[f"{k}_mask"] for k in keys]
                assert sum(int(m.sum()) for m in masks) == kept, (cell, name)
                assert all(int((state[k][m == 0] != 0).sum()) == 0 for k, m in zip(keys, masks))
            digest = hashlib.sha256(b"".join((state[k] != 0).numpy().tobytes() for k in keys)).hexdigest()
            assert entry["pattern_sha256"] == digest, (cell, name)
            if algo == "dqn":
                target = [k.replace("q_net.", "q_net_target.", 1) for k in keys]
                assert entry["target_nonzero"] == sum(int((state[k] != 0).sum()) for k in target)
                if method not in ("dense", "small_dense"):  # the target holds zeros wherever the online mask prunes
                    masks = [state[f"{k}_mask"] for k in keys]
                    assert all(int((state[t][m == 0] != 0).sum()) == 0 for t, m in zip(target, masks))
        masks = summary["final_masks"]
        assert sum(layer["kept"] for name in networks for layer in masks[name]) == sum(
            summary["final_sparsity"][n]["nonzero"] for n in networks
        )
        if algo != "dqn":
            assert [layer["name"] for layer in masks["actor"]] == [
                "mlp_extractor.policy_net.0",
                "mlp_extractor.policy_net.2",
                "action_net",
            ]
        ratio = summary["training_flops"]
        assert ratio == 1.0 if method == "dense" else 0.05 < ratio < 1.0


#: When each cell measures its diagnostics (every a twentieth of the budget, at rollout starts, and at the end), by hand.
#: PPO: 8 envs x n_steps 32 = 256 steps per rollout, every 512 // 20 = 25: the 2nd rollout start (256; the batch is
#: drawn at the 1st rollout's end) and the end (512). A2C: 8 x 5 = 40 per rollout, every 12: each rollout start from
#: 40 to 240 and the end (280). DQN: rollouts of train_freq 64 steps, every 32: from the first rollout start whose
#: buffer holds the 256-transition batch (256) every 64 steps, and the end (640).
DIAGNOSED = {"ppo": [256, 512], "a2c": list(range(40, 281, 40)), "dqn": list(range(256, 641, 64))}


def test_commands_checkpoint_and_diagnose_as_computed(swept: Path) -> None:
    """PPO/A2C cells run without the checkpoint callback although the sweep asks for checkpoints (off-policy only);
    DQN cells checkpoint (and remove their checkpoints once finished); every cell attaches
    the diagnostics callback, as SAC's cells do, and its diagnostics.csv has the hand-computed rows for each network."""
    for cell in cells(swept):
        algo = json.loads((cell / "cell.json").read_text())["algo"]
        command = (cell / "train.log").read_text().splitlines()[0]
        assert ("ExactCheckpointCallback" in command) == (algo == "dqn"), cell
        assert "sb3_tar.diagnostics.DiagnosticsCallback" in command, cell
        import pandas as pd

        frame = pd.read_csv(cell / "diagnostics.csv")
        assert frame["timesteps"].tolist() == DIAGNOSED[algo], cell
        for network in ["q_net"] if algo == "dqn" else ["actor", "critic"]:
            assert frame[f"diagnostics/{network}/dormant_0"].between(0, 1).all()
            srank = frame[f"diagnostics/{network}/srank"]
            assert ((srank >= 1) & (srank <= 32) & (srank == srank.round())).all()
            assert (frame[f"diagnostics/{network}/weight_norm"] > 0).all()
        if algo == "dqn":
            assert "checkpoint" in (cell / "train.log").read_text().split("\n", 1)[1]
        assert not (cell / "checkpoints").exists()  # PPO/A2C never wrote one; DQN's are removed when the cell finishes


#: The cells verify-masks re-draws (each an RL-Zoo process): a TAR cell, a static one and a RigL one (rewired: its
#: first draw is compared, not its final pattern), one per algorithm.
REDRAWN = [
    "ppo/CartPole-v1/tar_magnitude_sp0.9_rr0.01_w32/seed_0",
    "a2c/CartPole-v1/static_magnitude_sp0.9_w32/seed_0",
    "dqn/CartPole-v1/rigl_erk_sp0.9_w32_update_interval=10/seed_0",
]


def test_verify_masks_and_report_read_the_cells(swept: Path, capsys: pytest.CaptureFixture) -> None:
    """sb3-tar verify-masks would re-draw every sparse cell (its default selection), and re-draws a TAR, a static and
    a RigL cell (one per algorithm) to the same masks; the report tabulates every cell."""
    from sb3_tar.cli import main
    from sb3_tar.experiments.verify import sparse_cells

    drawn = {str(c.relative_to(swept)): json.loads((c / "cell.json").read_text())["method"] for c in cells(swept)}
    sparse = sorted(c for c, m in drawn.items() if m not in ("dense", "gmp", "small_dense"))
    assert len(sparse) == 2 + 1 + 2  # PPO tar, rigl; A2C static; DQN tar, rigl
    assert sorted(str(c.relative_to(swept)) for c in sparse_cells(swept)) == sparse  # its default selection
    assert set(REDRAWN) <= set(sparse)
    verify = run_cli("verify-masks", str(swept), "--cells", *REDRAWN, timeout=540)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    same = [line for line in verify.stdout.splitlines() if line.startswith("same masks: ")]
    assert len(same) == len(REDRAWN)
    assert main(["report", str(swept), "--reps", "50", "--no-progress", "--no-plots"]) == 0, capsys.readouterr()
    import pandas as pd

    runs = pd.read_csv(swept / "report" / "runs.csv")
    assert len(runs) == len(cells(swept))


@pytest.mark.parametrize("method", ["cyclic", "sculpt", "iee", "tar+rigl"])
def test_methods_these_algorithms_do_not_take_are_refused(method: str, capsys: pytest.CaptureFixture) -> None:
    from sb3_tar.experiments.grid import GridSpec

    for algo in ("ppo", "a2c", "dqn"):
        grid = GridSpec(algos=[algo], envs=[ENV], methods=["tar", method], seeds=[0])
        with pytest.raises(
            ValueError, match=re.escape(f"['{method}'] cannot run with algo '{algo}': valid methods for {algo} are")
        ):
            grid.expand()
    from sb3_tar.cli import main

    capsys.readouterr()
    assert main(["sweep", "--algos", "dqn", "--envs", ENV, "--methods", method, "--dry-run", "-o", "unused"]) == 2
    assert "'dense', 'static', 'tar', 'uniform', 'set', 'rigl', 'gmp', 'small_dense'" in capsys.readouterr().err


def test_policy_kwargs_with_torch_classes_reach_rl_zoo_as_expressions() -> None:
    """RL-Zoo's tuned PPO entries hold ``activation_fn=nn.ReLU``: the cell's command passes it as ``nn.ReLU``, which
    RL-Zoo evaluates back to the class (``repr`` would write ``<class ...>``, a syntax error)."""
    from rl_zoo3.utils import StoreDict  # noqa: F401  (RL-Zoo's -params parser, evaluating with nn at hand)

    from sb3_tar.experiments.grid import GridSpec
    from sb3_tar.experiments.runner import PACKAGE_CONF_DIR, python_expression, zoo_command

    cell = GridSpec(algos=["ppo"], envs=["HalfCheetah-v4"], methods=["tar"], seeds=[0]).expand()[0]
    command = zoo_command(cell, Path("unused"), PACKAGE_CONF_DIR / "ppo.yml")
    value = next(arg for arg in command if arg.startswith("policy_kwargs:")).split(":", 1)[1]
    assert "'activation_fn': nn.ReLU" in value and "'net_arch': [256, 256]" in value
    assert eval(value, {"nn": torch.nn}) == dict(
        log_std_init=-2, ortho_init=False, activation_fn=torch.nn.ReLU, net_arch=[256, 256]
    )
    assert python_expression({"a": (1,), "b": (1, 2.5), "c": None}) == "{'a': (1,), 'b': (1, 2.5), 'c': None}"
    with pytest.raises(ValueError, match="only torch.nn classes"):
        python_expression({"cls": subprocess.Popen})
