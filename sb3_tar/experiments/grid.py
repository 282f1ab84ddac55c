"""Experiment grids: presets and the expansion of a grid into runnable cells.

A grid is the product ``algo x env x method x criterion x sparsity x rr x width x seed``. Axes that
do not apply to a method are collapsed, so no configuration runs twice:

- ``dense`` ignores criterion, sparsity and rr (no callback at all);
- ``static`` (the paper's "Original") always has rr = 0;
- ``tar`` and ``uniform`` at rr = 0 *are* the static baseline, so they become ``static`` cells;
- ``set`` and ``rigl`` ignore rr and start from ``dst_criterion`` (ERK by default, as in the spec);
- ``gmp`` (gradual magnitude pruning) ignores rr and takes the magnitude criteria of ``criteria`` as its ranking
  (``magnitude``: global or, with ``magnitude_scopes`` ``layer``, per layer; ``erk``: per layer towards ERK densities);
- ``magnitude_scopes`` applies to the ``magnitude`` criterion only: ``layer`` gives the cells labelled
  ``magnitude_layer`` (:data:`MAGNITUDE_LAYER`, the label of committed results and of every report table);
- ``small_dense`` (a dense network of the sparse one's parameter count) ignores criterion and rr.
- ``cyclic`` (a static mask trained with a cyclic learning rate), ``sculpt`` (cyclic training from a denser mask, one
  magnitude prune, retraining) and ``iee`` (exploitation-exploration) ignore rr; the criterion is their (starting)
  mask's (:mod:`sb3_tar.cyclic_methods`).
- ``<actor method>+<critic method>`` (e.g. ``tar+rigl``, ``dense+tar``): a method per network role
  (:mod:`sb3_tar.experiments.role_cells`).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sb3_tar.core.config import CRITERIA, DEFAULT_SPARSITY, MAGNITUDE_SCOPES, check_int, renamed_value, warn_former_name
from sb3_tar.core.prune_criteria import FORMER_PRUNE_CRITERIA, PRUNE_CRITERIA
from sb3_tar.experiments import role_cells

#: SAC, TD3 and TQC run every method; PPO, A2C and DQN (issue 30) the methods of :data:`ALGO_METHODS`.
ALGOS: tuple[str, ...] = ("sac", "td3", "tqc", "ppo", "a2c", "dqn")
METHODS: tuple[str, ...] = (
    *("dense", "static", "tar", "uniform", "set", "rigl", "gmp", "small_dense"),
    *("cyclic", "sculpt", "iee"),
)
REVIVAL_METHODS: tuple[str, ...] = ("tar", "uniform")
DST_METHODS: tuple[str, ...] = ("set", "rigl")
SPARSE_METHODS: tuple[str, ...] = ("static", "tar", "uniform", "set", "rigl", "gmp", "cyclic", "sculpt", "iee")
#: The methods a sweep runs for the algorithms that do not take every method (the others refused by
#: :meth:`GridSpec.validate`): dense, the static masks, TAR and Uniform Revival, SET/RigL, GMP and small dense, whose
#: callbacks handle PPO/A2C's policy and value branches and DQN's Q-network (``docs/usage.md``, "PPO, A2C and DQN";
#: small dense solves a width per branch). Not (yet) for them: cyclic, SCULPT, exploitation-exploration and the
#: per-role methods.
ON_POLICY_DQN_METHODS: tuple[str, ...] = ("dense", "static", "tar", "uniform", "set", "rigl", "gmp", "small_dense")
ALGO_METHODS: dict[str, tuple[str, ...]] = {
    "ppo": ON_POLICY_DQN_METHODS,
    "a2c": ON_POLICY_DQN_METHODS,
    "dqn": ON_POLICY_DQN_METHODS,
}
#: Methods of :mod:`sb3_tar.cyclic_methods` -> their callback (criterion: the (starting) mask's; no rr).
SCHEDULE_CALLBACKS: dict[str, str] = {
    "cyclic": "sb3_tar.baselines.CyclicCallback",
    "sculpt": "sb3_tar.baselines.SculptCallback",
    "iee": "sb3_tar.baselines.IEECallback",
}
#: The one place that maps the callbacks' vocabulary onto the cells' labels: ``criterion="magnitude"`` with
#: ``magnitude_scope="layer"`` (``sb3-tar sweep --criteria magnitude --magnitude-scopes layer``) is labelled
#: ``magnitude_layer`` in cell ids, folder names and report tables (the label of the committed results; the
#: callbacks accept it as ``criterion`` too). As a grid criterion it is a former spelling, accepted with a
#: ``FutureWarning`` until the next release.
MAGNITUDE_LAYER = "magnitude_layer"

#: Cell criterion label -> ``GMPCallback(magnitude_scope=...)``; the other criteria do not apply to GMP.
GMP_SCOPE_OF: dict[str, str] = {"magnitude": "global", MAGNITUDE_LAYER: "layer", "erk": "erk"}

#: Criterion labels of the cells: the four static criteria, and :data:`MAGNITUDE_LAYER`, its own row in every table.
GRID_CRITERIA: tuple[str, ...] = (*CRITERIA, MAGNITUDE_LAYER)


def criterion_label(criterion: str, magnitude_scope: str = "global") -> str:
    """
    :param criterion: A static criterion (:data:`~sb3_tar.core.config.CRITERIA`).
    :param magnitude_scope: ``"global"`` or ``"layer"`` (applies to ``"magnitude"`` only).
    :return: The criterion's label in cell ids and reports: ``criterion``, or :data:`MAGNITUDE_LAYER` for
        ``("magnitude", "layer")``.
    """
    return MAGNITUDE_LAYER if criterion == "magnitude" and magnitude_scope == "layer" else criterion


TAR_CALLBACK = "sb3_tar.callbacks.TARCallback"
DST_CALLBACK = "sb3_tar.callbacks.DSTCallback"
GMP_CALLBACK = "sb3_tar.baselines.GMPCallback"
SMALL_DENSE_CALLBACK = "sb3_tar.baselines.SmallDenseCallback"

#: The grid's option holding each callback's extra keyword arguments -> the callback they go to.
KWARGS_CALLBACKS: dict[str, str] = {"tar_kwargs": TAR_CALLBACK, "dst_kwargs": DST_CALLBACK, "gmp_kwargs": GMP_CALLBACK}
#: The callback arguments the grid sets per cell (from its axes, or to keep the cell's train.log complete): extra
#: options may not set them, or a cell would run other settings than its folder name says (``magnitude_scope`` is
#: refused with its own message in :meth:`GridSpec.validate`).
GRID_SET_KWARGS: dict[str, tuple[str, ...]] = {
    "tar_kwargs": ("sparsity", "criterion", "revival", "recovery_ratio", "role_methods", "seed", "verbose"),
    "dst_kwargs": ("method", "sparsity", "criterion", "recovery_ratio", "role_methods", "seed", "verbose"),
    "gmp_kwargs": ("sparsity", "seed", "verbose"),
}
#: The prune criterion of SET/RigL that keeps a cell's id unchanged (``DSTCallback``'s default).
DEFAULT_PRUNE_CRITERION = "magnitude"

#: Hyperparameters that the grid itself sets; overriding them through ``hyperparams`` is refused.
_RESERVED_HYPERPARAMS = ("callback", "n_timesteps")


def _fmt(value: float) -> str:
    """Short, stable text for a float in folder names (0.9 -> '0.9', 0.005 -> '0.005')."""
    return f"{value:g}"


def callback_parameters(class_path: str) -> tuple[str, ...]:
    """
    :param class_path: ``"module.Class"`` of a callback.
    :return: The names of its ``__init__`` keyword arguments.
    """
    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")


def check_callback_kwargs(option: str, kwargs: dict[str, Any]) -> None:
    """
    :param option: ``"tar_kwargs"``, ``"dst_kwargs"`` or ``"gmp_kwargs"``.
    :param kwargs: Its extra keyword arguments.
    :raises ValueError: If a name is not a keyword argument of the callback it goes to (the message lists the valid ones),
        or is one the grid sets per cell (:data:`GRID_SET_KWARGS`).
    """
    class_path = KWARGS_CALLBACKS[option]
    valid = callback_parameters(class_path)
    unknown = [key for key in kwargs if key not in valid]
    if unknown:
        raise ValueError(
            f"{option} {unknown} {'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of "
            f"{class_path.rpartition('.')[2]}: valid names are {sorted(valid)}"
        )
    taken = [key for key in kwargs if key in GRID_SET_KWARGS[option]]
    if taken:
        raise ValueError(
            f"{option} may not set {taken}: the grid sets {list(GRID_SET_KWARGS[option])} for every cell (use the "
            "grid's axes: methods, criteria, sparsities, rrs, seeds)"
        )


def check_callback_values(cells: Sequence[Cell]) -> None:
    """
    Build each distinct callback of the cells (without a model: the constructors check every argument), so that a
    bad extra option (``--tar-kwargs budget_mode:foo``) is refused before any cell starts, not when it trains. Called
    where cells are about to run (:func:`~sb3_tar.experiments.runner.run_sweep`, ``sb3-tar sweep --dry-run``), not by
    :meth:`GridSpec.expand`, which the report also calls for cell ids only.

    :param cells: The cells of a grid.
    :raises ValueError: If a callback refuses its arguments (the message names the cell and the callback's own
        message; a ``TypeError`` of the callback is raised as a ``TypeError`` in the same form).
    """
    seen: set[str] = set()
    for cell in cells:
        for spec in cell.callback() or []:
            for class_path, kwargs in spec.items():
                key = repr((class_path, sorted((k, repr(v)) for k, v in kwargs.items() if k != "seed")))
                if key in seen:
                    continue
                seen.add(key)
                module, _, name = class_path.rpartition(".")
                cls = getattr(importlib.import_module(module), name)
                try:
                    with warnings.catch_warnings():  # a former name's FutureWarning comes when the cell runs
                        warnings.simplefilter("ignore")
                        cls(**kwargs)
                except (TypeError, ValueError) as error:
                    raise type(error)(f"cell {cell.cell_id}: {name} refuses its arguments: {error}") from error


def _fmt_option(value: Any) -> str:
    """Text of an extra callback keyword argument's value in a folder name: runs of characters other than letters,
    digits, ``.``, ``-`` and ``+`` become ``_`` (a sign is kept: ``-1`` and ``1`` name different folders)."""
    if isinstance(value, float):
        text = _fmt(value)
    elif isinstance(value, (dict, list, tuple)):
        text = repr(value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "_"


def _check_choices(name: str, values: Sequence[str], choices: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of strings from {list(choices)}, got {values!r}")
    if len(values) == 0:
        raise ValueError(f"{name} must not be empty; choose from {list(choices)}")
    for value in values:
        if value not in choices:
            raise ValueError(
                f"Unknown {name[:-1] if name.endswith('s') else name} {value!r}: valid values are {list(choices)}"
            )
    return tuple(dict.fromkeys(values))


def _check_numbers(name: str, values: Sequence[float], low: float, high: float, low_open: bool, high_open: bool) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of numbers, got {values!r}")
    if len(values) == 0:
        raise ValueError(f"{name} must not be empty")
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must contain numbers, got {value!r} ({type(value).__name__})")
        value = float(value)
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if math.isnan(value) or below or above:
            raise ValueError(f"{name} contains {value!r}, outside the allowed range {interval}")
        out.append(value)
    return tuple(dict.fromkeys(out))


def _check_ints(name: str, values: Sequence[int], low: int) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of ints, got {values!r}")
    if len(values) == 0:
        raise ValueError(f"{name} must not be empty")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must contain ints, got {value!r} ({type(value).__name__})")
        if value < low:
            raise ValueError(f"{name} contains {value}, outside the allowed range [{low}, inf)")
    return tuple(dict.fromkeys(values))


def _check_int(name: str, value: Any, low: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    return check_int(name, value, low)


@dataclass(frozen=True)
class Cell:
    """
    One training run: a single configuration and seed.

    :param algo: RL-Zoo algorithm name, from :data:`ALGOS`.
    :param env: Gymnasium environment id.
    :param method: One of :data:`METHODS`.
    :param criterion: Static criterion (initial mask for SET/RigL); ``None`` for dense.
    :param sparsity: Target sparsity of actor and critic; ``None`` for dense.
    :param rr: Recovery ratio; 0 for static, ``None`` for dense/SET/RigL.
    :param width: Hidden width (two hidden layers, ``net_arch=[width, width]``); for ``small_dense``, the width
        of the sparse network matched (its own widths are solved when the cell runs).
    :param seed: Random seed (training, and the callback's mask draw).
    :param n_timesteps: Training budget; ``None`` keeps the hyperparameter file's value.
    :param eval_freq: Evaluate every this many environment steps.
    :param eval_episodes: Deterministic episodes per evaluation.
    :param hyperparams: Extra RL-Zoo ``-params`` as ``(key, python expression)`` pairs.
    :param callback_kwargs: Extra keyword arguments for the sparse callback, as ``(key, value)`` pairs.
    """

    algo: str
    env: str
    method: str
    criterion: str | None
    sparsity: float | None
    rr: float | None
    width: int
    seed: int
    n_timesteps: int | None = None
    eval_freq: int = 10000
    eval_episodes: int = 10
    hyperparams: tuple[tuple[str, str], ...] = ()
    callback_kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """
        Name of the configuration (everything but algo, env and seed), e.g. ``tar_magnitude_sp0.9_rr0.01_w256``; the
        extra callback keyword arguments follow as ``_<name>=<value>`` in name order, e.g.
        ``rigl_erk_sp0.9_w256_prune_criterion=snip``, so that cells differing only in them never share a folder.
        """
        parts = [self.method]
        if self.criterion is not None:
            parts.append(self.criterion)
        if self.sparsity is not None:
            parts.append(f"sp{_fmt(self.sparsity)}")
        if (self.method in REVIVAL_METHODS or role_cells.revives(self.method)) and self.rr is not None:
            parts.append(f"rr{_fmt(self.rr)}")
        parts.append(f"w{self.width}")
        if self.options:  # extra callback keyword arguments (none in the committed grids: their ids are unchanged)
            parts.append(self.options)
        return "_".join(parts)

    @property
    def options(self) -> str:
        """The extra callback keyword arguments as ``<name>=<value>`` joined by ``_``, in name order (``""``: none)."""
        return "_".join(f"{key}={_fmt_option(value)}" for key, value in sorted(self.callback_kwargs))

    @property
    def cell_id(self) -> str:
        """Relative folder of the cell inside a results directory: ``<algo>/<env>/<label>/seed_<seed>``."""
        return f"{self.algo}/{self.env}/{self.label}/seed_{self.seed}"

    def callback(self) -> list[dict[str, dict[str, Any]]] | None:
        """
        :return: The RL-Zoo ``callback`` hyperparameter for this cell (a list with one ``{class: kwargs}``
            mapping), or ``None`` for dense.
        """
        extra = dict(self.callback_kwargs)
        if self.method == "dense":
            return None
        if self.method == "small_dense":
            kwargs = {"reference_width": self.width, "sparsity": self.sparsity, "verbose": 1}
            return [{SMALL_DENSE_CALLBACK: kwargs}]
        if role_cells.split(self.method) is not None:
            kind, kwargs = role_cells.callback(self.method, self.criterion, self.sparsity, self.rr, self.seed, extra)
            return [{DST_CALLBACK if kind == "dst" else TAR_CALLBACK: kwargs}]
        criterion = {"criterion": self.criterion}
        if self.criterion == "magnitude_layer":
            criterion = {"criterion": "magnitude", "magnitude_scope": "layer"}
        if self.method in DST_METHODS:
            if self.criterion == "magnitude_layer":
                raise ValueError("SET/RigL start from a random, erk, magnitude or synflow mask, not magnitude_layer")
            kwargs = {
                "method": self.method,
                "sparsity": self.sparsity,
                **criterion,
                "seed": self.seed,
                "verbose": 1,  # the initial per-layer table goes to the cell's train.log
            }
            kwargs.update(extra)
            return [{DST_CALLBACK: kwargs}]
        if self.method == "gmp":
            kwargs = {
                "sparsity": self.sparsity,
                "magnitude_scope": GMP_SCOPE_OF[self.criterion],
                "seed": self.seed,
                "verbose": 1,
            }
            kwargs.update(extra)
            return [{GMP_CALLBACK: kwargs}]
        if self.method in SCHEDULE_CALLBACKS:
            kwargs = {"sparsity": self.sparsity, "criterion": self.criterion, "seed": self.seed, "verbose": 1}
            kwargs.update(extra)
            return [{SCHEDULE_CALLBACKS[self.method]: kwargs}]
        revival = {"static": "none", "tar": "tar", "uniform": "uniform"}[self.method]
        kwargs = {
            "sparsity": self.sparsity,
            **criterion,
            "revival": revival,
            "recovery_ratio": self.rr if self.method != "static" else 0.0,
            "seed": self.seed,
            "verbose": 1,  # the per-layer pruning/revival report goes to the cell's train.log
        }
        kwargs.update(extra)
        return [{TAR_CALLBACK: kwargs}]

    def to_dict(self) -> dict[str, Any]:
        """:return: A JSON-serialisable dict (``Cell.from_dict`` inverts it)."""
        out = asdict(self)
        out["hyperparams"] = [list(pair) for pair in self.hyperparams]
        out["callback_kwargs"] = [list(pair) for pair in self.callback_kwargs]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        """
        :param data: A dict written by :meth:`to_dict`.
        :return: The cell.
        """
        known = {f.name for f in fields(cls)}
        kwargs = {key: value for key, value in data.items() if key in known}
        kwargs["hyperparams"] = tuple(tuple(pair) for pair in kwargs.get("hyperparams", ()))
        kwargs["callback_kwargs"] = tuple(tuple(pair) for pair in kwargs.get("callback_kwargs", ()))
        return cls(**kwargs)


@dataclass
class GridSpec:
    """
    A sweep grid. :meth:`expand` turns it into :class:`Cell` objects.

    :param algos: Algorithms, from :data:`ALGOS` (PPO, A2C and DQN with the methods of :data:`ALGO_METHODS` only).
    :param envs: Environment ids (each needs an entry, or a ``default``, in the hyperparameter file).
    :param methods: Methods, from :data:`METHODS`.
    :param criteria: Static criteria, from :data:`~sb3_tar.core.config.CRITERIA` (used by static, TAR and Uniform
        Revival; the starting mask of the cyclic methods; GMP's ranking for ``magnitude`` and ``erk``).
        ``"magnitude_layer"``, the former spelling of ``"magnitude"`` with ``magnitude_scopes`` ``("layer",)``, is
        accepted with a ``FutureWarning`` and gives the same cells.
    :param sparsities: Sparsities in (0, 1).
    :param rrs: Recovery ratios in [0, 1) for TAR and Uniform Revival (rr = 0 is the static baseline).
    :param widths: Hidden widths (>= 1).
    :param seeds: Seeds (>= 0).
    :param n_timesteps: Training budget per cell; ``None`` keeps the hyperparameter file's value.
    :param eval_freq: Evaluate every this many environment steps (>= 1).
    :param eval_episodes: Deterministic episodes per evaluation (>= 1).
    :param dst_criterion: Initial mask of SET/RigL: a criterion name, or ``"same"`` to follow ``criteria``.
    :param hyperparams: Extra RL-Zoo hyperparameters for every cell, ``{key: python expression}``
        (as ``-params key:value``; ``policy_kwargs`` is merged with the width).
    :param tar_kwargs: Extra keyword arguments for ``TARCallback`` (static, TAR, Uniform Revival).
    :param dst_kwargs: Extra keyword arguments for ``DSTCallback`` (SET, RigL).
    :param gmp_kwargs: Extra keyword arguments for ``GMPCallback`` (``start_fraction``, ``end_fraction``,
        ``update_interval``, ...).
        The names of ``tar_kwargs``, ``dst_kwargs`` and ``gmp_kwargs`` are checked against the callbacks' parameters
        by :meth:`validate`, before any cell runs; non-empty ones are part of the cells' ids (:attr:`Cell.label`).
    :param prune_criteria: Prune criteria of SET/RigL (``DSTCallback(prune_criterion=...)``), from
        :data:`~sb3_tar.core.prune_criteria.PRUNE_CRITERIA`: an axis of the SET/RigL cells (and of the SET/RigL role of
        per-role methods). ``"magnitude"`` (the default) is not written into the cell, so its id is the one it had
        before this axis existed; any other value is a ``prune_criterion`` extra keyword argument of the cell. The
        former name ``"set"`` of ``"sign_balanced_magnitude"`` is accepted with a ``FutureWarning`` (here and in
        ``dst_kwargs``) and gives the same cells.
    :param magnitude_scopes: Scopes of the ``magnitude`` criterion, from ``("global", "layer")`` (the callbacks'
        ``magnitude_scope``): an axis of the cells whose criterion is ``magnitude``. ``"layer"`` cells are labelled
        ``magnitude_layer`` (:data:`MAGNITUDE_LAYER`), as the committed results are. ``magnitude_scope`` itself is not
        accepted in ``tar_kwargs`` or ``gmp_kwargs`` (it would name a second folder for the same configuration).
    """

    algos: Sequence[str] = ("sac",)
    envs: Sequence[str] = ("HalfCheetah-v4",)
    methods: Sequence[str] = ("static", "tar")
    criteria: Sequence[str] = ("magnitude",)
    sparsities: Sequence[float] = (DEFAULT_SPARSITY,)
    rrs: Sequence[float] = (0.01,)
    widths: Sequence[int] = (256,)
    seeds: Sequence[int] = (0, 1, 2, 3, 4)
    n_timesteps: int | None = None
    eval_freq: int = 10000
    eval_episodes: int = 10
    dst_criterion: str = "erk"
    hyperparams: dict[str, str] = field(default_factory=dict)
    tar_kwargs: dict[str, Any] = field(default_factory=dict)
    dst_kwargs: dict[str, Any] = field(default_factory=dict)
    gmp_kwargs: dict[str, Any] = field(default_factory=dict)
    prune_criteria: Sequence[str] = (DEFAULT_PRUNE_CRITERION,)
    magnitude_scopes: Sequence[str] = ("global",)

    @property
    def criterion_labels(self) -> tuple[str, ...]:
        """The criterion labels of the cells: ``criteria``, ``magnitude`` once per scope of ``magnitude_scopes``."""
        labels = []
        for criterion in self.criteria:
            scopes = self.magnitude_scopes if criterion == "magnitude" else ("global",)
            labels += [criterion_label(criterion, scope) for scope in scopes]
        return tuple(dict.fromkeys(labels))

    def _former_names(self) -> None:
        """Rewrite former spellings (``magnitude_layer`` in ``criteria``, prune criterion ``set``) with a warning."""
        if isinstance(self.criteria, Sequence) and not isinstance(self.criteria, str) and MAGNITUDE_LAYER in self.criteria:
            warn_former_name(
                "GridSpec",
                "criteria 'magnitude_layer'",
                "criteria 'magnitude' with magnitude_scopes 'layer' (sb3-tar sweep --criteria magnitude "
                "--magnitude-scopes layer; its cells keep the label magnitude_layer)",
                stacklevel=4,
            )
            scopes = tuple(self.magnitude_scopes) if "magnitude" in self.criteria else ()
            self.magnitude_scopes = (*scopes, "layer")
            self.criteria = ["magnitude" if c == MAGNITUDE_LAYER else c for c in self.criteria]
        if isinstance(self.prune_criteria, Sequence) and not isinstance(self.prune_criteria, str):
            self.prune_criteria = [
                renamed_value("GridSpec", "prune_criteria", c, FORMER_PRUNE_CRITERIA, 5) for c in self.prune_criteria
            ]
        if isinstance(self.dst_kwargs, dict) and "prune_criterion" in self.dst_kwargs:
            value = renamed_value(
                "GridSpec dst_kwargs", "prune_criterion", self.dst_kwargs["prune_criterion"], FORMER_PRUNE_CRITERIA, 5
            )
            self.dst_kwargs = {**self.dst_kwargs, "prune_criterion": value}

    def validate(self) -> None:
        """
        Check every axis and option.

        :raises TypeError: If a value has the wrong type.
        :raises ValueError: If a value is outside its allowed range (the message names it and the range).
        """
        self.algos = _check_choices("algos", self.algos, ALGOS)
        if isinstance(self.envs, str) or not isinstance(self.envs, Sequence) or len(self.envs) == 0:
            raise ValueError(f"envs must be a non-empty list of environment ids, got {self.envs!r}")
        self.envs = tuple(dict.fromkeys(self.envs))
        per_role = (
            [m for m in self.methods if isinstance(m, str) and role_cells.SEPARATOR in m]
            if isinstance(self.methods, Sequence) and not isinstance(self.methods, str)
            else []
        )
        self.methods = _check_choices("methods", self.methods, (*METHODS, *[role_cells.check(m) for m in per_role]))
        for algo in self.algos:
            refused = [m for m in self.methods if m not in ALGO_METHODS.get(algo, (m,))]
            if refused:
                raise ValueError(
                    f"Method{'s' if len(refused) > 1 else ''} {refused} cannot run with algo {algo!r}: valid methods for "
                    f"{algo} are {list(ALGO_METHODS[algo])} "
                    f"(every method runs with {[a for a in ALGOS if a not in ALGO_METHODS]})"
                )
        self._former_names()
        self.criteria = _check_choices("criteria", self.criteria, CRITERIA)
        self.magnitude_scopes = _check_choices("magnitude_scopes", self.magnitude_scopes, MAGNITUDE_SCOPES)
        labels = self.criterion_labels
        self.sparsities = _check_numbers("sparsities", self.sparsities, 0.0, 1.0, low_open=True, high_open=True)
        self.rrs = _check_numbers("rrs", self.rrs, 0.0, 1.0, low_open=False, high_open=True)
        self.widths = _check_ints("widths", self.widths, 1)
        self.seeds = _check_ints("seeds", self.seeds, 0)
        _check_int("n_timesteps", self.n_timesteps, 1, allow_none=True)
        _check_int("eval_freq", self.eval_freq, 1)
        _check_int("eval_episodes", self.eval_episodes, 1)
        if self.dst_criterion == "same" and MAGNITUDE_LAYER in labels and any(m in DST_METHODS for m in self.methods):
            raise ValueError("dst_criterion='same' cannot start SET/RigL from magnitude_layer: choose a dst_criterion")
        if MAGNITUDE_LAYER in labels and any(
            role_cells.is_dynamic(m) and (role_cells.has_static_role(m) or self.dst_criterion == "same") for m in self.methods
        ):
            raise ValueError("magnitude_layer cannot start the SET/RigL role of a per-role method: remove it from criteria")
        if self.dst_criterion != "same" and self.dst_criterion not in CRITERIA:
            raise ValueError(f"Unknown dst_criterion {self.dst_criterion!r}: valid values are {[*CRITERIA, 'same']}")
        if "gmp" in self.methods and not any(c in GMP_SCOPE_OF for c in labels):
            raise ValueError(
                f"Method 'gmp' ranks by magnitude: criteria {list(self.criteria)} hold none of {list(GMP_SCOPE_OF)}"
            )
        for name in ("hyperparams", "tar_kwargs", "dst_kwargs", "gmp_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{name} must be a dict, got {getattr(self, name)!r}")
        for option in KWARGS_CALLBACKS:
            check_callback_kwargs(option, getattr(self, option))
        for option in ("tar_kwargs", "gmp_kwargs"):
            if "magnitude_scope" in getattr(self, option):
                raise ValueError(
                    f"{option} sets magnitude_scope={getattr(self, option)['magnitude_scope']!r}: the grid sets it per "
                    "cell, use magnitude_scopes (sb3-tar sweep --magnitude-scopes global layer) for the magnitude "
                    "criterion's scope, and criteria 'erk' for GMP's ERK scope"
                )
        self.prune_criteria = _check_choices("prune_criteria", self.prune_criteria, PRUNE_CRITERIA)
        if "prune_criterion" in self.dst_kwargs and self.prune_criteria != (DEFAULT_PRUNE_CRITERION,):
            raise ValueError(
                f"dst_kwargs sets prune_criterion={self.dst_kwargs['prune_criterion']!r} and prune_criteria is "
                f"{list(self.prune_criteria)}: set the prune criterion in one of them"
            )
        for key in self.hyperparams:
            if key in _RESERVED_HYPERPARAMS:
                raise ValueError(
                    f"hyperparams may not set {key!r}: the grid sets it (use methods/criteria/... for the callback "
                    "and n_timesteps for the budget)"
                )
        budget_mode = self.tar_kwargs.get("budget_mode", "reserve")
        if any(m in REVIVAL_METHODS or role_cells.revives(m) for m in self.methods):
            for sparsity in self.sparsities:
                for rr in self.rrs:
                    limit = 1.0 - sparsity if budget_mode == "reserve" else sparsity
                    if rr > limit + 1e-12:
                        need = "1 - sparsity" if budget_mode == "reserve" else "sparsity"
                        raise ValueError(
                            f"rr={rr:g} with sparsity={sparsity:g} is outside the allowed range [0, {limit:g}] "
                            f"(budget_mode={budget_mode!r} needs rr <= {need})"
                        )

    def expand(self) -> list[Cell]:
        """
        :return: The grid's cells, with irrelevant axes collapsed and duplicates removed, in a stable order
            (algo, env, width, method, criterion, sparsity, rr, seed).
        """
        self.validate()
        common = {
            "n_timesteps": self.n_timesteps,
            "eval_freq": self.eval_freq,
            "eval_episodes": self.eval_episodes,
            "hyperparams": tuple(sorted((str(k), str(v)) for k, v in self.hyperparams.items())),
        }
        tar_extra = tuple(sorted(self.tar_kwargs.items()))
        dst_extra = tuple(sorted(self.dst_kwargs.items()))
        gmp_extra = tuple(sorted(self.gmp_kwargs.items()))
        cells: dict[str, Cell] = {}
        for algo in self.algos:
            for env in self.envs:
                for width in self.widths:
                    for method in self.methods:
                        for config in self._configs(method):
                            criterion, sparsity, rr, real_method = config
                            extra = (
                                dst_extra if real_method in DST_METHODS or role_cells.is_dynamic(real_method) else tar_extra
                            )
                            if real_method == "gmp":
                                extra = gmp_extra
                            if real_method in ("dense", "small_dense", *SCHEDULE_CALLBACKS):
                                extra = ()
                            dynamic = real_method in DST_METHODS or role_cells.is_dynamic(real_method)
                            for prune_criterion in self.prune_criteria if dynamic else (DEFAULT_PRUNE_CRITERION,):
                                kwargs = extra
                                if prune_criterion != DEFAULT_PRUNE_CRITERION:
                                    kwargs = tuple(sorted((*extra, ("prune_criterion", prune_criterion))))
                                for seed in self.seeds:
                                    cell = Cell(
                                        algo=algo,
                                        env=env,
                                        method=real_method,
                                        criterion=criterion,
                                        sparsity=sparsity,
                                        rr=rr,
                                        width=width,
                                        seed=seed,
                                        callback_kwargs=kwargs,
                                        **common,
                                    )
                                    cells.setdefault(cell.cell_id, cell)
        return list(cells.values())

    def _configs(self, method: str) -> list[tuple[str | None, float | None, float | None, str]]:
        """(criterion, sparsity, rr, method) tuples of one method, axes collapsed."""
        if method == "dense":
            return [(None, None, None, "dense")]
        if role_cells.split(method) is not None:
            return self._role_configs(method)
        out = []
        if method == "small_dense":
            return [(None, sparsity, None, "small_dense") for sparsity in self.sparsities]
        if method == "gmp":
            return [
                (c, sparsity, None, "gmp") for c in self.criterion_labels if c in GMP_SCOPE_OF for sparsity in self.sparsities
            ]
        if method in SCHEDULE_CALLBACKS:
            return [(c, sparsity, None, method) for c in self.criterion_labels for sparsity in self.sparsities]
        if method in DST_METHODS:
            criteria = self.criterion_labels if self.dst_criterion == "same" else (self.dst_criterion,)
            for criterion in criteria:
                for sparsity in self.sparsities:
                    out.append((criterion, sparsity, None, method))
            return out
        for criterion in self.criterion_labels:
            for sparsity in self.sparsities:
                if method == "static":
                    out.append((criterion, sparsity, 0.0, "static"))
                    continue
                for rr in self.rrs:
                    out.append((criterion, sparsity, rr, method) if rr > 0 else (criterion, sparsity, 0.0, "static"))
        return out

    def _role_configs(self, method: str) -> list[tuple[str | None, float | None, float | None, str]]:
        """(criterion, sparsity, rr, method) tuples of a per-role method (:mod:`sb3_tar.experiments.role_cells`)."""
        if role_cells.has_static_role(method) or self.dst_criterion == "same":
            criteria: Sequence[str] = self.criterion_labels
        else:
            criteria = (self.dst_criterion,)
        rrs: Sequence[float | None] = self.rrs if role_cells.revives(method) else (None,)
        out = []
        for criterion in criteria:
            for sparsity in self.sparsities:
                for rr in rrs:
                    real = method if rr is None else role_cells.at_rr(method, rr)
                    if real == "static":
                        out.append((criterion, sparsity, 0.0, "static"))
                    else:
                        out.append((criterion, sparsity, rr if role_cells.revives(real) else None, real))
        return out

    def to_dict(self) -> dict[str, Any]:
        """:return: A JSON-serialisable dict of the grid."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridSpec:
        """
        :param data: A dict as written by :meth:`to_dict`.
        :return: The grid.
        :raises ValueError: If ``data`` has keys that are not grid fields.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown grid keys {unknown}: valid keys are {sorted(known)}")
        return cls(**data)


#: What the two phases of the one-CPU comparison share.
_CPU60K: dict[str, Any] = dict(
    algos=("sac",),
    envs=("HalfCheetah-v4",),
    sparsities=(0.9,),
    rrs=(0.01,),
    widths=(256,),
    seeds=(0, 1, 2, 3, 4),
    n_timesteps=60_000,
    eval_freq=5_000,
    eval_episodes=5,
    hyperparams={"learning_starts": "5000"},
)
#: What the two README demonstrations (``ppo-demo``, ``dqn-demo``) share: dense against 90%-sparse TAR (global
#: magnitude, rr 0.01, reserve), width 256, seeds 0-2.
_DEMO: dict[str, Any] = dict(
    methods=("dense", "tar"), criteria=("magnitude",), sparsities=(0.9,), rrs=(0.01,), widths=(256,), seeds=(0, 1, 2)
)

#: What the 300,000-step comparison's presets share (five times the 60k budget; evaluation every 10,000 steps).
_CPU300K: dict[str, Any] = dict(
    _CPU60K,
    n_timesteps=300_000,
    eval_freq=10_000,
)

PRESETS: dict[str, GridSpec] = {
    # End-to-end check of the whole pipeline in about a minute on 2 idle CPU cores: six of the eleven methods
    # (dense, static, tar, uniform, set, rigl; gmp, small_dense, cyclic, sculpt and iee only with --methods), tiny
    # budget (600 steps, 400 gradient steps, 6 evaluations of 2 episodes). Checks plumbing, not learning.
    "smoke": GridSpec(
        algos=("sac",),
        envs=("Pendulum-v1",),
        methods=("dense", "static", "tar", "uniform", "set", "rigl"),
        criteria=("magnitude",),
        sparsities=(0.9,),
        rrs=(0.01,),
        widths=(64,),
        seeds=(0, 1),
        n_timesteps=600,
        eval_freq=100,
        eval_episodes=2,
        hyperparams={"learning_starts": "200"},
        dst_kwargs={"update_interval": 100},
    ),
    # The paper's full grid (for a cluster): 1M steps, 10 seeds, every criterion, sparsity, rr and width.
    # Evidence on one CPU, phase 1 (README "Results on one CPU"): SAC on HalfCheetah-v4, 60k steps, 5 seeds,
    # 90% sparsity, global magnitude; Original, TAR and Uniform Revival (rr 0.01, reserve), SET, RigL, dense.
    # 30 cells, 10-20 minutes each with two side by side on 2 cores (docs/experiments.md). Fixed before running.
    "cpu60k": GridSpec(methods=("dense", "static", "tar", "uniform", "set", "rigl"), criteria=("magnitude",), **_CPU60K),
    # Phase 2, into the same results directory: Original and TAR for ERK, SynFlow and layer-wise magnitude.
    "cpu60k-criteria": GridSpec(
        methods=("static", "tar"), criteria=("erk", "synflow", "magnitude"), magnitude_scopes=("layer",), **_CPU60K
    ),
    # Phase 3, into the same results directory: TD3 with Original, TAR (global magnitude) and dense.
    "cpu60k-td3": GridSpec(methods=("dense", "static", "tar"), criteria=("magnitude",), **{**_CPU60K, "algos": ("td3",)}),
    # Phase 4, into the same results directory: the field's other baselines, gradual magnitude pruning (global
    # magnitude, its defaults) and a dense network of the 90%-sparse network's parameter count.
    "cpu60k-baselines": GridSpec(methods=("gmp", "small_dense"), criteria=("magnitude",), **_CPU60K),
    # Phase 5, into the same results directory (issue 33): cyclic sparse training, SCULPT and exploitation-exploration
    # (their defaults, docs/method.md), global magnitude masks: 15 cells. Fixed before running.
    "cpu60k-cyclic": GridSpec(methods=("cyclic", "sculpt", "iee"), criteria=("magnitude",), **_CPU60K),
    # Five times the budget (README "At 300,000 steps"), its own results directory: SAC on HalfCheetah-v4, width
    # 256, 90% sparsity, 300k steps with learning_starts 5000, 5 episodes every 10,000 steps, seeds 0-4; dense,
    # static ERK (Original), TAR on ERK (rr 0.01, reserve) and RigL (its defaults, ERK start). Fixed before running.
    "cpu300k": GridSpec(methods=("dense", "static", "tar", "rigl"), criteria=("erk",), **_CPU300K),
    # The same budget and folder: gradual magnitude pruning (global magnitude, its defaults: 20%-80% of training,
    # a prune every 1,000 gradient steps), the fifth method of the 300k comparison.
    "cpu300k-gmp": GridSpec(methods=("gmp",), criteria=("magnitude",), **_CPU300K),
    # The paper's scale claims at the 60k protocol, into the cpu60k folder (README "Width and revival ratio").
    # Part A, the paper's rr figure: global magnitude at sparsities 0.8, 0.9 and 0.95, rr 0 (Original) and
    # 0.005, 0.01, 0.02 (TAR, reserve). The two 0.9 configurations of phase 1 (rr 0 and 0.01) are its cells
    # already and are skipped: 10 new configurations, 50 cells. Fixed before running.
    "cpu60k-rr": GridSpec(
        methods=("static", "tar"),
        criteria=("magnitude",),
        **{**_CPU60K, "sparsities": (0.8, 0.9, 0.95), "rrs": (0.005, 0.01, 0.02)},
    ),
    # Part B, the paper's width figure: sparsity 0.8 at widths 256 and 1024; Original and TAR (rr 0.01) for global
    # magnitude and ERK, RigL (its defaults, ERK start), dense. Dense at 256 is phase 1's and the magnitude cells at
    # 256 are Part A's (skipped): 15 new cells at width 256 and 30 at width 1024. Fixed before running.
    "cpu60k-width": GridSpec(
        methods=("dense", "static", "tar", "rigl"),
        criteria=("magnitude", "erk"),
        **{**_CPU60K, "sparsities": (0.8,), "widths": (256, 1024)},
    ),
    # README demonstration for PPO (issue 30), its own folder (benchmarks/results/ppo-demo): 90%-sparse TAR (global
    # magnitude, rr 0.01, reserve) against dense PPO on HalfCheetah-v4 with RL-Zoo's tuned PPO values (hyperparams/ppo.yml:
    # VecNormalize, n_steps 512, 20 epochs of minibatch 64), width 256, 200,000 steps, 5 episodes every 10,000 steps,
    # seeds 0-2: 6 cells, 6-8 minutes each on one core of a Xeon (docs/experiments.md). A demonstration, not a comparison.
    "ppo-demo": GridSpec(
        algos=("ppo",),
        envs=("HalfCheetah-v4",),
        **_DEMO,
        n_timesteps=200_000,
        eval_freq=10_000,
        eval_episodes=5,
    ),
    # README demonstration for DQN (issue 30), its own folder (benchmarks/results/dqn-demo): 90%-sparse TAR (global
    # magnitude, rr 0.01, reserve) against dense DQN on LunarLander-v3 at RL-Zoo's tuned budget and values
    # (hyperparams/dqn.yml: 100,000 steps, a gradient step per environment step, width 256), 5 episodes every 5,000
    # steps, seeds 0-2: 6 cells, 4-6 minutes each on one core of a Xeon (docs/experiments.md). A demonstration.
    "dqn-demo": GridSpec(
        algos=("dqn",),
        envs=("LunarLander-v3",),
        **_DEMO,
        n_timesteps=100_000,
        eval_freq=5_000,
        eval_episodes=5,
    ),
    "paper": GridSpec(
        algos=("sac", "td3"),
        envs=("HalfCheetah-v4", "Hopper-v4", "Walker2d-v4", "Ant-v4", "Humanoid-v4", "BipedalWalker-v3"),
        methods=("dense", "static", "tar", "uniform", "set", "rigl"),
        criteria=("random", "erk", "magnitude", "synflow"),
        sparsities=(0.8, 0.9, 0.95),
        rrs=(0.005, 0.01, 0.02),
        widths=(256, 1024),
        seeds=tuple(range(10)),
        n_timesteps=1_000_000,
        eval_freq=10_000,
        eval_episodes=10,
    ),
}


def get_preset(name: str) -> GridSpec:
    """
    :param name: A key of :data:`PRESETS`.
    :return: A copy of the preset grid (safe to modify).
    :raises ValueError: If there is no such preset.
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}: valid presets are {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
