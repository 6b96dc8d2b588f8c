"""The TFLM firmware project: main.cc serving the model over edgeq's serial protocol, the model
data, a Makefile for a TFLM tree (the CMSIS-NN kernels on Cortex-M), and an Arduino sketch."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from importlib.metadata import version

import edgeq
from edgeq.codegen.sources import (
    DEFAULT_MODEL_SYMBOL,
    DEFAULT_PREFIX,
    HELLO_ARENA_OFFSET,
    render_model_data,
    runtime_sources,
    single_tensor,
)
from edgeq.codegen.tflm_ops import check_tflm_ops, model_op_names
from edgeq.csource import ARENA_ALIGNMENT, c_byte_array, generated_notice, render_template, validate_symbol
from edgeq.errors import BadInput
from edgeq.graph import Graph

DEFAULT_ARENA_MARGIN = 0.10
DEFAULT_BAUD = 115200
TFLM_PROGRAM_SUFFIX = "_tflm"  # the TFLM Makefile's PROGRAM is <sketch>_tflm


@dataclass(frozen=True)
class TflmTarget:
    """Which TFLM library build the firmware links, in the words of TFLM's make build."""

    target: str = "linux"
    target_arch: str = ""  # empty: the build machine's `uname -m`
    optimized_kernel_dir: str = ""  # "cmsis_nn" on Cortex-M
    cross_compile: str = ""  # tool prefix, "arm-none-eabi-"
    arch_flags: tuple[str, ...] = ()  # -mcpu/-mfloat-abi/...: must match the library's float ABI

    def make_command(self) -> str:
        """The command, run in the TFLM tree, that builds the library this project links."""
        parts = ["make -f tensorflow/lite/micro/tools/make/Makefile"]
        if self.target != "linux":
            parts.append(f"TARGET={self.target}")
        if self.target_arch:
            parts.append(f"TARGET_ARCH={self.target_arch}")
        if self.optimized_kernel_dir:
            parts.append(f"OPTIMIZED_KERNEL_DIR={self.optimized_kernel_dir}")
        return " ".join(parts + ["microlite"])

    def library_dir(self) -> str | None:
        """TFLM's GENDIR for this build, relative to the TFLM tree (None when it depends on the
        build machine); the default BUILD_TYPE and gcc toolchain."""
        if not self.target_arch:
            return None
        kernels = f"_{self.optimized_kernel_dir}" if self.optimized_kernel_dir else ""
        return f"gen/{self.target}_{self.target_arch}_default{kernels}_gcc"


HOST_TFLM_TARGET = TflmTarget()

# TFLM's cortex_m_generic TARGET_ARCH names, by core and whether its FPU is used.
_CORTEX_M_TFLM_ARCH = {
    ("cortex-m0", False): "cortex-m0", ("cortex-m0plus", False): "cortex-m0plus",
    ("cortex-m3", False): "cortex-m3", ("cortex-m4", False): "cortex-m4", ("cortex-m4", True): "cortex-m4+fp",
    ("cortex-m7", False): "cortex-m7", ("cortex-m7", True): "cortex-m7+fp", ("cortex-m33", True): "cortex-m33",
    ("cortex-m33", False): "cortex-m33+nodsp", ("cortex-m55", True): "cortex-m55",
    ("cortex-m55", False): "cortex-m55+nofp", ("cortex-m85", True): "cortex-m85",
}


def cortex_m_tflm_target(cpu: str, fpu: bool, arch_flags: tuple[str, ...] | list[str] = ()) -> TflmTarget:
    """The TFLM build (cortex_m_generic with CMSIS-NN kernels) for a Cortex-M core."""
    cpu = {"cortex-m0+": "cortex-m0plus"}.get(cpu.lower(), cpu.lower())
    arch = _CORTEX_M_TFLM_ARCH.get((cpu, bool(fpu)))
    if arch is None:
        raise BadInput(f"core {cpu!r} {'with' if fpu else 'without'} FPU has no TFLM cortex_m_generic "
                       f"TARGET_ARCH; known: {', '.join(sorted(set(a for a in _CORTEX_M_TFLM_ARCH.values())))}")
    return TflmTarget("cortex_m_generic", arch, "cmsis_nn", "arm-none-eabi-", tuple(arch_flags))


def arena_size_with_margin(arena_bytes: int, margin_fraction: float = DEFAULT_ARENA_MARGIN) -> int:
    """The arena the firmware reserves: the measured one plus `margin_fraction` of it (exact
    decimal arithmetic, so 10% of 1000 is 100, not 101), rounded up to 16 bytes."""
    if not isinstance(arena_bytes, int) or isinstance(arena_bytes, bool) or arena_bytes <= 0:
        raise BadInput(f"arena_bytes must be a positive integer (the TFLM arena measured on the host), "
                       f"got {arena_bytes!r}")
    if not 0 <= margin_fraction <= 10:
        raise BadInput(f"arena margin_fraction must be between 0 and 10, got {margin_fraction!r}")
    margin = Fraction(repr(float(margin_fraction)))
    padded = -(-arena_bytes * (1 + margin) // 1)  # ceiling
    return int(-(-padded // ARENA_ALIGNMENT) * ARENA_ALIGNMENT)


def render_tflm_project(tflite: bytes, graph: Graph, arena_bytes: int, hello: bytes,
                        prefix: str = DEFAULT_PREFIX, margin_fraction: float = DEFAULT_ARENA_MARGIN, *,
                        model_symbol: str = DEFAULT_MODEL_SYMBOL, target: TflmTarget = HOST_TFLM_TARGET,
                        baud: int = DEFAULT_BAUD) -> dict[str, str]:
    """A TFLM firmware project: main.cc (the eq_serve harness), the model data, eq_protocol,
    a Makefile for a TFLM tree, and an Arduino sketch in arduino/<name>/.

    `arena_bytes` is the smallest arena TFLM's AllocateTensors succeeds in on the host (not the
    recording allocator's total, which leaves out the memory planner's temporary memory); the
    firmware reserves it plus `margin_fraction`. `hello` is the HELLO payload (edgeq.protocol.encode_hello);
    the firmware writes the arena it really used into it before sending it. The board support
    (eq_board.h and its implementation, from edgeq.codegen.boards.render_board) goes into board/.
    """
    validate_symbol(prefix, "symbol prefix")
    validate_symbol(model_symbol, "model symbol")
    if not isinstance(hello, (bytes, bytearray)) or len(hello) < HELLO_ARENA_OFFSET + 4:
        raise BadInput(f"HELLO payload must be bytes holding at least the version and arena_bytes fields "
                       f"({HELLO_ARENA_OFFSET + 4} bytes); got {len(hello) if hello is not None else None}")
    if not isinstance(baud, int) or baud <= 0:
        raise BadInput(f"baud must be a positive integer, got {baud!r}")
    op_names = model_op_names(tflite, graph)
    methods = check_tflm_ops(op_names, graph)
    if "VAR_HANDLE" in op_names:
        raise BadInput("the model keeps resource variables (VAR_HANDLE); edgeq's TFLM harness creates no "
                       "MicroResourceVariables for them: convert a model without stateful variables")
    input_tensor = single_tensor(graph, "input")
    output_tensor = single_tensor(graph, "output")
    arena_size = arena_size_with_margin(arena_bytes, margin_fraction)
    sketch = prefix.lstrip("_") or DEFAULT_PREFIX  # Arduino sketch names start with a letter or digit

    context = {
        "notice": generated_notice(tflite),
        "prefix": prefix, "model_symbol": model_symbol, "sketch": sketch,
        "ops": list(zip(op_names, methods)), "op_count": len(methods),
        "arena_measured": arena_bytes, "arena_size": arena_size,
        "margin_percent": f"{float(margin_fraction) * 100:g}", "margin_bytes": arena_size - arena_bytes,
        "input_bytes": input_tensor.nbytes, "output_bytes": output_tensor.nbytes,
        "input_desc": f"{input_tensor.type} {list(input_tensor.shape)}",
        "output_desc": f"{output_tensor.type} {list(output_tensor.shape)}",
        "hello_length": len(hello), "hello_bytes": c_byte_array(bytes(hello)),
        "hello_arena_offset": HELLO_ARENA_OFFSET,
        "baud": baud, "target": target, "tflm_make_command": target.make_command(),
        "tflm_library_dir": target.library_dir(), "arch_flags": " ".join(target.arch_flags),
        "version": edgeq.__version__,
    }
    model_data = render_model_data(tflite, model_symbol)
    runtime = runtime_sources()
    files = {
        "main.cc": render_template("tflm/main.cc.j2", **context),
        "Makefile": render_template("tflm/Makefile.j2", **context),
        "model_data.h": model_data["model_data.h"],
        "model_data.cc": model_data["model_data.cc"],
        **runtime,
    }
    arduino = f"arduino/{sketch}/"
    files.update({
        f"{arduino}{sketch}.ino": render_template("tflm/sketch.ino.j2", **context),
        f"{arduino}{prefix}_harness.cpp": render_template("tflm/harness.cpp.j2", **context),
        f"{arduino}eq_board_arduino.cpp": render_template("tflm/eq_board_arduino.cpp.j2", **context),
        # The board API header every board shares, for the sketch's own implementation of it.
        f"{arduino}eq_board.h": render_template("boards/eq_board.h.j2", notice=context["notice"],
                                                version=edgeq.__version__, board="arduino", cycles_unit="cycles"),
        f"{arduino}model_data.h": model_data["model_data.h"],
        # The Arduino builder compiles .cpp (not .cc) files in a sketch folder.
        f"{arduino}model_data.cpp": model_data["model_data.cc"],
        **{f"{arduino}{name}": text for name, text in runtime.items()},
    })
    return files


def tflm_version() -> str:
    return version("tflite-micro")
