"""The profile schema: one table (`_SCHEMA`) of keys with a check and a description of what each
expects, plus a short table of rules that tie keys together (`_RULES`). Every failure is a BadInput
naming the file, the dotted key and what was expected; docs/profiles.md documents the same schema for
people. Which runtimes exist, and the settings each reads, edgeq.runtimes checks."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeq.errors import BadInput
from edgeq.profiles.board import BOARD_FAMILIES, Board
from edgeq.profiles.profile import (
    ABIS,
    DELEGATES,
    FLASH_METHODS,
    FLASH_PLACEHOLDERS,
    KINDS,
    NUMERICS,
    OPTIMIZE_LEVELS,
    Emulator,
    Flash,
    LiteRT,
    Memory,
    Profile,
    Serial,
    Toolchain,
)
from edgeq.profiles.shown import shown_value as _shown_value

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

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
        "flash_wait_states": _Key(lambda v: _is_int(v) and 0 <= v <= 15,
                                  "a number of flash wait states at the profile's clock (0..15)", required=False),
    }),
    "numerics": _names(NUMERICS, non_empty=True),
    "runtimes": _names(non_empty=True),
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
    "emulator": _Section({"qemu_machine": _Key(_is_text, _TEXT.expected, required=False),
                          "qemu_user": _Key(_is_text, "a qemu-user program (qemu-aarch64)", required=False),
                          "cpu": _Key(_is_text, "a -cpu name of that program (cortex-a72)", required=False)},
                         required=False),
    "board": _Section({"family": _choice(*BOARD_FAMILIES), "chip": _TEXT,
                       "uart": _Key(_is_text, "the name of one of the chip's UARTs", required=False)},
                      required=False),
    "litert": _Section({"threads": _POSITIVE_INT, "delegate": _choice(*DELEGATES),
                        "custom_ops": _Key(_names().check, _names().expected, required=False),
                        "abi": _Key(lambda v: v in ABIS, f"one of {', '.join(ABIS)}", required=False),
                        "cpus": _Key(lambda v: isinstance(v, list) and all(_is_int(c) and c >= 0 for c in v),
                                     "a list of CPU numbers (taskset's)", required=False)}, required=False),
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
    ("toolchain", lambda d: "toolchain" in d,
     "a toolchain section, since kind {kind} builds firmware or edgeq's native LiteRT harness from C"),
    ("emulator", lambda d: d["flash"]["method"] != "qemu" or "qemu_machine" in d.get("emulator", {}),
     "an emulator section with qemu_machine, since flash.method is qemu"),
    ("emulator.cpu", lambda d: ("qemu_user" in d.get("emulator", {})) == ("cpu" in d.get("emulator", {})),
     "a cpu together with qemu_user (both or neither)"),
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
        emulator=section("emulator", Emulator), litert=section("litert", LiteRT, ("custom_ops", "cpus")),
        datasheet=data["datasheet"], notes=data.get("notes", ""), source=source, board=section("board", Board),
    )




def section_keys(section: str) -> tuple[str, ...]:
    """The keys of one section of the schema, as docs/profiles.md lists them."""
    return tuple(_SCHEMA.keys[section].keys)
