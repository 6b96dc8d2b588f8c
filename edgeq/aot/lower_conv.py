"""Lowering of the convolution-like ops: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and
pooling, in their int8, packed-int4-weight, int16x8 and float32 variants."""

from __future__ import annotations

import numpy as np

from edgeq.aot.lifetimes import (
    DEPTHWISE_CHANNEL,
    POINTWISE_PIXEL,
    WINDOW_ROWS,
    depthwise_channel_scratch_bytes,
    depthwise_rows_scratch_bytes,
    dsp_strided_depthwise,
)
from edgeq.aot.lower_elementwise import add_params
from edgeq.aot.lowering import Lowering, Step, _padding, c_dims, unsupported
from edgeq.graph import Operator, Tensor


def _window(lw: Lowering, op: Operator, inp: Tensor, out: Tensor, kh: int, kw: int) -> tuple[int, int, int, int]:
    o = op.options
    dh, dw = getattr(o, "dilationHFactor", 1) or 1, getattr(o, "dilationWFactor", 1) or 1
    ph = _padding(o.padding, inp.shape[1], kh, o.strideH, dh, out.shape[1])
    pw = _padding(o.padding, inp.shape[2], kw, o.strideW, dw, out.shape[2])
    return ph, pw, dh, dw

def _folded_bias(lw: Lowering, step: Step, op: Operator, inp: Tensor, filter_sums) -> str:
    """int32 bias + input_offset * the output channel's weight sum (eq_types.h)."""
    sums = filter_sums()
    _, in_zp = lw.quant(inp.index)
    return lw.arr(step, "bias", "int32_t", lw.fold(lw.bias_values(op, len(sums)), -in_zp, sums))

# What differs between a kernel's int8, packed-int4, int16x8 and float32 variants, said once:
# the C type of its activations, and its bias argument. float32 and int16x8 kernels read the
# model's bias tensor as it is; the int8 ones take it with the input offset folded in.
_VARIANTS = {
    "s8": ("int8_t", _folded_bias),
    "s4": ("int8_t", _folded_bias),
    "s16": ("int16_t", lambda lw, step, op, inp, filter_sums: lw.bias64(step, op)),
    "f32": ("float", lambda lw, step, op, inp, filter_sums: lw.bias_f32(op)),
}


def _accumulator_bounds(lw: Lowering, op: Operator, inp: Tensor, filt: Tensor, channels: int) -> list:
    """Each output channel's int32 accumulator range (lo, hi) in the int8 kernels: the folded
    bias (eq_types.h) plus or minus the weights' magnitudes times 128, the largest |int8 input|."""
    w = lw.filter_values(filt).astype(np.int64)
    w = w.reshape(-1, channels).T if op.opcode == "DEPTHWISE_CONV_2D" else w.reshape(channels, -1)
    _, in_zp = lw.quant(inp.index)
    folded = lw.bias_values(op, channels) - np.int64(in_zp) * w.sum(axis=1)  # unwrapped: a wrap fails the bound
    spread = 128 * np.abs(w).sum(axis=1)
    return [(int(f - s), int(f + s)) for f, s in zip(folded, spread)]


def _requant(lw: Lowering, step: Step, op: Operator, inp: Tensor, filt: Tensor, out: Tensor,
             channels: int) -> tuple[str, int]:
    """The quant struct, and the output offset the kernel is still to add (Lowering.requant_arrays)."""
    in_scale, _ = lw.quant(inp.index)
    out_scale, out_zp = lw.quant(out.index)
    fscales = lw.filter_quant(op, filt, channels)
    if op.opcode == "FULLY_CONNECTED" and len(filt.scales) == 1:
        # TFLM's per-tensor FULLY_CONNECTED multiplies the two scales in float32 first
        reals = [float(np.float32(in_scale) * np.float32(filt.scales[0])) / float(np.float32(out_scale))]
    else:
        reals = [float(np.float32(in_scale)) * float(np.float32(s)) / float(np.float32(out_scale)) for s in fscales]
    # the bounded form for the int8 kernels and the paired int4 ones (their accumulators are int8's);
    # the portable int4 kernels read the general pairs only
    bounded = lw.kind(op) == "s8" or (lw.kind(op) == "s4" and _paired(lw, step.kernel, filt) is not None)
    bounds = _accumulator_bounds(lw, op, inp, filt, channels) if bounded else None
    return lw.requant_arrays(step, reals, bounds, out_zp)

def _output_stage(lw: Lowering, step: Step, op: Operator, inp: Tensor, filt: Tensor, out: Tensor,
                  channels: int) -> tuple[str, str, str]:
    """The params struct's leading offsets and trailing activation initializers, and the
    kernel's argument after the params: float32 kernels take a float clamp range and leave
    the integer fields zero, the others take the requantization and the quantized range."""
    if lw.kind(op) == "f32":
        return "0, 0", "{0, 0}", lw.float_activation(step, op)
    _, in_zp = lw.quant(inp.index)
    quant, out_offset = _requant(lw, step, op, inp, filt, out, channels)
    lo, hi = lw.activation(op, out.index)
    return f"{-in_zp}, {out_offset}", f"{{{lo}, {hi}}}", quant

def _context(step: Step, op: Operator, scratch_bytes: int) -> str:
    """The kernel's eq_context argument: the step's scratch in the arena, or none."""
    if not scratch_bytes:
        return "0"
    step.scratch_bytes = scratch_bytes
    step.decls.append(f"eq_context ctx = {{@S{op.index}@, {scratch_bytes}}};")
    return "&ctx"

# int8 kernels whose filter is blocked (eq_types.h): four output channels read through one pointer.
BLOCKED_FILTER_KERNELS = ("eq_fully_connected_s8", "eq_conv_s8", "eq_conv_rows_s8", "eq_conv_1x1_in_place_s8",
                          "eq_conv_add_s8")
# ... and the kernels a DSP target runs instead, with the filter widened (eq_types.h).
WIDE_FILTER_KERNELS = {"eq_fully_connected_s8": "eq_fully_connected_wide_s8",
                       "eq_conv_1x1_in_place_s8": "eq_conv_1x1_in_place_wide_s8",
                       "eq_conv_s8": "eq_conv_wide_s8", "eq_conv_rows_s8": "eq_conv_rows_wide_s8",
                       "eq_conv_add_s8": "eq_conv_add_wide_s8"}
# int4 kernels a DSP target runs instead, the weights in the paired layout (eq_matvec_paired_s4.h)
# when a row holds at most this many.
PAIRED_FILTER_KERNELS = {"eq_conv_s4": "eq_conv_paired_s4", "eq_fully_connected_s4": "eq_fully_connected_paired_s4"}
PAIRED_MAX_DEPTH = 1024


def _paired(lw: Lowering, kernel: str, filt: Tensor) -> str | None:
    """The paired-layout variant of an int4 kernel the target runs for this filter, if any."""
    if lw.dsp and kernel in PAIRED_FILTER_KERNELS and int(np.prod(filt.shape[1:])) <= PAIRED_MAX_DEPTH:
        return PAIRED_FILTER_KERNELS[kernel]
    return None


# The widened CONV_2D kernels gather a window into a buffer of this many bytes (EQ_CONV_COL_BYTES).
WIDE_WINDOW_BYTES = 1024


def _widened(lw: Lowering, kernel: str, filt: Tensor, out: Tensor) -> str | None:
    """The widened variant of `kernel` the target runs for this filter, if any: by the widening
    policy (lowering.WIDEN_POLICIES), from the uses of each weight an inference, `out`'s pixels."""
    window = int(np.prod(filt.shape[1:]))
    uses = int(np.prod(out.shape[:-1]))
    if lw.widen_min_uses is None or kernel not in WIDE_FILTER_KERNELS or uses < lw.widen_min_uses:
        return None
    if kernel in ("eq_conv_s8", "eq_conv_rows_s8", "eq_conv_add_s8") and window > WIDE_WINDOW_BYTES:
        return None
    return WIDE_FILTER_KERNELS[kernel]


def _call(lw: Lowering, step: Step, op: Operator, ctx: str, head: str, inp: Tensor, filt: Tensor, out: Tensor,
          filter_sums) -> str:
    """The kernel call, `head` being the arguments between the context and the dims, with the
    bias the kernel variant takes; filter_sums() gives each output channel's weight sum."""
    ctype, bias_of = _VARIANTS[lw.kind(op)]
    wide = _widened(lw, step.kernel, filt, out)
    if step.kernel in PAIRED_FILTER_KERNELS.values():
        weights = lw.filter_ptr_paired(filt)
    elif wide is not None:
        step.kernel = wide
        weights = lw.filter_ptr_wide(filt)
    elif step.kernel in BLOCKED_FILTER_KERNELS:
        weights = lw.filter_ptr_blocked(filt)
    else:
        weights = lw.filter_ptr(filt)
    src = lw.ptr(inp.index)
    bias = bias_of(lw, step, op, inp, filter_sums)
    return (f"{step.kernel}({ctx}, {head}, &input_dims, (const {ctype} *){src}, &filter_dims, {weights}, "
            f"{bias}, &output_dims, ({ctype} *)@T{out.index}@)")

def _windowed_step(lw: Lowering, op: Operator, kernel: str, inp, filt, out, kh: int, kw: int,
                   macs_per_output: int) -> tuple[Step, str]:
    """A convolution-like step with its dims declared, and its stride/padding/dilation initializer."""
    o = op.options
    ph, pw, dh, dw = _window(lw, op, inp, out, kh, kw)
    step = lw.new_step(op, kernel)
    step.macs = int(np.prod(out.shape)) * macs_per_output
    step.decls += [f"static const eq_dims input_dims = {c_dims(inp.shape)};",
                   f"static const eq_dims filter_dims = {c_dims(filt.shape)};",
                   f"static const eq_dims output_dims = {c_dims(out.shape)};"]
    return step, f"{{{o.strideW}, {o.strideH}}}, {{{pw}, {ph}}}, {{{dw}, {dh}}}"


def conv(lw: Lowering, op: Operator) -> Step:
    kind = lw.kind(op)
    if kind == "?":
        raise unsupported(lw.g, op)
    inp, filt, out = lw.t(op.inputs[0]), lw.t(op.inputs[1]), lw.t(op.outputs[0])
    o = op.options
    oc, kh, kw, ic = filt.shape
    if ic != inp.shape[3]:
        raise unsupported(lw.g, op, "grouped convolution")
    step, window = _windowed_step(lw, op, f"eq_conv_{kind}", inp, filt, out, kh, kw, macs_per_output=kh * kw * ic)
    offsets, activation, arg = _output_stage(lw, step, op, inp, filt, out, oc)
    step.decls.append(f"static const eq_conv_params params = {{{offsets}, {window}, {activation}}};")
    scratch = 0
    paired = _paired(lw, step.kernel, filt)
    if paired:
        step.kernel = paired
    elif kind == "s4":
        scratch = kh * kw * ic  # eq_conv_s4_scratch_size: one output channel's unpacked filter
    elif kind == "s8" and lw.variants.get(op.index) == POINTWISE_PIXEL:
        if (kh, kw, o.strideH, o.strideW) != (1, 1, 1, 1):
            raise ValueError("the pixel-by-pixel in-place kernel needs a 1x1 stride-1 convolution")
        step.kernel = "eq_conv_1x1_in_place_s8"
        scratch = ic  # eq_conv_1x1_in_place_s8_scratch_size: one pixel's input vector
    elif kind == "s8" and lw.variants.get(op.index) == WINDOW_ROWS:
        step.kernel = "eq_conv_rows_s8"
        scratch = out.shape[2] * oc  # eq_conv_rows_s8_scratch_size: one output row
    ctx = _context(step, op, scratch)
    step.call = _call(lw, step, op, ctx, f"&params, {arg}", inp, filt, out,
                      lambda: lw.filter_values(filt).astype(np.int64).reshape(oc, -1).sum(axis=1))
    return step

def conv_add(lw: Lowering, conv_op: Operator, add_op: Operator) -> Step:
    """An int8 CONV_2D and the ADD reading its output, as one eq_conv_add_s8 call at the ADD's
    place. The convolution keeps its own requantization and activation; ADD's parameters are
    ordered with the convolution's side first (the int32 sum is the same either way)."""

    conv_step = conv(lw, conv_op)
    fused = conv_op.outputs[0]
    skip = add_op.inputs[1] if add_op.inputs[0] == fused else add_op.inputs[0]
    out = add_op.outputs[0]
    conv_filter = lw.t(conv_op.inputs[1])
    wide = _widened(lw, "eq_conv_add_s8", conv_filter, lw.t(out))
    step = lw.new_step(add_op, wide or "eq_conv_add_s8")
    step.opcode = "CONV_2D+ADD"
    step.fused = (conv_op.index,)
    step.reads = tuple(dict.fromkeys(conv_step.reads + (lw.root(skip),)))
    step.macs = conv_step.macs
    step.consts = conv_step.consts
    step.decls = conv_step.decls + [add_params(lw, add_op, fused, skip, name="add")]
    weights = lw.filter_ptr_wide(conv_filter) if wide else lw.filter_ptr_blocked(conv_filter)
    step.call = (f"{step.kernel}(0, &params, &quant, &add, &input_dims, "
                 f"(const int8_t *){lw.ptr(conv_op.inputs[0])}, &filter_dims, "
                 f"{weights}, {lw.prefix}_op{conv_op.index}_bias, "
                 f"(const int8_t *){lw.ptr(skip)}, &output_dims, (int8_t *)@T{out}@)")
    return step

def depthwise(lw: Lowering, op: Operator) -> Step:
    kind = lw.kind(op)
    if kind not in ("s8", "s16", "f32"):
        raise unsupported(lw.g, op)
    inp, filt, out = lw.t(op.inputs[0]), lw.t(op.inputs[1]), lw.t(op.outputs[0])
    _, kh, kw, oc = filt.shape
    ic = inp.shape[3]
    if oc % ic:
        raise unsupported(lw.g, op, f"{oc} output channels for {ic} input channels")
    step, window = _windowed_step(lw, op, f"eq_depthwise_conv_{kind}", inp, filt, out, kh, kw,
                                  macs_per_output=kh * kw)
    offsets, activation, arg = _output_stage(lw, step, op, inp, filt, out, oc)
    step.decls.append(f"static const eq_dw_conv_params params = {{{offsets}, {oc // ic}, {window}, {activation}}};")
    scratch = 0
    if kind == "s8":
        scratch = oc * 4  # eq_depthwise_conv_s8_scratch_size: a pixel's accumulators
        variant = lw.variants.get(op.index)
        # on DSP cores the channel-by-channel kernels are the faster ones, in place or not
        by_channel = oc == ic and (variant == DEPTHWISE_CHANNEL or (
            lw.dsp and variant is None and out.shape[1] * out.shape[2] <= inp.shape[1] * inp.shape[2]))
        if variant == DEPTHWISE_CHANNEL and oc != ic:
            raise ValueError("the channel-by-channel in-place kernel needs depth multiplier 1")
        if by_channel:
            strided = lw.dsp_across and dsp_strided_depthwise(op.options, kh, kw, out.shape[2])
            step.kernel = "eq_depthwise_conv_strided_s8" if strided else "eq_depthwise_conv_in_place_s8"
            scratch = depthwise_channel_scratch_bytes(inp.shape, out.shape, op.options, kh, kw, lw.dsp_across)
        elif variant == WINDOW_ROWS:
            step.kernel = "eq_depthwise_conv_rows_s8"
            scratch = depthwise_rows_scratch_bytes(out.shape[2], ic, oc, op.options, kh, kw)
    ctx = _context(step, op, scratch)
    step.call = _call(lw, step, op, ctx, f"&params, {arg}", inp, filt, out,
                      lambda: lw.filter_values(filt).astype(np.int64).reshape(-1, oc).sum(axis=0))
    return step

def fully_connected(lw: Lowering, op: Operator) -> Step:
    kind = lw.kind(op)
    if kind == "?":
        raise unsupported(lw.g, op)
    inp, filt, out = lw.t(op.inputs[0]), lw.t(op.inputs[1]), lw.t(op.outputs[0])
    if not filt.is_constant:
        raise unsupported(lw.g, op, "the weights must be constant")
    units, depth = filt.shape
    batches = inp.element_count // depth
    step = lw.new_step(op, f"eq_fully_connected_{kind}")
    step.macs = batches * units * depth
    step.decls += [f"static const eq_dims input_dims = {{{batches}, 1, 1, {depth}}};",
                   f"static const eq_dims filter_dims = {{{units}, 1, 1, {depth}}};",
                   f"static const eq_dims output_dims = {{{batches}, 1, 1, {units}}};"]
    offsets, activation, arg = _output_stage(lw, step, op, inp, filt, out, units)
    head = arg  # eq_fully_connected_f32 has no params struct: nothing in it would be used
    if kind != "f32":
        step.decls.append(f"static const eq_fc_params params = {{{offsets}, {activation}}};")
        head = f"&params, {arg}"
    paired = _paired(lw, step.kernel, filt)
    step.kernel = paired or step.kernel
    # eq_fully_connected_s4_scratch_size: one unpacked row
    ctx = _context(step, op, depth if kind == "s4" and not paired else 0)
    step.call = _call(lw, step, op, ctx, head, inp, filt, out,
                      lambda: lw.filter_values(filt).astype(np.int64).sum(axis=1))
    return step

def pool(lw: Lowering, op: Operator) -> Step:
    kind = lw.kind(op)
    if kind not in ("s8", "f32"):
        raise unsupported(lw.g, op)
    inp, out = lw.t(op.inputs[0]), lw.t(op.outputs[0])
    o = op.options
    ph, pw, _, _ = _window(lw, op, inp, out, o.filterHeight, o.filterWidth)
    name = "avg_pool" if op.opcode == "AVERAGE_POOL_2D" else "max_pool"
    kernel = f"eq_{name}_{kind}"
    step = lw.new_step(op, kernel)
    ctype = _VARIANTS[kind][0]
    if kind == "f32":
        act, lo, hi = lw.float_activation(step, op) + ", ", 0, 0
    else:
        act, (lo, hi) = "", lw.activation(op, out.index)
    step.decls += [
        f"static const eq_pool_params params = {{{{{o.strideW}, {o.strideH}}}, {{{pw}, {ph}}}, "
        f"{{{o.filterWidth}, {o.filterHeight}}}, {{{lo}, {hi}}}}};",
        f"static const eq_dims input_dims = {c_dims(inp.shape)};",
        f"static const eq_dims output_dims = {c_dims(out.shape)};",
    ]
    step.call = (f"{kernel}(0, &params, {act}&input_dims, (const {ctype} *){lw.ptr(inp.index)}, "
                 f"&output_dims, ({ctype} *)@T{out.index}@)")
    return step


HANDLERS = {
    "CONV_2D": conv,
    "DEPTHWISE_CONV_2D": depthwise,
    "FULLY_CONNECTED": fully_connected,
    "AVERAGE_POOL_2D": pool,
    "MAX_POOL_2D": pool,
}
