"""The microcontrollers edgeq has register-level board support for, as data: one row per chip with what
its board support needs (core, clock, interrupt count, the UARTs a board may route to its host) and the
reference manual the numbers come from. The templates under firmware_templates/boards/<family>/ hold
the register sequences; everything that differs between chips of one family is here.

A `Pin` is (port, pin, alternate function): port 0 is GPIOA on an STM32, P0 on an nRF5; the nRF5s and the
RP2040 ignore `function` (the UART's PSEL register, or FUNCSEL 2, picks the pin).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeq.profiles.board import BOARD_FAMILIES

FAMILIES = BOARD_FAMILIES  # the profile's board.family values; esp_idf has no register-level support


@dataclass(frozen=True)
class Pin:
    port: int
    pin: int
    function: int = 0

    @property
    def name(self) -> str:
        return f"P{'ABCDEFGHIJK'[self.port]}{self.pin}"


@dataclass(frozen=True)
class Uart:
    name: str
    base: int
    kind: str                # register layout: stm32_v1 (F4 SR/DR), stm32_v2 (ISR/RDR/TDR), stm32_lpuart,
                             # nrf_uart (legacy UART0), pl011 (RP2040, Apollo3)
    kernel_clock_hz: int     # what clocks its baud generator once the chip runs at its full clock
    tx: Pin
    rx: Pin
    enable: tuple[int, int] = (0, 0)  # (RCC enable register offset, bit); STM32 only
    wiring: str = ""         # how the bytes reach the host, for comments and docs/boards.md


@dataclass(frozen=True)
class Chip:
    name: str
    family: str
    series: str              # selects the clock sequence in the family's template
    cpu: str                 # QEMU / -mcpu name
    clock_hz: int            # what eq_board_init raises the core clock to
    irq_count: int
    cycle_counter: str       # "dwt" (DWT CYCCNT) or "systick" (Armv6-M has no DWT cycle counter)
    manual: str
    uarts: dict[str, Uart] = field(default_factory=dict)
    gpio_base: int = 0       # GPIOA (STM32) or P0 (nRF5); ports follow at gpio_stride
    gpio_stride: int = 0x400
    gpio_enable: int = 0     # RCC register whose bit n clocks GPIO port n (STM32)
    boot2: bool = False      # the first 256 bytes of flash are a second-stage boot loader (RP2040)
    secure: bool = False     # the image runs in Secure state (Armv8-M with TrustZone)
    # A boot ROM copies the image into RAM and jumps to its reset handler with the ROM's own stack and
    # stack limit (MSPLIM) still set, rather than the core resetting into it (STM32N6).
    boot_rom: bool = False


CHIPS: dict[str, Chip] = {chip.name: chip for chip in (
    # RM0432 rev 9: RCC 6.4, PWR 5.4 (range 1 boost, VDDIO2), FLASH 3.3.3 (5 wait states at 120 MHz),
    # GPIO 8.4, LPUART 51.7; the NUCLEO-L4R5ZI (UM2179 6.9) routes LPUART1 PG7/PG8 (AF8) to the ST-LINK VCP.
    Chip("stm32l4r5zi", "stm32", "l4plus", "cortex-m4", 120_000_000, 95, "dwt", "RM0432", {
        "lpuart1": Uart("lpuart1", 0x4000_8000, "stm32_lpuart", 120_000_000, Pin(6, 7, 8), Pin(6, 8, 8),
                               (0x5C, 0), "ST-LINK/V2-1 virtual COM port over the board's USB"),
    }, gpio_base=0x4800_0000, gpio_enable=0x4C),
    # RM0385 rev 8: RCC 5.3 (PLL, over-drive 4.1.4), FLASH 3.3.2 (7 wait states at 216 MHz), GPIO 6.4,
    # USART 31.8; UM1907 6.13: USART1 PA9/PB7 (AF7) goes to the ST-LINK VCP.
    Chip("stm32f746ng", "stm32", "f7", "cortex-m7", 216_000_000, 98, "dwt", "RM0385", {
        "usart1": Uart("usart1", 0x4001_1000, "stm32_v2", 108_000_000, Pin(0, 9, 7), Pin(1, 7, 7),
                              (0x44, 4), "ST-LINK/V2-1 virtual COM port over the board's USB"),
    }, gpio_base=0x4002_0000, gpio_enable=0x30),
    # RM0433 rev 8: PWR 6.8 (LDO, VOS1 then VOS0 through SYSCFG_PWRCR.ODEN), RCC 8.7, FLASH 4.3.8
    # (4 wait states, WRHIGHFREQ 2 at 240 MHz AXI), GPIO 11.4, USART 48.7; UM2407 6.9: USART3 PD8/PD9 (AF7).
    Chip("stm32h743zi", "stm32", "h7", "cortex-m7", 480_000_000, 150, "dwt", "RM0433", {
        "usart3": Uart("usart3", 0x4000_4800, "stm32_v2", 120_000_000, Pin(3, 8, 7), Pin(3, 9, 7),
                              (0xE8, 18), "ST-LINK/V3E virtual COM port over the board's USB"),
    }, gpio_base=0x5802_0000, gpio_enable=0xE0),
    # RM0486: RCC (PLL1 and the IC dividers, set/clear registers at +0x800/+0x1000), GPIO 13,
    # USART 62; the FSBL templates of STM32CubeN6 1.1 run the core at 600 MHz without overdrive, the buses
    # at 200 MHz. UM3300: USART1 PE5/PE6 (AF7) goes to the ST-LINK-V3EC VCP. Secure aliases: the boot ROM
    # starts the first-stage boot loader, which edgeq's firmware is, in Secure state.
    Chip("stm32n657x0", "stm32", "n6", "cortex-m55", 600_000_000, 195, "dwt", "RM0486", {
        "usart1": Uart("usart1", 0x5200_1000, "stm32_v2", 200_000_000, Pin(4, 5, 7), Pin(4, 6, 7),
                              (0xA6C, 4), "ST-LINK-V3EC virtual COM port over the board's USB"),
    }, gpio_base=0x5602_0000, gpio_enable=0xA5C, secure=True, boot_rom=True),
    # RM0090 rev 19: RCC 7.3, FLASH 3.9 (5 wait states at 168 MHz), GPIO 8.4, USART 30.6 (the F4 layout,
    # SR/DR, which QEMU's stm32f2xx_usart models); QEMU's netduinoplus2 serves USART1 on -serial.
    Chip("stm32f405rg", "stm32", "f4", "cortex-m4", 168_000_000, 82, "dwt", "RM0090", {
        "usart1": Uart("usart1", 0x4001_1000, "stm32_v1", 84_000_000, Pin(0, 9, 7), Pin(0, 10, 7),
                              (0x44, 4), "PA9/PA10; QEMU's first -serial"),
    }, gpio_base=0x4002_0000, gpio_enable=0x30),
    # nRF52840 PS v1.7: CLOCK 5.4 (HFXO), GPIO 6.9, UART 6.33 (the legacy, non-DMA UART0, which shares
    # UARTE0's registers and pins); the Nano 33 BLE's D1/TX is P1.03 and D0/RX P1.10.
    Chip("nrf52840", "nrf5", "nrf52", "cortex-m4", 64_000_000, 48, "dwt", "nRF52840 PS v1.7", {
        "uart0": Uart("uart0", 0x4000_2000, "nrf_uart", 16_000_000, Pin(1, 3), Pin(1, 10),
                      wiring="header pins D1/TX and D0/RX to a 3.3 V USB-serial adapter"),
    }, gpio_base=0x5000_0000, gpio_stride=0x300),
    # nRF51 RM v3.0.1: CLOCK 13, GPIO 14, UART 29; QEMU's microbit wires UART0 to -serial (the micro:bit's
    # own TX/RX are P0.24/P0.25, to its interface chip).
    Chip("nrf51822", "nrf5", "nrf51", "cortex-m0", 16_000_000, 32, "systick", "nRF51 RM v3.0.1", {
        "uart0": Uart("uart0", 0x4000_2000, "nrf_uart", 16_000_000, Pin(0, 24), Pin(0, 25),
                      wiring="P0.24/P0.25 to the interface chip's USB serial; QEMU's first -serial"),
    }, gpio_base=0x5000_0000, gpio_stride=0x300),
    # RP2040 datasheet (2023-06): boot2 2.8.1, XOSC 2.16, PLL 2.18, CLOCKS 2.15, RESETS 2.14, IO_BANK0 2.19,
    # UART (PL011) 4.2; the Pico's UART0 is GP0 (TX) / GP1 (RX) on the header.
    Chip("rp2040", "rp2040", "rp2040", "cortex-m0plus", 133_000_000, 26, "systick", "RP2040 datasheet", {
        "uart0": Uart("uart0", 0x4003_4000, "pl011", 133_000_000, Pin(0, 0), Pin(0, 1),
                      wiring="GP0/GP1 (header pins 1 and 2) to a 3.3 V USB-serial adapter"),
    }, boot2=True),
    # Apollo3 Blue datasheet v0.17: CLKGEN 4.4 (HFRC 48 MHz), PWRCTRL 3.9, GPIO 11.6 (pad 48 UART0TX,
    # pad 49 UART0RX, function 0), UART 12.8 (a PL011 with its own clock select in UARTn_CR).
    Chip("apollo3", "apollo3", "apollo3", "cortex-m4", 48_000_000, 32, "dwt", "Apollo3 Blue datasheet", {
        "uart0": Uart("uart0", 0x4001_C000, "pl011", 24_000_000, Pin(0, 48), Pin(0, 49),
                      wiring="the Edge's serial header (TX0 pad 48, RX0 pad 49) to a SparkFun Serial Basic"),
    }),
)}

# nRF5 UART BAUDRATE register values (nRF52840 PS 6.33.10.15, nRF51 RM 29.10.13): not a formula.
NRF_BAUDRATES = {9600: 0x0027_5000, 19200: 0x004E_A000, 38400: 0x009D_5000, 57600: 0x00EB_F000,
                 115200: 0x01D7_E000, 230400: 0x03AF_B000, 460800: 0x075F_7000, 921600: 0x0EBE_D000,
                 1000000: 0x1000_0000}


def baud_divisor(uart: Uart, baud: int) -> dict[str, int]:
    """The baud generator's register values for `baud` from the UART's kernel clock."""
    clock = uart.kernel_clock_hz
    if uart.kind == "stm32_lpuart":      # RM0432 51.4.8: BRR = 256 * f_ck / baud, 0x300..0xFFFFF
        return {"brr": (256 * clock + baud // 2) // baud}
    if uart.kind in ("stm32_v1", "stm32_v2"):  # oversampling by 16: BRR = f_ck / baud
        return {"brr": (clock + baud // 2) // baud}
    if uart.kind == "pl011":             # integer and 6-bit fractional parts of f_ck / (16 * baud)
        sixty_fourths = (4 * clock + baud // 2) // baud
        return {"ibrd": sixty_fourths >> 6, "fbrd": sixty_fourths & 0x3F}
    if uart.kind == "nrf_uart":
        return {"baudrate": NRF_BAUDRATES[baud]}
    raise ValueError(uart.kind)


def baud_error(uart: Uart, baud: int) -> float:
    """How far the divisor's real rate is from `baud`, as a fraction; UARTs tolerate about 2 %."""
    div = baud_divisor(uart, baud)
    clock = uart.kernel_clock_hz
    if "brr" in div:
        actual = clock * (256 if uart.kind == "stm32_lpuart" else 1) / div["brr"]
    elif "ibrd" in div:
        actual = clock * 4 / (div["ibrd"] * 64 + div["fbrd"])
    else:
        return 0.0
    return abs(actual - baud) / baud
