"""SysTick as edgeq's emulated boards use it: under QEMU's -icount every instruction is 2**shift ns of
virtual time, so a SysTick tick on a fixed clock is a fixed fraction of instructions. Pure."""

from __future__ import annotations

import math

from edgeq.errors import BadInput

NS_PER_SECOND = 1_000_000_000
SYSTICK_PERIOD = 1 << 24  # SysTick's counter is 24 bits wide
# Under -icount shift=0 every guest instruction advances QEMU's virtual clock by 2**0 ns.
QEMU_ICOUNT_SHIFT = 0


def qemu_tick(clock_hz: int, icount_shift: int = QEMU_ICOUNT_SHIFT) -> tuple[tuple[int, int], int]:
    """Instructions in one tick of a `clock_hz` SysTick under -icount shift=N, as a fraction in lowest
    terms, and the longest SysTick period (in ticks) that is a whole number of instructions.

    eq_board.c multiplies a period's phase by the numerator in 32 bits, which bounds the fraction."""
    divisor = math.gcd(NS_PER_SECOND, clock_hz << icount_shift)
    tick = (NS_PER_SECOND // divisor, (clock_hz << icount_shift) // divisor)
    period = SYSTICK_PERIOD // tick[1] * tick[1]
    if period == 0 or period * tick[0] >= 1 << 32:
        raise BadInput(f"a {clock_hz} Hz SysTick under -icount shift={icount_shift} is {tick[0]}/{tick[1]} "
                       "instructions a tick, too fine a fraction for edgeq's 32-bit conversion")
    return tick, period
