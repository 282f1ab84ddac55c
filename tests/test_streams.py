"""Independent random streams per (seed, network, purpose)."""

from __future__ import annotations

import copy
import zlib

import numpy as np
import pytest
import torch

from sb3_tar import SparsityConfig, prune_and_revive
from sb3_tar.core.streams import PURPOSES, stream_generator, stream_seed


def test_stream_seed_is_the_documented_seed_sequence() -> None:
    """The derivation that docs/method.md states, recomputed by hand with NumPy."""
    for seed, network, purpose, extra in [(0, "actor", "static", ()), (7, "critic.qf1", "dst_update", (250,))]:
        key = (zlib.crc32(network.encode()), PURPOSES.index(purpose), *extra)
        hi, lo = np.random.SeedSequence(entropy=seed, spawn_key=key).generate_state(2, dtype=np.uint64)
        assert stream_seed(seed, network, purpose, *extra) == (int(hi) << 64 | int(lo)) % 2**63


def test_streams_differ_by_seed_network_purpose_and_step() -> None:
    seeds = {
        stream_seed(s, n, p, *e)
        for s in range(6)
        for n in ("actor", "critic.qf0", "critic.qf1", "critic.qf2")
        for p in PURPOSES
        for e in ((), (1,), (2,))
    }
    assert len(seeds) == 6 * 4 * len(PURPOSES) * 3
    # the offset pattern that the old ``seed + i`` scheme shared is gone
    assert stream_seed(0, "critic.qf1", "static") != stream_seed(1, "critic.qf0", "static")
    a = torch.rand(5, generator=stream_generator(3, "actor", "static"))
    b = torch.rand(5, generator=stream_generator(3, "actor", "static"))
    assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [1.5, "1", None, True])
def test_non_int_seed_refused(bad) -> None:
    with pytest.raises(TypeError, match="seed must be an int"):
        stream_seed(bad, "actor", "static")


def test_out_of_range_seed_and_unknown_purpose_refused() -> None:
    with pytest.raises(ValueError, match=r"seed=.* outside the allowed range"):
        stream_seed(2**64, "actor", "static")
    with pytest.raises(ValueError, match="Unknown stream purpose 'grow'"):
        stream_seed(0, "actor", "grow")


@pytest.mark.parametrize("criterion", ["random", "erk"])
def test_neighbouring_seeds_do_not_share_a_q_network_mask(criterion: str) -> None:
    """Seed s's second Q-network against seed s+1's first: same shapes, masks must differ."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    config = SparsityConfig(sparsity=0.9, criterion=criterion, revival="tar", recovery_ratio=0.01)
    for seed in range(4):
        m1, _ = prune_and_revive(copy.deepcopy(net), config, seed, name="critic.qf1")
        m0, _ = prune_and_revive(copy.deepcopy(net), config, seed + 1, name="critic.qf0")
        assert not all(torch.equal(a, b) for a, b in zip(m1, m0))
