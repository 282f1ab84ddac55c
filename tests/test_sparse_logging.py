"""sb3-tar's curves in SB3's logger, read back from SB3's own CSV output of real runs (issue 20, point 3)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from sb3_utils import small_kwargs
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.logger import KVWriter, Logger, configure

import sb3_tar
from sb3_tar import sac
from sb3_tar.sb3.networks import log_name
from sb3_tar.sb3.reporting.report_logging import ALLOCATION_FILE

# Pendulum-v1 episodes are 200 steps; log_interval=1 dumps at 200, 400 and 600 steps.
STEPS, EPISODE = 600, 200
ARCH = [32, 32]
NETWORKS = ("actor", "critic.qf0", "critic.qf1")


class _Texts(KVWriter):
    """A KVWriter keeping the text records and their exclusions, as SB3 hands them to its TensorBoard writer."""

    def __init__(self) -> None:
        self.texts: dict[str, tuple[str, tuple]] = {}

    def write(self, key_values, key_excluded, step: int = 0) -> None:
        for key, value in key_values.items():
            if isinstance(value, str):
                self.texts[key] = (value, key_excluded.get(key))


def _csv_logger(folder: Path) -> tuple[Logger, _Texts]:
    logger = configure(str(folder), ["csv"])
    texts = _Texts()
    logger.output_formats.append(texts)
    return logger, texts


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "progress.csv") as f:
        return list(csv.DictReader(f))


def _kept_and_total(policy: torch.nn.Module, network: str) -> tuple[int, int]:
    """Kept and total weights of one network (``"actor"``, ``"critic.qf0"``, ...), read from its weight_mask buffers."""
    masks = [b for k, b in policy.named_buffers() if k.startswith(network + ".") and k.endswith("weight_mask")]
    return sum(int(m.sum()) for m in masks), sum(m.numel() for m in masks)


def _dead_units(mask: torch.Tensor) -> int:
    return int((mask.sum(dim=1) == 0).sum() + (mask.sum(dim=0) == 0).sum())


def test_sparse_policy_without_callback_logs_curves_at_every_dump(tmp_path: Path) -> None:
    kwargs = small_kwargs("sac", learning_starts=100)
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(net_arch=ARCH, sparsity=0.9), **kwargs)
    logger, texts = _csv_logger(tmp_path)
    model.set_logger(logger)
    model.learn(STEPS, log_interval=1)
    rows = _rows(tmp_path)
    assert [int(r["time/total_timesteps"]) for r in rows] == [EPISODE, 2 * EPISODE, 3 * EPISODE]
    masks = sb3_tar.masks_of(model)
    # actor: 32x3 + 32x32 + 1x32 (mu) + 1x32 (log_std) = 1184 weights; each Q-network: 32x4 + 32x32 + 1x32 = 1184
    assert {name: sum(m.numel() for m in ms) for name, ms in masks.items()} == dict.fromkeys(masks, 1184)
    for name, layer_masks in masks.items():
        for row in rows:  # the masks are fixed: the same measured values at every dump
            assert float(row[f"sparse/{log_name(name)}/sparsity"]) == pytest.approx(1 - round(0.1 * 1184) / 1184)
            assert float(row[f"sparse/{log_name(name)}/pruned_nonzero"]) == 0
            assert float(row[f"sparse/{log_name(name)}/dead_units"]) == sum(_dead_units(m) for m in layer_masks)
    columns = set(rows[0])
    assert not any(c.startswith("sparsity/") or c.startswith("dst/") for c in columns)
    assert not any(c.startswith("sparse/dst/") or c.endswith(("/dropped", "/grown")) for c in columns)  # no DST fields
    # the allocation table, once: in the run folder and as a text record that only TensorBoard writes
    table = (tmp_path / ALLOCATION_FILE).read_text()
    assert "connectivity threshold E_l" in table and "| latent_pi.2 | 32x32 |" in table
    text, excluded = texts.texts["sparse/allocation"]
    assert text.strip() == table.strip() and "tensorboard" not in excluded and "csv" in excluded


def _stack_reads_of_set_training_mode(model, calls: int) -> int:
    """Call ``model.policy.set_training_mode`` as SB3's ``collect_rollouts()`` does (from a frame whose ``self`` is
    the model) and count the ``sys._getframe`` calls it makes (reads of the call stack), with a profile hook."""
    import sys

    reads = []

    def hook(frame, event, arg) -> None:
        if event == "c_call" and arg is sys._getframe:
            reads.append(1)

    def collect_rollouts(self) -> None:
        for _ in range(calls):
            self.policy.set_training_mode(False)

    sys.setprofile(hook)
    try:
        collect_rollouts(model)
    finally:
        sys.setprofile(None)
    return len(reads)


def test_sparse_policy_reads_the_call_stack_once_per_model_and_logger(tmp_path: Path) -> None:
    """SB3 switches the training mode at every env step: once the curves are attached to the model's logger, the
    switch does not read the call stack again (issue 32: 0.7 ms per step on a fast CPU); a new logger is found
    and records the curves at its dumps."""
    kwargs = small_kwargs("sac", learning_starts=100)
    model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(net_arch=ARCH, sparsity=0.9), **kwargs)
    assert _stack_reads_of_set_training_mode(model, 5) == 5  # no logger yet: nothing to attach to, reads each time
    model.learn(100)
    assert _stack_reads_of_set_training_mode(model, 100) == 0
    for run in ("second", "third"):  # set_logger, as learn() does with a new logger: found once, then no reads
        logger, _ = _csv_logger(tmp_path / run)
        model.set_logger(logger)
        assert _stack_reads_of_set_training_mode(model, 3) == 1
        logger.dump(0)
        (row,) = _rows(tmp_path / run)
        assert float(row["sparse/actor/sparsity"]) == pytest.approx(1 - round(0.1 * 1184) / 1184)


def test_dst_callback_counts_every_update_between_dumps(tmp_path: Path) -> None:
    model = TD3("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=ARCH), **small_kwargs("td3", learning_starts=100))
    logger, texts = _csv_logger(tmp_path)
    model.set_logger(logger)
    callback = sb3_tar.DSTCallback(method="set", sparsity=0.8, update_interval=20)
    model.learn(STEPS, log_interval=1, callback=callback)
    rows = _rows(tmp_path)
    # 500 planned gradient steps, T_end = 0.8 * 500 = 400: updates at t = 20, 40, ..., 380 (19 of them),
    # about 5 between two dumps
    assert int(float(rows[-1]["sparse/dst/updates"])) == 19
    updates = [int(float(r["sparse/dst/updates"])) for r in rows]
    assert updates == sorted(updates) and updates[0] < 19
    history = callback.rewirer.history
    assert len({u.step for u in history if u.role == "critic"}) == 19
    for name in ("actor", "critic.qf0", "critic.qf1"):
        dropped = [int(float(r[f"sparse/{log_name(name)}/dropped"])) for r in rows]
        grown = [int(float(r[f"sparse/{log_name(name)}/grown"])) for r in rows]
        assert dropped == sorted(dropped) and dropped[-1] == sum(sum(u.dropped) for u in history if u.network == name) > 0
        assert grown[-1] == sum(sum(u.grown) for u in history if u.network == name)
        total = 1152 if name == "actor" else 1184  # TD3's actor: 32x3 + 32x32 + 1x32
        assert float(rows[-1][f"sparse/{log_name(name)}/sparsity"]) == pytest.approx(1 - round(0.2 * total) / total, abs=1e-12)
    # no TAR-only field for a run without revival
    assert not any(key in c for c in rows[0] for key in ("revived", "floor", "threshold"))
    table = (tmp_path / ALLOCATION_FILE).read_text()
    assert "revival none" in table and "floor" not in table and "E_l" not in table


def _layer_masks(policy: torch.nn.Module, network: str) -> list[torch.Tensor]:
    """The weight_mask buffers of one network (``"actor"``, ``"critic.qf0"``, ...), in layer order."""
    return [b for k, b in policy.named_buffers() if k.startswith(network + ".") and k.endswith("weight_mask")]


def test_every_dst_mask_update_reaches_the_csv_output(tmp_path: Path) -> None:
    """Each SET mask update is a row of SB3's progress.csv (the Q-networks', then the actor's), with the cumulative
    dropped/grown counts of the schedule computed here by hand, at x = the environment step of that gradient step; the
    regular dumps keep their own values."""
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=ARCH), **small_kwargs("sac", learning_starts=100))
    logger, _ = _csv_logger(tmp_path)
    model.set_logger(logger)
    # T = 500 gradient steps (env steps 101..600), T_end = 0.8 * 500 = 400: updates at t = 50, 100, ..., 350 (7)
    callback = sb3_tar.DSTCallback(method="set", sparsity=0.8, update_interval=50, seed=0)
    model.learn(STEPS, log_interval=1, callback=callback)
    rows = _rows(tmp_path)
    steps = list(range(50, 400, 50))
    updates = [r for r in rows if r["sparse/dst/step"]]
    assert [int(float(r["sparse/dst/step"])) for r in updates] == [t for t in steps for _ in ("critic", "actor")]

    def k(t: int, mask: torch.Tensor) -> int:  # k_l = min(round(zeta_t K_l), K_l, N_l - K_l), zeta_t = 0.3/2 (1 + cos)
        zeta = 0.3 / 2 * (1 + math.cos(math.pi * t / 400))
        kept, size = int(mask.sum()), mask.numel()
        return min(round(zeta * kept), kept, size - kept)

    per_update = {name: [sum(k(t, m) for m in _layer_masks(model.policy, name)) for t in steps] for name in NETWORKS}
    for i, t in enumerate(steps):
        for j, role in enumerate(("critic", "actor")):
            row = updates[2 * i + j]
            assert int(row["time/total_timesteps"]) == 100 + t  # gradient step t runs at env step 100 + t
            assert int(float(row["sparse/dst/updates"])) == i + 1
            assert float(row["sparse/dst/drop_fraction"]) == pytest.approx(0.15 * (1 + math.cos(math.pi * t / 400)))
            for name in NETWORKS:
                done = i + 1 if name.startswith(role) or role == "actor" else i  # the critic row: actor not yet
                expected = sum(per_update[name][:done])
                assert int(float(row[f"sparse/{log_name(name)}/dropped"])) == expected, (t, role, name)
                assert int(float(row[f"sparse/{log_name(name)}/grown"])) == expected, (t, role, name)
    assert all(per_update[name][0] > per_update[name][-1] > 0 for name in NETWORKS)  # the cosine decay is visible
    assert [(u.step, u.network) for u in callback.rewirer.history] == [
        (t, name) for t in steps for name in ("critic.qf0", "critic.qf1", "actor")
    ]
    regular = [r for r in rows if not r["sparse/dst/step"]]
    assert [int(r["time/total_timesteps"]) for r in regular] == [200, 400, 600]
    assert all(r["rollout/ep_rew_mean"] and r["train/actor_loss"] for r in regular[1:])  # their own values kept
    assert all(not r["rollout/ep_rew_mean"] and not r["train/actor_loss"] for r in updates)
    assert int(float(regular[-1]["sparse/actor/dropped"])) == sum(per_update["actor"])


def test_callback_model_logs_after_load_without_callback(tmp_path: Path) -> None:
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=ARCH), **small_kwargs("sac", learning_starts=100))
    model.learn(EPISODE, callback=sb3_tar.TARCallback(sparsity=0.9))
    reports = sb3_tar.pruning_reports(model)
    model.save(tmp_path / "model.zip")
    loaded = SAC.load(tmp_path / "model.zip", env=model.get_env(), device="cpu")
    assert {n: r.to_dict() for n, r in sb3_tar.pruning_reports(loaded).items()} == {n: r.to_dict() for n, r in reports.items()}
    logger, _ = _csv_logger(tmp_path / "loaded")
    loaded.set_logger(logger)
    loaded.learn(2 * EPISODE, log_interval=1, reset_num_timesteps=False)  # no callback: the loaded policy logs
    rows = _rows(tmp_path / "loaded")
    assert len(rows) == 2
    kept = {name: sum(int(m.sum()) for m in ms) for name, ms in sb3_tar.masks_of(loaded).items()}
    for name, n_kept in kept.items():
        assert n_kept == round(0.1 * 1184)
        assert all(float(r[f"sparse/{log_name(name)}/sparsity"]) == pytest.approx(1 - n_kept / 1184) for r in rows)
    assert "revival tar" in (tmp_path / "loaded" / ALLOCATION_FILE).read_text()


def test_callback_model_logs_in_a_later_learn_without_callback(tmp_path: Path) -> None:
    """The live model, not reloaded: a second learn() with a new logger and no callback still logs the curves."""
    import copy
    import pickle

    model = TD3("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=ARCH), **small_kwargs("td3", learning_starts=100))
    model.learn(EPISODE, callback=sb3_tar.TARCallback(sparsity=0.9))
    logger, _ = _csv_logger(tmp_path / "second")
    model.set_logger(logger)
    model.learn(EPISODE, log_interval=1, reset_num_timesteps=False)
    rows = _rows(tmp_path / "second")
    assert len(rows) == 1
    for name in ("actor", "critic.qf0", "critic.qf1"):
        kept, total = _kept_and_total(model.policy, name)
        assert (kept, total) == (round(0.1 * total), total)
        assert all(float(r[f"sparse/{log_name(name)}/sparsity"]) == pytest.approx(1 - kept / total) for r in rows)
        assert all(float(r[f"sparse/{log_name(name)}/pruned_nonzero"]) == 0 for r in rows)
    # the policy still copies and pickles, and each copy's training-mode switch switches that copy
    model.policy.set_training_mode(True)
    for clone in (copy.deepcopy(model.policy), pickle.loads(pickle.dumps(model.policy))):
        clone.set_training_mode(False)
        assert not clone.actor.training and not clone.critic.training
        assert model.policy.actor.training and model.policy.critic.training


def test_gmp_model_logs_its_sparsity_rising_at_every_dump(tmp_path: Path) -> None:
    """GMP (a callback on a plain policy) logs the masks' state at each dump: dense first, 90% sparse at the end."""
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=ARCH), **small_kwargs("sac", learning_starts=100))
    logger, _ = _csv_logger(tmp_path / "gmp")
    model.set_logger(logger)
    # gradient steps 1..500 (env steps 101..600): pruning from step 100 to 400, every 50 steps
    gmp = sb3_tar.GMPCallback(sparsity=0.9, update_interval=50, seed=0)
    model.learn(STEPS, log_interval=1, callback=gmp)
    everything = _rows(tmp_path / "gmp")
    rows = [r for r in everything if not r["gmp/step"]]  # the regular dumps (the prune steps have rows of their own)
    assert len(rows) == 3  # dumps at env steps 200, 400 and 600: gradient steps 100, 300 and 500
    for name in ("actor", "critic.qf0", "critic.qf1"):
        kept, total = _kept_and_total(model.policy, name)
        assert kept == round(0.1 * total)
        sparsity = [float(r[f"sparse/{log_name(name)}/sparsity"]) for r in rows]
        assert sparsity[0] == 0.0 and 0.0 < sparsity[1] < 1 - kept / total
        assert sparsity[2] == pytest.approx(1 - kept / total)


def test_every_gmp_prune_step_reaches_the_csv_output(tmp_path: Path) -> None:
    """Each prune step of GMP is a row of SB3's progress.csv (one for the Q-networks, one for the actor), with the
    kept counts the pruner applied, at x = the environment step of that gradient step; the regular dumps keep their
    own values (nothing recorded for them is taken by a prune row)."""
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=ARCH), **small_kwargs("sac", learning_starts=100))
    logger, _ = _csv_logger(tmp_path)
    model.set_logger(logger)
    # T = 500 gradient steps, t0 = 100, t1 = 400: prune steps 110, 120, ..., 390 and 400 (30 of them), between
    # only three regular dumps (env steps 200, 400 and 600)
    gmp = sb3_tar.GMPCallback(sparsity=0.9, update_interval=10, seed=0)
    model.learn(STEPS, log_interval=1, callback=gmp)
    rows = _rows(tmp_path)
    prune_steps = list(range(110, 400, 10)) + [400]
    history = {(step, name): kept for step, name, kept in gmp.pruner.history}
    for name in ("actor", "critic.qf0", "critic.qf1"):
        pruned = [r for r in rows if r[f"gmp/{log_name(name)}/kept"]]
        assert [int(float(r["gmp/step"])) for r in pruned] == prune_steps, name
        for row in pruned:
            step = int(float(row["gmp/step"]))
            assert int(float(row[f"gmp/{log_name(name)}/kept"])) == history[(step, name)]
            assert int(row["time/total_timesteps"]) == 100 + step  # gradient step t runs at env step 100 + t
    regular = [r for r in rows if not r["gmp/step"]]
    assert [int(r["time/total_timesteps"]) for r in regular] == [200, 400, 600]
    assert all(r["rollout/ep_rew_mean"] and r["train/actor_loss"] for r in regular[1:])  # their own values kept
    assert all(not r["rollout/ep_rew_mean"] for r in rows if r["gmp/step"])
    assert float(regular[0]["gmp/total_steps"]) == 500  # recorded at training start, dumped with the first row
