"""A board's parameters, computed once per profile: where its memory and UART are, the clock that
drives its cycle counter and what that counter counts, plus the QEMU command line that runs an
emulated board. Pure: `board_params_for` reads a Profile; `qemu_command` builds an argument list.

What QEMU models for each machine (where UART0 is, the SYSCLK that drives SysTick, which RAM exists) is
in `QEMU_MACHINES`, read from QEMU 7.2's hw/arm/mps2.c and hw/arm/mps2-tz.c; docs/boards.md explains it.
Real microcontrollers (a profile with a `board:` section) are `silicon.py` over the chip table in
`chips.py`; `images.py` makes the RP2040's boot2 and UF2 files. edgeq.codegen.board renders the
board support files from these parameters.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from edgeq.boards.chips import FAMILIES as SILICON_FAMILIES
from edgeq.boards.silicon import QEMU_SILICON, silicon_fields
from edgeq.boards.systick import QEMU_ICOUNT_SHIFT, SYSTICK_PERIOD, qemu_tick
from edgeq.errors import BadInput

FAMILIES = ("cortex_m_cmsdk", "host", *(f for f in SILICON_FAMILIES if f != "esp_idf"))
CYCLES_UNITS = ("instructions", "cycles", "ns")
# The stack takes half of the profile's reserved RAM, up to this; the rest is for the firmware's statics.
MAX_STACK_BYTES = 16 * 1024
CMSDK_UART_MIN_BAUDDIV = 16
ARMV6M_CPUS = ("cortex-m0", "cortex-m0plus")


@dataclass(frozen=True)
class RamBlock:
    name: str
    origin: int
    size_bytes: int

    def holds(self, origin: int, size_bytes: int) -> bool:
        return self.origin <= origin and origin + size_bytes <= self.origin + self.size_bytes


@dataclass(frozen=True)
class QemuMachine:
    cpu: str
    fpu: bool
    uart_base: int          # CMSDK APB UART0, the one QEMU wires to the first -serial
    sysclk_hz: int          # SYSCLK: drives SysTick's processor clock source, the timers and the UARTs
    irq_count: int          # external interrupts the NVIC has
    secure: bool            # the core resets in Secure state (v8-M with TrustZone)
    ram_blocks: tuple[RamBlock, ...]  # where code and data may go, as the core addresses them
    # Where the core reads its vector table at reset, when that is not the flash's first word (the
    # AN547 boots from its ITCM, whose Secure alias is here); the linker puts .vectors there.
    vector_origin: int | None = None
    uart_clock_hz: int | None = None  # the UARTs' clock when it is not SYSCLK


_MPS2_SSRAM1 = RamBlock("ZBT SSRAM1", 0x0000_0000, 4 << 20)
_MPS2_SSRAM23 = RamBlock("ZBT SSRAM2&3", 0x2000_0000, 4 << 20)

QEMU_MACHINES: dict[str, QemuMachine] = {
    "mps2-an385": QemuMachine("cortex-m3", False, 0x4000_4000, 25_000_000, 32, False, (
        _MPS2_SSRAM1, RamBlock("block RAM", 0x0100_0000, 16 << 10), _MPS2_SSRAM23,
        RamBlock("PSRAM", 0x2100_0000, 16 << 20))),
    "mps2-an386": QemuMachine("cortex-m4", True, 0x4000_4000, 25_000_000, 32, False, (
        _MPS2_SSRAM1, RamBlock("block RAM", 0x0100_0000, 16 << 10), _MPS2_SSRAM23,
        RamBlock("PSRAM", 0x2100_0000, 16 << 20))),
    "mps2-an500": QemuMachine("cortex-m7", True, 0x4000_4000, 25_000_000, 32, False, (
        _MPS2_SSRAM1, _MPS2_SSRAM23, RamBlock("PSRAM", 0x6000_0000, 16 << 20))),
    # Secure aliases (address bit 28 set) of the IoT Kit memory map; UART0 is 0x40200000 Non-secure.
    "mps2-an505": QemuMachine("cortex-m33", True, 0x5020_0000, 20_000_000, 124, True, (
        RamBlock("ZBT SSRAM1 (Secure alias)", 0x1000_0000, 4 << 20),
        RamBlock("IoT Kit SRAM (Secure alias)", 0x3000_0000, 32 << 10),
        RamBlock("ZBT SSRAM2+3 (Secure alias)", 0x3800_0000, 4 << 20),
        RamBlock("PSRAM", 0x8000_0000, 16 << 20))),
    # MPS3 with the AN547 image: Corstone SSE-300, Cortex-M55 with MVE, TrustZone. Secure aliases again;
    # UART0's Non-secure address is 0x49303000. The core boots from the 512 KB ITCM (init_svtor 0).
    # The 8 MB QSPI flash is ROM to the guest, as on the board; the ISRAM's two 2 MB blocks are contiguous.
    "mps3-an547": QemuMachine("cortex-m55", True, 0x5930_3000, 32_000_000, 96, True, (
        RamBlock("QSPI flash (Secure alias)", 0x3800_0000, 8 << 20),
        RamBlock("ISRAM0+1 (Secure alias)", 0x3100_0000, 4 << 20),
        RamBlock("DTCM (Secure alias)", 0x3000_0000, 512 << 10),
        RamBlock("FPGA SRAM (Secure alias)", 0x1100_0000, 2 << 20)),
        vector_origin=0x1000_0000, uart_clock_hz=25_000_000),
}


@dataclass(frozen=True)
class BoardParams:
    """Everything the board templates need; the memory-map fields are None for the host board."""

    board: str                  # QEMU machine name, or "host"
    family: str                 # template directory under firmware_templates/boards
    cpu: str
    fpu: bool
    clock_hz: int
    cflags: tuple[str, ...]
    flash_origin: int | None = None
    flash_bytes: int | None = None
    ram_origin: int | None = None
    ram_bytes: int | None = None
    stack_bytes: int | None = None
    heap_bytes: int = 0         # newlib's malloc gets this much; edgeq's own code never allocates
    uart_base: int | None = None
    baud_rate: int = 115200
    irq_count: int = 0
    secure: bool = False
    vector_origin: int | None = None  # the vector table's own region, where the core boots from it
    uart_clock_hz: int | None = None  # the UART's clock, when it is not clock_hz
    systick_period: int = SYSTICK_PERIOD  # ticks between SysTick exceptions; shorter only to test wraps
    cycles_unit: str = "cycles"  # "instructions" under QEMU -icount, "cycles" on silicon, "ns" on host
    # Real microcontrollers (edgeq.boards.silicon): the chip and UART rows, whether QEMU runs it
    # (no clock set-up), the counter (dwt or systick), one tick in eq_board_cycles() units as a fraction.
    chip: object = None
    uart: object = None
    emulated: bool = False
    counter: str = "systick"
    tick_ratio: tuple[int, int] = (1, 1)  # one SysTick tick in eq_board_cycles() units, as a fraction
    uart_divisor: dict | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise BadInput(f"board {self.board}: unknown board family {self.family!r}; "
                           f"expected one of {', '.join(FAMILIES)}")
        if self.cycles_unit not in CYCLES_UNITS:
            raise BadInput(f"board {self.board}: cycles_unit {self.cycles_unit!r} is not one of "
                           f"{', '.join(CYCLES_UNITS)}")
        if self.family == "host":
            return
        for key in ("flash_origin", "flash_bytes", "ram_origin", "ram_bytes", "stack_bytes", "uart_base"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 0:
                raise BadInput(f"board {self.board}: {key} must be a non-negative integer, got {value!r}")
        if self.stack_bytes % 8 or self.heap_bytes % 8:
            raise BadInput(f"board {self.board}: stack_bytes ({self.stack_bytes}) and heap_bytes "
                           f"({self.heap_bytes}) must be multiples of 8, the AAPCS stack alignment")
        if not 2 <= self.systick_period <= SYSTICK_PERIOD:
            raise BadInput(f"board {self.board}: systick_period {self.systick_period} is outside "
                           f"2..{SYSTICK_PERIOD}, what SysTick's 24-bit reload register allows")
        if self.family == "cortex_m_cmsdk" and self.uart_bauddiv < CMSDK_UART_MIN_BAUDDIV:
            raise BadInput(f"board {self.board}: {self.baud_rate} baud from a {self.uart_clock_hz or self.clock_hz} "
                           f"Hz clock needs BAUDDIV {self.uart_bauddiv}; the CMSDK UART needs at least 16")

    @property
    def uart_bauddiv(self) -> int:
        return (self.uart_clock_hz or self.clock_hz) // self.baud_rate

    @property
    def cycles_per_tick(self) -> int:
        """The most eq_board_cycles() units one tick stands for: a reading's resolution."""
        return -(-self.tick_ratio[0] // self.tick_ratio[1])


def _profile_error(profile, key: str, message: str) -> BadInput:
    return BadInput(f"{profile.source or profile.name}: {key}: {message}")


@functools.lru_cache(maxsize=64)
def board_params_for(profile) -> BoardParams:
    """The board support parameters for a device profile (edgeq.profiles.Profile), computed once per
    profile.

    Emulated boards take the memory map from the profile and what QEMU hard-wires (UART address, clock,
    interrupt count) from QEMU_MACHINES; the two must agree, so a profile cannot describe a board the
    emulator does not run.
    """
    cflags = tuple(profile.toolchain.cflags) if profile.toolchain else ()
    if profile.kind == "host":
        return BoardParams(board="host", family="host", cpu=profile.core, fpu=profile.has_fpu,
                           clock_hz=profile.clock_hz, cflags=cflags, cycles_unit="ns")
    if profile.board is not None:
        return BoardParams(cflags=cflags, stack_bytes=_stack_bytes(profile), **silicon_fields(profile))
    if profile.emulator is None:
        raise _profile_error(profile, "board", "missing: edgeq has board support for the QEMU machines "
                             f"{', '.join(QEMU_MACHINES)}, the host, and boards whose profile names their chip "
                             "(board: {family, chip, uart}); docs/boards.md lists them")
    machine_name = profile.emulator.qemu_machine
    machine = QEMU_MACHINES.get(machine_name)
    if machine is None:
        raise _profile_error(profile, "emulator.qemu_machine", f"no board support for {machine_name!r}; "
                             f"expected one of {', '.join(QEMU_MACHINES)}")
    _check_against_machine(profile, machine_name, machine)
    memory = profile.memory
    tick, period = qemu_tick(machine.sysclk_hz)
    return BoardParams(
        board=machine_name, family="cortex_m_cmsdk", cpu=machine.cpu, fpu=machine.fpu,
        clock_hz=machine.sysclk_hz, cflags=cflags,
        flash_origin=memory.flash_origin, flash_bytes=memory.flash_bytes,
        ram_origin=memory.ram_origin, ram_bytes=memory.ram_bytes,
        stack_bytes=_stack_bytes(profile),
        uart_base=machine.uart_base, baud_rate=profile.serial.baud, irq_count=machine.irq_count,
        secure=machine.secure, vector_origin=machine.vector_origin, uart_clock_hz=machine.uart_clock_hz,
        tick_ratio=tick, systick_period=period, cycles_unit="instructions",
    )


def _stack_bytes(profile) -> int:
    return min(MAX_STACK_BYTES, profile.memory.ram_reserved_bytes // 2 // 8 * 8)


def _check_against_machine(profile, machine_name: str, machine: QemuMachine) -> None:
    if profile.core.lower() != machine.cpu:
        raise _profile_error(profile, "core", f"QEMU's {machine_name} is a {machine.cpu}, not {profile.core}")
    if profile.has_fpu != machine.fpu:
        has = "has an FPU" if machine.fpu else "has no FPU"
        raise _profile_error(profile, "fpu", f"QEMU's {machine_name} {has}; the profile says {profile.fpu!r}")
    if profile.clock_hz != machine.sysclk_hz:
        raise _profile_error(profile, "clock_mhz", f"QEMU's {machine_name} clocks SysTick at "
                             f"{machine.sysclk_hz / 1e6:g} MHz, not {profile.clock_mhz:g} MHz")
    memory = profile.memory
    for region, origin, size in (("flash", memory.flash_origin, memory.flash_bytes),
                                 ("ram", memory.ram_origin, memory.ram_bytes)):
        if origin is None:
            raise _profile_error(profile, f"memory.{region}_origin", "missing; the linker script needs it")
        if not any(block.holds(origin, size) for block in machine.ram_blocks):
            blocks = "; ".join(f"{block.name} 0x{block.origin:08X} ({block.size_bytes} bytes)"
                               for block in machine.ram_blocks)
            raise _profile_error(profile, f"memory.{region}_origin",
                                 f"0x{origin:08X} + {size} bytes is not inside one RAM of QEMU's "
                                 f"{machine_name}: {blocks}")


def qemu_command(machine: str, elf_path: str, serial_port: int, *, wait: bool = True,
                 plugin: str | None = None) -> list[str]:
    """The qemu-system-arm arguments that run `elf_path` with UART0 served on 127.0.0.1:serial_port.

    QEMU listens on the port and, with wait, does not start the CPU until a client connects, so the
    firmware's first bytes (the HELLO frame) are not lost. -icount makes virtual time count instructions.
    nodelay: QEMU writes each UART byte to the socket on its own; with Nagle's algorithm on, every
    reply then waits for the host's delayed ACK (40 ms on Linux), ten times the inference itself.
    `plugin` is a TCG plugin and its arguments, as QEMU's -plugin takes them (edgeq.device.cycles).
    """
    if machine not in QEMU_MACHINES and machine not in QEMU_SILICON:
        raise BadInput(f"no board support for QEMU machine {machine!r}; expected one of "
                       f"{', '.join([*QEMU_MACHINES, *QEMU_SILICON])}")
    if not 0 < serial_port < 65536:
        raise BadInput(f"serial port {serial_port} is not a TCP port number (1..65535)")
    return [
        "qemu-system-arm", "-M", machine,
        "-icount", f"shift={QEMU_ICOUNT_SHIFT}",
        "-nodefaults", "-nographic", "-monitor", "none", "-no-reboot",
        "-serial", f"tcp:127.0.0.1:{serial_port},server=on,wait={'on' if wait else 'off'},nodelay=on",
        "-kernel", str(elf_path),
        *(["-plugin", plugin] if plugin else []),
    ]
