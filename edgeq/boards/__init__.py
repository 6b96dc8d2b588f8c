"""Stage 2, the boards: each profile's board parameters (memory map, UART, clock, what its cycle
counter counts), the chips edgeq has register-level support for, QEMU's machines and the command
that starts one, and the RP2040's boot2 and UF2 images (docs/boards.md). Computed once per
profile, used by code generation and by the device loop alike."""

from edgeq.boards.params import CYCLES_UNITS, FAMILIES, QEMU_MACHINES, BoardParams, board_params_for, qemu_command
from edgeq.boards.systick import qemu_tick

__all__ = ["CYCLES_UNITS", "FAMILIES", "QEMU_MACHINES", "BoardParams", "board_params_for", "qemu_command",
           "qemu_tick"]
