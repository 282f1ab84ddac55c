"""sb3-tar: Topology-Aware Revival (TAR) and sparse training for Stable-Baselines3.

- ``SAC(sb3_tar.sac.SparsePolicy, env)`` (also ``TD3``/``sb3_tar.td3``, ``TQC``/``sb3_tar.tqc``, and
  ``PPO``/``sb3_tar.ppo``, ``A2C``/``sb3_tar.a2c``, ``DQN``/``sb3_tar.dqn``): a sparse agent, pruned and revived
  when built.
- ``model.learn(..., callback=sb3_tar.TARCallback(sparsity=0.9))``: the same on an existing
  project's plain ``MlpPolicy`` model.
- ``sb3_tar.prune_and_revive(network, SparsityConfig(...), seed)``: the pure-PyTorch method.
- ``sb3_tar.export_actor(model, "actor.onnx")`` / ``sb3_tar.to_sb3(model, "plain.zip")``: an ONNX/TorchScript
  actor (``sb3_tar.read_export_metadata(path)`` reads its metadata), or a plain SB3 file that loads without sb3-tar.
"""

from sb3_tar.core.config import SparsityConfig
from sb3_tar.core.layer_report import LayerReport, NetworkReport
from sb3_tar.core.sparsify import prune_and_revive

__version__ = "0.2.0"

_LAZY = {
    "SACSparsePolicy": ("sb3_tar.sac", "SparsePolicy"),
    "TD3SparsePolicy": ("sb3_tar.td3", "SparsePolicy"),
    "TQCSparsePolicy": ("sb3_tar.tqc", "SparsePolicy"),
    "PPOSparsePolicy": ("sb3_tar.ppo", "SparsePolicy"),
    "A2CSparsePolicy": ("sb3_tar.a2c", "SparsePolicy"),
    "DQNSparsePolicy": ("sb3_tar.dqn", "SparsePolicy"),
    "TARCallback": ("sb3_tar.callbacks", "TARCallback"),
    "DSTCallback": ("sb3_tar.callbacks", "DSTCallback"),
    "DiagnosticsCallback": ("sb3_tar.diagnostics", "DiagnosticsCallback"),
    "GMPCallback": ("sb3_tar.baselines", "GMPCallback"),
    "SmallDenseCallback": ("sb3_tar.baselines", "SmallDenseCallback"),
    "CyclicCallback": ("sb3_tar.cyclic_methods", "CyclicCallback"),
    "SculptCallback": ("sb3_tar.cyclic_methods", "SculptCallback"),
    "IEECallback": ("sb3_tar.cyclic_methods", "IEECallback"),
    "enforce_masks": ("sb3_tar.callbacks", "enforce_masks"),
    "ExactCheckpointCallback": ("sb3_tar.sb3.persistence.checkpoint", "ExactCheckpointCallback"),
    "masks_of": ("sb3_tar.sb3.reporting.model_masks", "masks_of"),
    "sparsity_summary": ("sb3_tar.sb3.reporting.model_masks", "sparsity_summary"),
    "export_actor": ("sb3_tar.sb3.persistence.export", "export_actor"),
    "read_export_metadata": ("sb3_tar.sb3.persistence.export", "read_export_metadata"),
    "to_sb3": ("sb3_tar.sb3.persistence.share", "to_sb3"),
    "pruning_reports": ("sb3_tar.sb3.reporting.reports", "pruning_reports"),
}


def __getattr__(name: str):  # SB3 glue is imported on first use, so the pure-torch core stays SB3-free
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'sb3_tar' has no attribute {name!r}")


__all__ = ["LayerReport", "NetworkReport", "SparsityConfig", "prune_and_revive", "__version__", *_LAZY]
