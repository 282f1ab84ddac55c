"""The field's baselines for sparse training as SB3 callbacks: gradual magnitude pruning and dense networks of equal
parameter count, and cyclic training, SCULPT and exploitation-exploration (``docs/method.md``, "Baselines"). The
import path of RL-Zoo files (``sb3_tar.baselines.GMPCallback``); the classes live in :mod:`sb3_tar.sb3.callbacks`."""

from sb3_tar.sb3.callbacks.baselines import GMPCallback, SmallDenseCallback
from sb3_tar.sb3.callbacks.cyclic import CyclicCallback, IEECallback, SculptCallback

__all__ = ["CyclicCallback", "GMPCallback", "IEECallback", "SculptCallback", "SmallDenseCallback"]
