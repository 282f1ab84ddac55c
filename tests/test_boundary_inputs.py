"""Odd inputs are refused at the boundary with a clear error that names the bad value (issue 20, point 5); arguments
are checked where the user gives them: ``verbose`` of every callback at construction (a bad one used to pass and fail
in ``learn()`` after the model was pruned), NumPy numbers accepted like Python ones (same masks), the diagnostics batch
against the replay buffer before anything changes, the checkpoint folder, and SET's planned steps in a
``SparsePolicy``."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sb3_contrib import TQC
from sb3_utils import small_kwargs
from stable_baselines3 import DQN, PPO, SAC, TD3
from stable_baselines3.common.envs import BitFlippingEnv
from stable_baselines3.her import HerReplayBuffer

import sb3_tar
from sb3_tar import DSTCallback, TARCallback, sac, td3, tqc
from sb3_tar.baselines import CyclicCallback, GMPCallback, IEECallback, SculptCallback, SmallDenseCallback
from sb3_tar.core.sparsify import max_sparsity
from sb3_tar.diagnostics import DiagnosticsCallback
from sb3_tar.sb3.persistence.checkpoint import ExactCheckpointCallback
from sb3_tar.sb3.reporting.model_masks import masks_of, sparsity_summary


def test_zero_width_layer_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"'latent_pi.0' of actor has a 0x3 weight.*net_arch entry must be >= 1"):
        SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(net_arch=[0, 32]), device="cpu")
    model = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[0, 32]), **small_kwargs("sac"))
    with pytest.raises(ValueError, match="net_arch entry must be >= 1"):
        model.learn(10, callback=sb3_tar.TARCallback(sparsity=0.5))
    assert masks_of(model) is None  # the failed call left the model dense


def test_fewer_kept_weights_than_layers_is_refused() -> None:
    # Pendulum actor with net_arch=[2, 2]: 2x3 + 2x2 + 1x2 (mu) + 1x2 (log_std) = 14 weights in 4 layers;
    # sparsity 0.99 keeps round(0.01 * 14) = 0 of them.
    with pytest.raises(ValueError, match=r"sparsity=0.99 keeps 0 of the 14 weights of actor, fewer than its 4 layers"):
        SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(net_arch=[2, 2], sparsity=0.99), device="cpu")
    # the largest sparsity the message offers keeps round((1 - 0.7142) * 14) = round(4.0012) = 4 weights: one per layer
    assert max_sparsity(14, 4) == 0.7142
    model = SAC(
        sac.SparsePolicy,
        "Pendulum-v1",
        policy_kwargs=dict(net_arch=[2, 2], sparsity=0.7142, criterion="random", revival="none"),
        device="cpu",
    )
    assert sparsity_summary(model)["actor"]["kept"] == 4
    plain = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[2, 2]), **small_kwargs("sac", learning_starts=5))
    before = {k: v.clone() for k, v in plain.policy.state_dict().items()}
    with pytest.raises(ValueError, match="fewer than its"):
        plain.learn(10, callback=sb3_tar.TARCallback(sparsity=0.99))
    after = plain.policy.state_dict()
    assert masks_of(plain) is None and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(
    "algo, policy, expected",
    [
        (PPO, sac.SparsePolicy, "SAC"),
        (TD3, sac.SparsePolicy, "SAC"),
        (SAC, td3.SparsePolicy, "TD3"),
        (SAC, tqc.SparsePolicy, "TQC"),
        (TQC, sac.SparsePolicy, "SAC"),
    ],
)
def test_sparse_policy_with_the_wrong_algorithm_is_a_type_error(algo, policy, expected) -> None:
    with pytest.raises(TypeError, match=rf"SparsePolicy is a policy for {expected}, got {algo.__name__}"):
        algo(policy, "Pendulum-v1", device="cpu")


def test_sparse_policy_with_dqn_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="is a policy for SAC, got DQN"):
        DQN(sac.SparsePolicy, "CartPole-v1", device="cpu")


def test_sparsity_one_names_sparsity() -> None:
    with pytest.raises(ValueError, match=r"^sparsity=1.0 is outside the allowed range \[0, 1\)"):
        sb3_tar.TARCallback(sparsity=1.0)
    with pytest.raises(ValueError, match=r"^actor_sparsity=1.0 is outside"):
        sb3_tar.TARCallback(sparsity=0.5, actor_sparsity=1.0)
    with pytest.raises(ValueError, match=r"^sparsity=1.0 is outside"):
        SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(sparsity=1.0), device="cpu")


def test_magnitude_layer_is_magnitude_with_layer_scope() -> None:
    callback = sb3_tar.TARCallback(sparsity=0.9, criterion="magnitude_layer")
    assert {(c.criterion, c.magnitude_scope) for c in callback.configs.values()} == {("magnitude", "layer")}
    dst = sb3_tar.DSTCallback(sparsity=0.9, criterion="magnitude_layer")
    assert {(c.criterion, c.magnitude_scope) for c in dst.configs.values()} == {("magnitude", "layer")}
    # per-layer scope: every layer keeps round(0.1 * its size) of its largest weights (here 64x3 -> 19)
    model = SAC(
        sac.SparsePolicy,
        "Pendulum-v1",
        policy_kwargs=dict(net_arch=[64, 64], sparsity=0.9, criterion="magnitude_layer", revival="none"),
        device="cpu",
    )
    first = model.policy.actor.latent_pi[0].weight
    assert int((first != 0).sum()) == round(0.1 * first.numel())


def test_dict_observations_point_to_multi_input_policy_and_the_callback() -> None:
    env = BitFlippingEnv(n_bits=4, continuous=True, max_steps=4)
    with pytest.raises(TypeError, match=r"Dict observation space.*MultiInputPolicy.*TARCallback"):
        SAC(sac.SparsePolicy, env, device="cpu")
    # ... and what the message points to works, with HER
    model = SAC(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=2, goal_selection_strategy="future"),
        policy_kwargs=dict(net_arch=[32, 32]),
        **small_kwargs("sac", learning_starts=20, batch_size=16, buffer_size=1000),
    )
    model.learn(60, callback=sb3_tar.TARCallback(sparsity=0.8))
    summary = sparsity_summary(model)
    assert {name: stats["pruned_nonzero"] for name, stats in summary.items()} == {n: 0 for n in summary}
    assert summary["actor"]["kept"] == round(0.2 * summary["actor"]["total"])


CALLBACKS: dict[str, Any] = {
    "TARCallback": lambda **kw: TARCallback(**kw),
    "DSTCallback": lambda **kw: DSTCallback(**kw),
    "GMPCallback": lambda **kw: GMPCallback(**kw),
    "CyclicCallback": lambda **kw: CyclicCallback(**kw),
    "SculptCallback": lambda **kw: SculptCallback(**kw),
    "IEECallback": lambda **kw: IEECallback(**kw),
    "SmallDenseCallback": lambda **kw: SmallDenseCallback(reference_width=64, **kw),
    "DiagnosticsCallback": lambda **kw: DiagnosticsCallback(**kw),
    "ExactCheckpointCallback": lambda **kw: ExactCheckpointCallback("unused_folder", **kw),
}


@pytest.mark.parametrize("name", sorted(CALLBACKS))
@pytest.mark.parametrize(
    "verbose, error, message",
    [
        ("high", TypeError, "verbose must be an int, got 'high' (str)"),
        (None, TypeError, "verbose must be an int, got None"),
        (1.5, TypeError, "verbose must be an int, got 1.5 (float)"),
        (True, TypeError, "verbose must be an int, got True (bool)"),
        (-1, ValueError, "verbose=-1 is outside the allowed range [0, inf)"),
    ],
)
def test_bad_verbose_is_refused_at_construction(name: str, verbose: Any, error: type, message: str) -> None:
    with pytest.raises(error) as raised:
        CALLBACKS[name](verbose=verbose)
    assert message in str(raised.value)


@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_numpy_verbose_is_an_int(name: str) -> None:
    callback = CALLBACKS[name](verbose=np.int64(2))
    assert callback.verbose == 2 and type(callback.verbose) is int


def _model(**overrides: Any) -> SAC:  # no gradient step in these short runs (learning_starts 1,000)
    kwargs = small_kwargs("sac", **dict(dict(learning_starts=1_000, buffer_size=1_000), **overrides))
    return SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[16, 16]), **kwargs)


def _masks(model: SAC) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.policy.state_dict().items() if key.endswith("weight_mask")}


def test_numpy_numbers_give_the_masks_of_python_numbers() -> None:
    """``np.float64``/``np.int64`` settings (from ``np.linspace``, a pandas table...) prune exactly as the Python
    numbers do: the masks read from the two models' state dicts are equal."""
    masks = []
    for sparsity, rr, seed, iters in [(0.8, 0.02, 3, 5), (np.float64(0.8), np.float64(0.02), np.int64(3), np.int64(5))]:
        model = _model()
        callback = TARCallback(sparsity=sparsity, recovery_ratio=rr, seed=seed, criterion="synflow", synflow_iters=iters)
        model.learn(2, callback=callback)
        masks.append(_masks(model))
        config = callback.configs["actor"]
        assert type(config.sparsity) is float and type(config.synflow_iters) is int and type(callback.seed) is int
    assert masks[0].keys() == masks[1].keys() and len(masks[0]) == 16  # actor 4 (mu, log_std), 2 x 3 online + 2 x 3 target
    for key in masks[0]:
        assert torch.equal(masks[0][key], masks[1][key]), key
    kept = sum(int(m.sum()) for k, m in masks[0].items() if k.startswith("actor."))
    total = sum(m.numel() for k, m in masks[0].items() if k.startswith("actor."))
    assert kept == round(0.2 * total)  # reserve mode: the final density is 1 - sparsity, by hand

    policy_masks = []
    for seed in (3, np.int64(3)):
        model = SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(net_arch=[16, 16], seed=seed), seed=0, device="cpu")
        policy_masks.append(_masks(model))
    assert all(torch.equal(policy_masks[0][k], policy_masks[1][k]) for k in policy_masks[0])

    dst = DSTCallback(update_interval=np.int64(100), drop_fraction=np.float64(0.25))
    assert (dst.config.update_interval, dst.config.drop_fraction) == (100, 0.25)
    assert type(dst.config.update_interval) is int and type(dst.config.drop_fraction) is float
    gmp = GMPCallback(update_interval=np.int64(10), start_fraction=np.float32(0.25))
    assert gmp.config.interval == 10 and type(gmp.config.interval) is int and gmp.config.start_fraction == 0.25


def test_diagnostics_batch_larger_than_the_replay_buffer_is_refused_before_pruning() -> None:
    """The fixed batch could never be drawn (the callback recorded nothing, silently): refused when the callbacks
    are initialised, before TARCallback (first in the list) prunes: the weights are the same bits after."""
    model = _model(buffer_size=100)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    with pytest.raises(ValueError, match=r"batch_size=256 is outside the allowed range \[2, 100\]"):
        model.learn(10, callback=[TARCallback(sparsity=0.9), DiagnosticsCallback(batch_size=256)])
    after = model.policy.state_dict()
    assert after.keys() == before.keys()  # no weight_mask buffer was added
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert model.num_timesteps == 0
    DiagnosticsCallback(batch_size=100)  # the buffer's size itself is allowed


def test_checkpoint_folder_is_checked(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="save_path must be a str or os.PathLike, got None"):
        ExactCheckpointCallback(None)  # type: ignore[arg-type]
    file = tmp_path / "a_file"
    file.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        ExactCheckpointCallback(file)
    assert file.read_text() == "x"
    ExactCheckpointCallback(tmp_path / "not_yet")  # a folder that does not exist yet is created at the first save


def test_sparse_policy_set_needs_at_least_one_planned_step() -> None:
    """``dst_total_steps=0`` was accepted, and SET then never rewired."""
    with pytest.raises(ValueError, match=r"dst_total_steps=0 is outside the allowed range \[1, inf\)"):
        SAC(sac.SparsePolicy, "Pendulum-v1", policy_kwargs=dict(dst_method="set", dst_total_steps=0), device="cpu")


@pytest.mark.parametrize(
    "make",
    [
        lambda: TARCallback(sparsity=0.9, actor_sparsity=0.3),
        lambda: DSTCallback(method="rigl", actor_sparsity=0.3),
        lambda: GMPCallback(actor_sparsity=0.3),
        lambda: SmallDenseCallback(reference_width=16, actor_sparsity=0.3),
        lambda: TARCallback(sparsity=0.9, role_methods={"actor": "dense", "critic": "tar"}),
        lambda: DSTCallback(method="rigl", role_methods={"actor": "tar"}),
    ],
    ids=["tar", "dst", "gmp", "small_dense", "tar-role-methods", "dst-role-methods"],
)
def test_actor_sparsity_on_dqn_is_refused_before_anything_changes(make: Any) -> None:
    """DQN has no actor: ``actor_sparsity`` was recorded in ``sb3_tar_config`` and ignored. Refused when the
    callbacks are initialised: the model's state dict is the same bits after, and it has no sb3-tar record."""
    model = DQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[16, 16]), learning_starts=10, device="cpu")
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    with pytest.raises(ValueError, match=r"(actor_sparsity=0.3|role_methods\['actor'\]=.*) has no actor to apply to: DQN's"):
        model.learn(20, callback=make())
    after = model.policy.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert getattr(model, "sb3_tar_config", None) is None and model.num_timesteps == 0
    model.learn(20, callback=TARCallback(sparsity=0.5, actor_sparsity=None))  # an explicit None asks for nothing
    kept = sum(int(v.sum()) for k, v in model.policy.state_dict().items() if k.startswith("q_net.") and k.endswith("_mask"))
    total = sum(v.numel() for k, v in model.policy.state_dict().items() if k.startswith("q_net.") and k.endswith("_mask"))
    assert kept == round(0.5 * total)  # global magnitude over the Q-network: half its weights, by hand


def test_core_functions_refuse_mismatched_and_out_of_range_inputs() -> None:
    """The pure-torch core, called directly: per-layer lists of different lengths were cut to the shortest by
    ``zip`` (a layer silently left out), and a few out-of-range values gave wrong results instead of an error."""
    from torch import nn

    from sb3_tar.core.criteria import erk_densities, synflow_masks
    from sb3_tar.core.gmp import prune_step_masks
    from sb3_tar.core.masks import mask_gradients, training_flops_ratio
    from sb3_tar.core.revival import revive, tar_allocation

    generator = torch.Generator().manual_seed(0)
    layer = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"Got 2 masks for 1 layers"):
        mask_gradients([layer], [torch.ones(3, 4), torch.ones(3, 4)])
    with pytest.raises(ValueError, match=r"Mask 0 has shape \(1, 4\), layer weight has shape \(3, 4\)"):
        mask_gradients([layer], [torch.ones(1, 4)])  # it broadcast, zeroing every gradient of the layer
    with pytest.raises(ValueError, match=r"Expected one entry per layer: shapes has 2, kept has 1"):
        tar_allocation([(3, 4), (2, 3)], [5], 1)
    with pytest.raises(ValueError, match=r"kept=13 is outside the allowed range \[0, 12\] of a 3x4 layer"):
        tar_allocation([(3, 4)], [13], 0)
    with pytest.raises(ValueError, match=r"Expected one entry per layer: masks has 1, counts has 2"):
        revive([torch.zeros(3, 4, dtype=torch.bool)], [1, 1], generator)
    with pytest.raises(ValueError, match=r"n_keep=-1 is outside the allowed range \[0, 12\]"):
        erk_densities([(3, 4)], -1)  # it returned a negative density
    network = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"iters=0 is outside the allowed range \[1, inf\)"):
        synflow_masks(network, ["0", "2"], 5, generator, iters=0)  # it kept all 18 weights when asked for 5
    weights = [network[0].weight, network[2].weight]
    with pytest.raises(ValueError, match=r"Expected one entry per layer: weights has 2, masks has 1"):
        prune_step_masks(weights, [torch.ones(3, 4, dtype=torch.bool)], 5, Fraction(1), None, generator)
    with pytest.raises(ValueError, match=r"one bias flag per mask"):
        training_flops_ratio([torch.ones(3, 4)], [True, False])
    with pytest.raises(ValueError, match=r"at least one mask"):
        training_flops_ratio([])
    # valid calls still give the hand-computed numbers
    assert erk_densities([(3, 4)], 6) == [0.5]
    half = torch.zeros(3, 4)
    half[:, :2] = 1
    assert training_flops_ratio([half], [True]) == pytest.approx((2 * 6 + 3) / (2 * 12 + 3))
    masks = synflow_masks(network, ["0", "2"], 5, generator, iters=1)
    assert sum(int(m.sum()) for m in masks) == 5

    from sb3_tar.core.dynamic import drop_count, rewire_masks
    from sb3_tar.core.gmp import kept_at
    from sb3_tar.core.masks import density

    with pytest.raises(ValueError, match=r"Expected one entry per layer: weights has 2, grads has 0"):
        rewire_masks(weights, [torch.ones(3, 4), torch.ones(2, 3)], 0.3, "rigl", generator, grads=[])  # it returned []
    with pytest.raises(ValueError, match=r"fraction=2.0 is outside the allowed range \[0, 1\]"):
        drop_count(2.0, 5, 10)
    with pytest.raises(ValueError, match=r"kept=11 is outside the allowed range \[0, 10\]"):
        drop_count(0.3, 11, 10)
    with pytest.raises(ValueError, match=r"progress=2 and n_final=4 are outside the allowed ranges"):
        kept_at(Fraction(2), 10, 4)  # it returned -2
    with pytest.raises(ValueError, match=r"density of no weights"):
        density([])  # a bare ZeroDivisionError
    assert drop_count(0.3, 10, 100) == 3 and drop_count(0.3, 10, 12) == 2  # round(3.0); capped by the 2 pruned
    assert kept_at(Fraction(1, 2), 10, 4) == 7  # 10 - floor(3 + 1/2)

    from sb3_tar.core.criteria import static_masks

    with pytest.raises(ValueError, match=r"layer_names \['0', 'x'\]: \['x'\]; the sparsifiable layers are \['0', '2'\]"):
        static_masks(network, ["0", "x"], 5, "magnitude", generator)  # a bare KeyError: 'x'
    with pytest.raises(ValueError, match=r"Expected one entry per layer: layer_names has 2, within has 1"):
        static_masks(network, ["0", "2"], 5, "magnitude", generator, within=[torch.ones(3, 4, dtype=torch.bool)])


def test_step_helpers_refuse_an_interval_below_one() -> None:
    from sb3_tar.core.dynamic import is_update_step, last_update_step, update_count
    from sb3_tar.core.gmp import is_prune_step, last_prune_step

    # interval 0 was a bare ZeroDivisionError inside the modulo
    for call in (
        lambda i: is_prune_step(10, 0, 100, i),
        lambda i: last_prune_step(10, 0, 100, i),
        lambda i: is_update_step(10, i, 100.0),
        lambda i: last_update_step(10, i, 100.0),
        lambda i: update_count(10, i, 100.0),
    ):
        with pytest.raises(ValueError, match=r"interval=0 is outside the allowed range \[1, inf\)"):
            call(0)
        with pytest.raises(TypeError, match="interval"):
            call(2.5)
    # interval 3 from t0 = 0: prune steps 3, 6, 9, ... and t1 = 100; updates at 3, 6, 9 below T_end = 100
    assert [t for t in range(1, 11) if is_prune_step(t, 0, 100, 3)] == [3, 6, 9]
    assert last_prune_step(10, 0, 100, 3) == 9 and last_update_step(10, 3, 100.0) == 9 and update_count(10, 3, 100.0) == 3


def test_sculpt_plan_refuses_a_schedule_that_is_not_one() -> None:
    from sb3_tar.core.cyclic import CyclicSchedule, SculptPlan

    with pytest.raises(TypeError, match=r"schedule=\{'cycles': 4\} must be a CyclicSchedule, got dict"):
        SculptPlan(schedule={"cycles": 4}, prune_cycle=3)  # type: ignore[arg-type]
    assert SculptPlan(schedule=CyclicSchedule(cycles=4), prune_cycle=3).prune_cycle == 3


def test_hidden_unit_states_refuses_a_mask_that_is_not_2d() -> None:
    from sb3_tar.core.masks import hidden_unit_states

    producer = torch.tensor([[1, 0], [0, 0], [0, 0]], dtype=torch.bool)  # 3 hidden units, only unit 0 has an input
    consumer = torch.tensor([[1, 0, 0], [0, 1, 0]], dtype=torch.bool)  # units 0 and 1 have an output
    # unit 0: input and output (live); unit 1: output only (half); unit 2: neither (removed whole)
    assert hidden_unit_states(producer, [consumer]) == (1, 1, 1)
    with pytest.raises(ValueError, match=r"2-D \(n_out, n_in\) masks: got shape \(3,\)"):
        hidden_unit_states(producer, [consumer[0]])
    with pytest.raises(ValueError, match=r"got shape \(6,\)"):
        hidden_unit_states(producer.flatten(), [consumer])


@pytest.mark.parametrize("read", [masks_of, sparsity_summary])
def test_mask_readers_refuse_what_is_not_a_model(read: Any) -> None:
    # None used to read as "not sparse" (sparsity_summary) or as no masks (masks_of)
    with pytest.raises(TypeError, match="expected an SB3 model or policy, got NoneType"):
        read(None)
    with pytest.raises(TypeError, match="got str"):
        read("model.zip")
