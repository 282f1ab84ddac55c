"""Cyclic training, SCULPT and exploitation-exploration as SparsePolicy options (``schedule_method``) of SAC, TD3 and
TQC: a policy-kwargs run ends bit for bit where the same run with the method's callback ends (weights, masks,
optimizer state, the learning rate after every gradient step, the schedule's state); bad options are refused naming
the allowed values; a run saved mid-schedule and loaded in a fresh process continues its schedule."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_utils import cli_env
from sb3_utils import ALGOS
from stable_baselines3.common.callbacks import BaseCallback

from sb3_tar import sac, td3, tqc
from sb3_tar.baselines import CyclicCallback, IEECallback, SculptCallback
from sb3_tar.sb3.networks import sparse_networks

torch.set_num_threads(1)

SPARSE_POLICIES = {"sac": sac.SparsePolicy, "td3": td3.SparsePolicy, "tqc": tqc.SparsePolicy}
# learning_starts=50, learn(250): T = 200 gradient steps, one per env step.
CASES = [
    ("sac", "cyclic", CyclicCallback, dict(cycles=2, min_factor=0.1)),
    ("td3", "sculpt", SculptCallback, dict(cycles=2, prune_cycle=1, magnitude_scope="layer")),
    ("tqc", "iee", IEECallback, dict(update_interval=50, explore_steps=5, end_fraction=0.6)),
]


class LearningRates(BaseCallback):
    """The actor's and critic's learning rate after every env step (one gradient step each, once training runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[tuple[float, float]] = []

    def _on_step(self) -> bool:
        self.rates.append(
            (self.model.actor.optimizer.param_groups[0]["lr"], self.model.critic.optimizer.param_groups[0]["lr"])
        )
        return True


def make(algo: str, policy: Any, **policy_kwargs: Any) -> Any:
    extra = dict(n_critics=2, n_quantiles=5) if algo == "tqc" else {}
    kwargs = dict(learning_starts=50, batch_size=32, buffer_size=2_000, seed=0, device="cpu")
    return ALGOS[algo](policy, "Pendulum-v1", policy_kwargs=dict(net_arch=[32, 32], **extra, **policy_kwargs), **kwargs)


@pytest.mark.parametrize("algo, method, callback_class, options", CASES)
def test_policy_option_runs_exactly_the_callback_run(algo: str, method: str, callback_class: type, options: dict) -> None:
    with_callback, rates_callback = make(algo, "MlpPolicy"), LearningRates()
    with_callback.learn(250, callback=[callback_class(sparsity=0.9, seed=5, **options), rates_callback])
    with_policy = make(algo, SPARSE_POLICIES[algo], schedule_method=method, sparsity=0.9, seed=5, **options)
    rates_policy = LearningRates()
    with_policy.learn(250, callback=rates_policy)

    state = with_policy.sb3_tar_schedule_state
    assert state == with_callback.sb3_tar_schedule_state
    assert state["method"] == method and state["step"] == 200 and state["total_steps"] == 200
    assert rates_policy.rates == rates_callback.rates
    assert len({rate for rate, _ in rates_policy.rates}) > (2 if method != "iee" else 0)  # the cyclic rate moves
    expected = with_callback.policy.state_dict()
    got = {k: v for k, v in with_policy.policy.state_dict().items() if k != "_extra_state"}
    assert got.keys() == expected.keys() and any(k.endswith("weight_mask") for k in got)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    for name in ("actor", "critic"):
        mine, theirs = getattr(with_policy, name).optimizer.state_dict(), getattr(with_callback, name).optimizer.state_dict()
        assert mine["param_groups"] == theirs["param_groups"]
        for index, entry in theirs["state"].items():
            for key, value in entry.items():
                assert torch.equal(mine["state"][index][key], value), (name, index, key)
    if method == "sculpt":  # pruned once at t_p = 101 (TD3's actor at its next delayed step, 102): round(0.1 N) each
        assert state["critic_pruned"] == 101 and state["actor_pruned"] == 102
        for net in sparse_networks(with_policy.policy):
            total = sum(layer.weight.numel() for layer in net.linears)
            kept = sum(int(m.sum()) for m in with_policy.policy.mask_enforcer.store.get(net.name))
            assert kept == round(0.1 * total), net.name
    if method == "iee":  # phases end at 50 and 100; 0.6 * 200 = 120: none after
        assert state["updates"] == 2 and state["exploring"] == {"actor": 0, "critic": 0}


def test_policy_defaults_are_the_callbacks() -> None:
    cyclic, iee = (make("sac", sac.SparsePolicy, schedule_method=m).policy for m in ("cyclic", "iee"))
    assert cyclic.schedule_spec == CyclicCallback().spec and iee.schedule_spec == IEECallback().spec
    sculpt = make("sac", sac.SparsePolicy, schedule_method="sculpt", sparsity=0.95).policy
    assert sculpt.schedule_spec == SculptCallback(sparsity=0.95).spec
    assert [c.sparsity for c in sculpt.sparsity_configs.values()] == [pytest.approx(0.9)] * 2  # 1 - 2 * 0.05
    assert {(c.criterion, c.revival) for c in iee.sparsity_configs.values()} == {("erk", "none")}


@pytest.mark.parametrize(
    "policy_kwargs, error, pattern",
    [
        (dict(schedule_method="cosine"), ValueError, r"schedule_method 'cosine'.*\['cyclic', 'sculpt', 'iee'\]"),
        (dict(schedule_method=1), TypeError, r"schedule_method must be a string, one of \['cyclic', 'sculpt', 'iee'\]"),
        (dict(cycles=3), ValueError, r"\['cycles'\] only apply to .*\['cyclic', 'sculpt', 'iee'\]"),
        (dict(schedule_method="cyclic", dst_method="set"), ValueError, "cannot be combined with dst_method='set'"),
        (dict(schedule_method="iee", role_methods={"actor": "dense"}), ValueError, "cannot be combined with role_methods"),
        (dict(schedule_method="sculpt", revival="tar"), ValueError, "revival='tar' cannot be combined"),
        (
            dict(schedule_method="cyclic", explore_steps=5),
            ValueError,
            r"\['explore_steps'\] do not apply .*\['cycles', 'warmup_fraction', 'min_factor', 'shape'\]",
        ),
        (dict(schedule_method="iee", cycles=2), ValueError, r"\['cycles'\] do not apply .*'explore_steps'"),
        (dict(schedule_method="cyclic", update_interval=10), ValueError, r"\['update_interval'\] do not apply"),
        (dict(schedule_method="cyclic", recovery_ratio=0.05), ValueError, r"\['recovery_ratio'\] do not apply"),
        (dict(schedule_method="iee", magnitude_scope="layer"), ValueError, r"\['magnitude_scope'\] do not apply"),
        (dict(schedule_method="cyclic", cycles=0), ValueError, r"cycles=0 .*\[1, inf\)"),
        (dict(schedule_method="sculpt", cycles=3, prune_cycle=3), ValueError, r"prune_cycle=3 .*\[1, 2\]"),
        (dict(schedule_method="sculpt", start_sparsity=0.95), ValueError, r"start_sparsity=0.95 .*\[0, 0.9\]"),
        (dict(schedule_method="sculpt", magnitude_scope="erk"), ValueError, r"'erk'.*\['global', 'layer'\]"),
        (dict(schedule_method="iee", update_interval=10, explore_steps=10), ValueError, r"explore_steps=10 .*\[1, 9\]"),
        (dict(schedule_method="cyclic", shape="step"), ValueError, r"'step'.*\['cosine', 'linear'\]"),
    ],
)
def test_sparse_policy_refuses_bad_schedule_options(policy_kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        make("sac", sac.SparsePolicy, **policy_kwargs)


def test_a_model_with_another_methods_state_is_refused() -> None:
    model = make("sac", sac.SparsePolicy, schedule_method="cyclic")
    model.sb3_tar_schedule_state = {"method": "iee"}
    with pytest.raises(ValueError, match="schedule_method='cyclic'.*'iee' run"):
        model.learn(60)


LOAD_SCRIPT = """
    import json, sys
    import torch
    from stable_baselines3 import TD3
    from sb3_tar.sb3.networks import sparse_networks

    torch.set_num_threads(1)
    loaded = TD3.load(sys.argv[1], env=None, device="cpu")
    def kept(model):
        store = model.policy.mask_enforcer.store
        return {net.name: sum(int(m.sum()) for m in store.get(net.name)) for net in sparse_networks(model.policy)}
    before = dict(loaded.sb3_tar_schedule_state), kept(loaded)
    from stable_baselines3.common.env_util import make_vec_env
    loaded.set_env(make_vec_env("Pendulum-v1", n_envs=1, seed=1))
    loaded.learn(100, reset_num_timesteps=False)
    print(json.dumps({"before": before, "after": [loaded.sb3_tar_schedule_state, kept(loaded)]}))
"""


def test_saved_mid_schedule_and_loaded_in_a_fresh_process_the_run_continues(tmp_path: Path) -> None:
    """SCULPT, T = 200, prune at 101: stopped at env step 150 (before its gradient step: 99 taken) and saved, loaded
    in a fresh process and trained 100 more env steps, it keeps the planned T and prunes once at gradient step 101."""
    model = make("td3", td3.SparsePolicy, schedule_method="sculpt", cycles=2, seed=5)
    model.learn(250, callback=_StopAt(150))
    totals = {net.name: sum(layer.weight.numel() for layer in net.linears) for net in sparse_networks(model.policy)}
    model.save(tmp_path / "model.zip")
    script = tmp_path / "load.py"
    script.write_text(textwrap.dedent(LOAD_SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "model.zip")], env=cli_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    (state, kept), (after, kept_after) = result["before"], result["after"]
    assert state["step"] == 99 and state["total_steps"] == 200 and state["critic_pruned"] == 0
    assert kept == {name: round(0.2 * total) for name, total in totals.items()}  # the starting masks (sparsity 0.8)
    assert after["step"] == 199 and after["total_steps"] == 200  # env steps 151..250: 100 more gradient steps
    assert after["critic_pruned"] == 101 and after["actor_pruned"] == 102  # TD3's actor steps at even steps
    assert kept_after == {name: round(0.1 * total) for name, total in totals.items()}


class _StopAt(BaseCallback):
    """Stops ``learn()`` after ``steps`` env steps (before that step's gradient step)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def _on_step(self) -> bool:
        return self.num_timesteps < self.steps
