"""`edgeq flash`: put a built firmware on its device, one small runner class per tool (as Zephyr's
west flash runners do).

Each runner declares what it can do (`supports`), builds its command as a plain argument list in a
pure method (`commands`), and everything runs through edgeq.tools' one logged, dry-runnable call.
An option a tool cannot honour is refused; a missing program raises ToolFailed naming the package
that provides it. The profile's `flash.args` are the tool's arguments, with placeholders for the
built files ({image} {elf} {bin} {hex} {uf2}), the serial port ({port}) and a networked board ({host}).

`qemu` and `host` have nothing to write: the emulator loads the ELF when it starts and the host
program simply runs. Their runners build the command that starts them; edgeq.device.connect runs it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edgeq.boards import qemu_command
from edgeq.errors import BadInput
from edgeq.tools import run_tool

log = logging.getLogger("edgeq.flash")

OPTIONS = ("probe", "erase")  # flash options a runner may or may not honour
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Images:
    """The files a build produced; `image` is what a tool that takes "the firmware" gets."""

    elf: Path | None = None
    bin: Path | None = None
    hex: Path | None = None
    image: Path | None = None
    uf2: Path | None = None


@dataclass(frozen=True)
class FlashOptions:
    port: str | None = None  # the board's serial port: {port}, and where edgeq measures
    host: str | None = None  # user@address of a networked board: {host}
    probe: str | None = None  # serial number of the debug probe (or adb device) to use
    erase: bool = False  # erase the whole flash before writing


class Runner:
    name: ClassVar[str]
    program: ClassVar[str]
    provides: ClassVar[str]  # where `program` comes from, for the message when it is missing
    supports: ClassVar[frozenset[str]] = frozenset()

    def commands(self, args: tuple[str, ...] | list[str], images: Images, options: FlashOptions) -> list[list[str]]:
        """The command lines that flash `images`, in order. Pure: nothing is run or looked up."""
        self.refuse_unsupported(options)
        if not args:
            raise BadInput(f"flash.args is empty: {self.name} needs its arguments in the device profile "
                           "(see docs/profiles.md)")
        return self.compose(substitute(args, images, options), options)

    def refuse_unsupported(self, options: FlashOptions) -> None:
        asked = {"probe": options.probe is not None, "erase": options.erase}
        for option in OPTIONS:
            if asked[option] and option not in self.supports:
                raise BadInput(f"{self.name} cannot honour --{option}: {self.name} has no way to "
                               f"{'select a debug probe' if option == 'probe' else 'erase the whole flash'}")

    def compose(self, args: list[str], options: FlashOptions) -> list[list[str]]:
        return [[self.program, *args]]


def substitute(args, images: Images, options: FlashOptions) -> list[str]:
    """Fills the placeholders of flash.args; a value that is not there is an error naming it."""
    values = {"elf": images.elf, "bin": images.bin, "hex": images.hex, "image": images.image, "uf2": images.uf2,
              "port": options.port, "host": options.host}
    advice = {"port": "give the board's serial port with --port", "host": "give user@address with --host"}

    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            raise BadInput(f"flash.args: unknown placeholder {{{key}}}")
        if values[key] is None:
            raise BadInput(f"flash.args use {{{key}}}, but there is none: "
                           + advice.get(key, f"the build made no {key} file"))
        return str(values[key])

    return [_PLACEHOLDER.sub(fill, arg) for arg in args]


def _insert_after(args: list[str], anchor: str, extra: list[str]) -> list[str]:
    if anchor not in args:
        return [*extra, *args]
    at = args.index(anchor) + 1
    return [*args[:at], *extra, *args[at:]]


class PyocdRunner(Runner):
    name, program, provides = "pyocd", "pyocd", "the PyPI package pyocd (pip install pyocd)"
    supports = frozenset({"probe", "erase"})

    def compose(self, args, options):
        # pyocd's options follow its subcommand: pyocd flash -u ID --erase chip --target ... file
        extra = (["-u", options.probe] if options.probe else []) + (["--erase", "chip"] if options.erase else [])
        if extra and args and not args[0].startswith("-"):
            args = [args[0], *extra, *args[1:]]
        else:
            args = [*extra, *args]
        return [[self.program, *args]]


class OpenocdRunner(Runner):
    name, program, provides = "openocd", "openocd", "the Debian package openocd"
    supports = frozenset({"probe"})

    def compose(self, args, options):
        if options.probe:
            # After the interface config (-f) and before the first command (-c), which initialises.
            first_command = args.index("-c") if "-c" in args else len(args)
            args = [*args[:first_command], "-c", f"adapter serial {options.probe}", *args[first_command:]]
        return [[self.program, *args]]


class StFlashRunner(Runner):
    name, program, provides = "st-flash", "st-flash", "the Debian package stlink-tools"
    supports = frozenset({"probe", "erase"})

    def compose(self, args, options):
        select = ["--serial", options.probe] if options.probe else []
        erase = [[self.program, *select, "erase"]] if options.erase else []
        return [*erase, [self.program, *select, *args]]


class StM32CubeProgrammerRunner(Runner):
    """ST's STM32_Programmer_CLI. `{fsbl}` in flash.args asks for the bin behind the header the STM32N6
    boot ROM reads (an unsigned FSBL image): ST's STM32_SigningTool_CLI, from the same install, makes it
    first, next to the bin."""

    name, program, provides = "stm32cubeprogrammer", "STM32_Programmer_CLI", "ST's STM32CubeProgrammer (st.com)"
    supports = frozenset({"probe", "erase"})

    def commands(self, args, images, options):
        if not any("{fsbl}" in arg for arg in args):
            return super().commands(args, images, options)
        if images.bin is None:
            raise BadInput("flash.args use {fsbl}, but the build made no bin file to put the boot header on")
        fsbl = images.bin.with_name(f"{images.bin.stem}-fsbl.bin")
        # -align: the boot ROM wants the image at a 0x400 boundary behind the header, which
        # STM32CubeProgrammer 2.21's signing tool no longer pads to by itself
        sign = ["STM32_SigningTool_CLI", "-bin", str(images.bin), "-nk", "-of", "0x80000000", "-t", "fsbl",
                "-hv", "2.3", "-align", "-o", str(fsbl)]
        return [sign, *super().commands([arg.replace("{fsbl}", str(fsbl)) for arg in args], images, options)]

    def compose(self, args, options):
        # -c's parameters follow it as words: `-c port=SWD sn=ID`; -e all erases before -w writes.
        if options.probe:
            args = _insert_after(args, "port=SWD", [f"sn={options.probe}"]) if "port=SWD" in args \
                else [*args, "sn=" + options.probe]
        if options.erase:
            args = _insert_after(args, "-hardRst", ["-e", "all"]) if "-hardRst" in args else ["-e", "all", *args]
        return [[self.program, *args]]


class EsptoolRunner(Runner):
    name, program, provides = "esptool", "esptool.py", "the PyPI package esptool (pip install esptool)"
    supports = frozenset({"erase"})

    def compose(self, args, options):
        # esptool finds a lone board by itself; --port is a global option, before the command.
        if options.port and "--port" not in args and not any(a.startswith("--port=") for a in args):
            args = ["--port", options.port, *args]
        if options.erase:
            command = next((c for c in ("write_flash", "write-flash") if c in args), None)
            if command is None:
                raise BadInput("esptool can erase only while writing (write_flash --erase-all); "
                               "flash.args has no write_flash")
            args = _insert_after(args, command, ["--erase-all"])
        return [[self.program, *args]]


class PicotoolRunner(Runner):
    name, program, provides = "picotool", "picotool", "the Debian package picotool"


class NrfjprogRunner(Runner):
    name, program, provides = "nrfjprog", "nrfjprog", "Nordic's nRF Command Line Tools (nordicsemi.com)"
    supports = frozenset({"probe", "erase"})

    def compose(self, args, options):
        if options.erase:
            args = [a for a in args if a not in ("--sectorerase", "--sectoranduicrerase")] + ["--chiperase"]
        if options.probe:
            args = [*args, "--snr", options.probe]
        return [[self.program, *args]]


class BossacRunner(Runner):
    name, program, provides = "bossac", "bossac", "the Debian package bossa-cli"
    supports = frozenset({"erase"})

    def compose(self, args, options):
        if options.erase and not ({"-e", "--erase"} & set(args)):
            args = ["-e", *args]
        return [[self.program, *args]]


class QemuRunner(Runner):
    """Nothing to write: QEMU loads the ELF itself. `command` starts the emulated board."""

    name, program, provides = "qemu", "qemu-system-arm", "the Debian package qemu-system-arm"

    def commands(self, args, images, options):
        self.refuse_unsupported(options)
        return []

    def command(self, machine: str, elf: Path, serial_port: int, plugin: str | None = None) -> list[str]:
        return qemu_command(machine, str(elf), serial_port, plugin=plugin)


class HostRunner(Runner):
    """Nothing to write: the native program runs where edgeq runs. `command` starts it."""

    name, program, provides = "host", "", "the host C compiler"

    def commands(self, args, images, options):
        self.refuse_unsupported(options)
        return []

    def command(self, program: Path) -> list[str]:
        return [str(program)]


RUNNERS: dict[str, type[Runner]] = {cls.name: cls for cls in (
    QemuRunner, HostRunner, PyocdRunner, OpenocdRunner, StFlashRunner, StM32CubeProgrammerRunner, EsptoolRunner,
    PicotoolRunner, NrfjprogRunner, BossacRunner)}


def runner_for(profile) -> Runner:
    """The flasher of a microcontroller board (a phone's or Linux board's bundle is pushed by
    edgeq.device.remote instead)."""
    cls = RUNNERS.get(profile.flash.method)
    if cls is None:
        raise BadInput(f"{profile.source or profile.name}: flash.method: no runner for {profile.flash.method!r}; "
                       f"known: {', '.join(RUNNERS)}")
    return cls()


def flash(profile, images: Images, options: FlashOptions, *, dry_run: bool = False) -> list[list[str]]:
    """Writes the images to the device with its profile's tool; returns the command lines (run or not)."""
    runner = runner_for(profile)
    commands = runner.commands(profile.flash.args, images, options)
    for argv in commands:
        run_tool(argv, runner.provides, kind="flash", dry_run=dry_run)
    return commands
