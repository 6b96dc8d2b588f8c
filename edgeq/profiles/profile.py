"""What a device profile is, once read and checked: a frozen `Profile` and its sections, and the
names each key may take."""

from __future__ import annotations

from dataclasses import dataclass

from edgeq.errors import BadInput
from edgeq.profiles.board import Board

DEFAULT_PROFILE = "qemu-mps2-an386"

KINDS = ("mcu", "linux", "phone", "host")
NUMERICS = ("int8", "int16x8", "int4", "fp16", "fp32")
FLASH_METHODS = ("qemu", "host", "pyocd", "openocd", "st-flash", "stm32cubeprogrammer", "esptool", "picotool",
                 "nrfjprog", "bossac", "adb", "ssh")
OPTIMIZE_LEVELS = ("-Os", "-O2", "-O3")
DELEGATES = ("xnnpack", "gpu", "nnapi")
# The CPU architectures edgeq builds its native LiteRT harness for (edgeq.device.litert_lib).
ABIS = ("aarch64", "x86-64")
# What the flash stage substitutes into flash.args: the built files, the serial port and, for boards
# reached over the network, user@address; {fsbl} is the bin behind an STM32N6 boot ROM's header.
FLASH_PLACEHOLDERS = ("image", "elf", "bin", "hex", "uf2", "fsbl", "port", "host")



@dataclass(frozen=True)
class Memory:
    flash_bytes: int
    ram_bytes: int
    ram_reserved_bytes: int
    flash_origin: int | None = None
    ram_origin: int | None = None
    # What the flash adds to each read at clock_mhz (the chip's reference manual); edgeq's cycle
    # model (edgeq.measure.cycle_model) prices it, hidden or not by the chip's flash accelerator.
    flash_wait_states: int = 0


@dataclass(frozen=True)
class Toolchain:
    compiler: str
    cflags: tuple[str, ...]
    optimize: str

    @property
    def prefix(self) -> str:
        """`arm-none-eabi-` for arm-none-eabi-gcc, empty for gcc: where size and objcopy are found."""
        return self.compiler[:-len("gcc")] if self.compiler.endswith("gcc") else ""

    def tool(self, name: str) -> str:
        """The binutils program `name` ("size", "objcopy") that goes with the compiler."""
        return f"{self.prefix}{name}"


@dataclass(frozen=True)
class Flash:
    method: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Serial:
    baud: int


@dataclass(frozen=True)
class Emulator:
    qemu_machine: str | None = None  # qemu-system-arm's -machine, for a microcontroller board
    # An Arm Linux device as qemu-user runs it: the program (qemu-aarch64) and its -cpu.
    qemu_user: str | None = None
    cpu: str | None = None


@dataclass(frozen=True)
class LiteRT:
    threads: int
    delegate: str
    # Custom ops the device's LiteRT has beyond the stock ones (the user's op library, MediaPipe's):
    # LiteRT candidates that need them are not refused, and the host says what it cannot measure.
    custom_ops: tuple[str, ...] = ()
    abi: str = "aarch64"  # what the native harness is built for
    # The CPUs the harness is pinned to with taskset (a phone's big cores); empty: wherever the OS puts it.
    cpus: tuple[int, ...] = ()


@dataclass(frozen=True)
class Profile:
    name: str
    display_name: str
    kind: str
    core: str
    cores: int
    clock_mhz: float
    fpu: str
    simd: tuple[str, ...]
    memory: Memory
    numerics: tuple[str, ...]
    runtimes: tuple[str, ...]
    toolchain: Toolchain | None
    flash: Flash
    serial: Serial
    emulator: Emulator | None
    litert: LiteRT | None
    datasheet: str
    notes: str = ""
    source: str = ""  # the file it came from, for messages further down the pipeline
    board: Board | None = None  # the chip and UART of a microcontroller board edgeq has board support for

    @property
    def ram_for_model_bytes(self) -> int:
        return self.memory.ram_bytes - self.memory.ram_reserved_bytes

    @property
    def is_microcontroller(self) -> bool:
        return self.kind == "mcu"

    @property
    def is_emulated(self) -> bool:
        return self.emulator is not None

    @property
    def runs_native_harness(self) -> bool:
        """A phone or Linux board: LiteRT's C runtime in edgeq's native harness, reached over adb or ssh."""
        return self.kind in ("linux", "phone")

    @property
    def has_fpu(self) -> bool:
        return self.fpu != "none"

    @property
    def has_dsp(self) -> bool:
        """The core has Arm's DSP extension (SMLAD and kin): edgeq-c generates its DSP kernels for it."""
        return "dsp" in self.simd

    @property
    def has_mve(self) -> bool:
        """The core has the M-profile Vector Extension (Helium): CMSIS-NN and edgeq-c use their MVE kernels."""
        return "mve" in self.simd

    @property
    def default_runtime(self) -> str:
        return self.runtimes[0]

    @property
    def clock_hz(self) -> int:
        return round(self.clock_mhz * 1_000_000)

    def supports(self, numeric: str) -> bool:
        """Whether the device runs `numeric` well; an unknown name is an error, not a quiet False."""
        if numeric not in NUMERICS:
            raise BadInput(f"unknown numeric {numeric!r}; expected one of {', '.join(NUMERICS)}")
        return numeric in self.numerics
