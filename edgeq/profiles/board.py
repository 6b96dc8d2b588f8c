"""The profile's `board` section: which chip a real (or emulated) microcontroller board carries and which
of its UARTs reaches the host. edgeq.boards.chips has the chips themselves."""

from __future__ import annotations

from dataclasses import dataclass

# Board support families: one per silicon family, firmware_templates/boards/<family>/.
BOARD_FAMILIES = ("stm32", "nrf5", "rp2040", "apollo3", "esp_idf")


@dataclass(frozen=True)
class Board:
    family: str
    chip: str
    uart: str = ""  # empty: the chip has one UART edgeq drives
