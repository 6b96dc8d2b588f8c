"""What the user sees: one line per stage, loud warnings, a progress bar on long work. Nothing here
collects what it prints: warnings travel with the results they concern.

Everything else (TensorFlow's C++ and Python logging, the converter's MLIR chatter, absl
warnings) goes to a log file: `quiet_logs` points file descriptor 2 at it for the whole run,
so even native code that writes to stderr lands there. The user's own stderr is kept for
warnings and errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")

_user_err: TextIO = sys.stderr
_machine_output = False  # --json: stdout carries only the JSON document


def machine_output(enabled: bool = True) -> None:
    global _machine_output
    _machine_output = enabled


def emit_json(text: str) -> None:
    print(text, flush=True)


def quiet_tensorflow() -> None:
    """Lower TensorFlow's own verbosity; must run before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # its notice is noise, its rounding differs run to run
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def quiet_logs(log_path: Path) -> Iterator[Path]:
    """Send fd 2 and Python logging/warnings to `log_path` until the block ends."""
    global _user_err
    quiet_tensorflow()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved_fd = os.dup(2)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    previous_err = _user_err
    _user_err = os.fdopen(os.dup(saved_fd), "w", buffering=1)
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    try:
        yield log_path
    finally:
        root.removeHandler(handler)
        handler.close()
        logging.captureWarnings(False)
        sys.stderr.flush()
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        _user_err.close()
        _user_err = previous_err


def info(message: str) -> None:
    if not _machine_output:
        print(message, flush=True)


def warn(message: str) -> None:
    """A warning the user must not miss. Stages return their warnings with their results; whoever
    shows them to the user (deploy as it goes, the CLI) prints each here, and the report keeps them."""
    print(f"edgeq: WARNING: {message}", file=_user_err, flush=True)


def error(message: str) -> None:
    print(f"edgeq: error: {message}", file=_user_err, flush=True)


_depth = 0
SHOWN_DEPTH = 2  # a stage and the stages inside it; deeper ones (the planner's builds) stay quiet


@contextlib.contextmanager
def stage(name: str, detail: str = "") -> Iterator[None]:
    """Print `name  detail ... 1.2 s` as one line when the stage ends (not for stages nested two deep)."""
    global _depth
    start = time.perf_counter()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if _depth < SHOWN_DEPTH:
        info(f"  {name:<9} {detail + '  ' if detail else ''}({time.perf_counter() - start:.1f} s)")


class Bar:
    """A one-line progress bar redrawn in place on a terminal, with a note after the count; silent
    when the output is not a terminal."""

    WIDTH = 24

    def __init__(self, label: str, total: int, stream: TextIO | None = None):
        self.label, self.total, self.out = label, total, stream or sys.stdout
        self.shown = self.out.isatty() and total > 0 and not _machine_output
        self._last = ""

    def update(self, done: int, note: str = "") -> None:
        if not self.shown:
            return
        filled = self.WIDTH * done // self.total
        line = f"\r  {self.label:<9} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{self.total} {note}"
        self.out.write(line.ljust(len(self._last)))
        self.out.flush()
        self._last = line

    def close(self) -> None:
        if self.shown and self._last:
            self.out.write("\r" + " " * len(self._last) + "\r")
            self.out.flush()
            self._last = ""


def progress(items: Iterable[T], total: int, label: str, stream: TextIO | None = None) -> Iterator[T]:
    """`items`, with a Bar of how many have been taken."""
    bar = Bar(label, total, stream)
    for done, item in enumerate(items, 1):
        yield item
        if done == total or done % max(1, total // 100) == 0:
            bar.update(done)
    bar.close()
