"""What the arena planner is given, read off a graph: each tensor's lifetime as a Buffer, and the
in-place rules (an op may write its output over its input) that edgeq-c's kernels can honour;
docs/edgeq-c-memory.md derives each rule."""

from __future__ import annotations

from typing import Collection, Mapping, Sequence

import numpy as np

from edgeq.aot.memory import Buffer, InPlace, align_down
from edgeq.graph import NUMPY_DTYPES, Graph

# Ops whose output element i depends only on input element i (of an input with the output's
# element count), computed in ascending order, reading in[i] before writing out[i].
ELEMENTWISE_OPS = frozenset({
    "ADD", "SUB", "MUL", "RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "LOGISTIC", "TANH",
    "HARD_SWISH", "QUANTIZE", "DEQUANTIZE", "ABS", "NEG",
})
# Kinds of in-place rule; see docs/edgeq-c-memory.md for each derivation.
ELEMENTWISE, DEPTHWISE_CHANNEL, POINTWISE_PIXEL, WINDOW_ROWS = (
    "elementwise", "depthwise_channel", "pointwise_pixel", "window_rows")
IN_PLACE_KINDS = (ELEMENTWISE, DEPTHWISE_CHANNEL, POINTWISE_PIXEL, WINDOW_ROWS)
# WINDOW_ROWS needs kernels that buffer an output row; callers opt in when theirs do (edgeq-c
# has them for int8 CONV_2D and DEPTHWISE_CONV_2D).
DEFAULT_IN_PLACE_KINDS = (ELEMENTWISE, DEPTHWISE_CHANNEL, POINTWISE_PIXEL)
_ALIAS_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})


def _resolver(graph: Graph, aliases: Mapping[int, int]):
    def root(t: int) -> int:
        seen = [t]
        while t in aliases:
            t = aliases[t]
            if t in seen:
                raise ValueError(f"aliases form a cycle through tensors {seen}")
            seen.append(t)
        return t
    for a in aliases:
        r = root(a)
        if not 0 <= r < len(graph.tensors) or graph.tensors[r].is_constant:
            raise ValueError(f"alias {a} -> {aliases[a]}: tensor {r} is not an activation of the graph")
    return root


def reshape_aliases(graph: Graph) -> dict[int, int]:
    """RESHAPE/SQUEEZE/EXPAND_DIMS outputs that can share their input's bytes: output -> input."""
    return {op.outputs[0]: op.inputs[0] for op in graph.operators
            if op.opcode in _ALIAS_OPS and op.inputs and op.outputs
            and not graph.tensors[op.inputs[0]].is_constant
            and graph.tensors[op.outputs[0]].nbytes == graph.tensors[op.inputs[0]].nbytes}


def _schedule(graph: Graph, step_of: Mapping[int, int] | None) -> tuple[dict[int, int], int]:
    """op index -> the step it runs at, and the number of steps. Default: op i runs at step i."""
    if step_of is None:
        return {op.index: op.index for op in graph.operators}, len(graph.operators)
    known = {op.index for op in graph.operators}
    bad = sorted(set(step_of) - known)
    if bad or any(s < 0 for s in step_of.values()):
        raise ValueError(f"step_of names ops {bad} the graph lacks or a negative step")
    return dict(step_of), max(list(step_of.values()) + [-1]) + 1


def buffers_from_graph(graph: Graph, aliases: Mapping[int, int] | None = None,
                       skip: Collection[int] = (), step_of: Mapping[int, int] | None = None) -> list[Buffer]:
    """One buffer per activation tensor, its lifetime from the op order.

    `aliases` maps a tensor that shares another's bytes (a RESHAPE output) to that tensor; the
    root's lifetime covers its aliases'. `skip` names tensors fused away: the ops they joined run
    as one kernel, so the inputs of the fused ops live to the group's last step and the outputs
    from its first. `step_of` (op index -> step) is the schedule when it is not one op a step:
    ops it leaves out do not run (aliases), and ops given one step run as one kernel there, which
    makes a fused group's lifetimes exact instead of widened.
    """
    aliases = dict(aliases or {})
    skip = set(skip)
    root = _resolver(graph, aliases)
    ends = set(graph.inputs) | set(graph.outputs)
    if skip & ends or skip & (set(aliases) | set(aliases.values())):
        raise ValueError(f"tensors {sorted(skip & (ends | set(aliases) | set(aliases.values())))} "
                         "are model inputs, outputs or aliases and cannot be skipped")
    at, n_steps = _schedule(graph, step_of)
    ops = [op for op in graph.operators if op.index in at]
    group = {op.index: op.index for op in ops}

    def find(k: int) -> int:
        while group[k] != k:
            group[k] = group[group[k]]
            k = group[k]
        return k
    producer = {t: op.index for op in ops for t in op.outputs}
    for op in ops:
        for t in op.inputs:
            if t in skip and t in producer:
                group[find(op.index)] = find(producer[t])
    span: dict[int, list[int]] = {}
    for op in ops:
        g = span.setdefault(find(op.index), [at[op.index], at[op.index]])
        g[0], g[1] = min(g[0], at[op.index]), max(g[1], at[op.index])

    def activation(t: int) -> bool:
        return t >= 0 and t not in skip and not graph.tensors[t].is_constant
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in graph.inputs:
        first[root(t)] = -1
        last.setdefault(root(t), -1)
    for op in sorted(ops, key=lambda op: (at[op.index], op.index)):
        lo, hi = span[find(op.index)]
        for t in filter(activation, op.outputs):
            r = root(t)
            first[r] = min(first.get(r, lo), lo)
            last[r] = max(last.get(r, lo), lo)
        for t in filter(activation, op.inputs):
            r = root(t)
            if r not in first:  # read before any op writes it: state the caller fills in
                first[r] = -1
            last[r] = max(last.get(r, hi), hi)
    for t in graph.outputs:
        last[root(t)] = n_steps
    for t in graph.tensors:
        if t.is_variable and not t.is_constant:
            first[t.index], last[t.index] = -1, n_steps
    return [Buffer(t, graph.tensors[t].nbytes, first[t], last[t]) for t in sorted(first)]


def _itemsize(graph: Graph, t: int) -> int:
    kind = graph.tensors[t].type
    return np.dtype(NUMPY_DTYPES[kind]).itemsize if kind in NUMPY_DTYPES and kind != "INT4" else 0


def _pad_top(options, in_h: int, out_h: int, stride: int, kernel_h: int, dilation: int) -> int:
    if getattr(options, "padding", 0) != 0:  # Padding.VALID
        return 0
    return max((out_h - 1) * stride + (kernel_h - 1) * dilation + 1 - in_h, 0) // 2


def depthwise_plane_bytes(out_h: int, out_w: int, options, kernel_h: int, kernel_w: int) -> int:
    """eq_depthwise_conv_in_place_s8_scratch_size: the padded plane of one channel, every row
    and column a window touches, rows at least four bytes past the last window's start."""
    dh, dw = getattr(options, "dilationHFactor", 1) or 1, getattr(options, "dilationWFactor", 1) or 1
    rows = (out_h - 1) * options.strideH + (kernel_h - 1) * dh + 1
    cols = (out_w - 1) * options.strideW + max((kernel_w - 1) * dw + 1, 4)
    return rows * cols


# eq_dw_strided_across: on DSP cores strided depthwise layers run eq_depthwise_conv_strided_s8,
# windows of up to EQ_DW_ACROSS_TAPS taps, outputs at least EQ_DW_ACROSS_MIN_WIDTH wide.
DW_ACROSS_TAPS, DW_ACROSS_MIN_WIDTH = 64, 8


def dsp_strided_depthwise(options, kernel_h: int, kernel_w: int, out_w: int) -> bool:
    return ((options.strideH > 1 or options.strideW > 1) and kernel_h * kernel_w <= DW_ACROSS_TAPS
            and out_w >= DW_ACROSS_MIN_WIDTH)


def depthwise_ring_rows(in_shape, out_shape, stride_h: int, pad_top: int) -> int:
    """eq_dw_ring_rows: the output rows eq_depthwise_conv_strided_s8 holds in scratch. Output row y
    may be written once every output row reading the input row its last byte lands on is
    computed: one more than the most rows computed ahead of the oldest unwritten one."""
    _, _, w, c = in_shape
    _, ho, wo, co = out_shape
    ahead = 0
    for y in range(ho):
        last_row = ((y + 1) * wo * co - 1) // (w * c)
        ahead = max(ahead, min(ho - 1, (last_row + pad_top) // stride_h) - y)
    return ahead + 1


def depthwise_channel_scratch_bytes(in_shape, out_shape, options, kernel_h: int, kernel_w: int, dsp: bool,
                                    pad_top: int | None = None) -> int:
    """The scratch of the kernel writing a depthwise layer over its input: on DSP cores at strides
    above 1 eq_depthwise_conv_strided_s8's ring of output rows, elsewhere
    eq_depthwise_conv_in_place_s8's padded plane of one channel. `pad_top` is the SAME or VALID
    padding's unless given."""
    if dsp and dsp_strided_depthwise(options, kernel_h, kernel_w, out_shape[2]):
        if pad_top is None:
            dilation = getattr(options, "dilationHFactor", 1) or 1
            pad_top = _pad_top(options, in_shape[1], out_shape[1], options.strideH, kernel_h, dilation)
        return depthwise_ring_rows(in_shape, out_shape, options.strideH, pad_top) * out_shape[2] * out_shape[3]
    return depthwise_plane_bytes(out_shape[1], out_shape[2], options, kernel_h, kernel_w)


def depthwise_rows_scratch_bytes(out_w: int, in_c: int, out_c: int, options, kernel_h: int, kernel_w: int) -> int:
    """eq_depthwise_conv_rows_s8_scratch_size: one output row (rounded up to a word), then for
    depth multiplier 1 the padded plane of one window's height, else the pixel kernel's int32
    accumulators."""
    row = -(-out_w * out_c // 4) * 4
    if out_c != in_c:
        return row + out_c * 4
    return row + depthwise_plane_bytes(1, out_w, options, kernel_h, kernel_w)


def _rule_options(graph: Graph, op, src: int, dst: int, kinds: Collection[str], alignment: int, dsp: bool):
    """Each (kind, output_offset, scratch_bytes) that lets op write `dst` over its dying input `src`."""
    ti, to = graph.tensors[src], graph.tensors[dst]
    si, so = _itemsize(graph, src), _itemsize(graph, dst)
    if not si or not so:
        return
    if ELEMENTWISE in kinds and op.opcode in ELEMENTWISE_OPS and ti.element_count == to.element_count:
        # out[i] ends at off + (i+1)*so and must not pass the unread in[i+1] at (i+1)*si.
        yield ELEMENTWISE, align_down(min(0, ti.element_count * (si - so)), alignment), 0
    if src != op.inputs[0] or si != so or len(ti.shape) != 4 or len(to.shape) != 4 or ti.shape[0] != to.shape[0]:
        return
    n, h, w, cin = ti.shape
    _, ho, wo, cout = to.shape
    o = op.options
    filt = graph.tensors[op.inputs[1]].shape if op.opcode.endswith("CONV_2D") else ()
    if DEPTHWISE_CHANNEL in kinds and op.opcode == "DEPTHWISE_CONV_2D" and cin == cout and ho * wo <= h * w:
        # Channel c's outputs land only on channel-c positions, which were copied to scratch.
        yield DEPTHWISE_CHANNEL, 0, depthwise_channel_scratch_bytes(ti.shape, to.shape, o, filt[1], filt[2], dsp) * si
    if (POINTWISE_PIXEL in kinds and op.opcode == "CONV_2D" and tuple(filt[1:3]) == (1, 1)
            and (o.strideH, o.strideW) == (1, 1) and (ho, wo) == (h, w)):
        # Output pixel p ends at off + (p+1)*cout; the unread input starts at (p+1)*cin.
        yield POINTWISE_PIXEL, align_down(min(0, n * h * w * (cin - cout)), alignment), cin * si
    if WINDOW_ROWS in kinds and n == 1 and op.opcode in (
            "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
        if op.opcode.endswith("POOL_2D"):
            kernel_h, dilation = o.filterHeight, 1
        else:
            kernel_h, dilation = filt[1], o.dilationHFactor
        pad = _pad_top(o, h, ho, o.strideH, kernel_h, dilation)
        row_in, row_out = w * cin * si, wo * cout * si
        # Once output rows 0..j-1 are written, input rows from j*stride - pad on are still unread.
        bound = min([max(0, j * o.strideH - pad) * row_in - j * row_out for j in range(1, ho)] + [0])
        scratch = row_out
        if op.opcode == "DEPTHWISE_CONV_2D":
            scratch = depthwise_rows_scratch_bytes(wo, cin, cout, o, filt[1], filt[2]) * si
        yield WINDOW_ROWS, align_down(bound, alignment), scratch


def in_place_rules(graph: Graph, buffers: Sequence[Buffer], aliases: Mapping[int, int] | None = None,
                   alignment: int = 16, kinds: Collection[str] = DEFAULT_IN_PLACE_KINDS,
                   step_of: Mapping[int, int] | None = None, dsp: bool = False) -> list[InPlace]:
    """Every (step, input, output) where the op's kernel may write its output over a dying input.

    Offsets are rounded down to `alignment` (each derivation allows any offset at or below its
    bound). Ops fused with others (their tensors skipped) get no rule for the skipped tensors,
    and no rule is given over an input that another op of the same step (a fused kernel) also
    reads. `step_of` is the schedule, as for `buffers_from_graph`. `dsp`: the kernels are built
    for a core with the DSP extension, whose in-place depthwise kernel needs other scratch.
    """
    unknown = set(kinds) - set(IN_PLACE_KINDS)
    if unknown:
        raise ValueError(f"unknown in-place kinds {sorted(unknown)}; known: {', '.join(IN_PLACE_KINDS)}")
    root = _resolver(graph, dict(aliases or {}))
    at, _ = _schedule(graph, step_of)
    by_tensor = {b.tensor: b for b in buffers}
    readers: dict[tuple[int, int], set[int]] = {}  # (step, tensor) -> ops of that step reading it
    for op in graph.operators:
        if op.index in at:
            for t in op.inputs:
                if t >= 0:
                    readers.setdefault((at[op.index], root(t)), set()).add(op.index)
    rules = []
    for op in graph.operators:
        if len(op.outputs) != 1 or op.opcode in _ALIAS_OPS or op.index not in at:
            continue
        step = at[op.index]
        dst = by_tensor.get(root(op.outputs[0]))
        if dst is None or dst.first_step != step or root(op.outputs[0]) != op.outputs[0]:
            continue
        for src_t in dict.fromkeys(t for t in op.inputs if t >= 0):
            src = by_tensor.get(root(src_t))
            if src is None or src.last_step != step or src.tensor == dst.tensor:
                continue
            if readers.get((step, src.tensor), set()) != {op.index}:
                continue
            # One rule a pair, so a plan names one kernel variant: the cheapest extra bytes
            # (scratch plus how far the output reaches below the input).
            options = sorted(_rule_options(graph, op, src_t, dst.tensor, kinds, alignment, dsp),
                             key=lambda k: (k[2] - k[1], IN_PLACE_KINDS.index(k[0])))
            if options:
                kind, offset, scratch = options[0]
                rules.append(InPlace(step, src.tensor, dst.tensor, offset, scratch, kind))
    return rules
