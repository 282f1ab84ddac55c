"""Callbacks that make an existing SB3 project sparse without other code changes: ``TARCallback`` (static masks with
Topology-Aware Revival) and ``DSTCallback`` (SET/RigL), on SAC, TD3, TQC, CrossQ, PPO, A2C, DQN and sb3-contrib's
TRPO, MaskablePPO and QR-DQN. The import path of RL-Zoo files (``sb3_tar.callbacks.TARCallback``); the classes live in
:mod:`sb3_tar.sb3.callbacks`."""

from sb3_tar.sb3.callbacks.dst import DSTCallback
from sb3_tar.sb3.callbacks.sparse import SUPPORTED_ALL, SUPPORTED_OFF_POLICY, SparseCallback, check_supported
from sb3_tar.sb3.callbacks.tar import TARCallback, enforce_masks
from sb3_tar.sb3.execution.enforcement import attached_enforcer

__all__ = [
    "DSTCallback",
    "SUPPORTED_ALL",
    "SUPPORTED_OFF_POLICY",
    "SparseCallback",
    "TARCallback",
    "attached_enforcer",
    "check_supported",
    "enforce_masks",
]
