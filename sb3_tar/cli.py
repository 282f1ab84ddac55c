"""Command line of sb3-tar: ``sb3-tar sweep`` runs a grid with RL-Zoo3, ``sb3-tar report`` tabulates and plots it.

Examples::

    sb3-tar sweep --preset smoke                          # ~1-2 min on 2 cores, results/smoke
    sb3-tar report results/smoke                          # tables + PNGs in results/smoke/report
    sb3-tar verify-masks results/smoke                    # this package draws the cells' masks again, identically
    sb3-tar to-sb3 sparse_sac.zip plain_sac.zip           # a plain SB3 file: SAC.load opens it without sb3-tar
    sb3-tar sweep --preset paper --backend ray -o /shared/tar   # the paper's grid on a Ray cluster
    sb3-tar sweep --envs HalfCheetah-v4 --methods static tar uniform --n-seeds 3 -n 20000 -o results/hc
    sb3-tar hyperparams sac                               # path of the shipped sac.yml, for rl_zoo3.train -conf

Also runnable as ``python -m sb3_tar.cli``.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Sequence
from typing import Any

from sb3_tar.core.config import MAGNITUDE_SCOPES, warn_former_name
from sb3_tar.core.prune_criteria import FORMER_PRUNE_CRITERIA, PRUNE_CRITERIA
from sb3_tar.experiments.grid import ALGOS, CRITERIA, MAGNITUDE_LAYER, METHODS, PRESETS, GridSpec, get_preset
from sb3_tar.experiments.runner import (
    BACKENDS,
    DEFAULT_CHECKPOINT_EVERY,
    cell_state,
    check_checkpoint_every,
    check_jobs,
    run_sweep,
)


def _key_values(items: Sequence[str] | None, literal: bool) -> dict[str, Any]:
    """Parse ``key:value`` items; with ``literal`` the value is a Python literal (else kept as text)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise ValueError(f"Expected key:value, got {item!r}")
        if literal:
            try:
                out[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                out[key] = value
        else:
            out[key] = value
    return out


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sb3-tar", description="TAR / sparse-training experiments with RL-Zoo3")
    sub = parser.add_subparsers(dest="command", required=True)

    sweep = sub.add_parser(
        "sweep",
        help="run a grid of RL-Zoo3 trainings (resumable)",
        description="Expand a grid (algo x env x method x criterion x sparsity x rr x width x seed) and train every "
        "cell with `python -m rl_zoo3.train`, skipping finished cells. Grid options override the preset.",
    )
    sweep.add_argument("--preset", choices=sorted(PRESETS), default=None, help="start from a preset grid")
    sweep.add_argument("-o", "--out", default=None, help="results directory (default: results/<preset or sweep>)")
    sweep.add_argument("--algos", nargs="+", choices=ALGOS)
    sweep.add_argument("--envs", nargs="+")
    sweep.add_argument(
        "--methods", nargs="+", help=f"from {list(METHODS)}, or per role: <actor method>+<critic method> (e.g. tar+rigl)"
    )
    sweep.add_argument(
        "--criteria",
        nargs="+",
        choices=(*CRITERIA, MAGNITUDE_LAYER),
        metavar="CRITERION",
        help=f"static criteria, from {list(CRITERIA)} (magnitude_layer: former spelling of --criteria magnitude "
        "--magnitude-scopes layer, deprecated)",
    )
    sweep.add_argument(
        "--magnitude-scopes",
        nargs="+",
        choices=MAGNITUDE_SCOPES,
        help="scopes of the magnitude criterion (the callbacks' magnitude_scope; an axis, default global): 'layer' "
        "cells are labelled magnitude_layer in cell ids and reports (docs/experiments.md)",
    )
    sweep.add_argument("--sparsities", nargs="+", type=float)
    sweep.add_argument(
        "--recovery-ratios",
        nargs="+",
        type=float,
        dest="rrs",
        help="recovery ratios of TAR/Uniform (the callbacks' recovery_ratio; 0 = static); the tables' column is rr",
    )
    sweep.add_argument("--rrs", nargs="+", type=float, dest="former_rrs", help=argparse.SUPPRESS)  # deprecated
    sweep.add_argument("--widths", nargs="+", type=int)
    seeds = sweep.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", nargs="+", type=int, help="explicit seeds")
    seeds.add_argument("--n-seeds", type=int, help="seeds 0 .. N-1")
    sweep.add_argument("-n", "--n-timesteps", type=int, help="training steps per cell")
    sweep.add_argument("--eval-freq", type=int, help="evaluate every N steps")
    sweep.add_argument("--eval-episodes", type=int, help="deterministic episodes per evaluation")
    sweep.add_argument(
        "--prune-criteria",
        nargs="+",
        choices=(*PRUNE_CRITERIA, *FORMER_PRUNE_CRITERIA),
        metavar="PRUNE_CRITERION",
        help=f"prune criteria of SET/RigL, from {list(PRUNE_CRITERIA)} (an axis; default magnitude, which keeps the "
        "cell ids of earlier sweeps; 'set' is the deprecated former name of sign_balanced_magnitude)",
    )
    sweep.add_argument("--dst-criterion", choices=[*CRITERIA, "same"], help="initial mask of SET/RigL (default erk)")
    sweep.add_argument("--params", nargs="+", metavar="KEY:VALUE", help="RL-Zoo -params for every cell (Python expressions)")
    sweep.add_argument("--tar-kwargs", nargs="+", metavar="KEY:VALUE", help="extra TARCallback kwargs, e.g. budget_mode:extra")
    sweep.add_argument(
        "--dst-kwargs", nargs="+", metavar="KEY:VALUE", help="extra DSTCallback kwargs, e.g. update_interval:500"
    )
    sweep.add_argument(
        "--gmp-kwargs",
        nargs="+",
        metavar="KEY:VALUE",
        help="extra GMPCallback kwargs, e.g. update_interval:500 end_fraction:0.75",
    )
    sweep.add_argument("-j", "--jobs", type=int, default=None, help="cells at once (default: number of CPU cores)")
    sweep.add_argument("--backend", choices=BACKENDS, default="local", help="local processes, or a Ray cluster")
    sweep.add_argument("--ray-address", default=None, help="Ray cluster address (default: ray.init() default)")
    sweep.add_argument(
        "--conf-dir",
        default=None,
        help="folder with sac.yml/td3.yml/tqc.yml (default: the shipped ones: sb3-tar hyperparams)",
    )
    sweep.add_argument(
        "--checkpoint-every",
        type=int,
        default=DEFAULT_CHECKPOINT_EVERY,
        metavar="N",
        help="checkpoint each cell every N steps; an interrupted cell resumes from its latest checkpoint, exactly "
        f"(default {DEFAULT_CHECKPOINT_EVERY}; 0: no checkpoints, an interrupted cell starts again from step 0)",
    )
    sweep.add_argument("--overwrite", action="store_true", help="re-run cells finished with another configuration")
    sweep.add_argument("--dry-run", action="store_true", help="list the cells and commands, run nothing")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")

    report = sub.add_parser("report", help="tables (markdown + CSV) and PNG plots of a results directory")
    report.add_argument("results_dir", help="directory written by `sb3-tar sweep`")
    report.add_argument("-o", "--out", default=None, help="output directory (default: <results_dir>/report)")
    report.add_argument("--last-fraction", type=float, default=0.1, help="fraction of last evaluations averaged")
    report.add_argument("--reps", type=int, default=2000, help="bootstrap replications for IQM intervals")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    report.add_argument("--no-plots", action="store_true", help="tables only")
    report.add_argument("--no-progress", action="store_true", help="no progress bars")
    report.add_argument(
        "--readme",
        default=None,
        metavar="FILE",
        help="also rewrite the generated block of this markdown file (between its sb3-tar report markers) "
        "with the report's digest",
    )
    report.add_argument(
        "--block",
        default=None,
        metavar="NAME",
        help="with --readme: rewrite the block named NAME (markers '<!-- sb3-tar report NAME: begin ... -->' and "
        "'<!-- sb3-tar report NAME: end -->'), for a file with one block per results directory",
    )
    report.add_argument(
        "--at-steps",
        type=int,
        nargs="+",
        default=None,
        metavar="STEP",
        help="also rank the configurations at these environment steps, read from the same runs (e.g. 60000 150000 300000)",
    )
    report.add_argument(
        "--presets",
        nargs="+",
        choices=sorted(PRESETS),
        default=None,
        metavar="PRESET",
        help="report only the cells of these presets (one results directory can hold several grids); default: every "
        f"cell. Choices: {', '.join(sorted(PRESETS))}",
    )

    verify = sub.add_parser(
        "verify-masks",
        help="re-draw the masks of finished cells with this package and compare (exit 1 if any differ)",
        description="Run each finished sparse cell's configuration again for a few steps (no gradient step) and "
        "compare its per-layer pruning report and nonzero-pattern fingerprint with the committed ones, proving "
        "that the commits which ran a grid drew the same masks as this one.",
    )
    verify.add_argument("results_dir", help="directory written by `sb3-tar sweep`")
    verify.add_argument(
        "--cells",
        nargs="+",
        default=None,
        help="cells to check: folders, or cell ids under results_dir (default: every sparse one)",
    )
    verify.add_argument(
        "--conf-dir",
        default=None,
        help="folder with sac.yml/td3.yml/tqc.yml (default: the shipped ones: sb3-tar hyperparams)",
    )

    hyper = sub.add_parser(
        "hyperparams",
        help="print the path of a shipped hyperparameter file (for `python -m rl_zoo3.train -conf`)",
        description="Print the path of the RL-Zoo3 hyperparameter file shipped with sb3-tar for ALGO (or of their "
        'folder), e.g. python -m rl_zoo3.train --algo sac --env HalfCheetah-v4 -conf "$(sb3-tar hyperparams sac)" '
        "--num-threads 1",
    )
    hyper.add_argument("algo", nargs="?", choices=(*ALGOS, *ZOO_ONLY_ALGOS), help="algorithm (default: print the folder)")

    to_sb3 = sub.add_parser(
        "to-sb3",
        help="write a sparse model as a plain SB3 file that loads without sb3-tar",
        description="Rewrite a saved sparse SAC/TD3/TQC model for SB3's own policy class, masks baked into the weights "
        "(zeros at pruned positions): SAC.load/TD3.load/TQC.load open it without sb3-tar (sharing, Hugging Face Hub).",
    )
    to_sb3.add_argument("model", help="saved model (.zip)")
    to_sb3.add_argument("out", help="plain SB3 file to write (.zip)")
    return parser


def grid_from_args(args: argparse.Namespace) -> GridSpec:
    """
    :param args: Parsed ``sweep`` arguments.
    :return: The preset (or default) grid with the command-line overrides applied, validated.
    """
    grid = get_preset(args.preset) if args.preset else GridSpec()
    if getattr(args, "former_rrs", None) is not None:
        if args.rrs is not None:
            raise ValueError("--rrs is the former name of --recovery-ratios: give --recovery-ratios only")
        warn_former_name("sb3-tar sweep", "--rrs", "--recovery-ratios", stacklevel=2)
        args.rrs = args.former_rrs
    axes = ("algos", "envs", "methods", "criteria", "magnitude_scopes", "sparsities", "rrs", "widths", "seeds")
    for name in (*axes, "prune_criteria"):
        value = getattr(args, name)
        if value is not None:
            setattr(grid, name, tuple(value))
    if args.n_seeds is not None:
        if args.n_seeds < 1:
            raise ValueError(f"--n-seeds={args.n_seeds} is outside the allowed range [1, inf)")
        grid.seeds = tuple(range(args.n_seeds))
    for name in ("n_timesteps", "eval_freq", "eval_episodes", "dst_criterion"):
        value = getattr(args, name)
        if value is not None:
            setattr(grid, name, value)
    grid.hyperparams = {**grid.hyperparams, **_key_values(args.params, literal=False)}
    grid.tar_kwargs = {**grid.tar_kwargs, **_key_values(args.tar_kwargs, literal=True)}
    grid.dst_kwargs = {**grid.dst_kwargs, **_key_values(args.dst_kwargs, literal=True)}
    grid.gmp_kwargs = {**grid.gmp_kwargs, **_key_values(args.gmp_kwargs, literal=True)}
    grid.validate()
    return grid


def _sweep(args: argparse.Namespace) -> int:
    grid = grid_from_args(args)
    check_checkpoint_every(args.checkpoint_every)
    check_jobs(args.jobs, "--jobs")  # before the dry run too (run_sweep checks it again)
    out = args.out or os.path.join("results", args.preset or "sweep")
    cells = grid.expand()
    states = [cell_state(out, c) for c in cells]
    print(
        f"{len(cells)} cells ({states.count('done')} finished, {states.count('partial')} partial, "
        f"{states.count('stale')} stale) -> {out}"
    )
    if args.dry_run:
        import shlex

        from sb3_tar.experiments.runner import cell_command, check_cells, conf_file, find_conf_dir

        conf = find_conf_dir(args.conf_dir)
        check_cells(cells, conf)  # run_sweep runs the same checks for a real run
        for cell, state in zip(cells, states):
            print(f"[{state}] {cell.cell_id}")
            command, env = cell_command(cell, out, conf_file(conf, cell.algo), checkpoint_every=args.checkpoint_every)
            print("    " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.join(command))
        return 0
    try:
        summary = run_sweep(
            grid,
            out,
            jobs=args.jobs,
            backend=args.backend,
            conf_dir=args.conf_dir,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            ray_address=args.ray_address,
            checkpoint_every=args.checkpoint_every,
        )
    except KeyboardInterrupt:
        print("Interrupted: finished cells are kept; run the same command again to resume.", file=sys.stderr)
        return 130
    busy = summary.count("busy")
    print(
        f"done: {summary.count('done')} ran, {summary.count('skipped')} already finished, {summary.count('failed')} failed"
        + (f", {busy} left to the other sweep running them" if busy else "")
    )
    for result in summary.failed:
        print(f"FAILED {result.cell_id} (exit code {result.returncode}); log: {result.log}", file=sys.stderr)
    if not summary.failed:
        print(f"Next: sb3-tar report {out}")
    return 1 if summary.failed else 0


def _report(args: argparse.Namespace) -> int:
    from sb3_tar.experiments.report import make_report

    make_report(
        args.results_dir,
        args.out,
        last_fraction=args.last_fraction,
        reps=args.reps,
        seed=args.seed,
        make_plots=not args.no_plots,
        progress=not args.no_progress,
        readme=args.readme,
        block=args.block,
        at_steps=args.at_steps,
        presets=args.presets,
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from sb3_tar.experiments.verify import verify_masks

    outcome = verify_masks(args.results_dir, args.cells, args.conf_dir)
    differing = sorted(cell for cell, differences in outcome.items() if differences)
    print(f"{len(outcome) - len(differing)} of {len(outcome)} cell(s) drew the same masks with this package")
    return 1 if differing else 0


def _to_sb3(args: argparse.Namespace) -> int:
    from sb3_tar.sb3.persistence.share import to_sb3

    try:
        print(f"wrote {to_sb3(args.model, args.out)}")
    except TypeError as e:  # a file that is not an SB3 SAC/TD3/TQC model
        print(f"sb3-tar to-sb3: error: {e}", file=sys.stderr)
        return 2
    return 0


#: Algorithms with a shipped RL-Zoo file that the sweep does not run (none since issue 30: PPO, A2C and DQN run too).
ZOO_ONLY_ALGOS: tuple[str, ...] = ()


def _hyperparams(args: argparse.Namespace) -> int:
    from sb3_tar.experiments.runner import conf_file, find_conf_dir

    folder = find_conf_dir()
    print(conf_file(folder, args.algo) if args.algo else folder)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """
    Entry point of the ``sb3-tar`` console script.

    :param argv: Arguments (default: ``sys.argv[1:]``).
    :return: Exit code (0 ok, 1 failed cells or differing masks, 2 bad arguments, 130 interrupted).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        commands = {
            "sweep": _sweep,
            "report": _report,
            "verify-masks": _verify,
            "to-sb3": _to_sb3,
            "hyperparams": _hyperparams,
        }
        return commands[args.command](args)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as e:
        print(f"sb3-tar {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
