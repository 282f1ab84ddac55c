"""Every benchmark's output names the CPU it ran on (model, family/model/stepping, instruction set, the kernels
torch dispatches to), on its first line: speed tables from an AVX2 machine and an AVX-512/AMX one differ
(issue 32)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sb3_tar.experiments.provenance import hardware_info, hardware_line

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))


def test_hardware_line_names_the_cpu_and_its_instruction_set() -> None:
    info = hardware_info(threads=1)
    line = hardware_line(1)
    assert line.startswith("CPU: ") and "\n" not in line
    if info["cpu_model"]:
        assert info["cpu_model"] in line
    assert all(flag in line for flag in info["isa"]) and f"kernels {info['torch_cpu_capability']}" in line
    assert "1 thread;" in line and f"torch {info['torch']}" in line


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_each_benchmark_prints_the_hardware_line_before_anything_else(script: Path) -> None:
    """Read each script's ``main()``: its first ``print`` prints :func:`hardware_line`."""
    tree = ast.parse(script.read_text())
    (main,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main"]
    prints = [
        node
        for node in ast.walk(main)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]
    first = min(prints, key=lambda node: (node.lineno, node.col_offset))
    argument = first.args[0] if first.args else None
    assert isinstance(argument, ast.Call) and isinstance(argument.func, ast.Name) and argument.func.id == "hardware_line", (
        f"{script.name}: the first print (line {first.lineno}) is not print(hardware_line(...))"
    )


def test_a_benchmark_run_starts_with_the_hardware_line() -> None:
    """The smallest real run (a random mask on width 16): its first line of output is the hardware line."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "benchmarks/bench_pruning.py", "--width", "16", "--repeats", "1", "--criteria", "random"]
    out = subprocess.run(cmd + ["--threads", "1"], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == hardware_line(1)
