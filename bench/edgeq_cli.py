"""`edgeq` run as a user runs it, for the benches that judge its commands from the outside: its exit
code, its time, the last line of its error, and the rows of the planner's table it printed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CRASH = -1  # a run killed by a signal


def run_edgeq(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """`python -m edgeq ARGS` from the repository, and how long it took."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "edgeq", *args], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    return done, time.perf_counter() - start


def exit_code(done: subprocess.CompletedProcess) -> int:
    return done.returncode if done.returncode >= 0 else CRASH


def last_error(done: subprocess.CompletedProcess) -> str:
    """The error edgeq ended with (its last line on stderr), or "" when it succeeded."""
    return (done.stderr.strip().splitlines() or [""])[-1] if done.returncode else ""


def plan_table_rows(done: subprocess.CompletedProcess) -> int | None:
    """The lines of the planner's default table, header to the last refusal line; None when the
    plan stopped before printing one."""
    lines = done.stderr.splitlines() + done.stdout.splitlines()
    header = next((i for i, line in enumerate(lines) if line.lstrip().startswith("CANDIDATE")), None)
    if header is None:
        return None
    last = max(i for i, line in enumerate(lines) if i >= header and line.startswith(("refused", "*", "+", " ")))
    return last - header + 1
