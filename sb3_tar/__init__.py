"""sb3-tar: Topology-Aware Revival (TAR) and sparse training for Stable-Baselines3."""

from sb3_tar.config import SparsityConfig
from sb3_tar.layer_report import LayerReport, NetworkReport
from sb3_tar.sparsify import prune_and_revive

__version__ = "0.1.0"

__all__ = ["LayerReport", "NetworkReport", "SparsityConfig", "prune_and_revive", "__version__"]
