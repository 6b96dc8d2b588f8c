"""How edgeq reaches a phone or a Linux board: push the harness bundle, run it, pull what it wrote,
clean up. One class per transport (adb for phones, ssh and scp for Linux boards, a plain folder for
this machine), each building plain argument lists in pure methods, so `--dry-run` prints exactly what
would run; everything runs through edgeq.tools' one door.

What runs on the device (the harness through the bundle's loader, pinned, under qemu-user when
emulated) is edgeq.codegen.litert.harness_command.
"""

from __future__ import annotations

import os
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edgeq.errors import BadInput
from edgeq.tools import run_tool

SSH_CONFIG_ENV = "EDGEQ_SSH_CONFIG"  # an ssh_config file (-F) with the board's Host entry


@dataclass(frozen=True)
class Transport:
    """One way to a device: `address` is user@host (ssh), an adb serial, or None (this machine)."""

    address: str | None
    directory: str  # where the bundle goes on the device
    name: ClassVar[str]
    provides: ClassVar[str]

    def push(self, files: list[Path]) -> list[list[str]]:
        raise NotImplementedError

    def run(self, argv: list[str]) -> list[str]:
        raise NotImplementedError

    def pull(self, names: list[str], into: Path) -> list[list[str]]:
        raise NotImplementedError

    def cleanup(self) -> list[str]:
        raise NotImplementedError

    def facts(self) -> dict[str, list[str]]:
        """Commands whose output the report keeps about the device (build, thermal state)."""
        return {}

    def in_directory(self, argv: list[str]) -> str:
        return f"cd {shlex.quote(self.directory)} && {shlex.join(argv)}"


@dataclass(frozen=True)
class Ssh(Transport):
    config: str | None = None  # an ssh_config (-F); else $EDGEQ_SSH_CONFIG, else ssh's own
    name: ClassVar[str] = "ssh"
    provides: ClassVar[str] = "the Debian package openssh-client"

    def options(self) -> list[str]:
        config = self.config or os.environ.get(SSH_CONFIG_ENV)
        return (["-F", config] if config else []) + ["-o", "BatchMode=yes"]

    def push(self, files: list[Path]) -> list[list[str]]:
        return [["ssh", *self.options(), self.address, f"mkdir -p {shlex.quote(self.directory)}"],
                ["scp", "-q", *self.options(), *map(str, files), f"{self.address}:{self.directory}/"]]

    def run(self, argv: list[str]) -> list[str]:
        return ["ssh", *self.options(), self.address, self.in_directory(argv)]

    def pull(self, names: list[str], into: Path) -> list[list[str]]:
        return [["scp", "-q", *self.options(), *(f"{self.address}:{self.directory}/{n}" for n in names), str(into)]]

    def cleanup(self) -> list[str]:
        return ["ssh", *self.options(), self.address, f"rm -rf {shlex.quote(self.directory)}"]

    def facts(self) -> dict[str, list[str]]:
        return {"kernel": self.run(["uname", "-srm"])}


@dataclass(frozen=True)
class Adb(Transport):
    name: ClassVar[str] = "adb"
    provides: ClassVar[str] = "the Debian package adb"

    def adb(self, *args: str) -> list[str]:
        return ["adb", *(["-s", self.address] if self.address else []), *args]

    def push(self, files: list[Path]) -> list[list[str]]:
        return [self.adb("shell", f"mkdir -p {shlex.quote(self.directory)}"),
                self.adb("push", *map(str, files), f"{self.directory}/")]

    def run(self, argv: list[str]) -> list[str]:
        return self.adb("shell", self.in_directory(argv))

    def pull(self, names: list[str], into: Path) -> list[list[str]]:
        return [self.adb("pull", f"{self.directory}/{n}", str(into / n)) for n in names]

    def cleanup(self) -> list[str]:
        return self.adb("shell", f"rm -rf {shlex.quote(self.directory)}")

    def facts(self) -> dict[str, list[str]]:
        return {"fingerprint": self.adb("shell", "getprop", "ro.build.fingerprint"),
                "thermal_status": self.adb("shell", "cat", "/sys/class/thermal/thermal_zone0/temp")}


@dataclass(frozen=True)
class Local(Transport):
    """This machine: the bundle is copied into a folder and the harness runs there."""

    name: ClassVar[str] = "local"
    provides: ClassVar[str] = "the host C compiler"

    def push(self, files: list[Path]) -> list[list[str]]:
        return [["mkdir", "-p", self.directory], ["cp", *map(str, files), f"{self.directory}/"]]

    def run(self, argv: list[str]) -> list[str]:
        return ["sh", "-c", self.in_directory(argv)]

    def pull(self, names: list[str], into: Path) -> list[list[str]]:
        return [["cp", *(f"{self.directory}/{n}" for n in names), str(into)]]

    def cleanup(self) -> list[str]:
        return ["rm", "-rf", self.directory]


def run_tag(model_sha256: str) -> str:
    """The folder tag of one run that pushes, runs and cleans up: the model's hash and a token of its own,
    so that two runs of one model on one device neither share nor delete each other's folder."""
    return f"{model_sha256[:12]}-{secrets.token_hex(4)}"


def transport_for(profile, address: str | None, tag: str, ssh_config: str | None = None) -> Transport:
    """The transport to `profile`'s device; `tag` names the bundle's folder there (the model's hash)."""
    method = profile.flash.method
    if method == "adb":
        return Adb(address, f"/data/local/tmp/edgeq-{tag}")
    if method == "ssh":
        if not address:
            raise BadInput(f"{profile.name} is reached over ssh: give its address with --host user@address")
        return Ssh(address, f"/tmp/edgeq-{tag}", ssh_config)
    if method == "host":
        return Local(None, str(Path(os.environ.get("TMPDIR", "/tmp")) / f"edgeq-{tag}"))
    raise BadInput(f"{profile.source or profile.name}: flash.method: {method} cannot reach a phone or Linux board; "
                   "use adb, ssh or host")


def run_commands(transport: Transport, commands: list[list[str]], *, kind: str = "flash",
                 dry_run: bool = False) -> None:
    for argv in commands:
        run_tool(argv, transport.provides, kind=kind, dry_run=dry_run)
