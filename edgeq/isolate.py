"""Other people's native code, run where its crash cannot take edgeq down.

The TensorFlow Lite converter and its calibrator, and the LiteRT and tflite-micro interpreters are
C++ that can abort or segfault on a model they do not expect (docs/robustness.md lists the cases
found). `contained(tool, subject, fn, *args)` runs `fn(*args)` in a worker process and returns
its result, or raises its exception here; a worker killed by a signal becomes a ToolCrashed (a
ToolFailed: exit 4) that names the tool, the model and what the user can do, and the next call
starts a new worker.

The worker is spawned, not forked: a fork of a process in which TensorFlow has started its
threads can deadlock in the child. It is started on first use and kept for the run, so its
imports (TensorFlow, the interpreters) are paid once; it is a daemon, ended with edgeq. `fn` and
its arguments travel by pickle: module-level functions and plain data (bytes, arrays, paths).
"""

from __future__ import annotations

import multiprocessing
import signal
from dataclasses import dataclass
from typing import Callable, TypeVar

from edgeq.errors import EdgeqError, ToolFailed

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 1800.0


class ToolCrashed(ToolFailed):
    """A native tool died by a signal; `signal_name` is e.g. SIGABRT."""

    def __init__(self, message: str, signal_name: str = ""):
        super().__init__(message)
        self.signal_name = signal_name

    def __reduce__(self):
        return (type(self), (str(self), self.signal_name))


_in_worker = False  # in the worker itself a contained call runs inline: it is contained already


def _serve(conn) -> None:
    """The worker's loop: a call in, its result or its exception out, until the pipe closes."""
    global _in_worker
    from edgeq import console

    _in_worker = True
    console.quiet_tensorflow()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        fn, args = message
        try:
            reply = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
            reply = (False, exc)
        try:
            conn.send(reply)
        except Exception as exc:  # a result or an exception that does not pickle
            conn.send((False, EdgeqError(f"{type(reply[1]).__name__} from the worker could not be sent back: {exc}")))


@dataclass
class _Worker:
    process: multiprocessing.Process
    conn: object

    @classmethod
    def start(cls) -> _Worker:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child,), name="edgeq-native", daemon=True)
        process.start()
        child.close()
        return cls(process, parent)

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()


_worker: _Worker | None = None


def shutdown() -> None:
    """End the worker now (it ends with edgeq anyway)."""
    global _worker
    if _worker is not None:
        _worker.stop()
        _worker = None


def contained(tool: str, subject: str, fn: Callable[..., T], *args, advice: str = "",
              timeout: float = DEFAULT_TIMEOUT_S) -> T:
    """`fn(*args)` in the worker process; its result, or its exception raised here.

    `tool` names the native code ("the TensorFlow Lite converter"), `subject` what it worked on
    ("digits.keras (mode int8)"), `advice` what the user can do when it crashes."""
    global _worker
    if _in_worker or multiprocessing.current_process().daemon:
        return fn(*args)
    if _worker is None or not _worker.process.is_alive():
        _worker = _Worker.start()
    worker = _worker
    try:
        worker.conn.send((fn, args))
        if not worker.conn.poll(timeout):
            shutdown()
            raise ToolFailed(f"{tool} did not finish on {subject} within {timeout:.0f} s and was stopped"
                             + (f"; {advice}" if advice else ""))
        ok, value = worker.conn.recv()
    except (EOFError, ConnectionError, OSError):
        worker.process.join(timeout=10)
        code = worker.process.exitcode
        shutdown()
        name = signal.Signals(-code).name if code is not None and code < 0 else f"exit status {code}"
        raise ToolCrashed(f"{tool} crashed ({name}) on {subject}; edgeq stopped cleanly and wrote nothing for it"
                          + (f". {advice}" if advice else "") + " (the tool's own output is in the log)", name) from None
    except BaseException:  # interrupted while waiting: the worker may be mid-call, so it goes too
        shutdown()
        raise
    if not ok:
        raise value
    return value
