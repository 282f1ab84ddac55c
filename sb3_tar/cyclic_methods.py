"""Cyclic sparse training, SCULPT and exploitation-exploration as SB3 callbacks (``docs/method.md``, "Cyclic training
and SCULPT" and "Exploitation-exploration"); the classes live in :mod:`sb3_tar.sb3.callbacks.cyclic`."""

from sb3_tar.sb3.callbacks.cyclic import CyclicCallback, IEECallback, SculptCallback

__all__ = ["CyclicCallback", "IEECallback", "SculptCallback"]
