"""One place for the pruning reports of any sparse SB3 model, before or after ``save()``/``load()``."""

from __future__ import annotations

from typing import Any

from sb3_tar.core.layer_report import NetworkReport
from sb3_tar.sb3.reporting.model_masks import stored_masks


def pruning_reports(model: Any) -> dict[str, NetworkReport]:
    """
    The per-layer pruning and revival report of every network of a sparse model, however it was made:

    - a ``SparsePolicy`` keeps them in ``model.policy.sparsity_reports`` (saved in the policy's state dict);
    - ``TARCallback``/``DSTCallback`` store them with the model as ``model.sb3_tar_reports`` (saved by
      ``model.save()``, so a model loaded with ``SAC.load`` / ``TD3.load`` / ``TQC.load``, for example one trained
      by RL-Zoo3 with the callback in its hyperparameter file, has them too).

    ``print(report)`` gives the table, ``report.to_dict()`` plain types for JSON.

    :param model: An SB3 model (or its policy, for a ``SparsePolicy``).
    :return: ``{network name: NetworkReport}``, for the actor then each Q-network; empty for a sparse model
        whose reports were not stored (e.g. masks installed by hand).
    :raises ValueError: If the model holds no masks.
    """
    policy = getattr(model, "policy", model)
    if stored_masks(model) is None:
        raise ValueError(f"{type(model).__name__} holds no sb3-tar masks: use SparsePolicy or a sb3-tar callback")
    reports = getattr(policy, "sparsity_reports", None)
    if reports:
        return dict(reports)
    stored = getattr(model, "sb3_tar_reports", None)
    if isinstance(stored, dict):
        return {name: NetworkReport.from_dict(data) for name, data in stored.items()}
    return {}
