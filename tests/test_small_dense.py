"""The small-dense baseline: real SAC/TD3/TQC policies built with the solved widths hold, per network, within 1% of
the weights a 90%-sparse network of the reference width keeps (counted from the models' own layers), the solver
against brute force, and the record SmallDenseCallback stores with the model."""

from __future__ import annotations

import itertools

import pytest
import torch
from sb3_utils import ALGOS

from sb3_tar.baselines import SmallDenseCallback
from sb3_tar.core.param_match import MLPShape, match_small_dense, solve_widths
from sb3_tar.sb3.methods.small_dense import small_dense_net_arch

torch.set_num_threads(1)
TQC_KWARGS = dict(n_critics=2, n_quantiles=5)


def _weights(model) -> dict[str, int]:
    """Weights of every nn.Linear of the actor and of each Q-network, counted from the model itself."""
    policy = model.policy
    count = lambda m: sum(x.weight.numel() for x in m.modules() if isinstance(x, torch.nn.Linear))  # noqa: E731
    out = {"actor": count(policy.actor)}
    for i, q in enumerate(policy.critic.q_networks):
        out[f"critic.qf{i}"] = count(q)
    return out


def _model(algo: str, net_arch, **policy_kwargs):
    kwargs = dict(net_arch=net_arch, **policy_kwargs)
    return ALGOS[algo]("MlpPolicy", "Pendulum-v1", buffer_size=100, device="cpu", policy_kwargs=kwargs)


def test_small_dense_sac_hand_computed_counts() -> None:
    """SAC, Pendulum (3 observations, 1 action), width 256: actor weights 3*256 + 256*256 + 256*2 = 66816, 10% kept:
    round(6681.6) = 6682. Solved widths [79, 80]: 3*79 + 79*80 + 80*2 = 6717 (+0.52%; one width 79 gives 6636, -0.69%).
    Q-network: 4*256 + 256*256 + 256 = 66816 too, and [79, 80]: 4*79 + 6320 + 80 = 6716."""
    arch, matches = small_dense_net_arch("sac", "Pendulum-v1", 256, 0.9)
    assert arch == {"pi": [79, 80], "qf": [79, 80]}
    assert (matches["actor"].reference_weights, matches["actor"].target, matches["actor"].weights) == (66816, 6682, 6717)
    assert (matches["critic.qf0"].target, matches["critic.qf0"].weights) == (6682, 6716)
    assert _weights(_model("sac", arch)) == {"actor": 6717, "critic.qf0": 6716, "critic.qf1": 6716}


@pytest.mark.parametrize("algo", ["sac", "td3", "tqc"])
def test_small_dense_counts_within_one_percent_of_the_sparse_kept_count(algo: str) -> None:
    extra = TQC_KWARGS if algo == "tqc" else {}
    arch, _ = small_dense_net_arch(algo, "Pendulum-v1", 256, 0.9, dict(extra))
    reference = _weights(_model(algo, [256, 256], **extra))  # the network a 90%-sparse run prunes
    small = _weights(_model(algo, arch, **extra))
    assert set(small) == set(reference)
    for name, total in reference.items():
        kept = round(0.1 * total)  # what TARCallback(sparsity=0.9) keeps, round((1 - s) N)
        assert abs(small[name] - kept) <= 0.01 * kept, (algo, name, small[name], kept)
        assert small[name] < 0.2 * total


def test_solve_widths_is_the_best_near_uniform_choice() -> None:
    """Brute force over every pair of widths that differ by at most one."""
    for n_in, n_out, target in [(3, 2, 6682), (4, 1, 442), (23, 1, 7168), (17, 12, 29184), (4, 25, 1000)]:
        shape = MLPShape(n_in=n_in, depth=2, n_out=n_out)
        best = min(
            abs(shape.weights([a, b]) - target) for a, b in itertools.product(range(1, 400), repeat=2) if abs(a - b) <= 1
        )
        assert abs(shape.weights(solve_widths(shape, target)) - target) == best
    assert match_small_dense(MLPShape(3, 2, 2), 64, 0.9).target == round(0.1 * (3 * 64 + 64 * 64 + 64 * 2))


def test_small_dense_callback_records_widths_and_counts() -> None:
    arch, _ = small_dense_net_arch("td3", "Pendulum-v1", 256, 0.9)
    model = _model("td3", arch)
    model.learn(5, callback=SmallDenseCallback(reference_width=256, sparsity=0.9))
    record = model.sb3_tar_config["small_dense"]
    counted = _weights(model)
    for name, entry in record.items():
        assert entry["model_widths"] == entry["widths"] == (arch["pi"] if name == "actor" else arch["qf"])
        assert entry["model_weights"] == counted[name]
        assert entry["target"] == round(0.1 * entry["reference_weights"])
    assert record["actor"]["reference_weights"] == 3 * 256 + 256 * 256 + 256 * 1  # TD3 actor: one head


def test_small_dense_callback_warns_on_another_width_and_refuses_bad_values() -> None:
    model = _model("sac", [64, 64])
    with pytest.warns(UserWarning, match=r"the widths matching the 0.9-sparse width-256 network are \[79, 80\]"):
        model.learn(5, callback=SmallDenseCallback(reference_width=256, sparsity=0.9))
    with pytest.raises(ValueError, match=r"reference_width=0 is outside the allowed range"):
        SmallDenseCallback(reference_width=0)
    with pytest.raises(TypeError, match=r"reference_width must be an int, got 256.0 \(float\)"):
        SmallDenseCallback(reference_width=256.0)


def test_baselines_are_importable_from_the_package() -> None:
    import sb3_tar
    from sb3_tar.baselines import GMPCallback

    assert sb3_tar.SmallDenseCallback is SmallDenseCallback and sb3_tar.GMPCallback is GMPCallback
