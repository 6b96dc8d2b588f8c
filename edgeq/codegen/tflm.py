"""The TFLM firmware project: main.cc serving the model over edgeq's serial protocol, the model
data, a Makefile that compiles TFLM from a user's source tree (the framework and the model's
CMSIS-NN kernels, cached) and links the firmware, and an Arduino sketch."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from importlib.metadata import version

import edgeq
from edgeq.codegen.firmware import board_advice, board_files, finish_project, require_toolchain, toolchain_flags
from edgeq.codegen.sources import (
    DEFAULT_MODEL_SYMBOL,
    DEFAULT_PREFIX,
    FIRMWARE_PROGRAM,
    HELLO_ARENA_OFFSET,
    RuntimeId,
    Step,
    describe,
    hello_payload,
    io_tensors,
    render_model_data,
    runtime_sources,
)
from edgeq.codegen.tflm_ops import check_tflm_ops, model_op_names
from edgeq.codegen.tflm_sources import FRAMEWORK_DIRS, FRAMEWORK_EXCLUDED, KERNELS, cmsis_device, kernel_sources
from edgeq.csource import ARENA_ALIGNMENT, c_byte_array, generated_notice, render_template, validate_symbol
from edgeq.errors import BadInput
from edgeq.graph import Graph
from edgeq.measure.costmodel import count_work

DEFAULT_ARENA_MARGIN = 0.10
DEFAULT_BAUD = 115200
# TFLM's release build (BUILD_TYPE=release): the framework for size, the kernels for speed.
TFLM_CORE_OPT = "-Os"
TFLM_KERNEL_OPT = "-O2"


@dataclass(frozen=True)
class TflmTarget:
    """How the firmware and the TFLM library under it are compiled and linked: the profile's
    toolchain and the board's flags (edgeq.codegen.project builds it from a profile)."""

    device: str = "host"                 # the profile's name, for the Makefile's header
    compiler: str = "gcc"                # the C compiler; C++ is its g++ (or clang++) sibling
    tool_prefix: str = ""                # binutils prefix, "arm-none-eabi-" when cross-compiling
    optimize: str = "-O2"                # the application's -O level (main.cc, the model, the board)
    arch_flags: tuple[str, ...] = ()     # -mcpu/-mfpu/-mfloat-abi: the library and firmware share them
    link_flags: tuple[str, ...] = ()
    cmsis_device: str = ""               # ARMCM4...: the CMSIS device header, none on the host
    bare_metal: bool = False             # board/linker.ld and startup code are part of the board
    board_advice: str = "re-run edgeq generate to render it"
    core_optimize: str = TFLM_CORE_OPT
    kernel_optimize: str = TFLM_KERNEL_OPT

    @property
    def cxx(self) -> str:
        for c, cxx in (("gcc", "g++"), ("clang", "clang++")):
            if self.compiler.endswith(c):
                return self.compiler[: -len(c)] + cxx
        return self.compiler + "++"


HOST_TFLM_TARGET = TflmTarget()


def cortex_m_tflm_target(cpu: str, arch_flags: tuple[str, ...] | list[str] = (), link_flags=(), *,
                         device: str = "cortex-m", optimize: str = "-Os") -> TflmTarget:
    """The bare-metal arm-none-eabi build of TFLM with CMSIS-NN kernels for a Cortex-M core."""
    return TflmTarget(device=device, compiler="arm-none-eabi-gcc", tool_prefix="arm-none-eabi-", optimize=optimize,
                      arch_flags=tuple(arch_flags), link_flags=tuple(link_flags), cmsis_device=cmsis_device(cpu),
                      bare_metal=True)


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


# CMSIS-NN's MVE kernels (arm_nnsupportfunctions.h): depthwise input channels handled a block.
CMSIS_NN_CH_IN_BLOCK_MVE = 124


def cmsis_nn_mve_arena_bytes(graph: Graph) -> int:
    """What CMSIS-NN's MVE kernels take from the arena beyond what the host's reference kernels do: the
    arena is measured on the host, and TFLM's CMSIS-NN FULLY_CONNECTED keeps each layer's int32 weight
    sums (one per output) as a persistent buffer on MVE cores, and MVE convolutions ask for im2col and
    depthwise scratch of their own (arm_*_get_buffer_size_mve). Sums add up; scratch is at most the
    largest. An upper bound: the firmware's HELLO reports what TFLM really used."""
    persistent, scratch = 0, 0
    for op in graph.operators:
        tensors = [graph.tensors[i] if i >= 0 else None for i in op.inputs]
        if len(tensors) < 2 or tensors[0] is None or tensors[0].type != "INT8" or tensors[1] is None:
            continue
        filter_shape = tensors[1].shape
        if op.opcode == "FULLY_CONNECTED":
            sums = filter_shape[0] * 4
            if tensors[1].is_constant:
                persistent += -(-sums // ARENA_ALIGNMENT) * ARENA_ALIGNMENT
            else:
                scratch = max(scratch, sums)
        elif op.opcode == "CONV_2D" and len(filter_shape) == 4:
            columns = filter_shape[1] * filter_shape[2] * filter_shape[3]
            scratch = max(scratch, 4 * -(-columns // 16) * 16)
        elif op.opcode == "DEPTHWISE_CONV_2D" and len(filter_shape) == 4:
            scratch = max(scratch, 4 * CMSIS_NN_CH_IN_BLOCK_MVE * filter_shape[1] * filter_shape[2])
    return persistent + (-(-scratch // ARENA_ALIGNMENT) * ARENA_ALIGNMENT)


def render_tflm_project(tflite: bytes, graph: Graph, arena_bytes: int, hello: bytes,
                        prefix: str = DEFAULT_PREFIX, margin_fraction: float = DEFAULT_ARENA_MARGIN, *,
                        model_symbol: str = DEFAULT_MODEL_SYMBOL, target: TflmTarget = HOST_TFLM_TARGET,
                        baud: int = DEFAULT_BAUD, mve_bytes: int = 0) -> dict[str, str]:
    """A TFLM firmware project: main.cc (the eq_serve harness), the model data, eq_protocol,
    a Makefile for a TFLM tree, and an Arduino sketch in arduino/<name>/.

    `arena_bytes` is the smallest arena TFLM's AllocateTensors succeeds in on the host (not the
    recording allocator's total, which leaves out the memory planner's temporary memory); the
    firmware reserves it plus `mve_bytes` (cmsis_nn_mve_arena_bytes, on an MVE core) plus
    `margin_fraction`. `hello` is the HELLO payload (edgeq.protocol.encode_hello); the firmware
    writes the arena it really used into it before sending it. The board support
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
    inputs, outputs = io_tensors(graph, "input"), io_tensors(graph, "output")
    arena_size = arena_size_with_margin(arena_bytes + mve_bytes, margin_fraction)
    sketch = prefix.lstrip("_") or DEFAULT_PREFIX  # Arduino sketch names start with a letter or digit

    context = {
        "notice": generated_notice(tflite),
        "prefix": prefix, "model_symbol": model_symbol, "sketch": sketch,
        "ops": list(zip(op_names, methods)), "op_count": len(methods),
        "step_count": max(1, len(graph.operators)),  # the profiled build counts each operator's Invoke
        "arena_measured": arena_bytes, "arena_size": arena_size,
        "margin_percent": f"{float(margin_fraction) * 100:g}", "mve_bytes": mve_bytes,
        "margin_bytes": arena_size - arena_bytes - mve_bytes,
        "input_bytes": [t.nbytes for t in inputs], "output_bytes": [t.nbytes for t in outputs],
        "inputs_desc": describe(inputs), "outputs_desc": describe(outputs),
        "hello_length": len(hello), "hello_bytes": c_byte_array(bytes(hello)),
        "hello_arena_offset": HELLO_ARENA_OFFSET,
        "baud": baud, "version": edgeq.__version__,
    }
    kernels = kernel_sources(op_names)
    makefile = {
        "device": target.device, "program": FIRMWARE_PROGRAM, "cc": target.compiler, "cxx": target.cxx,
        "ar": f"{target.tool_prefix}ar", "size": f"{target.tool_prefix}size",
        "objcopy": f"{target.tool_prefix}objcopy" if target.tool_prefix else "",
        "optimize": target.optimize, "arch_flags": " ".join(target.arch_flags),
        "link_flags": " ".join(target.link_flags), "bare_metal": target.bare_metal,
        "board_files": ["eq_board.h", "eq_board.c"] + (["linker.ld"] if target.bare_metal else []),
        "board_advice": target.board_advice, "core_optimize": target.core_optimize,
        "kernel_optimize": target.kernel_optimize, "cmsis_device": target.cmsis_device,
        "framework_dirs": FRAMEWORK_DIRS, "framework_excluded": FRAMEWORK_EXCLUDED,
        "kernel_files": kernels.paths, "cmsis_nn_dirs": kernels.cmsis_nn_dirs,
        "kernel_needs": [(path, " and ".join("every kernel" if op == "all" else op for op in ops))
                         for path, ops in kernels.files.items()],
    }
    model_data = render_model_data(tflite, model_symbol)
    runtime = runtime_sources()
    files = {
        "main.cc": render_template("tflm/main.cc.j2", **context),
        "Makefile": render_template("tflm/Makefile.j2", **context, **makefile),
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


def tflm_target(profile, params) -> TflmTarget:
    """The TFLM build for a profile: the same compiler, -O level and board flags as its edgeq-c firmware,
    and the CMSIS device header of its core on a microcontroller."""
    require_toolchain(profile, "tflm")
    arch_flags, link = toolchain_flags(profile, params)
    return TflmTarget(device=profile.name, compiler=profile.toolchain.compiler, tool_prefix=profile.toolchain.prefix,
                      optimize=profile.toolchain.optimize, arch_flags=tuple(arch_flags), link_flags=tuple(link),
                      cmsis_device=cmsis_device(profile.core) if profile.core.lower().startswith("cortex-m") else "",
                      bare_metal=profile.kind == "mcu", board_advice=board_advice(profile, params))


def _kernel_file(op: str) -> str | None:
    """The TFLM kernel file that registers `op` (CMSIS-NN's where it has one), under kernels/."""
    try:
        files = kernel_sources([op]).files
    except BadInput:
        return None
    return next((path.removeprefix(f"{KERNELS}/") for path, ops in files.items() if op in ops), None)


def tflm_steps(graph: Graph) -> tuple[Step, ...]:
    """Each operator's Invoke, as the profiled TFLM firmware counts them: op, kernel file, MACs."""
    def shape(index: int) -> tuple[int, ...]:
        op = graph.operators[index]
        return tuple(graph.tensors[op.outputs[0]].shape) if op.outputs else ()

    return tuple(Step(w.index, w.opcode, _kernel_file(w.opcode), shape(w.index), w.macs) for w in count_work(graph))


def render_tflm_firmware(profile, tflite: bytes, graph: Graph, arena_bytes: int, stem: str,
                         runtime: RuntimeId) -> dict[str, str | bytes]:
    """The TFLM firmware project for `profile`: render_tflm_project with the profile's board support,
    toolchain and baud, the .tflite and the manifest; `arena_bytes` is the smallest arena TFLM's
    AllocateTensors accepts on the host."""
    board, params = board_files(profile)
    mve_bytes = cmsis_nn_mve_arena_bytes(graph) if profile.has_mve else 0
    hello = hello_payload(tflite, graph, runtime, profile.clock_hz, 0)
    files = {**render_tflm_project(tflite, graph, arena_bytes, hello, target=tflm_target(profile, params),
                                   baud=profile.serial.baud, mve_bytes=mve_bytes), **board}
    return finish_project(files, profile, params, tflite, stem, runtime,
                          arena_bytes=arena_size_with_margin(arena_bytes + mve_bytes),
                          steps=tflm_steps(graph), registry_tflm=True)
