"""Stage 1, device profiles: what a target board is (core, memory, numerics) and how edgeq builds,
flashes and talks to it, read from `device_profiles/<name>.yaml` into a validated, frozen `Profile`
(`profile.py`) against the schema in `schema.py` (docs/profiles.md).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import yaml

from edgeq.errors import BadInput
from edgeq.profiles.board import BOARD_FAMILIES, Board
from edgeq.profiles.profile import (
    DEFAULT_PROFILE,
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
from edgeq.profiles.schema import parse_profile, section_keys
from edgeq.profiles.shown import shown_value
from edgeq.profiles.text import format_profile, format_profile_table
from edgeq.resources import PROFILE_DIR

__all__ = ["BOARD_FAMILIES", "DEFAULT_PROFILE", "DELEGATES", "FLASH_METHODS", "FLASH_PLACEHOLDERS", "KINDS",
           "NUMERICS", "OPTIMIZE_LEVELS", "Board", "Emulator", "Flash", "LiteRT", "Memory", "Profile", "Serial",
           "Toolchain", "format_profile", "format_profile_table", "get_profile", "load_profile_file",
           "load_profiles", "parse_profile", "profile_dirs", "section_keys", "shown_value"]


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
