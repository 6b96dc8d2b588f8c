"""Estimated cycles on the emulated boards: edgeq's QEMU cycle plugin (cycle_plugin.c) built into
the cache, pointed at a firmware's measurement window, and what it counted turned into a cycle band
by edgeq.measure.cycle_model. docs/cycles.md.

Pure: `parse_nm_output` (the window's two functions), `CyclePlugin.argument` (QEMU's -plugin value),
`read_windows`, `estimated_cycles` (the summary's block). At the edge: `build_plugin` (the host C
compiler, once per source hash) and `window_addresses` (the toolchain's nm).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from edgeq.errors import BadInput, ToolFailed
from edgeq.measure.cycle_model import CORES, EDGES, estimate_cycles, instructions_of, timing_for
from edgeq.tools import run_tool

PLUGIN_SOURCES = ("cycle_plugin.c", "cycle_classes.h")
WINDOW_SYMBOLS = ("eq_measure_begin", "eq_measure_end")  # edgeq/runtime/eq_protocol.c
WINDOWS = "cycles.jsonl"  # the plugin's output: one line per measurement window, one per INFER
HOST_CC = "cc"


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEQ_CACHE") or Path.cwd() / "build" / ".cache") / "cycles"


def _source_dir() -> Path:
    return Path(__file__).parent


def plugin_hash() -> str:
    """What the built plugin depends on: its sources (a change builds it again)."""
    h = hashlib.sha256()
    for name in PLUGIN_SOURCES:
        h.update(name.encode() + b"\0" + (_source_dir() / name).read_bytes())
    return h.hexdigest()[:16]


def build_command(source: Path, library: Path) -> list[str]:
    return [HOST_CC, "-shared", "-fPIC", "-O2", "-std=c11", "-Wall", "-Wextra", "-o", str(library), str(source)]


def build_plugin(directory: Path | None = None) -> Path:
    """The plugin's shared library, built with the host compiler into the cache unless there already."""
    directory = directory or cache_dir()
    library = directory / f"cycle_plugin-{plugin_hash()}.so"
    if library.is_file():
        return library
    directory.mkdir(parents=True, exist_ok=True)
    partial = library.with_suffix(f".{os.getpid()}.tmp")
    run_tool(build_command(_source_dir() / "cycle_plugin.c", partial),
             "the Debian package gcc (the host C compiler builds edgeq's QEMU plugin)")
    os.replace(partial, library)  # another process may build it at the same time: whole files only
    return library


def parse_nm_output(text: str) -> dict[str, int]:
    """The addresses of the window's functions in what `nm` prints, without the Thumb bit."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in WINDOW_SYMBOLS:
            found[parts[2]] = int(parts[0], 16) & ~1
    missing = [s for s in WINDOW_SYMBOLS if s not in found]
    if missing:
        raise BadInput(f"the firmware has no {' or '.join(missing)}: it was built by an older edgeq, whose "
                       "eq_protocol.c does not mark the measurement window; generate and build it again")
    return found


def window_addresses(elf: Path, nm: str = "arm-none-eabi-nm") -> dict[str, int]:
    done = run_tool([nm, str(elf)], "the Debian package binutils-arm-none-eabi", kind="query")
    return parse_nm_output(done.stdout)


@dataclass(frozen=True)
class CyclePlugin:
    """The plugin as one QEMU run loads it: the library, the window, the board's memory, the output."""

    library: Path
    begin: int
    end: int
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    out: Path

    def argument(self) -> str:
        """The value of QEMU's -plugin option. QEMU splits it at commas, so no path may hold one."""
        for path in (self.library, self.out):
            if "," in str(path):
                raise BadInput(f"{path}: QEMU cannot pass a path with a comma to a plugin; use another folder")
        values = {"begin": self.begin, "end": self.end, "flash_origin": self.flash_origin,
                  "flash_bytes": self.flash_bytes, "ram_origin": self.ram_origin, "ram_bytes": self.ram_bytes}
        return ",".join([f"file={self.library}", *(f"{k}=0x{v:x}" for k, v in values.items()), f"out={self.out}"])


def refuse_unless_emulated(profile) -> None:
    """--cycles counts what QEMU runs: any other device is refused, not silently measured without it."""
    if profile.flash.method != "qemu":
        raise BadInput(f"--cycles estimates cycles from the instructions QEMU runs; {profile.name} is not an "
                       "emulated board (a real board's counter already counts cycles)")


def can_estimate(profile) -> bool:
    """Whether a run on `profile` can carry an estimated cycle band: an emulated board whose core
    edgeq's timing model prices."""
    return profile.flash.method == "qemu" and profile.core.lower() in CORES


def estimates_cycles(profile, asked: bool | None) -> bool:
    """Whether a run estimates cycles: asked for (refused where it cannot be), declined, or by default
    wherever it can be."""
    if asked:
        refuse_unless_emulated(profile)
        timing_for(profile.core)
    return can_estimate(profile) if asked is None else asked


def plugin_for(board, elf: Path, out: Path, nm: str = "arm-none-eabi-nm") -> CyclePlugin:
    """The plugin for `elf` on an emulated board (edgeq.boards.BoardParams), built if need be."""
    if board.flash_origin is None or board.ram_origin is None:
        raise BadInput(f"{board.board}: cycles are estimated on the emulated Cortex-M boards only")
    addresses = window_addresses(elf, nm)
    return CyclePlugin(build_plugin(), addresses["eq_measure_begin"], addresses["eq_measure_end"],
                       board.flash_origin, board.flash_bytes, board.ram_origin, board.ram_bytes, Path(out))


def read_windows(path: Path) -> list[dict]:
    """What the plugin wrote: one record per measurement window, in the order they ran."""
    if not Path(path).is_file():
        raise ToolFailed(f"{path}: the cycle plugin wrote nothing (see qemu.log beside it)")
    windows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        try:
            windows.append(json.loads(line))
        except json.JSONDecodeError:
            raise ToolFailed(f"{path}: line {number} is not a JSON record: {line[:80]!r}") from None
    return windows


def estimated_cycles(windows: list[dict], core: str, clock_hz: int, flash_wait_states: int = 0) -> dict:
    """The `estimated_cycles` block of the measure summary: each edge of the band the median over the
    samples' windows, beside the instructions the plugin counted (which the SysTick count measures)."""
    if not windows:
        raise ToolFailed("the cycle plugin counted no measurement window: did the firmware run an inference?")
    bands = [estimate_cycles(w, core, clock_hz, flash_wait_states) for w in windows]
    median = {e: statistics.median(getattr(b, e) for b in bands) for e in EDGES}
    first = bands[0]
    classes = {k: statistics.median(w["classes"].get(k, 0) for w in windows) for k in windows[0]["classes"]}
    return {
        **{f"{e}_cycles": round(median[e]) for e in EDGES},
        **{f"{e}_ms": round(median[e] / clock_hz * 1e3, 6) for e in EDGES},
        "core": first.core, "clock_hz": clock_hz, "flash_wait_states": flash_wait_states,
        "windows": len(windows), "instructions_median": statistics.median(instructions_of(w) for w in windows),
        "classes_median": classes,
        "data_median": _data_median(windows),
        "flash_line_reads_median": statistics.median(w.get("flash_line_reads", 0) for w in windows),
        "source": first.source, "notes": list(first.notes),
    }


def _data_median(windows: list[dict]) -> dict:
    regions = windows[0].get("data", {})
    return {region: {k: statistics.median(w["data"][region][k] for w in windows) for k in figures}
            for region, figures in regions.items()}


def add_estimated_cycles(summary: dict, profile, windows_path: Path) -> None:
    """The measure summary with the plugin's windows priced for the profile's core, at its clock and
    flash wait states; labelled estimated in `sources`, beside the instructions SysTick measured."""
    block = estimated_cycles(read_windows(windows_path), profile.core, profile.clock_hz,
                             profile.memory.flash_wait_states)
    summary["estimated_cycles"] = block
    summary.setdefault("sources", {})["estimated_cycles"] = {"kind": "estimated", "from": block["source"]}
