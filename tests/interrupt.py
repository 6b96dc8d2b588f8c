"""For tests that interrupt a program with SIGINT, as Ctrl-C would."""

from __future__ import annotations

import signal


def interruptible() -> None:
    """preexec_fn for the program: a shell's background job (or a test runner's worker) may run with
    SIGINT ignored, which its programs inherit and Python then keeps, so the program would never see
    the signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
