"""The one door to other programs (compilers, binutils, make, flashers, the emulator): found on
PATH or a typed error that says which package provides them; run without a shell, logged, with a
time limit, their output's tail in the error when they fail."""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess

from edgeq.errors import ToolFailed

log = logging.getLogger("edgeq.tools")

DEFAULT_TIMEOUT_S = 600.0
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


def require(program: str, provides: str | None = None) -> str:
    """The path of `program`, or ToolFailed saying which package provides it."""
    found = shutil.which(program)
    if found is None:
        where = provides or PACKAGES.get(program, "its vendor's toolchain")
        raise ToolFailed(f"{program} not found on PATH: install {where}")
    return found


def run_tool(argv: list[str], provides: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
             cwd=None) -> subprocess.CompletedProcess:
    """Run `argv` (no shell) to completion; ToolFailed when it is missing, times out or fails."""
    line = shlex.join(argv)
    log.info("running: %s", line)
    require(argv[0], provides)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed(f"{argv[0]} did not finish within {timeout:.0f} s: {line}") from exc
    if done.returncode != 0:
        tail = "\n".join(((done.stdout or "") + (done.stderr or "")).strip().splitlines()[-25:])
        log.info("%s failed with exit code %d:\n%s", argv[0], done.returncode, tail)
        raise ToolFailed(f"{argv[0]} failed with exit code {done.returncode}: {line}\n{tail}")
    return done
