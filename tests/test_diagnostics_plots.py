"""The report's plasticity-diagnostics reading (:mod:`sb3_tar.experiments.diagnostics`): every network a cell recorded
becomes a column of the plot (SAC's actor and critic, PPO/A2C's two branches, DQN's Q-network), the critic as the mean
over its Q-networks, checked against numbers written by hand; a DQN-only results folder gets its plot (it once failed
with no column at all)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sb3_tar.experiments.diagnostics import diagnostics_file, diagnostics_plots, network_metrics


def _frame(columns: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame({"timesteps": [100, 200], "seconds": [0.1, 0.1], **columns})


def test_groups_are_every_recorded_network_and_the_critic_is_the_mean_of_its_q_networks() -> None:
    sac = _frame(
        {
            "diagnostics/actor/srank": [10.0, 12.0],
            "diagnostics/critic/qf0/srank": [20.0, 30.0],
            "diagnostics/critic/qf1/srank": [40.0, 50.0],
        }
    )
    table = network_metrics(sac)
    assert table["group"].tolist() == ["actor", "actor", "critic", "critic"]
    assert table["srank"].tolist() == [10.0, 12.0, 30.0, 40.0]  # critic: (20 + 40) / 2, (30 + 50) / 2
    assert table["timesteps"].tolist() == [100, 200, 100, 200]
    dqn = network_metrics(_frame({"diagnostics/q_net/srank": [5.0, 6.0], "diagnostics/q_net/dormant_0": [0.5, 0.25]}))
    assert dqn["group"].tolist() == ["q_net", "q_net"]
    assert dqn["srank"].tolist() == [5.0, 6.0] and dqn["dormant_0"].tolist() == [0.5, 0.25]
    assert network_metrics(_frame({})).empty


@pytest.mark.parametrize("algo, networks", [("dqn", ["q_net"]), ("ppo", ["actor", "critic"])])
def test_a_folder_of_one_algorithm_gets_its_diagnostics_plot(algo: str, networks: list[str], tmp_path: Path) -> None:
    rows = []
    for seed in (0, 1):
        cell = tmp_path / f"seed_{seed}"
        cell.mkdir()
        columns = {f"diagnostics/{n}/{m}": [1.0 + seed, 2.0] for n in networks for m in ("srank", "weight_norm")}
        _frame(columns).to_csv(cell / "diagnostics.csv", index=False)
        rows.append(
            dict(
                cell_dir=str(cell),
                algo=algo,
                env="E-v0",
                width=32,
                method="tar",
                criterion="magnitude",
                sparsity=0.9,
                rr=0.01,
                seed=seed,
            )
        )
    (tmp_path / "report").mkdir()  # make_report creates it
    written, messages = diagnostics_plots(pd.DataFrame(rows), tmp_path / "report")
    assert messages == [] and written == [diagnostics_file(tmp_path / "report", algo, "E-v0", 32)]
    assert written[0].stat().st_size > 5_000


@pytest.mark.parametrize(
    "row, label",
    [
        (dict(method="tar", rr=0.01, criterion="magnitude", sparsity=0.9), "TAR rr=0.01 [magnitude] s=0.9"),
        (
            dict(method="tar+rigl", rr=0.01, criterion="magnitude", sparsity=0.9),
            "TAR actor + RigL critic rr=0.01 [magnitude] s=0.9",
        ),
        (dict(method="static+set", rr=float("nan"), criterion="erk", sparsity=0.8), "Original actor + SET critic [erk] s=0.8"),
        (dict(method="dense", rr=float("nan"), criterion="magnitude", sparsity=float("nan")), "Dense"),
    ],
)
def test_curve_labels_name_per_role_methods_as_the_tables_do(row: dict, label: str) -> None:
    """A per-role cell's curve is labelled as the report's tables name it ("TAR actor + RigL critic"), with its rr
    where a role revives; not with the raw method id."""
    from sb3_tar.experiments.diagnostics import _label

    assert _label(pd.Series(row)) == label


def test_networks_named_in_the_report_notes() -> None:
    """The report's notes name each algorithm's sparse networks; the connectivity note says "both Q-networks"."""
    from sb3_tar.experiments.report import _networks_phrase, cost_note

    sac, mixed = pd.DataFrame({"algo": ["sac"]}), pd.DataFrame({"algo": ["td3", "dqn", "ppo"]})
    assert _networks_phrase(sac) == "the actor and the Q-networks"
    assert _networks_phrase(sac, q_networks="both Q-networks") == "the actor and both Q-networks"
    assert _networks_phrase(mixed) == "the actor and the Q-networks; the Q-network; the policy and the value branches"
    assert _networks_phrase(None) == "the actor and the Q-networks"
    assert "kept weights and biases of the Q-network;" in cost_note(pd.DataFrame({"algo": ["dqn"]}))
