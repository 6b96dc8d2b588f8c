"""Lowering: a TFLite graph to a list of edgeq-c kernel calls with every constant
precomputed (requantization multipliers, folded biases, lookup tables, padding).

The C text of each call refers to tensors through placeholders (`@T12@` for tensor 12,
`@S3@` for step 3's scratch) that `emit` replaces once the arena is planned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

import edgeq.aot.arith as arith
from edgeq.errors import BadInput
from edgeq.graph import Graph, Operator, Tensor

C_TYPES = {"INT8": "int8_t", "INT16": "int16_t", "INT32": "int32_t", "FLOAT32": "float", "UINT8": "uint8_t",
           "INT64": "int64_t"}
ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


@dataclass(frozen=True)
class ConstArray:
    name: str
    ctype: str
    values: np.ndarray


@dataclass
class Step:
    op_index: int
    opcode: str
    kernel: str
    call: str  # one C statement with @T<i>@/@S<i>@ placeholders, evaluating to an eq_status
    decls: list[str] = field(default_factory=list)  # block-local static const declarations
    consts: list[ConstArray] = field(default_factory=list)
    macs: int = 0
    scratch_bytes: int = 0
    reads: tuple[int, ...] = ()
    writes: tuple[int, ...] = ()
    fused: tuple[int, ...] = ()  # indices of other ops this step's kernel runs too


@dataclass
class Lowered:
    steps: list[Step]
    alias: dict[int, int]  # tensor -> the tensor whose memory it shares (RESHAPE)
    consts: list[ConstArray]  # model constants read directly by kernels
    const_tensors: dict[int, str]  # constant tensor index -> C array name
    step_of: dict[int, int]  # op index -> the step that runs it (alias ops run nowhere)
    fused_tensors: frozenset[int]  # tensors a fused kernel never stores


def _type_list(graph: Graph, indices) -> str:
    """'INT8, INT8, INT32', with a long run of one type written once: '49 x INT8'."""
    runs: list[list] = []
    for i in indices:
        if i < 0:
            continue
        t = graph.tensors[i].type
        if runs and runs[-1][0] == t:
            runs[-1][1] += 1
        else:
            runs.append([t, 1])
    return ", ".join(f"{n} x {t}" if n > 3 else ", ".join([t] * n) for t, n in runs)


def _types(graph: Graph, op: Operator) -> str:
    return f"inputs {_type_list(graph, op.inputs)} -> {_type_list(graph, op.outputs)}"


def unsupported(graph: Graph, op: Operator, why: str = "") -> BadInput:
    tail = f": {why}" if why else ""
    return BadInput(f"op {op.index} {op.opcode} ({_types(graph, op)}) is not supported by edgeq-c{tail}")


def dims4(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Right-align a shape to NHWC (TFLite's broadcasting convention)."""
    if len(shape) > 4:
        raise ValueError(f"rank {len(shape)} > 4")
    return tuple([1] * (4 - len(shape)) + list(shape))  # type: ignore[return-value]


def c_dims(shape) -> str:
    n, h, w, c = dims4(tuple(shape))
    return f"{{{n}, {h}, {w}, {c}}}"


FLOAT_RANGES = {"NONE": ("-3.40282347e+38f", "3.40282347e+38f"), "RELU": ("0.0f", "3.40282347e+38f"),
                "RELU6": ("0.0f", "6.0f"), "RELU_N1_TO_1": ("-1.0f", "1.0f")}


def _padding(padding: int, in_size: int, filter_size: int, stride: int, dilation: int, out_size: int) -> int:
    if padding != 0:  # VALID
        return 0
    effective = (filter_size - 1) * dilation + 1
    total = (out_size - 1) * stride + effective - in_size
    return max(total, 0) // 2


# Which filters the DSP kernels take widened (eq_types.h): "auto", those whose weights are each used
# at least WIDEN_MIN_USES times an inference (output pixels times batch): widening costs a byte of flash
# a weight and saves about half an instruction a use (eq_matvec_wide_s8.h against
# eq_matvec_blocked_acc), so below that a byte buys less than eight instructions; "always", every one
# that has a widened kernel (speed before flash); "never", none (flash before speed).
WIDEN_MIN_USES = 16
# EQ_BLOCK of eq_math.h: a row's bytes in a blocked filter's step, on DSP and portable cores and on MVE cores.
DSP_BLOCK, MVE_BLOCK = 4, 16
WIDEN_POLICIES = {"auto": WIDEN_MIN_USES, "always": 1, "never": None}


class Lowering:
    def __init__(self, graph: Graph, prefix: str, variants: Mapping[int, str] | None = None, dsp: bool = False,
                 widen: str = "auto", mve: bool = False):
        self.g = graph
        self.prefix = prefix
        self.dsp = dsp  # the target has the DSP extension: its SIMD kernels and weight layouts
        if widen not in WIDEN_POLICIES:
            raise ValueError(f"unknown widening policy {widen!r}; expected one of {', '.join(WIDEN_POLICIES)}")
        # MVE reads int8 weights 16 a load: nothing is widened, and blocked filters step 16 bytes a row.
        self.mve = mve
        # The DSP kernels' strided depthwise across channels (eq_depthwise_conv_strided_s8) runs where
        # MVE does not: MVE cores take every depthwise layer through the channel plane.
        self.dsp_across = dsp and not mve
        self.widen_min_uses = WIDEN_POLICIES[widen] if dsp and not mve else None
        self.variants = dict(variants or {})  # op index -> in-place kind its kernel must honour
        self.alias: dict[int, int] = {}
        self.const_tensors: dict[int, str] = {}
        self.blocked_tensors: dict[int, str] = {}  # filters also (or only) emitted blocked
        self.wide_tensors: dict[int, str] = {}  # filters also (or only) emitted widened
        self.paired_tensors: dict[int, str] = {}  # int4 filters emitted in the paired layout
        self.model_consts: list[ConstArray] = []

    # ---- helpers ----
    def t(self, i: int) -> Tensor:
        return self.g.tensors[i]

    def root(self, i: int) -> int:
        while i in self.alias:
            i = self.alias[i]
        return i

    def ptr(self, i: int) -> str:
        """C expression for a tensor's data: a const array or an arena placeholder."""
        r = self.root(i)
        t = self.t(r)
        if t.is_constant:
            if r not in self.const_tensors:
                name = f"{self.prefix}_tensor{r}"
                self.const_tensors[r] = name
                self.model_consts.append(ConstArray(name, C_TYPES[t.type], t.numpy().reshape(-1)))
            return self.const_tensors[r]
        return f"@T{r}@"

    def quant(self, i: int) -> tuple[float, int]:
        t = self.t(i)
        if not t.scales:
            raise BadInput(f"tensor {i} '{t.name}' ({t.type}) has no quantization parameters")
        return t.scales[0], (t.zero_points[0] if t.zero_points else 0)

    def fused(self, op: Operator) -> str:
        act = _ACTIVATIONS.get(getattr(op.options, "fusedActivationFunction", 0) or 0, "UNKNOWN")
        if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            raise unsupported(self.g, op, f"fused activation {act}")
        return act

    def activation(self, op: Operator, out: int) -> tuple[int, int]:
        act = self.fused(op)
        scale, zp = self.quant(out)
        if self.t(out).type == "INT16":
            return arith.activation_range(act, scale, zp, -32768, 32767)
        return arith.activation_range(act, scale, zp, -128, 127)

    def float_activation(self, step: Step, op: Operator) -> str:
        lo, hi = FLOAT_RANGES[self.fused(op)]
        step.decls.append(f"static const eq_activation_f32 activation = {{{lo}, {hi}}};")
        return "&activation"

    def kind(self, op: Operator) -> str:
        """The kernel variant an op's types call for: s8, s4 (packed weights), s16, f32."""
        types = tuple(self.t(i).type for i in op.inputs[:2] if i >= 0)
        out = self.t(op.outputs[0]).type
        if types[0] == "FLOAT32" and out == "FLOAT32" and all(t == "FLOAT32" for t in types):
            return "f32"
        second = types[1] if len(types) > 1 else "INT8"
        if types[0] == "INT8" and out == "INT8" and second == "INT8":
            return "s8"
        if types[0] == "INT8" and out == "INT8" and second == "INT4" and op.opcode in ("CONV_2D", "FULLY_CONNECTED"):
            return "s4"
        if types[0] == "INT16" and out == "INT16" and (len(types) < 2 or types[1] in ("INT8", "INT16")):
            return "s16"
        return "?"

    def filter_values(self, filt: Tensor) -> np.ndarray:
        return filt.numpy()  # INT4 unpacked to one int8 a value

    def filter_ptr(self, filt: Tensor) -> str:
        if filt.type == "INT4":
            if filt.index not in self.const_tensors:
                name = f"{self.prefix}_tensor{filt.index}"
                self.const_tensors[filt.index] = name
                self.model_consts.append(ConstArray(name, "uint8_t", np.frombuffer(filt.data, np.uint8)))
            return self.const_tensors[filt.index]
        return self.ptr(filt.index)

    def _filter_layout(self, filt: Tensor, registry: dict[int, str], suffix: str, ctype: str, layout) -> str:
        """An int8 or int4 filter [units][depth] in `layout` (a function of the int8 values), emitted
        once per tensor as a `ctype` array named after it."""
        key = self.root(filt.index)
        if key not in registry:
            registry[key] = f"{self.prefix}_tensor{key}_{suffix}"
            values = self.filter_values(filt).astype(np.int8)
            self.model_consts.append(ConstArray(registry[key], ctype, layout(values.reshape(values.shape[0], -1))))
        return registry[key]

    def filter_ptr_blocked(self, filt: Tensor) -> str:
        """The filter in the blocked layout of eq_types.h (four output channels interleaved word by word)."""
        step = MVE_BLOCK if self.mve else DSP_BLOCK
        return self._filter_layout(filt, self.blocked_tensors, "blocked", "int8_t", lambda w: block_filter(w, step))

    def filter_ptr_wide(self, filt: Tensor) -> str:
        """The filter widened to int16 pairs (eq_types.h)."""
        return self._filter_layout(filt, self.wide_tensors, "wide", "int32_t", widen_filter)

    def filter_ptr_paired(self, filt: Tensor) -> str:
        """An int4 filter in the paired layout (eq_matvec_paired_s4.h)."""
        step = MVE_BLOCK if self.mve else DSP_BLOCK
        return self._filter_layout(filt, self.paired_tensors, "paired", "uint32_t", lambda w: pair_nibbles(w, step))

    def bias64(self, step: Step, op: Operator) -> str:
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = self.t(op.inputs[2])
            if not b.is_constant or b.type != "INT64":
                raise unsupported(self.g, op, "int16x8 needs a constant INT64 bias")
            return self.arr(step, "bias", "int64_t", b.numpy().astype(np.int64))
        return "0"

    def bias_f32(self, op: Operator) -> str:
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            return f"(const float *){self.ptr(op.inputs[2])}"
        return "0"

    def require(self, op: Operator, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
        ins = tuple(self.t(i).type for i in op.inputs if i >= 0)[: len(inputs)]
        outs = tuple(self.t(i).type for i in op.outputs)
        if ins != inputs or outs != outputs:
            raise unsupported(self.g, op)

    def arr(self, step: Step, what: str, ctype: str, values) -> str:
        name = f"{self.prefix}_op{step.op_index}_{what}"
        step.consts.append(ConstArray(name, ctype, np.asarray(values).reshape(-1)))
        return name

    def new_step(self, op: Operator, kernel: str) -> Step:
        return Step(op_index=op.index, opcode=op.opcode, kernel=kernel,
                    reads=tuple(self.root(i) for i in op.inputs if i >= 0 and not self.t(self.root(i)).is_constant),
                    writes=tuple(op.outputs), call="")

    def requant_arrays(self, step: Step, real_multipliers: list[float], bounds=None,
                       output_offset: int = 0) -> tuple[str, int]:
        """The quant struct, and the output offset the kernel is still to add. With `bounds` (each
        channel's accumulator range) also the bounded form the int8 kernels prefer, when
        arith.bounded_requant allows it; its rounding term then takes the output offset too
        (arith.fold_output_offset) where that cannot overflow, and the kernel adds 0."""
        pairs = [arith.quantize_multiplier(m) for m in real_multipliers]
        per_channel = 1 if len(pairs) > 1 else 0
        fast = arith.bounded_requant(pairs, bounds) if bounds is not None else None
        if fast is not None and arith.fold_output_offset(fast, output_offset) is not None:
            fast, output_offset = arith.fold_output_offset(fast, output_offset), 0
        mult = shift = bounded = "0"  # the int8 kernels read the general pairs only without the bounded form
        if fast is None:
            mult = self.arr(step, "multiplier", "int32_t", [p[0] for p in pairs])
            shift = self.arr(step, "shift", "int32_t", [p[1] for p in pairs])
        else:
            bounded = f"{self.prefix}_op{step.op_index}_requant"
            step.decls.append(f"static const eq_requant {bounded}[{len(fast)}] = {{"
                              + ", ".join(f"{{{m}, {r}, {s}}}" for m, r, s in fast) + "};")
        step.decls.append(f"static const eq_quant_params quant = {{{mult}, {shift}, {per_channel}, {bounded}}};")
        return "&quant", output_offset

    def filter_quant(self, op: Operator, filt: Tensor, channels: int) -> list[float]:
        if any(z != 0 for z in filt.zero_points):
            raise unsupported(self.g, op, "filter zero points must be 0")
        scales = filt.scales if len(filt.scales) > 1 else filt.scales * channels
        if len(scales) != channels:
            raise unsupported(self.g, op, f"{len(filt.scales)} filter scales for {channels} channels")
        return list(scales)

    def bias_values(self, op: Operator, channels: int) -> np.ndarray:
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = self.t(op.inputs[2])
            if not b.is_constant or b.type != "INT32":
                raise unsupported(self.g, op, "bias must be a constant INT32 tensor")
            return b.numpy().astype(np.int64).reshape(-1)
        return np.zeros(channels, np.int64)

    @staticmethod
    def fold(bias: np.ndarray, input_offset: int, filter_sums: np.ndarray) -> np.ndarray:
        folded = bias.astype(np.int64) + np.int64(input_offset) * filter_sums.astype(np.int64)
        return ((folded + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)

    # ---- ops ----


def block_filter(w: np.ndarray, step: int = DSP_BLOCK) -> np.ndarray:
    """[units][depth] int8 weights in the blocked layout (eq_types.h, EQ_BLOCK = `step`): for each
    group of four units, the four rows' bytes step*i..step*i+step-1 one after the other, then the
    four rows' last depth % step bytes one row after the other; the units % 4 last rows as they are.
    Same size, but for MVE's 16-byte steps, whose rows are first zero-padded to whole steps
    (EQ_BLOCK_ROW) so that the kernels load no partial weight vector."""
    if step == MVE_BLOCK and w.shape[1] % step:
        w = np.pad(w, ((0, 0), (0, -w.shape[1] % step)))
    units, depth = w.shape
    groups, whole = units // 4, depth // step * step
    g = w[:groups * 4].reshape(groups, 4, depth)
    body = g[:, :, :whole].reshape(groups, 4, whole // step, step).transpose(0, 2, 1, 3).reshape(groups, 4 * whole)
    tail = g[:, :, whole:].reshape(groups, 4 * (depth - whole))
    return np.concatenate([np.concatenate([body, tail], axis=1).reshape(-1), w[groups * 4:].reshape(-1)])


def widen_filter(w: np.ndarray) -> np.ndarray:
    """[units][depth] int8 weights in the widened layout (eq_types.h): int32 words of two int16
    weights, a row's step i being (w[4i] | w[4i+2] << 16, w[4i+1] | w[4i+3] << 16), zero past
    the depth; for each group of four units the four rows' words step by step, then the
    units % 4 last rows one after the other."""
    units, depth = w.shape
    steps = -(-depth // 4)
    padded = np.zeros((units, steps * 4), np.int64)
    padded[:, :depth] = w
    q = padded.reshape(units, steps, 4)
    words = np.stack([(q[..., 0] & 0xFFFF) | (q[..., 2] << 16), (q[..., 1] & 0xFFFF) | (q[..., 3] << 16)], axis=-1)
    groups = units // 4
    body = words[:groups * 4].reshape(groups, 4, steps, 2).transpose(0, 2, 1, 3).reshape(-1)
    flat = np.concatenate([body, words[groups * 4:].reshape(-1)])
    return ((flat + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)


def conv_add_fusions(graph: Graph) -> dict[int, int]:
    """ADD op index -> the int8 CONV_2D op whose output only that ADD reads (ResNet's residual
    branch). The pair runs as one kernel at the ADD's place, and the convolution's output is
    never stored. Where both inputs qualify, the later convolution is taken: moving it to the
    ADD stretches its input's lifetime the least."""
    producer = {t: op for op in graph.operators for t in op.outputs}
    readers: dict[int, int] = {}
    for op in graph.operators:
        for t in set(op.inputs):
            readers[t] = readers.get(t, 0) + 1
    ends = set(graph.inputs) | set(graph.outputs)
    fusions = {}
    for op in graph.operators:
        if op.opcode != "ADD" or len(op.inputs) != 2 or op.inputs[0] == op.inputs[1]:
            continue
        out = graph.tensors[op.outputs[0]]
        ins = [graph.tensors[i] for i in op.inputs]
        if out.type != "INT8" or len(out.shape) != 4 or any(
                t.type != "INT8" or t.is_constant or tuple(t.shape) != tuple(out.shape) for t in ins):
            continue
        candidates = []
        for t in op.inputs:
            conv = producer.get(t)
            if (conv is None or conv.opcode != "CONV_2D" or readers.get(t) != 1 or t in ends
                    or len(conv.inputs) < 2 or graph.tensors[conv.inputs[0]].type != "INT8"
                    or graph.tensors[conv.inputs[1]].type != "INT8"):
                continue
            candidates.append(conv.index)
        if candidates:
            fusions[op.index] = max(candidates)
    return fusions


def pair_nibbles(w: np.ndarray, step: int = DSP_BLOCK) -> np.ndarray:
    """[units][depth] int4 weights (int8 values in [-8, 7]) in the paired layout
    (eq_matvec_paired_s4.h): for a row's step s of eight, one word whose byte k holds weight
    8s + k in its low nibble and 8s + 4 + k in its high one; rows two by two, their words
    alternating step by step; rows zero-padded to whole steps and to an even count. Half a byte a
    weight, as TFLite's packed INT4. With MVE's step (MVE_BLOCK), a row's step is 32 weights in 16
    bytes (weight 32s + k low, 32s + 16 + k high in byte k) and rows go four by four."""
    units, depth = w.shape
    if step == MVE_BLOCK:
        steps, rows = -(-depth // 32), -(-units // 4) * 4
        padded = np.zeros((rows, steps * 32), np.uint8)
        padded[:units, :depth] = w.astype(np.int8).view(np.uint8) & 0xF
        nibbles = padded.reshape(rows, steps, 2, 16)  # [row][step][half][k]
        byte = nibbles[:, :, 0, :] | (nibbles[:, :, 1, :] << 4)
        return byte.reshape(rows // 4, 4, steps, 16).transpose(0, 2, 1, 3).reshape(-1).view("<u4").astype(np.uint32)
    steps = -(-depth // 8)
    padded = np.zeros((units + units % 2, steps * 8), np.int64)
    padded[:units, :depth] = w
    nibbles = padded.reshape(-1, steps, 2, 4) & 0xF  # [row][step][half][k]
    byte = nibbles[:, :, 0, :] | (nibbles[:, :, 1, :] << 4)
    words = (byte * (1 << (8 * np.arange(4)))).sum(axis=2)  # [row][step]
    return words.reshape(-1, 2, steps).transpose(0, 2, 1).reshape(-1).astype(np.uint32)
