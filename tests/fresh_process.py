"""Load saved files in a new Python process, several files per process.

A test that proves a saved model (or an export) works "in a fresh process" needs an interpreter that never held the
writing process's objects; starting one costs seconds of imports (torch, SB3, torch._dynamo at the first optimizer),
while the load itself takes milliseconds. :func:`run_fresh` therefore runs a batch of loading scripts, one after the
other, in one new interpreter: each job gets its own globals and ``sys.argv``, its standard output and any exception
are kept per job. The jobs of a batch share imported modules, nothing else; a batch run ``without`` a package refuses
every import of it from the start and checks at the end that none of its modules was loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from cli_utils import REPO, cli_env

_RUNNER = r"""
import contextlib, io, json, sys, traceback
jobs, without = json.loads(sys.stdin.read())
if without:
    sys.modules[without] = None  # as if the package were not installed
results = []
for script, argv in jobs:
    out = io.StringIO()
    sys.argv = ["-c", *argv]
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(script, "<job>", "exec"), {"__name__": "__main__"})
        error = None
    except BaseException:
        error = traceback.format_exc()
    results.append({"stdout": out.getvalue(), "error": error})
loaded = sorted(m for m, v in sys.modules.items() if without and v is not None and m.split(".")[0] == without)
sys.stdout.write("\n" + json.dumps({"results": results, "loaded": loaded}))
"""


@dataclass
class Job:
    """One loading script of a batch and what it printed."""

    stdout: str
    error: str | None

    def last_line(self) -> str:
        """:return: The last line the script printed (the script's report, by convention); fails on an error."""
        assert self.error is None, self.error
        return self.stdout.strip().splitlines()[-1]


def run_fresh(jobs: Sequence[tuple[str, Sequence[str]]], without: str | None = None, timeout: float = 300) -> list[Job]:
    """
    Run ``jobs`` (``(script, argv)`` pairs) one after the other in one new interpreter (this checkout first on
    ``PYTHONPATH``, one thread).

    :param jobs: Each script's source and its ``sys.argv[1:]``.
    :param without: A top-level package no job may import (``sys.modules[without] = None`` before the first job).
    :param timeout: Seconds for the whole batch.
    :return: One :class:`Job` per job, in order.
    """
    payload = json.dumps([[[script, [str(a) for a in argv]] for script, argv in jobs], without])
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=payload,
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.rsplit("\n", 1)[-1])
    assert report["loaded"] == [], f"{without} was imported: {report['loaded']}"
    return [Job(**r) for r in report["results"]]
