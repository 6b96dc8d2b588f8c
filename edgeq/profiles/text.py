"""The profiles as `edgeq profiles` shows them: a table of all, or one in full."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from edgeq.units import format_bytes

if TYPE_CHECKING:
    from edgeq.profiles.profile import Profile


def _mhz(profile: Profile) -> str:
    return f"{profile.clock_mhz:g} MHz"


def format_profile_table(profiles: Iterable[Profile] | Mapping[str, Profile]) -> str:
    """One row per profile: what `edgeq profiles` prints."""
    items = list(profiles.values() if isinstance(profiles, Mapping) else profiles)
    header = ("NAME", "CORE", "CLOCK", "FLASH", "RAM", "FOR MODEL", "NUMERICS", "RUNTIMES")
    rows = [header] + [
        (p.name, f"{p.core} x{p.cores}" if p.cores > 1 else p.core, _mhz(p),
         format_bytes(p.memory.flash_bytes), format_bytes(p.memory.ram_bytes),
         format_bytes(p.ram_for_model_bytes), ",".join(p.numerics), ",".join(p.runtimes))
        for p in items
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def format_profile(profile: Profile) -> str:
    """Everything about one profile, one fact a line: what `edgeq profiles show NAME` prints."""
    p, m = profile, profile.memory

    def at(origin: int | None) -> str:
        return f" at 0x{origin:08X}" if origin is not None else ""

    lines = [
        ("kind", p.kind + (f" (emulated: qemu -M {p.emulator.qemu_machine})" if p.emulator else "")),
        ("core", f"{p.core}{f' x{p.cores}' if p.cores > 1 else ''} at {_mhz(p)}"),
        ("fpu", p.fpu),
        ("simd", ", ".join(p.simd) or "none"),
        ("flash", format_bytes(m.flash_bytes) + at(m.flash_origin)),
        ("ram", format_bytes(m.ram_bytes) + at(m.ram_origin)),
        ("reserved", f"{format_bytes(m.ram_reserved_bytes)} kept by the application, stack, heap and OS"),
        ("for model", f"{format_bytes(p.ram_for_model_bytes)} ({p.ram_for_model_bytes} bytes)"),
        ("numerics", ", ".join(p.numerics)),
        ("runtimes", ", ".join(p.runtimes) + f" (default {p.default_runtime})"),
    ]
    if p.toolchain:
        lines.append(("toolchain", " ".join((p.toolchain.compiler, p.toolchain.optimize)
                                            + p.toolchain.cflags)))
    lines.append(("flash with", " ".join((p.flash.method,) + p.flash.args)))
    lines.append(("serial", f"{p.serial.baud} baud"))
    if p.litert:
        custom = f", custom ops {', '.join(p.litert.custom_ops)}" if p.litert.custom_ops else ""
        lines.append(("litert", f"{p.litert.threads} threads, {p.litert.delegate} delegate{custom}"))
    lines.append(("datasheet", p.datasheet))
    if p.notes:
        lines.append(("notes", p.notes))
    if p.source:
        lines.append(("file", p.source))
    width = max(len(label) for label, _ in lines)
    return "\n".join([f"{p.name}: {p.display_name}"] + [f"  {k.ljust(width)}  {v}" for k, v in lines])
