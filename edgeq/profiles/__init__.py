"""Device profiles: what a target board is (core, memory, numerics) and how edgeq builds, flashes and
talks to it, read from `device_profiles/<name>.yaml`.

Validation is one table (`_SCHEMA`) of keys with a check and a description of what each expects, plus a
short table of rules that tie keys together (`_RULES`). Every failure is a BadInput naming the file, the
dotted key and what was expected; docs/profiles.md documents the same schema for people.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgeq.errors import BadInput
from edgeq.profiles.board import BOARD_FAMILIES, Board
from edgeq.profiles.shown import shown_value as _shown_value
from edgeq.profiles.text import format_profile, format_profile_table
from edgeq.resources import PROFILE_DIR

DEFAULT_PROFILE = "qemu-mps2-an386"

KINDS = ("mcu", "linux", "phone", "host")
NUMERICS = ("int8", "int16x8", "int4", "fp16", "fp32")
RUNTIMES = ("tflm", "edgeq-c", "litert")
FLASH_METHODS = ("qemu", "host", "pyocd", "openocd", "st-flash", "esptool", "picotool", "nrfjprog",
                 "bossac", "adb", "scp")
OPTIMIZE_LEVELS = ("-Os", "-O2", "-O3")
DELEGATES = ("xnnpack", "gpu", "nnapi")
# What the flash stage substitutes into flash.args: the built files, the serial port and, for boards
# reached over the network, user@address.
FLASH_PLACEHOLDERS = ("image", "elf", "bin", "hex", "uf2", "port", "host")

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Memory:
    flash_bytes: int
    ram_bytes: int
    ram_reserved_bytes: int
    flash_origin: int | None = None
    ram_origin: int | None = None


@dataclass(frozen=True)
class Toolchain:
    compiler: str
    cflags: tuple[str, ...]
    optimize: str

    @property
    def prefix(self) -> str:
        """`arm-none-eabi-` for arm-none-eabi-gcc, empty for gcc: where size and objcopy are found."""
        return self.compiler[:-len("gcc")] if self.compiler.endswith("gcc") else ""

    def tool(self, name: str) -> str:
        """The binutils program `name` ("size", "objcopy") that goes with the compiler."""
        return f"{self.prefix}{name}"


@dataclass(frozen=True)
class Flash:
    method: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Serial:
    baud: int


@dataclass(frozen=True)
class Emulator:
    qemu_machine: str


@dataclass(frozen=True)
class LiteRT:
    threads: int
    delegate: str


@dataclass(frozen=True)
class Profile:
    name: str
    display_name: str
    kind: str
    core: str
    cores: int
    clock_mhz: float
    fpu: str
    simd: tuple[str, ...]
    memory: Memory
    numerics: tuple[str, ...]
    runtimes: tuple[str, ...]
    toolchain: Toolchain | None
    flash: Flash
    serial: Serial
    emulator: Emulator | None
    litert: LiteRT | None
    datasheet: str
    notes: str = ""
    source: str = ""  # the file it came from, for messages further down the pipeline
    board: Board | None = None  # the chip and UART of a microcontroller board edgeq has board support for

    @property
    def ram_for_model_bytes(self) -> int:
        return self.memory.ram_bytes - self.memory.ram_reserved_bytes

    @property
    def is_microcontroller(self) -> bool:
        return self.kind == "mcu"

    @property
    def is_emulated(self) -> bool:
        return self.emulator is not None and self.flash.method == "qemu"

    @property
    def has_fpu(self) -> bool:
        return self.fpu != "none"

    @property
    def has_dsp(self) -> bool:
        """The core has Arm's DSP extension (SMLAD and kin): edgeq-c generates its DSP kernels for it."""
        return "dsp" in self.simd

    @property
    def default_runtime(self) -> str:
        return self.runtimes[0]

    @property
    def clock_hz(self) -> int:
        return round(self.clock_mhz * 1_000_000)

    def supports(self, numeric: str) -> bool:
        """Whether the device runs `numeric` well; an unknown name is an error, not a quiet False."""
        if numeric not in NUMERICS:
            raise BadInput(f"unknown numeric {numeric!r}; expected one of {', '.join(NUMERICS)}")
        return numeric in self.numerics


# ---- the schema -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Key:
    check: Callable[[Any], bool]
    expected: str
    required: bool = True


@dataclass(frozen=True)
class _Section:
    keys: dict[str, _Key | _Section]
    required: bool = True

    @property
    def expected(self) -> str:
        return f"a mapping with keys {', '.join(self.keys)}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _choice(*choices: str) -> _Key:
    return _Key(lambda v: v in choices, f"one of {', '.join(choices)}")


def _names(choices: tuple[str, ...] | None = None, *, non_empty: bool = False) -> _Key:
    def check(value: Any) -> bool:
        return (isinstance(value, list)
                and all(_is_text(v) and (choices is None or v in choices) for v in value)
                and len(set(value)) == len(value) and (len(value) > 0 or not non_empty))
    what = f"names from {', '.join(choices)}" if choices else "names"
    return _Key(check, f"a {'non-empty ' if non_empty else ''}list of {what}, without repeats")


_TEXT = _Key(_is_text, "a non-empty string")
_POSITIVE_INT = _Key(lambda v: _is_int(v) and v > 0, "a positive integer")
_ADDRESS = _Key(lambda v: _is_int(v) and 0 <= v < 2**64,
                "an address (a non-negative integer such as 0x20000000)", required=False)
_STRINGS = _Key(lambda v: isinstance(v, list) and all(isinstance(s, str) and s for s in v),
                "a list of non-empty strings")

_SCHEMA = _Section({
    "name": _Key(lambda v: isinstance(v, str) and bool(_NAME.match(v)),
                 "a name of lowercase letters, digits and '-'"),
    "display_name": _TEXT,
    "kind": _choice(*KINDS),
    "core": _TEXT,
    "cores": _POSITIVE_INT,
    "clock_mhz": _Key(lambda v: _is_number(v) and v > 0, "a positive number"),
    "fpu": _Key(_is_text, "the FPU name (e.g. fpv4-sp-d16) or none"),
    "simd": _names(),
    "memory": _Section({
        "flash_bytes": _POSITIVE_INT,
        "ram_bytes": _POSITIVE_INT,
        "ram_reserved_bytes": _Key(lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
        "flash_origin": _ADDRESS,
        "ram_origin": _ADDRESS,
    }),
    "numerics": _names(NUMERICS, non_empty=True),
    "runtimes": _names(RUNTIMES, non_empty=True),
    "toolchain": _Section({
        "compiler": _TEXT,
        "cflags": _STRINGS,
        "optimize": _choice(*OPTIMIZE_LEVELS),
    }, required=False),
    "flash": _Section({
        "method": _choice(*FLASH_METHODS),
        "args": _Key(_STRINGS.check, _STRINGS.expected, required=False),
    }),
    "serial": _Section({"baud": _POSITIVE_INT}),
    "emulator": _Section({"qemu_machine": _TEXT}, required=False),
    "board": _Section({"family": _choice(*BOARD_FAMILIES), "chip": _TEXT,
                       "uart": _Key(_is_text, "the name of one of the chip's UARTs", required=False)},
                      required=False),
    "litert": _Section({"threads": _POSITIVE_INT, "delegate": _choice(*DELEGATES)}, required=False),
    "datasheet": _TEXT,
    "notes": _Key(lambda v: isinstance(v, str), "a string", required=False),
})

_MISSING = object()

def _at(data: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _placeholders(args: list[str]) -> set[str]:
    return {m for a in args for m in _PLACEHOLDER.findall(a)}


# Rules across keys, checked once every key is well formed: (dotted key, holds, what was expected, as
# a str.format template over the profile's keys). A rule whose key is absent reports it as missing.
_RULES: tuple[tuple[str, Callable[[dict], bool], str], ...] = (
    ("memory.ram_reserved_bytes", lambda d: d["memory"]["ram_reserved_bytes"] < d["memory"]["ram_bytes"],
     "less than memory.ram_bytes ({memory[ram_bytes]})"),
    ("memory.flash_origin", lambda d: d["kind"] != "mcu" or "flash_origin" in d["memory"],
     "the flash address the linker script places code at (required for kind mcu)"),
    ("memory.ram_origin", lambda d: d["kind"] != "mcu" or "ram_origin" in d["memory"],
     "the RAM address the linker script places data at (required for kind mcu)"),
    ("toolchain", lambda d: d["kind"] not in ("mcu", "host") or "toolchain" in d,
     "a toolchain section, since kind {kind} builds firmware from C"),
    ("litert", lambda d: "litert" not in d["runtimes"] or "litert" in d,
     "a litert section (threads, delegate), since runtimes include litert"),
    ("litert", lambda d: "litert" not in d or "litert" in d["runtimes"],
     "no litert section unless runtimes include litert"),
    ("emulator", lambda d: d["flash"]["method"] != "qemu" or "emulator" in d,
     "an emulator section with qemu_machine, since flash.method is qemu"),
    ("flash.args", lambda d: _placeholders(d["flash"].get("args", [])) <= set(FLASH_PLACEHOLDERS),
     "arguments whose placeholders are among " + ", ".join("{{" + p + "}}" for p in FLASH_PLACEHOLDERS)),
)


def _check_section(data: Any, section: _Section, prefix: str, source: str) -> None:
    if not isinstance(data, dict):
        raise BadInput(f"{source}: {prefix or 'profile'}: expected {section.expected}, "
                       f"got {_shown_value(data)}")
    for key in data:
        if key not in section.keys:
            path = f"{prefix}.{key}" if prefix else str(key)
            close = difflib.get_close_matches(str(key), list(section.keys), n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise BadInput(f"{source}: {path}: unknown key{hint}; allowed keys: {', '.join(section.keys)}")
    for key, rule in section.keys.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in data:
            if rule.required:
                raise BadInput(f"{source}: {path}: missing; expected {rule.expected}")
        elif isinstance(rule, _Section):
            _check_section(data[key], rule, path, source)
        elif not rule.check(data[key]):
            raise BadInput(f"{source}: {path}: expected {rule.expected}, got {_shown_value(data[key])}")


def parse_profile(data: Any, source: str) -> Profile:
    """Validate one profile's parsed YAML; `source` is the file it came from (its stem is the name)."""
    _check_section(data, _SCHEMA, "", source)
    stem = Path(source).stem
    if data["name"] != stem:
        raise BadInput(f"{source}: name: expected the file name without .yaml ({stem!r}), "
                       f"got {data['name']!r}")
    for path, holds, expected in _RULES:
        if not holds(data):
            got = _at(data, path)
            if got is _MISSING:
                raise BadInput(f"{source}: {path}: missing; expected {expected.format(**data)}")
            raise BadInput(f"{source}: {path}: expected {expected.format(**data)}, got {_shown_value(got)}")
    return _build(data, source)


def _build(data: dict, source: str) -> Profile:
    def section(key: str, cls: type, tuples: tuple[str, ...] = ()) -> Any:
        if key not in data:
            return None
        return cls(**{k: tuple(v) if k in tuples else v for k, v in data[key].items()})

    return Profile(
        name=data["name"], display_name=data["display_name"], kind=data["kind"], core=data["core"],
        cores=data["cores"], clock_mhz=data["clock_mhz"], fpu=data["fpu"], simd=tuple(data["simd"]),
        memory=section("memory", Memory), numerics=tuple(data["numerics"]),
        runtimes=tuple(data["runtimes"]), toolchain=section("toolchain", Toolchain, ("cflags",)),
        flash=section("flash", Flash, ("args",)), serial=section("serial", Serial),
        emulator=section("emulator", Emulator), litert=section("litert", LiteRT),
        datasheet=data["datasheet"], notes=data.get("notes", ""), source=source, board=section("board", Board),
    )


# ---- files ------------------------------------------------------------------------------------------

def _shown(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_profile_file(path: str | Path) -> Profile:
    path = Path(path)
    source = _shown(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{source}: cannot read device profile: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{source}: a device profile is UTF-8 text, but byte {exc.start} is "
                       f"0x{exc.object[exc.start]:02x}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise BadInput(f"{source}: {where}not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise BadInput(f"{source}: not valid YAML: nested too deeply") from None
    except Exception as exc:  # PyYAML's constructors raise plain errors: `2024-02-30`, `!!int x`
        raise BadInput(f"{source}: not valid YAML: {type(exc).__name__}: {exc}") from None
    return parse_profile(data, source)


def profile_dirs(directory: str | Path | None = None) -> list[Path]:
    """Where profiles are looked for: the folders named in $EDGEQ_PROFILE_PATH (separated by the OS's
    path separator; a user's own boards, first so they can stand in for a shipped one), then
    `directory` (default: the profiles that ship with edgeq)."""
    user = [Path(p) for p in os.environ.get("EDGEQ_PROFILE_PATH", "").split(os.pathsep) if p]
    for folder in user:
        if not folder.is_dir():
            raise BadInput(f"EDGEQ_PROFILE_PATH: {folder} is not a folder")
    return [*user, Path(directory) if directory is not None else PROFILE_DIR]


def load_profiles(directory: str | Path | None = None) -> dict[str, Profile]:
    """Every profile, by name, in name order; a user's profile wins over a shipped one of the same
    name. No profile at all is an error (an installation without its data files)."""
    found: dict[str, Profile] = {}
    for folder in reversed(profile_dirs(directory)):
        for path in sorted(folder.glob("*.yaml")):
            profile = load_profile_file(path)
            found[profile.name] = profile
    if not found:
        raise BadInput(f"no device profiles found in {', '.join(map(str, profile_dirs(directory)))}: "
                       "edgeq's installation lacks its data files (reinstall it)")
    return dict(sorted(found.items()))


def get_profile(name: str, directory: str | Path | None = None) -> Profile:
    """The profile called `name` (in $EDGEQ_PROFILE_PATH, then the shipped ones), or the profile in
    the .yaml file `name` points at."""
    folders = profile_dirs(directory)
    if name.endswith((".yaml", ".yml")) or "/" in name or "\\" in name:
        if Path(name).exists():
            return load_profile_file(name)
        shipped = [f / name for f in folders if (f / name).is_file()]
        return load_profile_file(shipped[0] if shipped else name)
    for folder in folders:
        path = folder / f"{name}.yaml"
        if path.is_file():
            return load_profile_file(path)
    known = sorted({p.stem for f in folders for p in f.glob("*.yaml")})
    if not known:
        raise BadInput(f"no device profiles found in {', '.join(map(str, folders))}: edgeq's installation lacks "
                       "its data files (reinstall it)")
    close = [k for k in known if name and name in k]
    close += [k for k in difflib.get_close_matches(name, known, n=5, cutoff=0.6) if k not in close]
    hint = f" (close matches: {', '.join(close[:5])})" if close else ""
    raise BadInput(f"unknown device profile {name!r}{hint}; `edgeq profiles` lists them all")
