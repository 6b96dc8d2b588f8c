"""Cycles estimated from instruction classes: what a Cortex-M core would spend on the instructions
QEMU ran, priced by the core's Technical Reference Manual. Pure: class counts in (as edgeq's QEMU
cycle plugin writes them, edgeq/device/cycle_plugin.c), a `CycleBand` out.

QEMU counts instructions, not cycles (one an instruction under -icount). A core spends more: a load
takes two cycles unless it pipelines with the load before it, LDM/STM take one plus one a register,
a taken branch refills the pipeline (1 + P, P from 1 to 3), and code or data in flash waits for it.
Each price is a band: `low` the best case the TRM allows, `estimate` the typical one, `high` the
worst; the flash wait states are hidden by a cache and prefetcher at the low edge and paid in full at
the high one. docs/cycles.md gives the sources and the validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeq.errors import BadInput

EDGES = ("low", "estimate", "high")
# One flash line: what a wait state delivers, the 64-bit data word of STM32 flash (RM0432 3.3).
FLASH_LINE_BYTES = 8
# The classes edgeq's plugin counts, each instruction in exactly one (cycle_classes.h).
CLASSES = ("alu", "mul", "mla", "mull", "dsp", "div", "ldr", "str", "ldrd", "strd", "ldm", "stm", "branch", "it",
           "fpu", "other")

Price = tuple[float, float, float]  # cycles at the low edge, the estimate, the high edge


def _same(cycles: float) -> Price:
    return (cycles, cycles, cycles)


@dataclass(frozen=True)
class CoreTiming:
    """One core's prices, each (low, estimate, high) cycles. Loads and stores, LDM/STM, branches and
    loads into the PC are priced in parts: the base and what each register or a refill adds."""

    core: str
    source: str  # the TRM and section the prices come from
    prices: dict[str, Price]  # an instruction of each class in CLASSES
    ldr_pipelined: Price  # a single load right after a single load it does not depend on
    per_register: Price  # what each register adds to an LDM/STM (the base is `ldm`, `stm`)
    refill: Price  # P, what a taken branch adds to its 1 cycle
    pc_load_refill: Price  # what a load into the PC (POP {pc}, LDR pc, TBB) adds to the load
    # Cores that issue two instructions a cycle are approximated: the single-issue price, times this.
    issue_factor: Price = (1.0, 1.0, 1.0)
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        missing = [c for c in CLASSES if c not in self.prices]
        if missing:
            raise BadInput(f"timing model of {self.core}: no price for {', '.join(missing)}")


# Cortex-M0+ TRM (ARM DDI 0484C) 3.3, Table 3-1: two-stage pipeline; loads and stores 2, LDM/STM and
# PUSH/POP 1 + N, POP {pc} 3 + N, a taken branch 2 (BL 3), the multiplier 1 cycle or 32 (iterative).
CORTEX_M0PLUS = CoreTiming(
    "cortex-m0plus", "Cortex-M0+ TRM (ARM DDI 0484C) 3.3, Table 3-1",
    prices={"alu": _same(1), "mul": (1, 1, 32), "mla": (2, 2, 33), "mull": (4, 4, 96), "dsp": _same(1),
            "div": _same(1), "ldr": _same(2), "str": _same(2), "ldrd": _same(4), "strd": _same(4), "ldm": _same(1),
            "stm": _same(1), "branch": _same(1), "it": _same(1), "fpu": _same(1), "other": _same(1)},
    ldr_pipelined=_same(2), per_register=_same(1), refill=(1, 1, 2), pc_load_refill=_same(2),
    notes=("ARMv6-M has no MLA, long multiply, DSP, divide, LDRD or IT; their prices only keep the sum defined",))

# Cortex-M0 TRM (ARM DDI 0432C) 3.3, Table 3-1: three stages, so a taken branch costs 3 and POP {pc} 4 + N.
CORTEX_M0 = CoreTiming(
    "cortex-m0", "Cortex-M0 TRM (ARM DDI 0432C) 3.3, Table 3-1",
    prices=CORTEX_M0PLUS.prices, ldr_pipelined=_same(2), per_register=_same(1), refill=(2, 2, 3),
    pc_load_refill=_same(3), notes=CORTEX_M0PLUS.notes)

# Cortex-M3 TRM (ARM DDI 0337I) 18.2, Table 18-1, and Cortex-M4 TRM (ARM DDI 0439B) 3.3.1, Table 3-1
# and 3.3.2 (load/store timings): LDR 2, but 1 when it follows an LDR whose result is not its base;
# STR 1 (the write buffer; 2 when stalled); LDRD/STRD and LDM/STM 1 + N; a taken branch 1 + P, P 1..3;
# a load into the PC at least 2 + 3; SDIV/UDIV 2..12; an IT folds onto the instruction before it.
_M3_M4_COMMON = {"alu": _same(1), "mul": _same(1), "ldr": _same(2), "str": (1, 1, 2), "ldrd": _same(3),
                 "strd": _same(3), "ldm": _same(1), "stm": _same(1), "branch": _same(1), "it": (0, 0.5, 1),
                 "div": (2, 7, 12), "other": (1, 1, 2)}

CORTEX_M3 = CoreTiming(
    "cortex-m3", "Cortex-M3 TRM (ARM DDI 0337I) 18.2, Table 18-1",
    prices={**_M3_M4_COMMON, "mla": _same(2), "mull": (3, 4, 7), "dsp": _same(1), "fpu": _same(1)},
    ldr_pipelined=_same(1), per_register=_same(1), refill=(1, 2, 3), pc_load_refill=(1, 2, 3),
    notes=("the M3 has no DSP instructions and no FPU; their prices only keep the sum defined",))

CORTEX_M4 = CoreTiming(
    "cortex-m4", "Cortex-M4 TRM (ARM DDI 0439B) 3.3.1, Table 3-1, and 3.3.2",
    prices={**_M3_M4_COMMON, "mla": _same(1), "mull": _same(1), "dsp": _same(1), "fpu": (1, 1, 3)},
    ldr_pipelined=_same(1), per_register=_same(1), refill=(1, 2, 3), pc_load_refill=(1, 2, 3))

# The Cortex-M33 TRM (Arm 100230) publishes no instruction cycle table; its pipeline is the M4's kind
# (three stages, in order, single issue, the same DSP extension), so the M4's prices stand in.
CORTEX_M33 = CoreTiming(
    "cortex-m33", "Cortex-M4 TRM (ARM DDI 0439B) 3.3, standing in: the Cortex-M33 TRM publishes no cycle table",
    prices={**CORTEX_M4.prices, "div": (2, 6, 11)}, ldr_pipelined=_same(1), per_register=_same(1),
    refill=(1, 2, 3), pc_load_refill=(1, 2, 3),
    notes=("priced as a Cortex-M4: the M33's TRM gives no cycle table",))

# The Cortex-M7 issues two instructions a cycle where its pairing rules allow, predicts branches and
# loads in one cycle from its TCMs; no table of this is published. Approximated: the M4's single-issue
# price times 0.5 (every pair issued together), 0.68 (the M4's 3.42 CoreMark/MHz over the M7's 5.01,
# Arm's published figures) and 1.0 (nothing paired).
CORTEX_M7 = CoreTiming(
    "cortex-m7", "approximation: Cortex-M4 TRM (ARM DDI 0439B) 3.3 prices times a dual-issue factor",
    prices=CORTEX_M4.prices, ldr_pipelined=_same(1), per_register=_same(1), refill=(1, 2, 3),
    pc_load_refill=(1, 2, 3), issue_factor=(0.5, 0.68, 1.0),
    notes=("dual issue approximated by a factor (0.5, 0.68, 1.0), not modelled instruction by instruction",))

# The Cortex-M55 runs MVE instructions beat-wise: a 128-bit instruction is four beats, which the M55
# executes two a cycle (dual-beat), and two vector instructions of different kinds (a load and a
# multiply, say) overlap by half, so a well-interleaved stream retires one a cycle and an unoverlapped
# one takes two (Armv8.1-M ARM, B5.2 "beat-wise execution"; Arm's Cortex-M55 product brief: dual-beat).
# Every MVE instruction falls in the plugin's `fpu` class (the coprocessor and vector encodings), so it
# is priced 1 / 1.5 / 2. Low-overhead loops' WLS, DLS and LE fall in `other`: LE costs nothing once the
# loop is in the branch cache, hence 0 / 0.5 / 2. Scalar code is priced as the M4's, as for the M33: no
# cycle table is published for the M55's pipeline. An approximation, and the band is wide on purpose.
CORTEX_M55 = CoreTiming(
    "cortex-m55", "approximation: MVE instructions 1..2 cycles (dual-beat, overlapped), scalar as the "
    "Cortex-M4 TRM (ARM DDI 0439B) 3.3",
    prices={**CORTEX_M4.prices, "fpu": (1, 1.5, 2), "other": (0, 0.5, 2)}, ldr_pipelined=_same(1),
    per_register=_same(1), refill=(1, 2, 3), pc_load_refill=(1, 2, 3),
    notes=("MVE instructions priced 1 (overlapped) to 2 (alone) cycles: dual-beat, not modelled instruction by "
           "instruction", "scalar instructions priced as a Cortex-M4's: the M55 publishes no cycle table"))

CORES: dict[str, CoreTiming] = {t.core: t for t in (CORTEX_M0, CORTEX_M0PLUS, CORTEX_M3, CORTEX_M4, CORTEX_M33,
                                                    CORTEX_M7, CORTEX_M55)}


def timing_for(core: str) -> CoreTiming:
    timing = CORES.get(core.lower())
    if timing is None:
        raise BadInput(f"edgeq's cycle model has no timing for {core!r}; it knows {', '.join(CORES)}")
    return timing


@dataclass(frozen=True)
class CycleBand:
    core: str
    low: float
    estimate: float
    high: float
    clock_hz: int
    flash_wait_states: int
    source: str
    notes: tuple[str, ...] = ()

    def ms(self, edge: str) -> float:
        return getattr(self, edge) / self.clock_hz * 1e3

    def to_dict(self) -> dict:
        return {"core": self.core, **{f"{e}_cycles": round(getattr(self, e)) for e in EDGES},
                **{f"{e}_ms": round(self.ms(e), 6) for e in EDGES}, "clock_hz": self.clock_hz,
                "flash_wait_states": self.flash_wait_states, "model": self.source,
                "notes": list(self.notes)}


def _get(counts: dict, key: str) -> int:
    value = counts.get(key, 0)
    if not isinstance(value, int) or value < 0:
        raise BadInput(f"instruction class count {key!r} must be a non-negative integer, got {value!r}")
    return value


def core_cycles(timing: CoreTiming, classes: dict, edge: int) -> float:
    """The core's cycles for `classes` (the plugin's counts) at edge 0 (low), 1 (estimate) or 2 (high),
    with memory that never waits."""
    total = sum(_get(classes, c) * timing.prices[c][edge] for c in CLASSES if c not in ("ldr", "ldm", "stm"))
    loads, pipelined = _get(classes, "ldr"), _get(classes, "ldr_pipelined")
    if pipelined > loads:
        raise BadInput(f"{pipelined} pipelined loads but only {loads} loads")
    total += (loads - pipelined) * timing.prices["ldr"][edge] + pipelined * timing.ldr_pipelined[edge]
    total += _get(classes, "ldm") * timing.prices["ldm"][edge] + _get(classes, "stm") * timing.prices["stm"][edge]
    total += (_get(classes, "ldm_registers") + _get(classes, "stm_registers")) * timing.per_register[edge]
    total += _get(classes, "branch_taken") * timing.refill[edge]
    total += _get(classes, "pc_load") * timing.pc_load_refill[edge]
    return total * timing.issue_factor[edge]


def flash_wait_cycles(window: dict, wait_states: int, edge: int) -> float:
    """Cycles spent waiting for flash: none at the low edge (a cache and prefetcher hide them all: an
    ART accelerator on sequential code and loops); at the estimate, instruction fetches stay hidden
    but data read from flash waits once each time the reads move to another 64-bit line (the plugin's
    `flash_line_reads`: a data cache's hits are not seen); at the high edge, every fetch line and every
    data read waits, and every taken branch into flash-resident code waits for its new line."""
    if wait_states == 0 or edge == 0:
        return 0.0
    data = window.get("data", {}).get("flash", {})
    if edge == 1:
        lines = window.get("flash_line_reads")
        return wait_states * (_get(window, "flash_line_reads") if lines is not None
                              else _get(data, "read_bytes") / FLASH_LINE_BYTES)
    fetch = window.get("fetch_bytes", {})
    fetched_from_flash = _get(fetch, "flash")
    all_fetched = sum(_get(fetch, k) for k in fetch) or 1
    classes = window.get("classes", {})
    jumps = _get(classes, "branch_taken") + _get(classes, "pc_load")
    fetch_lines = fetched_from_flash / FLASH_LINE_BYTES + jumps * fetched_from_flash / all_fetched
    return wait_states * (fetch_lines + _get(data, "reads"))


def estimate_cycles(window: dict, core: str, clock_hz: int, flash_wait_states: int = 0) -> CycleBand:
    """The band of cycles `core` would take for the instructions of one measurement window."""
    if not isinstance(flash_wait_states, int) or flash_wait_states < 0:
        raise BadInput(f"flash_wait_states must be a non-negative integer, got {flash_wait_states!r}")
    timing = timing_for(core)
    classes = window.get("classes", {})
    edges = [core_cycles(timing, classes, e) + flash_wait_cycles(window, flash_wait_states, e) for e in range(3)]
    return CycleBand(timing.core, *edges, clock_hz=clock_hz, flash_wait_states=flash_wait_states,
                     source=f"estimated from QEMU instruction classes by edgeq's timing model for {timing.core} "
                            f"({timing.source})", notes=timing.notes)


def instructions_of(window: dict) -> int:
    """The instructions a window counted: the sum of its classes (each instruction is in one)."""
    classes = window.get("classes", {})
    return sum(_get(classes, c) for c in CLASSES)
