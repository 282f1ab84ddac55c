"""``DiagnosticsCallback``: plasticity diagnostics through training (dormant units, srank, weight and
gradient norms), for dense and sparse SAC/TD3/TQC/CrossQ, PPO/A2C/TRPO/MaskablePPO and DQN/QR-DQN models. See
``docs/diagnostics.md``."""

from __future__ import annotations

import csv
import math
import numbers
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from sb3_tar.core.config import check_int, check_number
from sb3_tar.sb3.reporting.diagnostics import FixedBatch, draw_fixed_batch, draw_rollout_batch, measure_policy

#: Default interval in environment steps (measured cost: see docs/diagnostics.md).
DEFAULT_EVERY = 5_000
#: Default size of the fixed batch.
DEFAULT_BATCH_SIZE = 256
#: Prefix of the logger keys.
PREFIX = "diagnostics/"


class DiagnosticsCallback(BaseCallback):
    """
    Every ``every`` environment steps (at the first rollout start at or after each multiple of ``every``, i.e.
    after the gradient steps of the steps before; with SB3's default ``train_freq=1`` exactly at the multiples),
    measure each network of the model (the actor and every Q-network; PPO/A2C: the branches ``actor`` and ``critic``
    and the features extractor networks; DQN: ``q_net``) on a fixed batch of the replay buffer (PPO/A2C, which have
    none: of the first full rollout, drawn at its end, so the first measurement is the first one due after it; a
    rollout of fewer than ``batch_size`` steps per env gives ``min(batch_size, n_steps * n_envs)`` of its
    transitions, :func:`~sb3_tar.sb3.reporting.diagnostics.draw_rollout_batch`) and
    log, through the model's SB3 logger, under ``diagnostics/``:

    - ``diagnostics/<network>/dormant_<tau>``: the fraction of tau-dormant hidden units (Sokar et al. 2023);
    - ``diagnostics/<network>/srank``: the effective rank of the last hidden layer's outputs (Kumar et al. 2021);
    - ``diagnostics/<network>/weight_norm`` and ``grad_norm``: L2 norms of the kept weights and biases and of
      their gradients from the latest update (NaN before the first update);

    with ``<network>`` = ``actor``, ``critic/qf0``, ``critic/qf1``, ... (:func:`sb3_tar.sb3.networks.log_name`,
    as in the ``sparse/`` and ``gmp/`` keys). The logger is dumped at each measurement
    (one row of SB3's csv/tensorboard output per measurement, at that timestep, with ``time/total_timesteps``).
    The batch (``batch_size`` transitions, drawn with ``seed`` by a private generator) is drawn at the first
    measurement that finds enough transitions in the buffer, and kept for the rest of training. A last
    measurement is taken when training ends. The callback changes nothing in training: the model's weights and
    random streams are the same with and without it.

    :param every: Interval in environment steps (``>= 1``).
    :param batch_size: Size of the fixed batch (``>= 2``).
    :param taus: Dormancy thresholds (each ``>= 0``).
    :param delta: srank's ``delta`` in ``(0, 1)``.
    :param path: A CSV file that also receives every measurement (columns ``timesteps``, ``seconds`` (the time
        the measurement took) and the logger keys), rewritten at each measurement; when training starts at
        timestep ``t``, rows of an existing file after ``t`` are dropped (a resumed run continues its file).
        ``None``: the logger only.
    :param seed: Seed of the batch draw.
    :param verbose: Verbosity level.
    """

    def __init__(
        self,
        every: int = DEFAULT_EVERY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        taus: Sequence[float] = (0.0, 0.1),
        delta: float = 0.01,
        path: str | os.PathLike | None = None,
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(check_int("verbose", verbose, 0))
        self.every = check_int("every", every, 1)
        self.batch_size = check_int("batch_size", batch_size, 2)
        if isinstance(taus, (str, bytes)) or not isinstance(taus, Sequence) or len(taus) == 0:
            raise ValueError(f"taus={taus!r} must be a non-empty sequence of thresholds >= 0")
        for tau in taus:
            if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not math.isfinite(tau) or tau < 0:
                raise ValueError(f"tau={tau!r} in taus is outside the allowed range [0, inf)")
        self.taus = tuple(float(t) for t in taus)
        self.delta = check_number("delta", delta, 0.0, 1.0, low_open=True, high_open=True)
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str, os.PathLike or None, got {type(path).__name__}")
        self.path = Path(path) if path is not None else None
        self.seed = check_int("seed", seed, 0)
        self.batch: FixedBatch | None = None
        #: Every measurement of this callback: ``{"timesteps", "seconds", <logger key>: value}`` rows.
        self.rows: list[dict[str, float]] = []
        self._next = self.every
        self._last: int | None = None

    def _init_callback(self) -> None:
        from sb3_tar.sb3.callbacks.sparse import check_supported

        check_supported(self.model, type(self).__name__, ppo_a2c_dqn=True)
        buffer = getattr(self.model, "replay_buffer", None)
        if buffer is not None and buffer.buffer_size < self.batch_size:  # the fixed batch could never be drawn
            raise ValueError(
                f"batch_size={self.batch_size} is outside the allowed range [2, {buffer.buffer_size}]: the model's "
                f"replay buffer holds {buffer.buffer_size} transitions per env, so the fixed batch could never be drawn"
            )

    def _on_training_start(self) -> None:
        start = int(self.model.num_timesteps)
        self._next = (start // self.every + 1) * self.every
        self.rows = [r for r in self.rows if r["timesteps"] <= start]
        if self.path is not None and self.path.is_file() and not self.rows:
            self.rows = [r for r in read_diagnostics_csv(self.path) if r["timesteps"] <= start]

    def _on_rollout_end(self) -> None:
        # PPO/A2C have no replay buffer: the fixed batch is drawn from the first full rollout (then kept)
        if self.batch is None and not hasattr(self.model, "replay_buffer"):
            self.batch = draw_rollout_batch(self.model.rollout_buffer, self.batch_size, self.seed)

    def _on_rollout_start(self) -> None:
        # At a rollout's start the gradient steps of the previous one are done: a measurement labelled with
        # timestep t describes the model after t environment steps and their updates.
        timesteps = self.model.num_timesteps
        if timesteps >= self._next:
            self._next = (timesteps // self.every + 1) * self.every
            self.measure()

    def _on_step(self) -> bool:
        return True

    def checkpoint_state(self) -> dict[str, Any]:
        """
        :return: What an exact resume needs (:class:`~sb3_tar.sb3.persistence.checkpoint.ExactCheckpointCallback` saves it):
            the fixed batch, the measurements so far and the schedule position.
        """
        return {"batch": self.batch, "rows": list(self.rows), "next": self._next, "last": self._last}

    def restore_checkpoint_state(self, state: dict[str, Any]) -> None:
        """
        :param state: Output of :meth:`checkpoint_state`: a resumed run measures on the same batch at the same
            steps, and its file holds the measurements made before the checkpoint.
        """
        self.batch, self.rows, self._next, self._last = state["batch"], list(state["rows"]), state["next"], state["last"]

    def _on_training_end(self) -> None:
        if self._last != self.model.num_timesteps:
            self.measure()

    def measure(self) -> dict[str, float] | None:
        """
        Measure now, log (and dump the logger) and append to ``path``.

        :return: ``{logger key: value}``, or ``None`` while the replay buffer holds fewer than ``batch_size``
            transitions (nothing is logged then).
        """
        start = time.perf_counter()
        on_policy = not hasattr(self.model, "replay_buffer")
        if self.batch is None and not on_policy:
            self.batch = draw_fixed_batch(self.model.replay_buffer, self.batch_size, self.seed)
        if self.batch is None:
            return None
        # a rollout stores observations already normalised by VecNormalize, a replay buffer the original ones
        vec_normalize = None if on_policy else self.model.get_vec_normalize_env()
        values = measure_policy(self.model.policy, self.batch, self.taus, self.delta, vec_normalize)
        values = {PREFIX + key: value for key, value in values.items()}
        seconds = time.perf_counter() - start
        timesteps = int(self.model.num_timesteps)
        self._last = timesteps
        self.logger.record("time/total_timesteps", timesteps, exclude="tensorboard")
        for key, value in values.items():
            self.logger.record(key, value)
        self.logger.dump(timesteps)
        self.rows.append({"timesteps": timesteps, "seconds": seconds, **values})
        if self.path is not None:
            write_diagnostics_csv(self.path, self.rows)
        if self.verbose >= 1:
            print(f"{type(self).__name__}: measured at {timesteps} steps in {seconds * 1000:.1f} ms")
        return values


def write_diagnostics_csv(path: str | os.PathLike, rows: Sequence[dict[str, float]]) -> None:
    """
    :param path: The CSV file (written through a temporary file, then renamed).
    :param rows: Measurements (columns: the union of their keys, in first-seen order).
    """
    path = Path(path)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_diagnostics_csv(path: str | os.PathLike) -> list[dict[str, float]]:
    """
    :param path: A file written by :func:`write_diagnostics_csv`.
    :return: Its rows, values as floats (empty cells as NaN), ``timesteps`` as int.
    """
    with open(path, newline="") as f:
        rows = []
        for raw in csv.DictReader(f):
            row: dict[str, float] = {k: (float(v) if v not in ("", None) else math.nan) for k, v in raw.items()}
            row["timesteps"] = int(row["timesteps"])
            rows.append(row)
    return rows
