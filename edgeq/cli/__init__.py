"""Stage 13, the `edgeq` command: one subcommand per stage, and `deploy` for all of them."""

from edgeq.cli.main import main

__all__ = ["main"]
