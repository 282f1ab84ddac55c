"""Which SB3 call is under way, read from the Python call stack (thin SB3 glue).

SB3 gives a policy no link to the model that owns it, and builds and loads policies inside its own methods.
Three things in sb3-tar need that link, and read it from the frames of the calls under way:

- the device a policy will run on, and whether SB3 is loading it (:func:`sb3_tar.sb3.execution.sparse_execution.sb3_context`);
- the algorithm a ``SparsePolicy`` is built for, to refuse the wrong one (:func:`sb3_tar.sb3.policies.check_policy_use`);
- the model whose logger records the ``sparse/`` curves of a policy used without callbacks
  (:func:`sb3_tar.sb3.reporting.report_logging.attach_from_caller`).

The frames are read, never changed, and only while the call runs.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm


def caller_frames(depth: int, limit: int | None = None) -> list[FrameType]:
    """
    :param depth: Where to start, counted from the function calling this one: 0 is that function's own frame,
        1 its caller, and so on.
    :param limit: At most this many frames (default: up to the outermost).
    :return: The frames from there outwards (innermost first).
    """
    frames: list[FrameType] = []
    frame = sys._getframe(depth + 1)
    while frame is not None and (limit is None or len(frames) < limit):
        frames.append(frame)
        frame = frame.f_back
    return frames


def frame_algorithm(frame: FrameType) -> BaseAlgorithm | None:
    """:return: The SB3 algorithm a frame's method runs on (its ``self``), or ``None``."""
    owner: Any = frame.f_locals.get("self")
    return owner if isinstance(owner, BaseAlgorithm) else None


__all__ = ["caller_frames", "frame_algorithm"]
