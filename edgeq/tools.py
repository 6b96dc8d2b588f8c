"""The one door to other programs (compilers, binutils, make, flashers, the emulator, the native
firmware): found on PATH or a typed error that says which package provides them; run without a
shell, logged, with the time limit of their kind, their output's tail in the error when they fail.

`run_tool` runs a program to completion (or, with `dry_run`, only prints what it would run);
`start` starts one that keeps running (QEMU, the host firmware) in its own process group, killed
by `stop` and, on Linux, by the kernel if edgeq itself dies. Nothing else in edgeq calls
`subprocess`; the tests of pure stages check that nothing does (tests/conftest.py, `no_processes`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys

from edgeq import console
from edgeq.errors import ToolFailed

log = logging.getLogger("edgeq.tools")

# The time limit of each kind of program, in seconds: one policy, named once.
TIMEOUTS_S = {
    "build": 900.0,  # make: a TFLM firmware compiles the framework on its first build
    "flash": 300.0,  # a flasher writing a board
    "query": 60.0,  # size, readelf and kin: reading a file
    "run": 600.0,  # anything else: a compiler on one file, a program edgeq built
}
STOP_TIMEOUT_S = 10.0
# Where each program edgeq runs comes from, for the message when it is missing.
PACKAGES = {
    "make": "the Debian package make",
    "gcc": "the Debian package gcc",
    "size": "the Debian package binutils",
    "arm-none-eabi-gcc": "the Debian packages gcc-arm-none-eabi and libnewlib-arm-none-eabi",
    "arm-none-eabi-g++": "the Debian package libstdc++-arm-none-eabi-newlib",
    "arm-none-eabi-size": "the Debian package binutils-arm-none-eabi (installed with gcc-arm-none-eabi)",
    "arm-none-eabi-objcopy": "the Debian package binutils-arm-none-eabi (installed with gcc-arm-none-eabi)",
    "qemu-system-arm": "the Debian package qemu-system-arm",
    "xtensa-esp32s3-elf-gcc": "Espressif's ESP-IDF toolchain (idf_tools.py install xtensa-esp-elf)",
}
_PR_SET_PDEATHSIG = 1


def require(program: str, provides: str | None = None) -> str:
    """The path of `program`, or ToolFailed saying which package provides it."""
    found = shutil.which(program)
    if found is None:
        where = provides or PACKAGES.get(program, "its vendor's toolchain")
        raise ToolFailed(f"{program} not found on PATH: install {where}")
    return found


def run_tool(argv: list[str], provides: str | None = None, *, kind: str = "run", timeout: float | None = None,
             cwd=None, input: bytes | None = None, check: bool = True,
             dry_run: bool = False) -> subprocess.CompletedProcess | None:
    """Run `argv` (no shell) to completion within its `kind`'s time limit (or `timeout`); ToolFailed
    when it is missing or times out, and, with `check`, when it fails. Text output, unless `input`
    (bytes) is given: then bytes in and out. With `dry_run` the command is printed, not run (None)."""
    line = shlex.join(map(str, argv))
    if dry_run:
        log.info("dry run: %s", line)
        console.info(line)
        return None
    limit = TIMEOUTS_S[kind] if timeout is None else timeout
    log.info("running: %s", line)
    require(str(argv[0]), provides)
    try:
        done = subprocess.run(list(map(str, argv)), capture_output=True, text=input is None, timeout=limit,
                              cwd=cwd, input=input)
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed(f"{argv[0]} did not finish within {limit:.0f} s: {line}") from exc
    if check and done.returncode != 0:
        raise ToolFailed(f"{argv[0]} failed with exit code {done.returncode}: {line}\n{output_tail(done)}")
    return done


def output_tail(done: subprocess.CompletedProcess, lines: int = 25) -> str:
    """The last `lines` of what a finished program printed, stdout then stderr."""
    out, err = done.stdout or "", done.stderr or ""
    if isinstance(out, bytes) or isinstance(err, bytes):
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        err = err.decode(errors="replace") if isinstance(err, bytes) else err
    return "\n".join((out + err).strip().splitlines()[-lines:])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start(argv: list[str], provides: str | None = None, *, stdin=subprocess.DEVNULL, stdout=None,
          stderr=None) -> subprocess.Popen:
    """`argv` started in its own process group, not waited for: end it with `stop`."""
    require(str(argv[0]), provides)
    log.info("starting: %s", shlex.join(map(str, argv)))
    return subprocess.Popen(list(map(str, argv)), stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True,
                            preexec_fn=_die_with_parent, close_fds=True)


def stop(process: subprocess.Popen) -> None:
    """Kills the process group and reaps it; a no-op for one that has already ended."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
