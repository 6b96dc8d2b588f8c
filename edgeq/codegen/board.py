"""Board support files rendered from a board's parameters (edgeq.boards): startup code, linker script,
UART driver and cycle counter behind `eq_board.h`, and the compile and link flags they need. Pure:
BoardParams in, `{path: text}` out.
"""

from __future__ import annotations

import edgeq
from edgeq.boards.images import APPLICATION_OFFSET, BOOT2_ASM, boot2_image
from edgeq.boards.params import ARMV6M_CPUS, FAMILIES, BoardParams
from edgeq.csource import generated_notice, render_template

_FAMILY_FILES = {
    "cortex_m_cmsdk": {
        "eq_board.h": "eq_board.h.j2",
        "eq_board.c": "cortex_m_cmsdk/eq_board.c.j2",
        "startup.c": "cortex_m/startup.c.j2",
        "linker.ld": "cortex_m/linker.ld.j2",
    },
    "host": {
        "eq_board.h": "eq_board.h.j2",
        "eq_board.c": "host/eq_board.c.j2",
    },
}
_SILICON_FILES = {
    "eq_board.h": "eq_board.h.j2",
    "eq_board.c": "silicon/eq_board.c.j2",
    "startup.c": "cortex_m/startup.c.j2",
    "linker.ld": "cortex_m/linker.ld.j2",
}
for _family in FAMILIES[2:]:
    _FAMILY_FILES[_family] = dict(_SILICON_FILES, **({"boot2.c": "rp2040/boot2.c.j2"} if _family == "rp2040" else {}))


def render_board(params: BoardParams) -> dict[str, str]:
    """Relative path -> text of every board support file; the first line of each says edgeq made it."""
    context = {
        "notice": generated_notice(board=params.board), "version": edgeq.__version__,
        "board": params.board, "cpu": params.cpu, "fpu": params.fpu, "clock_hz": params.clock_hz,
        "flash_origin": params.flash_origin, "flash_bytes": params.flash_bytes,
        "ram_origin": params.ram_origin, "ram_bytes": params.ram_bytes,
        "stack_bytes": params.stack_bytes, "heap_bytes": params.heap_bytes,
        "uart_base": params.uart_base, "baud_rate": params.baud_rate,
        "irq_count": params.irq_count, "secure_fault": params.secure,
        "tick_num": params.tick_ratio[0], "tick_den": params.tick_ratio[1], "cycles_unit": params.cycles_unit,
        "systick_period": params.systick_period, "vector_origin": params.vector_origin,
        "armv6m": params.cpu in ARMV6M_CPUS, "no_vtor": params.cpu == "cortex-m0", "boot2": False,
        "boot_rom": params.chip is not None and params.chip.boot_rom,
    }
    if params.family == "cortex_m_cmsdk":
        context.update(uart_bauddiv=params.uart_bauddiv, uart_clock_hz=params.uart_clock_hz or params.clock_hz)
    if params.chip is not None:
        context.update(chip=params.chip, uart=params.uart, emulated=params.emulated, counter=params.counter,
                       divisor=params.uart_divisor)
        if params.chip.boot2:
            # boot2 takes the first 256 bytes of flash; the vector table and the rest of the image follow.
            context.update(boot2_origin=params.flash_origin, boot2_asm=BOOT2_ASM,
                           flash_origin=params.flash_origin + APPLICATION_OFFSET,
                           flash_bytes=params.flash_bytes - APPLICATION_OFFSET,
                           boot2=[f"0x{b:02X}" for b in boot2_image()])
    return {path: render_template(f"boards/{name}", **context) for path, name in _FAMILY_FILES[params.family].items()}


def compile_flags(params: BoardParams) -> list[str]:
    """Flags every C/C++ file of the firmware is compiled with, beyond -O and warnings."""
    if params.family == "host":
        return list(params.cflags)
    return [*params.cflags, "-ffunction-sections", "-fdata-sections"]


def link_flags(params: BoardParams, linker_script: str) -> list[str]:
    """Flags for the final link; `linker_script` is where the rendered linker.ld was written."""
    if params.family == "host":
        return list(params.cflags)
    # The entry is startup.c's Reset_Handler; crt0's _start is linked but unreferenced, so --gc-sections
    # drops it. The start files stay because C++ needs crtbegin's __dso_handle for static destructors.
    return [*params.cflags, "-T", linker_script, "--specs=nano.specs", "--specs=nosys.specs",
            "-Wl,--gc-sections"]


