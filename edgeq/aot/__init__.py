"""edgeq-c: an ahead-of-time compiler from a quantized .tflite to plain C.

`compile_model` lowers every operator to a call of a C99 kernel of edgeq/runtime with
its constants precomputed, plans a static arena (kernels writing over their dying input
where that is safe, a residual ADD fused into the convolution feeding it), and returns the
generated `<prefix>_model.h/.c` together with the runtime sources they need.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

import edgeq.aot.emit as emit
from edgeq.aot.lifetimes import (
    DEPTHWISE_CHANNEL,
    ELEMENTWISE,
    IN_PLACE_KINDS,
    POINTWISE_PIXEL,
    WINDOW_ROWS,
    buffers_from_graph,
    in_place_rules,
)
from edgeq.aot.lower import lower, ops_without_kernel
from edgeq.aot.memory import Buffer, InPlace, MemoryPlan, plan_memory
from edgeq.csource import ARENA_ALIGNMENT, generated_notice, validate_symbol
from edgeq.errors import BadInput
from edgeq.graph import Graph, read_graph
from edgeq.resources import RUNTIME_DIR

__all__ = ["CompiledModel", "TensorInfo", "compile_if_supported", "compile_model", "ops_without_kernel", "plan_arena",
           "runtime_sources"]

_COMMON_HEADERS = ("eq_types.h", "eq_math.h", "eq_kernels.h")
_INCLUDE = re.compile(r'^#include "([^"]+)"', re.M)
_CALL = re.compile(r"\b(eq_[a-z0-9_]+)\s*\(")
_CONST_DECL = re.compile(r"static const (\w+) \w+\[(\d+)\]")
_CTYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4,
                "int64_t": 8, "float": 4}


@dataclass(frozen=True)
class TensorInfo:
    tensor: int
    name: str
    dtype: str  # TFLite type name, "INT8", "FLOAT32", ...
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    nbytes: int


@dataclass(frozen=True)
class CompiledModel:
    files: dict[str, str]  # file name -> text: <prefix>_model.h/.c and the runtime sources used
    prefix: str
    arena_bytes: int
    lower_bound_bytes: int
    live_bytes: tuple[int, ...]  # bytes alive at each step (model inputs first)
    macs: tuple[int, ...]  # multiply-accumulates of each step
    ops: tuple[str, ...]  # "<op index> <OPCODE> -> <kernel>" for each step
    kernels: tuple[str, ...]  # distinct kernel functions used
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    sha256: str
    # The arena plan and what it was made from, for check_plan and reports. Steps count the
    # kernel calls in order; plan.in_place names the steps that write over their input.
    plan: MemoryPlan | None = None
    buffers: tuple[Buffer, ...] = ()
    in_place_rules: tuple[InPlace, ...] = ()
    dsp: bool = False  # the DSP kernels and weight layouts, which only cores with the DSP extension run
    mve: bool = False  # the MVE kernels' weight layouts (16-byte blocked steps), for cores with Helium only
    widen: str = "never"  # which filters were widened for them (lowering.WIDEN_POLICIES)

    @property
    def sources(self) -> list[str]:
        return sorted(name for name in self.files if name.endswith(".c"))

    @property
    def const_bytes(self) -> int:
        """Bytes of every `static const` array in the generated model: its share of flash."""
        return sum(_CTYPE_BYTES.get(ctype, 4) * int(n) for name, text in self.files.items()
                   if name.endswith("_model.c") for ctype, n in _CONST_DECL.findall(text))


def check_prefix(prefix: str) -> str:
    """A symbol prefix C accepts that does not clash with the runtime's own eq_ names."""
    validate_symbol(prefix, "prefix")
    if prefix.lower().startswith("eq_"):
        raise BadInput(f"prefix {prefix!r} clashes with the runtime's eq_ names")
    return prefix


def runtime_sources(kernels) -> dict[str, str]:
    """The .c file of each kernel named, of every kernel they call, and every runtime header
    they include."""
    files = {n: (RUNTIME_DIR / n).read_text() for n in _COMMON_HEADERS}
    pending = sorted(f"{k}.c" for k in set(kernels))
    while pending:
        name = pending.pop()
        if name in files:
            continue
        files[name] = (RUNTIME_DIR / name).read_text()
        needed = _INCLUDE.findall(files[name]) + [f"{f}.c" for f in _CALL.findall(files[name])]
        pending += [n for n in needed if n not in files and (RUNTIME_DIR / n).is_file()]
    return dict(sorted(files.items()))


def _info(graph, index: int, root: int) -> TensorInfo:
    t = graph.tensors[index]
    return TensorInfo(tensor=index, name=t.name, dtype=t.type, shape=tuple(t.shape),
                      scale=float(t.scales[0]) if t.scales else 0.0,
                      zero_point=int(t.zero_points[0]) if t.zero_points else 0, nbytes=t.nbytes)


def _has_in_place_kernel(graph, op, kind: str) -> bool:
    """Whether edgeq-c has the kernel variant an in-place rule of this kind assumes."""
    if kind == ELEMENTWISE:  # every element-wise kernel runs in ascending order, reading before writing
        return True
    if op.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D"):  # no row-buffered pooling kernels
        return False
    types = {graph.tensors[t].type for t in (op.inputs[0], op.inputs[1], op.outputs[0])}
    return kind in (DEPTHWISE_CHANNEL, POINTWISE_PIXEL, WINDOW_ROWS) and types == {"INT8"}


def plan_arena(graph, lowered, in_place: bool = True, dsp: bool = False
               ) -> tuple[list[Buffer], list[InPlace], MemoryPlan]:
    """Lifetimes, the in-place rules edgeq-c's kernels can honour (none unless `in_place`), and
    the arena plan."""
    aliases = {d: s for d, s in lowered.alias.items() if not graph.tensors[s].is_constant}
    buffers = buffers_from_graph(graph, aliases, skip=lowered.fused_tensors, step_of=lowered.step_of)
    op_at = {}
    for op_index, step in lowered.step_of.items():
        op_at.setdefault(step, []).append(graph.operators[op_index])
    offered = in_place_rules(graph, buffers, aliases, alignment=ARENA_ALIGNMENT, kinds=IN_PLACE_KINDS,
                             step_of=lowered.step_of, dsp=dsp)
    rules = [r for r in offered if in_place and all(
        _has_in_place_kernel(graph, op, r.kind) for op in op_at[r.step] if op.outputs[0] == r.output)]
    scratch = {k: s.scratch_bytes for k, s in enumerate(lowered.steps) if s.scratch_bytes}
    plan = plan_memory(buffers, rules, alignment=ARENA_ALIGNMENT, scratch=scratch)
    return buffers, rules, plan


# What the kernels and the board support take beside the model's constants, when deciding whether
# widened weights still fit: edgeq-c's firmware code is 8-22 KB on the MPS2 boards at -O2.
WIDENED_CODE_ALLOWANCE_BYTES = 32 * 1024


def compile_if_supported(tflite: bytes, source: str = "<bytes>", graph: Graph | None = None, dsp: bool = False,
                         flash_bytes: int | None = None, widen: str = "auto", mve: bool = False
                         ) -> tuple[CompiledModel | None, str | None]:
    """The compiled model, or None and why edgeq-c cannot run it (an op or a type it lacks)."""
    try:
        return compile_model(tflite, source=source, graph=graph, dsp=dsp, flash_bytes=flash_bytes, widen=widen,
                             mve=mve), None
    except BadInput as exc:
        return None, str(exc)


def compile_model(tflite: bytes, prefix: str = "edgeq", source: str = "<bytes>",
                  in_place: bool = True, graph: Graph | None = None, dsp: bool = False,
                  flash_bytes: int | None = None, widen: str = "auto", mve: bool = False) -> CompiledModel:
    """Compile a quantized .tflite into C. Raises BadInput for ops or types edgeq-c lacks.

    `in_place=False` gives every tensor its own bytes (no kernel writes over its input), for
    comparison and debugging; the arena is then at least `lower_bound_bytes`. `graph` is the
    model already read (read_graph), so a caller that has it does not parse the flatbuffer again.
    `dsp`: the target core has the DSP extension, so the kernels and weight layouts made for it
    are used, and the filters `widen` names (lowering.WIDEN_POLICIES) are widened (more flash,
    fewer instructions); the code runs on any core. Given the device's `flash_bytes`, widened
    weights are taken only when the constants fit beside the code; otherwise none are, so that a
    model that fits in int8 is not pushed out of the flash for speed (`CompiledModel.widen` says
    which). `mve`: the core has Helium, whose kernels take the blocked filters in 16-byte steps and
    widen nothing; that code needs such a core."""
    widen = "never" if mve else widen
    compiled = _compile(tflite, prefix, source, in_place, graph, dsp, widen, mve)
    if (dsp and widen != "never" and flash_bytes is not None
            and compiled.const_bytes + WIDENED_CODE_ALLOWANCE_BYTES > flash_bytes):
        return _compile(tflite, prefix, source, in_place, graph, dsp, "never", mve)
    return compiled


def _compile(tflite: bytes, prefix: str, source: str, in_place: bool, graph: Graph | None, dsp: bool,
             widen: str, mve: bool) -> CompiledModel:
    check_prefix(prefix)
    graph = graph if graph is not None else read_graph(tflite, source)
    lowered = lower(graph, prefix, dsp=dsp, widen=widen, mve=mve)

    def root(i: int) -> int:
        while i in lowered.alias:
            i = lowered.alias[i]
        return i

    for o in graph.outputs:
        if graph.tensors[root(o)].is_constant:
            raise BadInput(f"{source}: model output {o} is a constant")
    # `dsp` there chooses the strided depthwise kernel's scratch, which MVE cores do not use
    buffers, rules, plan = plan_arena(graph, lowered, in_place, dsp and not mve)
    # The plan overlaps some ops' input and output: lower those again with the kernel variant
    # that allows it (element-wise kernels are safe in place as they are).
    variants = {lowered.steps[r.step].op_index: r.kind for r in plan.in_place if r.kind != ELEMENTWISE}
    if variants:
        lowered = lower(graph, prefix, variants, dsp, widen, mve)
    steps = lowered.steps
    for k, s in enumerate(steps):
        if s.scratch_bytes > plan.scratch_bytes.get(k, 0):
            raise AssertionError(f"step {k} ({s.kernel}) needs {s.scratch_bytes} scratch bytes, "
                                 f"the plan has {plan.scratch_bytes.get(k, 0)}")

    sha = hashlib.sha256(tflite).hexdigest()
    banner = generated_notice(tflite)
    tensor_offsets = dict(plan.offsets)
    scratch_offsets = {steps[k].op_index: o for k, o in plan.scratch_offsets.items()}

    def io_view(i: int) -> dict:
        t = graph.tensors[i]
        return {"tensor": i, "name": t.name.replace("*/", "* /"), "dtype": t.type, "shape": list(t.shape) or [1],
                "elements": t.element_count, "nbytes": t.nbytes,
                "scale": repr(float(np.float32(t.scales[0]))) + "f"
                if t.scales else "0.0f",
                "zero_point": t.zero_points[0] if t.zero_points else 0, "ptr": f"@T{root(i)}@"}

    consts = lowered.consts + [c for s in steps for c in s.consts]
    files = emit.render(prefix=prefix, banner=banner, arena_bytes=plan.arena_bytes, consts=consts, steps=steps,
                        inputs=[io_view(i) for i in graph.inputs], outputs=[io_view(o) for o in graph.outputs],
                        tensor_offsets=tensor_offsets, scratch_offsets=scratch_offsets)
    kernels = tuple(dict.fromkeys(s.kernel for s in steps))
    files.update(runtime_sources(kernels))
    return CompiledModel(
        files=files, prefix=prefix, arena_bytes=max(plan.arena_bytes, 16), lower_bound_bytes=plan.lower_bound_bytes,
        live_bytes=plan.live_bytes, macs=tuple(s.macs for s in steps),
        ops=tuple(f"{s.op_index} {s.opcode} -> {s.kernel}" for s in steps), kernels=kernels,
        inputs=tuple(_info(graph, i, root(i)) for i in graph.inputs),
        outputs=tuple(_info(graph, o, root(o)) for o in graph.outputs), sha256=sha,
        plan=plan, buffers=tuple(buffers), in_place_rules=tuple(rules), dsp=dsp, mve=mve,
        widen=widen if dsp else "never")
