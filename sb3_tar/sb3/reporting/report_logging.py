"""sb3-tar's curves in SB3's logger (``sparse/...`` keys: stdout, CSV, TensorBoard), written at every dump.

:func:`attach_curves` wraps one SB3 logger's ``dump()`` so that, right before each dump, the model's
measured state is recorded:

- per network (``actor``, ``critic/qf0``, ...: :func:`~sb3_tar.sb3.networks.log_name`, the one naming of networks in
  every logged key): ``sparse/<network>/sparsity`` (of its mask),
  ``sparse/<network>/pruned_nonzero`` (pruned weights that are not exactly 0, online or target: it must
  stay 0) and ``sparse/<network>/dead_units`` (units of its layers with no kept connection, summed over
  layers: outputs without an incoming and inputs without an outgoing one);
- with dynamic sparse training (SET/RigL): ``sparse/dst/updates`` (mask updates of the run so far, from
  the schedule's clock, so it continues after a resume), ``sparse/dst/drop_fraction`` (``zeta_t`` of the
  latest update) and, per network, ``sparse/<network>/dropped`` and ``sparse/<network>/grown``: connections
  dropped and grown by all updates since the model was built or loaded (cumulative). Besides the regular dumps,
  every mask update of a role (the Q-networks', then the actor's) is dumped at once as a row of its own at x = the
  model's environment step, with ``sparse/dst/step`` (the update step ``t``) and all the curves above as they are
  right after it: the mechanism of GMP's prune steps (:func:`record_and_dump`). Rows without ``sparse/dst/step``
  are the regular dumps.

The per-layer allocation table (:func:`allocation_text`, markdown) is written once per logger: recorded as
text (``sparse/allocation``: TensorBoard's Text tab; left out of stdout, CSV and JSON) and, when the logger
writes to a folder, saved there as ``sparse_allocation.md``.

Measuring reads the masks and the weights only (like :func:`~sb3_tar.sb3.reporting.model_masks.sparsity_summary`):
nothing is changed. The curves are attached by ``TARCallback``/``DSTCallback``/``GMPCallback`` at training start
and by the sparse policies (``SparsePolicy``, and the ``MaskedPolicy`` a loaded callback model is rebuilt with)
when SB3 first switches their training mode in ``learn()``, so every entry point logs them. A plain policy made
sparse by a callback in this process keeps its class; :func:`attach_curves` gives it the same training-mode
switch on the instance (:class:`CurvesOnTrainingMode`), so a later ``learn()`` without the callback, with its
new logger, logs them too.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from typing import Any

from stable_baselines3.common.logger import Logger

from sb3_tar.core.layer_report import NetworkReport
from sb3_tar.core.masks import dead_units
from sb3_tar.sb3.call_stack import caller_frames, frame_algorithm
from sb3_tar.sb3.methods.rewiring import DSTUpdate, attached_rewirer
from sb3_tar.sb3.networks import log_name
from sb3_tar.sb3.reporting.model_masks import sparsity_summary, stored_masks
from sb3_tar.sb3.reporting.reports import pruning_reports

#: Prefix of every key.
PREFIX = "sparse"
#: File the allocation table is saved to in the logger's folder.
ALLOCATION_FILE = "sparse_allocation.md"
_ATTR = "_sb3_tar_curves"
_TEXT_ONLY = ("stdout", "log", "json", "csv")


def allocation_text(reports: Mapping[str, NetworkReport]) -> str:
    """
    The per-layer allocation of every network as markdown (a heading and a table per network).

    Revival columns (``E_l`` the connectivity threshold, ``g_l`` the connectivity need, ``f_l`` the
    connectivity floor, ``B_l`` the revived count) appear only for networks that were revived (TAR or
    Uniform Revival), not for the static baseline or the initial mask of SET/RigL.

    :param reports: Pruning reports per network.
    :return: The markdown text (empty if there is no report).
    """
    parts = []
    for name, report in reports.items():
        revived = report.revival != "none"
        title = (
            f"### {name}\n\ncriterion {report.criterion}, revival {report.revival}: kept {report.kept} of {report.total} "
            f"weights (sparsity {report.sparsity:.4f}, target {report.target_sparsity:.4f})"
        )
        if revived:
            title += f", revival budget B = {report.budget}"
        title += f", training FLOPs {report.flops_ratio:.3f}x dense"
        header = ["layer", "shape", "kept", "density", "dead units"]
        if revived:
            header += [
                "kept before revival K_l",
                "connectivity threshold E_l",
                "need g_l",
                "floor f_l",
                "revived B_l",
                "dead units before revival",
            ]
        rows = []
        for layer in report.layers:
            row = [layer.name, f"{layer.shape[0]}x{layer.shape[1]}", str(layer.kept_after), f"{layer.density:.4f}"]
            row.append(str(layer.dead_after))
            if revived:
                row += [str(layer.kept_before), str(layer.threshold), str(layer.need), str(layer.floor)]
                row += [str(layer.revived), str(layer.dead_before)]
            rows.append(row)
        table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        table += ["| " + " | ".join(row) + " |" for row in rows]
        parts.append(title + "\n\n" + "\n".join(table))
    return "\n\n".join(parts)


class SparseCurves:
    """
    What one logger records at each dump for one model (see the module docstring).

    :param model: The SB3 model (held by a weak reference).
    :param logger: The logger the curves are recorded into (held by a weak reference; each DST mask update is dumped
        to it while it is still the model's logger).
    """

    def __init__(self, model: Any, logger: Logger | None = None) -> None:
        self._model = weakref.ref(model)
        self._logger = weakref.ref(logger) if logger is not None else lambda: None
        self.table_written = False
        #: Cumulative ``{network: [dropped, grown]}`` of the DST updates seen.
        self.counts: dict[str, list[int]] = {}
        self._listening: Any = None

    def listen(self) -> None:
        """Count the updates of the model's SET/RigL rewirer, if it has one (again if it was replaced)."""
        model = self._model()
        rewirer = attached_rewirer(model.policy) if model is not None else None
        if rewirer is None or rewirer is self._listening:
            return
        rewirer.update_listeners.append(self._count)
        rewirer.role_listeners.append(self._dump_update)
        self._listening = rewirer

    def _count(self, update: DSTUpdate, network: Any, result: Any) -> None:
        counts = self.counts.setdefault(update.network, [0, 0])
        counts[0] += sum(update.dropped)
        counts[1] += sum(update.grown)

    def _dump_update(self, role: str, step: int) -> None:
        """A row of its own for one role's mask update (SB3 keeps only a key's last value per dump)."""
        model, logger = self._model(), self._logger()
        if model is None or logger is None or getattr(model, "_logger", None) is not logger:
            return  # a logger of an earlier learn(): its outputs are done
        record_and_dump(logger, {f"{PREFIX}/dst/step": step}, int(getattr(model, "num_timesteps", 0)))

    def record(self, logger: Logger) -> None:
        """
        Record the model's current curves into ``logger`` (and the allocation table, the first time).

        :param logger: The logger about to dump.
        """
        model = self._model()
        if model is None or stored_masks(model) is None:
            return
        self.listen()
        networks, masks = stored_masks(model)
        for name, stats in sparsity_summary(model).items():
            key = log_name(name)
            logger.record(f"{PREFIX}/{key}/sparsity", stats["sparsity"])
            logger.record(f"{PREFIX}/{key}/pruned_nonzero", stats["pruned_nonzero"])
            logger.record(f"{PREFIX}/{key}/dead_units", sum(sum(dead_units(m)) for m in masks[name]))
        rewirer = attached_rewirer(model.policy)
        if rewirer is not None:
            total = max(rewirer.total_steps, 0)
            last = rewirer.config.last_update_step(rewirer.step, total)
            logger.record(f"{PREFIX}/dst/updates", last // rewirer.config.update_interval)
            logger.record(f"{PREFIX}/dst/drop_fraction", rewirer.config.fraction(last, total) if last > 0 else 0.0)
            for net in networks:
                dropped, grown = self.counts.get(net.name, (0, 0))
                logger.record(f"{PREFIX}/{log_name(net.name)}/dropped", dropped)
                logger.record(f"{PREFIX}/{log_name(net.name)}/grown", grown)
        if not self.table_written:
            self._write_table(logger, model)

    def _write_table(self, logger: Logger, model: Any) -> None:
        text = allocation_text(pruning_reports(model))
        self.table_written = True
        if not text:
            return
        logger.record(f"{PREFIX}/allocation", text, exclude=_TEXT_ONLY)
        folder = logger.get_dir()
        if folder:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, ALLOCATION_FILE), "w") as f:
                f.write(text + "\n")


def record_and_dump(logger: Logger, values: Mapping[str, Any], timesteps: int) -> None:
    """
    Write ``values`` to every output of ``logger`` now, as a row of their own at x = ``timesteps`` (with
    ``time/total_timesteps``, left out of TensorBoard where the x axis shows it), without touching what was recorded
    for the logger's next regular dump: those records are set aside for this dump and put back after it. Used for
    events between two dumps whose every value must reach the outputs (GMP's prune steps, SET/RigL's mask updates).

    :param logger: An SB3 logger.
    :param values: ``{key: value}``.
    :param timesteps: The model's environment steps (the dump's step).
    """
    pending = (dict(logger.name_to_value), dict(logger.name_to_count), dict(logger.name_to_excluded))
    for store in (logger.name_to_value, logger.name_to_count, logger.name_to_excluded):
        store.clear()
    try:
        logger.record("time/total_timesteps", timesteps, exclude="tensorboard")
        for key, value in values.items():
            logger.record(key, value)
        logger.dump(timesteps)
    finally:
        for store, saved in zip((logger.name_to_value, logger.name_to_count, logger.name_to_excluded), pending):
            store.clear()
            store.update(saved)


def attach_curves(model: Any) -> SparseCurves | None:
    """
    Make the model's current logger record sb3-tar's curves right before each of its dumps (once per logger:
    a second call, or a call for a logger already attached, changes nothing).

    :param model: An SB3 model holding masks (a model without a logger yet, or without masks, is left alone).
    :return: The curves attached to the logger, or ``None``.
    """
    policy = getattr(model, "policy", None)
    if policy is not None and not hasattr(type(policy), ATTACHES_CURVES) and "set_training_mode" not in vars(policy):
        policy.set_training_mode = CurvesOnTrainingMode(policy)
    logger = getattr(model, "_logger", None)
    if logger is None:
        return None
    curves = getattr(logger, _ATTR, None)
    if curves is not None and curves._model() is model:
        curves.listen()
        return curves
    curves = SparseCurves(model, logger)
    curves.listen()
    dump = logger.dump

    def dump_with_curves(step: int = 0) -> None:
        curves.record(logger)
        dump(step)

    logger.dump = dump_with_curves  # type: ignore[method-assign]
    setattr(logger, _ATTR, curves)
    return curves


#: Class attribute of the policy classes whose ``set_training_mode`` calls :func:`attach_from_caller` themselves.
ATTACHES_CURVES = "_sb3_tar_attaches_curves"


class CurvesOnTrainingMode:
    """
    ``set_training_mode`` of one plain policy instance made sparse by a callback: the class's own switch, after
    attaching the curves to the logger of the model that calls it (as ``SparsePolicy.set_training_mode`` does).
    An object rather than a closure, so that the policy still pickles and deep-copies.

    :param policy: The policy.
    """

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def __call__(self, mode: bool) -> None:
        attach_from_caller(self.policy)
        type(self.policy).set_training_mode(self.policy, mode)


#: Per policy, the model and the logger :func:`attach_from_caller` last attached the curves to (weak references, so
#: a policy neither keeps its model alive nor stops pickling or deep-copying).
_ATTACHED: weakref.WeakKeyDictionary[Any, tuple[weakref.ref, weakref.ref]] = weakref.WeakKeyDictionary()


def attach_from_caller(policy: Any, depth: int = 2) -> None:
    """
    Attach the curves to the SB3 model that called one of ``policy``'s methods, found on the call stack
    (SB3's ``collect_rollouts()`` and ``train()`` call ``policy.set_training_mode()``: that is how a
    ``SparsePolicy`` used without any callback finds its model's logger).

    SB3 calls ``set_training_mode`` at every env step and gradient step, so the call stack is read only until the
    curves are attached: afterwards, while the model that was found still owns ``policy`` and still has the
    logger they were attached to, this returns at once. A new logger (each ``learn()`` makes one unless a custom
    logger is set) or a new owner reads the stack again.

    :param policy: The policy whose method runs.
    :param depth: Frames between this function and the caller to inspect.
    """
    attached = _ATTACHED.get(policy)
    if attached is not None:
        model = attached[0]()
        if model is not None and model.policy is policy and getattr(model, "_logger", None) is attached[1]():
            return
    frames = caller_frames(depth, limit=1)
    owner = frame_algorithm(frames[0]) if frames else None
    if owner is not None and owner.policy is policy:
        logger = getattr(owner, "_logger", None)
        if attach_curves(owner) is not None and logger is not None:
            _ATTACHED[policy] = (weakref.ref(owner), weakref.ref(logger))
