"""Where a result came from: the machine, the numerical libraries and the package commit that ran it.

PyTorch's CPU kernels (and the sparse kernel, built with ``-march=native``) round differently on different
instruction sets, so a run is bit-identical only on the same CPU type. Every cell of a sweep records what ran
it (:func:`hardware_info` in ``summary.json`` and ``done.json``, and one entry per attempt in ``runs.jsonl``), so
two results can be compared knowing whether they could have been identical.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

#: CPU flags that decide which kernels PyTorch and the compiler pick (those present are recorded).
ISA_FLAGS: tuple[str, ...] = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
#: A cell's attempt log: one JSON line per start of the cell (the first run and every resume).
RUNS_FILE = "runs.jsonl"


def _cpu_fields() -> tuple[str | None, str | None, set[str]]:
    """
    :return: The CPU's model name, its ``family/model/stepping`` numbers (a virtual machine often shows a generic
        model name; the numbers still tell CPU generations apart) and its flags, from ``/proc/cpuinfo``
        (``None``, ``None`` and ``set()`` where there is none).
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return (platform.processor() or None), None, set()
    first: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        first.setdefault(key.strip(), value.strip())
    numbers = [first.get(key) for key in ("cpu family", "model", "stepping")]
    cpu_id = "/".join(numbers) if all(numbers) else None
    flags = set((first.get("flags") or first.get("Features") or "").split())
    return first.get("model name"), cpu_id, flags


def hardware_info(threads: int | None = None) -> dict[str, Any]:
    """
    :param threads: The thread count the run uses (default: ``OMP_NUM_THREADS`` if set, else this process's
        ``torch.get_num_threads()``).
    :return: ``{"cpu_model", "cpu_id", "isa", "machine", "torch", "torch_cpu_capability", "threads", "python",
        "stable_baselines3", "gymnasium", "mujoco", "sb3_contrib", "rl_zoo3"}``: the CPU's model name, its
        family/model/stepping and which of :data:`ISA_FLAGS` it has, the torch version and the instruction set its
        CPU kernels dispatch to, the thread count, and the Python, SB3, Gymnasium, MuJoCo, sb3-contrib and RL-Zoo3
        versions.
    """
    import stable_baselines3
    import torch

    model, cpu_id, flags = _cpu_fields()
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # pragma: no cover - very old torch
        capability = None
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() else torch.get_num_threads()
    return {
        "cpu_model": model,
        "cpu_id": cpu_id,
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "machine": platform.machine(),
        "torch": torch.__version__,
        "torch_cpu_capability": capability,
        "threads": threads,
        "python": platform.python_version(),
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": _version_of("gymnasium"),
        "mujoco": _version_of("mujoco"),
        "sb3_contrib": _version_of("sb3-contrib"),
        "rl_zoo3": _version_of("rl-zoo3"),
    }


def hardware_line(threads: int | None = None, info: dict[str, Any] | None = None) -> str:
    """
    One line naming what a timing ran on, for the top of a benchmark's output: the CPU model and its
    family/model/stepping, the instruction-set flags of :data:`ISA_FLAGS` it has, the instruction set torch's CPU
    kernels dispatch to, the thread count and the library versions. Speed tables measured on different CPUs
    (AVX2 against AVX-512/AMX, say) differ; this line tells which one a table came from.

    :param threads: The thread count the run uses (see :func:`hardware_info`).
    :param info: Output of :func:`hardware_info` (default: computed now).
    :return: The line, e.g. ``CPU: AMD EPYC 7B13 (25/1/0), ISA avx2 fma, torch 2.13.0 kernels AVX2, 1 thread, ...``.
    """
    info = info if info is not None else hardware_info(threads)
    cpu = info["cpu_model"] or info["machine"] or "unknown CPU"
    if info["cpu_id"]:
        cpu += f" ({info['cpu_id']})"
    isa = " ".join(info["isa"]) or "none of " + "/".join(ISA_FLAGS[:3])
    threads_text = f"{info['threads']} thread" + ("s" if info["threads"] != 1 else "")
    return (
        f"CPU: {cpu}, ISA {isa}, torch {info['torch']} kernels {info['torch_cpu_capability']}, {threads_text}; "
        f"Python {info['python']}, SB3 {info['stable_baselines3']}, gymnasium {info['gymnasium']}, mujoco {info['mujoco']}"
    )


def _version_of(package: str) -> str | None:
    """:return: The installed version of ``package``, or ``None`` if it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def same_hardware(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """
    :param a: A :func:`hardware_info` record (or ``None``: unknown).
    :param b: Another one.
    :return: Whether runs on the two could be bit-identical: same CPU model and instruction set, same torch and
        thread count. Unknown hardware is never the same.
    """
    if not a or not b:
        return False
    keys = ("cpu_model", "cpu_id", "isa", "torch", "torch_cpu_capability", "threads")
    return all(a.get(key) == b.get(key) for key in keys)


def record_attempt(folder: str | os.PathLike, package: dict[str, Any], hardware: dict[str, Any], resumed: bool) -> None:
    """
    Append one attempt (a first run or a resume) to the cell's :data:`RUNS_FILE`.

    :param folder: The cell's folder.
    :param package: The package commit running it (``runner.package_commit()``).
    :param hardware: :func:`hardware_info` of the machine running it.
    :param resumed: Whether this attempt resumes from a checkpoint.
    """
    entry = {"started": time.time(), "resumed": resumed, "package": package, "hardware": hardware}
    with open(Path(folder) / RUNS_FILE, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def read_attempts(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """
    :param folder: The cell's folder.
    :return: Its attempts in order (empty if it has no :data:`RUNS_FILE`; a torn last line is skipped).
    """
    path = Path(folder) / RUNS_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
