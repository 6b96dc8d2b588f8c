"""Board parameters for a profile with a `board:` section: a real microcontroller (or QEMU's model of
one), checked against edgeq.boards.chips. Pure; returns the fields of a BoardParams.

On silicon the counter is DWT CYCCNT where the core has one and SysTick otherwise, in core cycles.
Under QEMU (netduinoplus2, microbit) the clock tree is not modelled and DWT CYCCNT does not count,
so the counter is SysTick on the fixed core clock under -icount, in instructions.
"""

from __future__ import annotations

from edgeq.boards.chips import CHIPS, FAMILIES, NRF_BAUDRATES, baud_divisor, baud_error
from edgeq.boards.systick import SYSTICK_PERIOD, qemu_tick
from edgeq.errors import BadInput

# QEMU machines modelling one of the chips: (chip, SysTick's clock, RAM blocks QEMU maps), from
# QEMU 7.2 hw/arm/netduinoplus2.c + stm32f405_soc.c (SYSCLK 168 MHz, SRAM 128 KB at 0x20000000,
# CCM 64 KB at 0x10000000, flash 1 MB at 0x08000000 aliased at 0) and hw/arm/nrf51_soc.c (HCLK
# 16 MHz, SRAM 16 KB at 0x20000000, flash 256 KB at 0).
QEMU_SILICON: dict[str, tuple[str, int, tuple[tuple[int, int], ...]]] = {
    "netduinoplus2": ("stm32f405rg", 168_000_000, ((0x0800_0000, 1 << 20), (0x2000_0000, 128 << 10),
                                                   (0x1000_0000, 64 << 10))),
    "microbit": ("nrf51822", 16_000_000, ((0x0000_0000, 256 << 10), (0x2000_0000, 16 << 10))),
}
MAX_BAUD_ERROR = 0.02


def _error(profile, key: str, message: str) -> BadInput:
    return BadInput(f"{profile.source or profile.name}: {key}: {message}")


def silicon_fields(profile) -> dict:
    """BoardParams fields (but cflags and stack) for `profile`, whose `board` names chip and UART."""
    board = profile.board
    chip = CHIPS.get(board.chip)
    if board.family not in FAMILIES or board.family == "esp_idf":
        raise _error(profile, "board.family", f"{board.family!r} has no register-level board support; "
                     f"expected one of {', '.join(f for f in FAMILIES if f != 'esp_idf')}")
    if chip is None:
        known = ", ".join(name for name, c in CHIPS.items() if c.family == board.family)
        raise _error(profile, "board.chip", f"no board support for chip {board.chip!r}; family {board.family} "
                     f"has {known}")
    if chip.family != board.family:
        raise _error(profile, "board.family", f"{chip.name} is in family {chip.family}, not {board.family}")
    uart_name = board.uart or (next(iter(chip.uarts)) if len(chip.uarts) == 1 else "")
    uart = chip.uarts.get(uart_name)
    if uart is None:
        raise _error(profile, "board.uart", f"{chip.name} has no board support for UART {board.uart!r}; "
                     f"expected one of {', '.join(chip.uarts)}")
    if profile.core.lower() != chip.cpu:
        raise _error(profile, "core", f"the {chip.name} is a {chip.cpu}, not {profile.core}")
    emulated = profile.is_emulated
    clock_hz = chip.clock_hz
    if emulated:
        machine = profile.emulator.qemu_machine
        if machine not in QEMU_SILICON or QEMU_SILICON[machine][0] != chip.name:
            models = ", ".join(f"{m} ({c})" for m, (c, _, _) in QEMU_SILICON.items())
            raise _error(profile, "emulator.qemu_machine", f"QEMU has no model of the {chip.name} edgeq runs "
                         f"({machine!r}); edgeq runs {models}")
        clock_hz, ram_blocks = QEMU_SILICON[machine][1], QEMU_SILICON[machine][2]
        _check_regions(profile, machine, ram_blocks)
    if profile.clock_hz != clock_hz:
        what = f"QEMU's {profile.emulator.qemu_machine} clocks" if emulated else "edgeq's board support runs"
        raise _error(profile, "clock_mhz", f"{what} the {chip.name} at {clock_hz / 1e6:g} MHz, "
                     f"not {profile.clock_mhz:g} MHz")
    baud = profile.serial.baud
    if uart.kind == "nrf_uart" and baud not in sorted(NRF_BAUDRATES):
        raise _error(profile, "serial.baud", f"the nRF5 UART has no {baud} baud setting; expected one of "
                     f"{', '.join(map(str, sorted(NRF_BAUDRATES)))}")
    if baud_error(uart, baud) > MAX_BAUD_ERROR:
        raise _error(profile, "serial.baud", f"{baud} baud from {uart.name}'s {uart.kernel_clock_hz} Hz clock is "
                     f"{baud_error(uart, baud):.1%} off; a UART tolerates about 2 %")
    for key in ("flash_origin", "ram_origin"):
        if getattr(profile.memory, key) is None:
            raise _error(profile, f"memory.{key}", "missing; the linker script needs it")
    counter = "systick" if emulated else chip.cycle_counter
    tick, period = (1, 1), SYSTICK_PERIOD
    if emulated:
        try:
            tick, period = qemu_tick(clock_hz)
        except BadInput as error:
            raise _error(profile, "clock_mhz", str(error)) from None
    return {
        "board": profile.emulator.qemu_machine if emulated else profile.name, "family": chip.family, "cpu": chip.cpu,
        "fpu": profile.has_fpu, "clock_hz": clock_hz, "flash_origin": profile.memory.flash_origin,
        "flash_bytes": profile.memory.flash_bytes, "ram_origin": profile.memory.ram_origin,
        "ram_bytes": profile.memory.ram_bytes, "uart_base": uart.base, "baud_rate": baud, "irq_count": chip.irq_count,
        "cycles_unit": "instructions" if emulated else "cycles", "chip": chip, "uart": uart, "emulated": emulated,
        "counter": counter, "secure": chip.secure, "tick_ratio": tick, "systick_period": period,
        "uart_divisor": baud_divisor(uart, baud),
    }


def _check_regions(profile, machine: str, blocks) -> None:
    memory = profile.memory
    for region, origin, size in (("flash", memory.flash_origin, memory.flash_bytes),
                                 ("ram", memory.ram_origin, memory.ram_bytes)):
        if origin is None or not any(base <= origin and origin + size <= base + length for base, length in blocks):
            shown = "; ".join(f"0x{base:08X} ({length} bytes)" for base, length in blocks)
            raise _error(profile, f"memory.{region}_origin", f"{'missing' if origin is None else f'0x{origin:08X}'} "
                         f"+ {size} bytes is not inside one memory of QEMU's {machine}: {shown}")
