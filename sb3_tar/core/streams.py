"""Independent random streams per (seed, network, purpose) (pure Python/NumPy/PyTorch, no SB3).

Every random draw of the method comes from its own stream: the static mask, the split of a
Uniform Revival budget, the revived positions, and each SET/RigL update. A stream is named by
the run's seed, the network's name (``"actor"``, ``"critic.qf0"``, ...), the purpose and, for
dynamic sparse training, the update step. :class:`numpy.random.SeedSequence` hashes that name
into a generator seed, so

- different seeds never share a stream: seed ``s``'s ``critic.qf1`` is unrelated to seed
  ``s + 1``'s ``critic.qf0`` (an offset such as ``seed + i`` would make them equal);
- the static stream does not depend on the revival method, so Original, Uniform Revival and TAR
  runs of one seed start from the same static mask (the paired design);
- a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import numbers
import zlib

import numpy as np
import torch

#: Purposes of the random streams, in the order of their codes (never reorder: codes are part
#: of every stream's identity, so reordering would change every mask drawn from a seed).
PURPOSES: tuple[str, ...] = ("static", "revival_split", "revival_positions", "dst_update")


def check_seed(seed: object) -> int:
    """
    :param seed: A seed.
    :return: ``seed`` as a Python int.
    :raises TypeError: If ``seed`` is not an integer (bools are refused).
    :raises ValueError: If ``seed`` is outside ``[-2**63, 2**64)``.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r} ({type(seed).__name__})")
    seed = int(seed)
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed={seed} is outside the allowed range [-2**63, 2**64)")
    return seed


def check_optional_seed(seed: object) -> int | None:
    """
    :param seed: A seed, or ``None`` (the caller draws one later).
    :return: ``None``, or ``seed`` as a Python int (:func:`check_seed`).
    :raises TypeError: If ``seed`` is neither ``None`` nor an integer (bools are refused).
    :raises ValueError: If ``seed`` is outside ``[-2**63, 2**64)``.
    """
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    return None if seed is None else check_seed(seed)


def stream_seed(seed: int, network: str, purpose: str, *extra: int) -> int:
    """
    The generator seed of one stream.

    :param seed: The run's seed (an int in ``[-2**63, 2**64)``; a negative seed is taken modulo ``2**64``).
    :param network: Name of the network (any string).
    :param purpose: One of :data:`PURPOSES`.
    :param extra: Further non-negative integers naming the stream (SET/RigL: the update step).
    :return: A seed in ``[0, 2**63)``.
    """
    seed = check_seed(seed) % 2**64
    if purpose not in PURPOSES:
        raise ValueError(f"Unknown stream purpose {purpose!r}: valid values are {list(PURPOSES)}")
    if not isinstance(network, str):
        raise TypeError(f"network must be a string, got {network!r}")
    key = (zlib.crc32(network.encode("utf-8")), PURPOSES.index(purpose), *(int(e) for e in extra))
    state = np.random.SeedSequence(entropy=seed, spawn_key=key).generate_state(2, dtype=np.uint64)
    return int((int(state[0]) << 64 | int(state[1])) % 2**63)


def stream_generator(seed: int, network: str, purpose: str, *extra: int) -> torch.Generator:
    """
    :param seed: The run's seed.
    :param network: Name of the network.
    :param purpose: One of :data:`PURPOSES`.
    :param extra: Further non-negative integers naming the stream.
    :return: A CPU ``torch.Generator`` seeded with :func:`stream_seed`.
    """
    return torch.Generator().manual_seed(stream_seed(seed, network, purpose, *extra))
