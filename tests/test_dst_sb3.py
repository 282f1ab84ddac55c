"""SET and RigL in real SAC/TD3/TQC training runs on Pendulum-v1: DSTCallback and SparsePolicy(dst_method=...).

Every update is checked as it happens, by listeners registered on the run's own Rewirer and
MaskEnforcer (right after the mask update, before the optimizer step that follows it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import pytest
import torch
from sb3_contrib import TQC, RecurrentPPO
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback

from sb3_tar.callbacks import DSTCallback, TARCallback
from sb3_tar.core.dynamic import RewireResult
from sb3_tar.core.masks import is_compressed
from sb3_tar.kernels import values_to_dense
from sb3_tar.sac import SparsePolicy as SACSparsePolicy
from sb3_tar.sb3.execution.enforcement import attached_enforcer
from sb3_tar.sb3.execution.mask_store import MASK_BUFFER
from sb3_tar.sb3.methods.rewiring import STATE_ATTRIBUTE, DSTUpdate, attached_rewirer, reset_optimizer_state
from sb3_tar.sb3.networks import SparseNetwork, log_name
from sb3_tar.sb3.reporting.model_masks import masks_of, sparsity_summary
from sb3_tar.sb3.reporting.report_logging import attach_curves
from sb3_tar.td3 import SparsePolicy as TD3SparsePolicy
from sb3_tar.tqc import SparsePolicy as TQCSparsePolicy

ENV = "Pendulum-v1"
TOTAL, LEARNING_STARTS = 300, 50
PLANNED = TOTAL - LEARNING_STARTS  # one env, train_freq=1, gradient_steps=1
NET = dict(net_arch=[32, 32])


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only add overhead
    yield
    torch.set_num_threads(threads)


def expected_k(step: int, zeta: float, kept: int, size: int, planned: int = PLANNED, end_fraction: float = 0.8) -> int:
    """The schedule, written out: k = round(zeta/2 (1 + cos(pi t / T_end)) K), at most min(K, N - K)."""
    t_end = end_fraction * planned
    fraction = zeta / 2 * (1 + math.cos(math.pi * step / t_end))
    return min(round(fraction * kept), kept, size - kept)


def expected_steps(interval: int, start: int = 0, planned: int = PLANNED, end_fraction: float = 0.8) -> list[int]:
    return [t for t in range(interval, planned + 1, interval) if t > start and t < end_fraction * planned]


class Probe(BaseCallback):
    """
    Checks every mask update of the run it is attached to (after the DST callback, or alone with a
    DST SparsePolicy), at the moment it happens.
    """

    def __init__(self, zeta: float, planned: int = PLANNED, end_fraction: float = 0.8) -> None:
        super().__init__()
        self.zeta, self.planned, self.end_fraction = zeta, planned, end_fraction
        self.updates: list[DSTUpdate] = []
        self.initial: dict[str, list[torch.Tensor]] = {}
        self.changed: set[str] = set()
        self.before: dict[str, list[torch.Tensor]] = {}

    def _on_training_start(self) -> None:
        policy = self.model.policy
        self.rewirer = attached_rewirer(policy)
        assert self.rewirer is not None
        self.enforcer = attached_enforcer(policy)
        self.initial = masks_of(self.model)
        self.rewirer.update_listeners.append(self.check)
        self.enforcer.pre_step_listeners.insert(0, self.snapshot)  # runs before the rewirer

    def _on_training_end(self) -> None:
        self.rewirer.update_listeners.remove(self.check)
        self.enforcer.pre_step_listeners.remove(self.snapshot)

    def snapshot(self, role: str, optimizer: torch.optim.Optimizer) -> None:
        for net in self.enforcer.role_networks(role):
            self.before[net.name] = [layer.weight.detach().clone() for layer in net.linears]

    def check(self, update: DSTUpdate, net: SparseNetwork, result: RewireResult) -> None:
        self.updates.append(update)
        role_optimizer = getattr(self.model.policy, net.role).optimizer
        masks = self.enforcer.store.get(net.name)
        assert update.step % self.rewirer.config.update_interval == 0
        assert 0 < update.step < self.end_fraction * self.planned
        for i, layer in enumerate(net.linears):
            old, mask = self.initial[net.name][i], masks[i].cpu().bool()
            dropped, grown, previous = result.dropped[i], result.grown[i], result.previous[i]
            # Counts: the layer keeps its count; dropped = grown = the schedule's k at this step.
            k = expected_k(update.step, self.zeta, int(old.sum()), old.numel(), self.planned, self.end_fraction)
            assert int(mask.sum()) == int(old.sum()) == update.kept[i]
            assert int(dropped.sum()) == int(grown.sum()) == update.dropped[i] == update.grown[i] == k
            assert torch.equal(mask, (previous & ~dropped) | grown)
            # Grown weights are 0.0 online and in the target, with zeroed Adam moments.
            weight = layer.weight.detach().cpu()
            assert (weight[grown] == 0).all() and (weight[~mask] == 0).all()
            if is_compressed(layer):  # on the kernel: state of the kept values, in the order of the new mask
                state = {k: values_to_dense(v, mask) for k, v in role_optimizer.state[layer.values].items() if v.dim()}
            else:
                state = role_optimizer.state[layer.weight]
            for key in ("exp_avg", "exp_avg_sq"):
                assert (state[key].cpu()[grown] == 0).all(), key
            if net.target_layers:  # the target carries the new mask
                target = net.target_layers[i]
                assert (target.weight.detach().cpu()[~mask] == 0).all()
                if hasattr(target, MASK_BUFFER):
                    assert torch.equal(getattr(target, MASK_BUFFER).cpu().bool(), mask)
            # Dropped: the smallest |w| of the active weights just before the update.
            before = self.before[net.name][i].abs().cpu()
            if k and (previous & ~dropped).any():
                assert before[dropped].max() <= before[previous & ~dropped].min()
            # RigL grows where the dense gradient (still unmasked here) is largest.
            # (A layer on the kernel has no dense .grad: tests/test_dst_kernel.py shows it grows the same.)
            if self.rewirer.config.method == "rigl" and k and (~previous & ~grown).any() and not is_compressed(layer):
                grad = layer.weight.grad.detach().abs().cpu()
                assert grad[grown].min() >= grad[~previous & ~grown].max()
            if not torch.equal(mask, old):
                self.changed.add(net.name)

    def _on_step(self) -> bool:
        return True


def make(algo: type, policy: Any = "MlpPolicy", seed: int = 0, **policy_kwargs: Any) -> Any:
    kwargs: dict[str, Any] = dict(learning_starts=LEARNING_STARTS, seed=seed, batch_size=64)
    if algo is TQC:
        policy_kwargs.setdefault("n_quantiles", 5)
    return algo(policy, ENV, policy_kwargs=dict(NET, **policy_kwargs), **kwargs)


def check_run(model: Any, probe: Probe, interval: int, start: int = 0) -> None:
    """After a run: the updates happened exactly at the schedule's steps, each network every time."""
    steps = expected_steps(interval, start, probe.planned, probe.end_fraction)
    names = [net.name for net in probe.enforcer.networks]
    for name in names:
        assert [u.step for u in probe.updates if u.network == name] == steps, name
    assert probe.changed == set(names)  # every network's mask moved away from its start
    for u in probe.updates:
        if u.role == "critic":
            assert u.clock == u.step
        elif isinstance(model, TD3):  # the actor is rewired at its next (delayed) step
            assert u.step <= u.clock < u.step + model.policy_delay and u.clock % model.policy_delay == 0
        else:
            assert u.clock == u.step
    assert all(s["pruned_nonzero"] == 0 for s in sparsity_summary(model).values())


def _curves(model) -> dict:
    """What the model's logger records at its next dump (recorded now, without dumping)."""
    curves = attach_curves(model)
    curves.record(model.logger)
    return dict(model.logger.name_to_value)


@pytest.mark.parametrize(
    "algo, method, interval",
    [(SAC, "set", 20), (SAC, "rigl", 20), (TD3, "set", 25), (TD3, "rigl", 25), (TQC, "rigl", 20)],
)
def test_dst_callback_updates_follow_the_schedule(algo: type, method: str, interval: int) -> None:
    model = make(algo)
    zeta = {"set": 0.3, "rigl": 0.5}[method]
    callback = DSTCallback(method=method, update_interval=interval, seed=3)
    probe = Probe(zeta)
    model.learn(TOTAL, callback=[callback, probe])
    check_run(model, probe, interval)
    rewirer = callback.rewirer
    assert rewirer.total_steps == PLANNED and rewirer.step == PLANNED == model._n_updates
    # No update after end_fraction: the masks are those of the last update.
    last = {u.network: u for u in probe.updates}
    assert max(u.step for u in probe.updates) < 0.8 * PLANNED
    assert all(u.kept == [int(m.sum()) for m in masks_of(model)[name]] for name, u in last.items())
    # Recorded into SB3's logger at its next dump: every update counted; the schedule lives on the model.
    logged = _curves(model)
    for name in last:
        assert logged[f"sparse/{log_name(name)}/dropped"] == sum(sum(u.dropped) for u in probe.updates if u.network == name)
        assert logged[f"sparse/{log_name(name)}/grown"] == sum(sum(u.grown) for u in probe.updates if u.network == name)
    assert logged["sparse/dst/updates"] == max(u.step for u in probe.updates) // interval
    assert logged["sparse/dst/drop_fraction"] == pytest.approx(last["critic.qf0"].drop_fraction)
    state = getattr(model, STATE_ATTRIBUTE)
    assert state["method"] == method and state["step"] == PLANNED and state["total_steps"] == PLANNED
    assert model.sb3_tar_config["dst"]["method"] == method and model.sb3_tar_config["seed"] == 3


def test_dst_callback_initial_mask_is_erk_without_revival() -> None:
    model = make(SAC)
    callback = DSTCallback(method="set", sparsity=0.8, update_interval=1000)
    model.learn(LEARNING_STARTS + 5, callback=callback)
    for report in callback.reports.values():
        assert report.criterion == "erk" and report.revival == "none" and report.budget == 0
        assert report.kept == round(0.2 * report.total)  # exact count, as documented
    assert callback.rewirer.history == []  # no update before step 1000


@pytest.mark.parametrize("algo, policy, method", [(SAC, SACSparsePolicy, "set"), (TD3, TD3SparsePolicy, "rigl")])
def test_sparse_policy_runs_dst_itself(algo: type, policy: type, method: str) -> None:
    model = make(algo, policy, dst_method=method, update_interval=20, dst_total_steps=PLANNED, drop_fraction=0.4)
    assert {c.criterion for c in model.policy.sparsity_configs.values()} == {"erk"}
    assert {c.revival for c in model.policy.sparsity_configs.values()} == {"none"}
    probe = Probe(0.4)
    model.learn(TOTAL, callback=probe)
    check_run(model, probe, 20)
    state = model.policy.state_dict()
    assert int(state["dst_step"]) == PLANNED and int(state["dst_total_steps"]) == PLANNED


def test_dst_callback_fills_in_the_sparse_policy_total_and_logs() -> None:
    model = make(TQC, TQCSparsePolicy, dst_method="set", update_interval=20)
    assert model.policy.dst_rewirer.total_steps == -1
    probe = Probe(0.3)
    with pytest.warns(UserWarning, match="the SparsePolicy runs SET with its own settings"):
        model.learn(TOTAL, callback=[DSTCallback(method="rigl"), probe])  # the policy's settings win, with a warning
    assert model.policy.dst_rewirer.total_steps == PLANNED and model.policy.dst_rewirer.config.method == "set"
    check_run(model, probe, 20)
    assert _curves(model)["sparse/critic/qf0/grown"] == sum(sum(u.grown) for u in probe.updates if u.network == "critic.qf0")


def test_sparse_policy_without_total_steps_explains_what_to_do() -> None:
    model = make(SAC, SACSparsePolicy, dst_method="set")
    with pytest.raises(RuntimeError, match="dst_total_steps=.*DSTCallback"):
        model.learn(LEARNING_STARTS + 5)


@pytest.mark.parametrize("path", ["callback", "policy"])
@pytest.mark.parametrize("reset_num_timesteps", [False, True])
def test_save_and_load_mid_run_continue_the_schedule(tmp_path: Any, path: str, reset_num_timesteps: bool) -> None:
    interval, zeta = 20, 0.3
    if path == "callback":
        model = make(SAC)
        callbacks: list = [DSTCallback(method="set", update_interval=interval, seed=1)]
    else:
        model = make(SAC, SACSparsePolicy, dst_method="set", update_interval=interval, dst_total_steps=PLANNED)
        callbacks = []
    checkpoint = CheckpointCallback(save_freq=150, save_path=str(tmp_path), name_prefix="run")
    probe = Probe(zeta)
    model.learn(TOTAL, callback=[*callbacks, checkpoint, probe])
    check_run(model, probe, interval)

    # The checkpoint was taken at timestep 150, before that rollout's gradient step: 99 steps in.
    saved_step = 150 - LEARNING_STARTS - 1
    loaded = SAC.load(tmp_path / "run_150_steps.zip", env=gym.make(ENV))
    rewirer_state = (
        getattr(loaded, STATE_ATTRIBUTE)
        if path == "callback"
        else {k: int(v) for k, v in loaded.policy.state_dict().items() if k.startswith("dst_")}
    )
    key = "step" if path == "callback" else "dst_step"
    assert rewirer_state[key] == saved_step
    at_save = [u for u in probe.updates if u.step <= saved_step]
    saved_masks = masks_of(loaded)
    for name, masks in saved_masks.items():
        kept_at_save = [u.kept for u in at_save if u.network == name][-1]
        assert [int(m.sum()) for m in masks] == kept_at_save
    assert all(s["pruned_nonzero"] == 0 for s in sparsity_summary(loaded).values())

    # Resume: the schedule goes on from step 99 with the original T_end (no update at 20..80 again).
    resumed_probe = Probe(zeta)
    resumed = [DSTCallback(method="set", update_interval=interval)] if path == "callback" else []
    remaining = TOTAL - 150 if not reset_num_timesteps else TOTAL - 150 + LEARNING_STARTS
    loaded.learn(remaining, callback=[*resumed, resumed_probe], reset_num_timesteps=reset_num_timesteps)
    check_run(loaded, resumed_probe, interval, start=saved_step)
    assert [u.step for u in resumed_probe.updates if u.network == "actor"] == [100, 120, 140, 160, 180]
    original = {(u.network, u.step): u for u in probe.updates}
    for u in resumed_probe.updates:  # same schedule as the uninterrupted run: same k at the same steps
        assert u.drop_fraction == pytest.approx(original[(u.network, u.step)].drop_fraction)
        assert u.dropped == original[(u.network, u.step)].dropped
    assert resumed_probe.rewirer.step == saved_step + (TOTAL - 150)


def test_second_learn_never_restarts_the_schedule() -> None:
    model = make(SAC)
    callback = DSTCallback(method="rigl", update_interval=20, seed=0)
    model.learn(TOTAL, callback=callback)
    n_updates = len(callback.rewirer.history)
    masks = masks_of(model)
    with pytest.warns(UserWarning, match="schedule ended"):
        model.learn(60, callback=DSTCallback(method="rigl", update_interval=20), reset_num_timesteps=False)
    assert attached_rewirer(model.policy) is callback.rewirer  # reused, not re-pruned
    assert len(callback.rewirer.history) == n_updates and callback.rewirer.step == PLANNED + 60
    after = masks_of(model)
    assert all(torch.equal(a, b) for name in masks for a, b in zip(masks[name], after[name]))
    assert getattr(model, STATE_ATTRIBUTE)["total_steps"] == PLANNED


def test_a_learn_call_without_gradient_steps_does_not_fix_the_plan() -> None:
    model = make(TD3)
    callback = DSTCallback(method="set", update_interval=20)
    model.learn(LEARNING_STARTS - 10, callback=callback)  # collects only: 0 gradient steps planned
    assert callback.rewirer.total_steps == 0 and callback.rewirer.step == 0
    probe = Probe(0.3)
    model.learn(TOTAL, callback=[DSTCallback(method="set", update_interval=20), probe])
    assert callback.rewirer.total_steps == PLANNED
    check_run(model, probe, 20)


def test_resume_keeps_the_stored_settings() -> None:
    model = make(SAC)
    model.learn(LEARNING_STARTS + 10, callback=DSTCallback(method="rigl", update_interval=5, drop_fraction=0.2))
    with pytest.warns(UserWarning) as record:  # (the schedule has also ended: a second warning)
        model.learn(10, callback=DSTCallback(method="set"), reset_num_timesteps=False)
    assert any("stored settings" in str(w.message) for w in record)
    assert attached_rewirer(model.policy).config.method == "rigl"


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        (dict(method="snip"), ValueError, r"method 'snip'.*\['set', 'rigl'\]"),
        (dict(method="set", end_fraction=0.0), ValueError, r"end_fraction=0.0 .*\(0, 1\]"),
        (dict(method="set", end_fraction=1.2), ValueError, r"end_fraction=1.2 .*\(0, 1\]"),
        (dict(method="set", update_interval=0), ValueError, r"update_interval=0 .*\[1, inf\)"),
        (dict(method="set", update_interval=1.5), TypeError, "update_interval must be an int"),
        (dict(method="rigl", drop_fraction=1.0), ValueError, r"drop_fraction=1.0 .*\(0, 1\)"),
        (dict(method="rigl", drop_fraction=-0.1), ValueError, r"drop_fraction=-0.1 .*\(0, 1\)"),
        (dict(method="set", sparsity=1.0), ValueError, r"sparsity=1.0 .*\[0, 1\)"),
        (dict(method="set", criterion="snip"), ValueError, "criterion 'snip'"),
        (dict(method="set", seed="0"), TypeError, "seed must be an int"),
    ],
)
def test_dst_callback_refuses_bad_values(kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        DSTCallback(**kwargs)


@pytest.mark.parametrize(
    "policy_kwargs, error, pattern",
    [
        (dict(dst_method="snip"), ValueError, r"method 'snip'"),
        (dict(update_interval=10), ValueError, r"\['update_interval'\] only apply .*dst_method"),
        (dict(end_fraction=0.5), ValueError, r"\['end_fraction'\] only apply"),
        (dict(dst_method="set", revival="tar"), ValueError, "revival='tar' cannot be combined"),
        (dict(dst_method="set", dst_total_steps=-1), ValueError, r"dst_total_steps=-1 .*\[1, inf\)"),
        (dict(dst_method="rigl", end_fraction=0), ValueError, r"end_fraction=0.0 .*\(0, 1\]"),
    ],
)
def test_sparse_policy_refuses_bad_dst_options(policy_kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        make(SAC, SACSparsePolicy, **policy_kwargs)


def test_dst_callback_refuses_unsupported_models() -> None:
    with pytest.raises(TypeError, match="SAC, TD3, TQC and CrossQ .*, got RecurrentPPO"):  # PPO...: test_onpolicy_dqn
        RecurrentPPO("MlpLstmPolicy", ENV, n_steps=64, batch_size=64).learn(64, callback=DSTCallback())
    static = make(SAC, SACSparsePolicy)
    with pytest.raises(TypeError, match="static SparsePolicy"):
        static.learn(10, callback=DSTCallback())
    tar = make(SAC)
    tar.learn(10, callback=TARCallback(criterion="erk"))
    with pytest.raises(ValueError, match="static masks"):
        tar.learn(10, callback=DSTCallback(), reset_num_timesteps=False)


def test_dst_callback_refuses_episodic_train_freq_before_touching_the_model() -> None:
    model = SAC("MlpPolicy", ENV, policy_kwargs=NET, train_freq=(1, "episode"), gradient_steps=1, learning_starts=10)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    with pytest.raises(ValueError, match="episode"):
        model.learn(20, callback=DSTCallback())
    assert not hasattr(model, STATE_ATTRIBUTE) and not getattr(model, "sb3_tar_masks", None)
    assert all(torch.equal(v, model.policy.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("amsgrad", [False, True])
def test_reset_optimizer_state_zeroes_every_moment_at_the_positions_only(amsgrad: bool) -> None:
    layer = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.1, amsgrad=amsgrad)
    for _ in range(3):
        optimizer.zero_grad()
        layer(torch.randn(8, 4)).pow(2).sum().backward()
        optimizer.step()
    state = optimizer.state[layer.weight]
    before = {k: v.clone() for k, v in state.items()}
    positions = torch.zeros(3, 4, dtype=torch.bool)
    positions[0, 1] = positions[2, 3] = True
    reset_optimizer_state(optimizer, layer.weight, positions)
    keys = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    for key in keys:
        assert (state[key][positions] == 0).all() and (before[key][positions] != 0).all()
        assert torch.equal(state[key][~positions], before[key][~positions])
    assert torch.equal(state["step"], before["step"])
