"""The parts of `edgeq flash` and `edgeq measure` that reach a phone or a Linux board: the bundle
pushed over adb or scp, the exact commands `--dry-run` prints, LiteRT's benchmark_model for the
delegates edgeq's harness cannot load. Each returns the facts and the text; commands.py prints them."""

from __future__ import annotations

import shlex
from pathlib import Path

from edgeq.errors import BadInput

STAGES = ("push", "run", "pull", "cleanup")


def _transport(profile, firmware: Path, address: str | None):
    from edgeq.codegen.litert import BUILDER as BUNDLE_BUILDER
    from edgeq.codegen.sources import read_manifest
    from edgeq.device.remote import transport_for
    from edgeq.device.sshd import HOST_ALIAS

    if read_manifest(firmware).builder != BUNDLE_BUILDER:
        raise BadInput(f"{firmware} is not a native LiteRT harness: it is flashed and measured over serial")
    config = None
    if address is None and profile.flash.method == "ssh":
        # The emulated device's sshd and its config exist only during a run: named, not a real path.
        address, config = ((HOST_ALIAS, "<the ssh_config of edgeq's sshd for the run>") if profile.is_emulated
                           else ("<user@address>", None))
    return transport_for(profile, address, read_manifest(firmware).model_sha256[:12], config)


def _listed(profile, commands: list[list[str]]) -> tuple[dict, str]:
    listed = [list(map(str, argv)) for argv in commands]
    return ({"device": profile.name, "method": profile.flash.method, "dry_run": True, "commands": listed},
            "\n".join(shlex.join(argv) for argv in listed))


def flash_dry_run(profile, firmware: Path, address: str | None) -> tuple[dict, str]:
    """The commands that would push the bundle, none run."""
    from edgeq.device.native import bundle_files

    return _listed(profile, _transport(profile, firmware, address).push(bundle_files(firmware, profile)))


def device_dry_run(profile, firmware: Path, address: str | None, *, per_layer: bool = False,
                   benchmark_model: Path | None = None, delegate: str | None = None) -> tuple[dict, str]:
    """Every command a measurement would run (push, run, pull, clean up), none run."""
    from edgeq.device.native import benchmark_model_commands, device_commands

    transport = _transport(profile, firmware, address)
    commands = device_commands(profile, firmware, transport, per_layer=per_layer, dry_run=True)
    listed = [argv for stage in STAGES for argv in commands[stage]]
    if benchmark_model is not None:
        listed += [argv for stage in benchmark_model_commands(profile, firmware, benchmark_model, transport,
                                                              delegate).values() for argv in stage]
    return _listed(profile, listed)


def push_bundle(profile, firmware: Path, address: str | None) -> tuple[dict, str]:
    """The built bundle pushed to its folder on the device."""
    from edgeq.device.native import bundle_files
    from edgeq.device.remote import run_commands

    files = bundle_files(firmware, profile, built=True)
    transport = _transport(profile, firmware, address)
    commands = transport.push(files)
    run_commands(transport, commands)
    facts, _ = _listed(profile, commands)
    return (dict(facts, dry_run=False, directory=transport.directory),
            f"pushed the bundle to {transport.directory} on {profile.name}; edgeq measure runs it")


def benchmark_tool(profile, path: str | None, dry_run: bool) -> Path | None:
    """LiteRT's benchmark_model for the phone, checked: only over adb, and present unless a dry run."""
    if path is None:
        return None
    if profile.flash.method != "adb":
        raise BadInput(f"--benchmark-model runs LiteRT's benchmark_model on a phone over adb; {profile.name} "
                       "is not one")
    tool = Path(path)
    if not dry_run and not tool.is_file():
        raise BadInput(f"{tool}: no such file (LiteRT's benchmark_model built for the phone)")
    return tool
