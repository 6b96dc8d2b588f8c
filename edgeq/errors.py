"""The errors edgeq reports to its users, each with the exit code the CLI ends with.

Exit codes: 0 success, 2 bad input, 3 does not fit the device, 4 a tool or device failed.
"""


class EdgeqError(Exception):
    """A failure the user can act on; the message names the file, key, shape or sample."""

    exit_code = 2


class BadInput(EdgeqError):
    exit_code = 2


class DoesNotFit(EdgeqError):
    exit_code = 3


class ToolFailed(EdgeqError):
    """An external program (compiler, emulator, flasher) is missing or failed."""

    exit_code = 4
