"""Lowering of the convolution-like ops: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and
pooling, in their int8, packed-int4-weight, int16x8 and float32 variants."""

from __future__ import annotations

import numpy as np

from edgeq.aot.lower import Lowering, Step, _padding, c_dims, unsupported
from edgeq.aot.memory import DEPTHWISE_CHANNEL, POINTWISE_PIXEL, WINDOW_ROWS
from edgeq.graph import Operator, Tensor


def _window(lw: Lowering, op: Operator, inp: Tensor, out: Tensor, kh: int, kw: int) -> tuple[int, int, int, int]:
    o = op.options
    dh, dw = getattr(o, "dilationHFactor", 1) or 1, getattr(o, "dilationWFactor", 1) or 1
    ph = _padding(o.padding, inp.shape[1], kh, o.strideH, dh, out.shape[1])
    pw = _padding(o.padding, inp.shape[2], kw, o.strideW, dw, out.shape[2])
    return ph, pw, dh, dw

def _requant(lw: Lowering, step: Step, op: Operator, inp: Tensor, filt: Tensor, out: Tensor, channels: int) -> str:
    in_scale, _ = lw.quant(inp.index)
    out_scale, _ = lw.quant(out.index)
    fscales = lw.filter_quant(op, filt, channels)
    if op.opcode == "FULLY_CONNECTED" and len(filt.scales) == 1:
        # TFLM's per-tensor FULLY_CONNECTED multiplies the two scales in float32 first
        reals = [float(np.float32(in_scale) * np.float32(filt.scales[0])) / float(np.float32(out_scale))]
    else:
        reals = [float(np.float32(in_scale)) * float(np.float32(s)) / float(np.float32(out_scale)) for s in fscales]
    return lw.requant_arrays(step, reals)

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
    if kind == "f32":
        act = lw.float_activation(step, op)
        step.decls.append(f"static const eq_conv_params params = {{0, 0, {window}, {{0, 0}}}};")
        step.call = (f"eq_conv_f32(0, &params, {act}, &input_dims, (const float *){lw.ptr(inp.index)}, "
                     f"&filter_dims, {lw.ptr(filt.index)}, {lw.bias_f32(op)}, &output_dims, "
                     f"(float *)@T{out.index}@)")
        return step
    _, in_zp = lw.quant(inp.index)
    _, out_zp = lw.quant(out.index)
    quant = _requant(lw, step, op, inp, filt, out, oc)
    lo, hi = lw.activation(op, out.index)
    step.decls.append(f"static const eq_conv_params params = {{{-in_zp}, {out_zp}, {window}, {{{lo}, {hi}}}}};")
    if kind == "s16":
        step.call = (f"eq_conv_s16(0, &params, {quant}, &input_dims, (const int16_t *){lw.ptr(inp.index)}, "
                     f"&filter_dims, {lw.ptr(filt.index)}, {lw.bias64(step, op)}, &output_dims, "
                     f"(int16_t *)@T{out.index}@)")
        return step
    w = lw.filter_values(filt).astype(np.int64)
    bias = lw.arr(step, "bias", "int32_t",
                    lw.fold(lw.bias_values(op, oc), -in_zp, w.reshape(oc, -1).sum(axis=1)))
    ctx = "0"
    kernel = f"eq_conv_{kind}"
    if kind == "s4":
        step.scratch_bytes = kh * kw * ic
    elif lw.variants.get(op.index) == POINTWISE_PIXEL:
        if (kh, kw, o.strideH, o.strideW) != (1, 1, 1, 1):
            raise ValueError("the pixel-by-pixel in-place kernel needs a 1x1 stride-1 convolution")
        kernel = step.kernel = "eq_conv_1x1_in_place_s8"
        step.scratch_bytes = ic  # eq_conv_1x1_in_place_s8_scratch_size: one pixel's input vector
    elif lw.variants.get(op.index) == WINDOW_ROWS:
        kernel = step.kernel = "eq_conv_rows_s8"
        step.scratch_bytes = out.shape[2] * oc  # eq_conv_rows_s8_scratch_size: one output row
    if step.scratch_bytes:
        step.decls.append(f"eq_context ctx = {{@S{op.index}@, {step.scratch_bytes}}};")
        ctx = "&ctx"
    step.call = (f"{kernel}({ctx}, &params, {quant}, &input_dims, (const int8_t *){lw.ptr(inp.index)}, "
                 f"&filter_dims, {lw.filter_ptr(filt)}, {bias}, &output_dims, (int8_t *)@T{out.index}@)")
    return step

def conv_add(lw: Lowering, conv_op: Operator, add_op: Operator) -> Step:
    """An int8 CONV_2D and the ADD reading its output, as one eq_conv_add_s8 call at the ADD's
    place. The convolution keeps its own requantization and activation; ADD's parameters are
    ordered with the convolution's side first (the int32 sum is the same either way)."""
    from edgeq.aot.lower_elementwise import add_params

    conv_step = conv(lw, conv_op)
    fused = conv_op.outputs[0]
    skip = add_op.inputs[1] if add_op.inputs[0] == fused else add_op.inputs[0]
    out = add_op.outputs[0]
    step = lw.new_step(add_op, "eq_conv_add_s8")
    step.opcode = "CONV_2D+ADD"
    step.fused = (conv_op.index,)
    step.reads = tuple(dict.fromkeys(conv_step.reads + (lw.root(skip),)))
    step.macs = conv_step.macs
    step.consts = conv_step.consts
    step.decls = conv_step.decls + [add_params(lw, add_op, fused, skip, name="add")]
    step.call = (f"eq_conv_add_s8(0, &params, &quant, &add, &input_dims, "
                 f"(const int8_t *){lw.ptr(conv_op.inputs[0])}, &filter_dims, "
                 f"{lw.filter_ptr(lw.t(conv_op.inputs[1]))}, {lw.prefix}_op{conv_op.index}_bias, "
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
    if kind == "f32":
        act = lw.float_activation(step, op)
        step.decls.append(f"static const eq_dw_conv_params params = {{0, 0, {oc // ic}, {window}, {{0, 0}}}};")
        step.call = (f"eq_depthwise_conv_f32(0, &params, {act}, &input_dims, (const float *){lw.ptr(inp.index)}, "
                     f"&filter_dims, {lw.ptr(filt.index)}, {lw.bias_f32(op)}, &output_dims, "
                     f"(float *)@T{out.index}@)")
        return step
    _, in_zp = lw.quant(inp.index)
    _, out_zp = lw.quant(out.index)
    quant = _requant(lw, step, op, inp, filt, out, oc)
    lo, hi = lw.activation(op, out.index)
    step.decls.append(f"static const eq_dw_conv_params params = {{{-in_zp}, {out_zp}, {oc // ic}, {window}, "
                      f"{{{lo}, {hi}}}}};")
    if kind == "s16":
        step.call = (f"eq_depthwise_conv_s16(0, &params, {quant}, &input_dims, "
                     f"(const int16_t *){lw.ptr(inp.index)}, &filter_dims, {lw.ptr(filt.index)}, "
                     f"{lw.bias64(step, op)}, &output_dims, (int16_t *)@T{out.index}@)")
        return step
    step.scratch_bytes = oc * 4  # eq_depthwise_conv_s8_scratch_size: a pixel's accumulators
    if lw.variants.get(op.index) == DEPTHWISE_CHANNEL:
        if oc != ic:
            raise ValueError("the channel-by-channel in-place kernel needs depth multiplier 1")
        step.kernel = "eq_depthwise_conv_in_place_s8"
        step.scratch_bytes = inp.shape[1] * inp.shape[2]  # one channel of the input
    elif lw.variants.get(op.index) == WINDOW_ROWS:
        step.kernel = "eq_depthwise_conv_rows_s8"
        # eq_depthwise_conv_rows_s8_scratch_size: one output row, then the pixel kernel's accumulators
        step.scratch_bytes = -(-out.shape[2] * oc // 4) * 4 + oc * 4
    w = filt.numpy().astype(np.int64)
    bias = lw.arr(step, "bias", "int32_t",
                    lw.fold(lw.bias_values(op, oc), -in_zp, w.reshape(-1, oc).sum(axis=0)))
    step.decls.append(f"eq_context ctx = {{@S{op.index}@, {step.scratch_bytes}}};")
    step.call = (f"{step.kernel}(&ctx, &params, {quant}, &input_dims, (const int8_t *){lw.ptr(inp.index)}, "
                 f"&filter_dims, {lw.ptr(filt.index)}, {bias}, &output_dims, (int8_t *)@T{out.index}@)")
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
    if kind == "f32":
        act = lw.float_activation(step, op)
        step.call = (f"eq_fully_connected_f32(0, {act}, &input_dims, (const float *){lw.ptr(inp.index)}, "
                     f"&filter_dims, {lw.ptr(filt.index)}, {lw.bias_f32(op)}, &output_dims, "
                     f"(float *)@T{out.index}@)")
        return step
    _, in_zp = lw.quant(inp.index)
    _, out_zp = lw.quant(out.index)
    quant = _requant(lw, step, op, inp, filt, out, units)
    lo, hi = lw.activation(op, out.index)
    step.decls.append(f"static const eq_fc_params params = {{{-in_zp}, {out_zp}, {{{lo}, {hi}}}}};")
    if kind == "s16":
        step.call = (f"eq_fully_connected_s16(0, &params, {quant}, &input_dims, "
                     f"(const int16_t *){lw.ptr(inp.index)}, &filter_dims, {lw.ptr(filt.index)}, "
                     f"{lw.bias64(step, op)}, &output_dims, (int16_t *)@T{out.index}@)")
        return step
    w = lw.filter_values(filt).astype(np.int64)
    bias = lw.arr(step, "bias", "int32_t", lw.fold(lw.bias_values(op, units), -in_zp, w.sum(axis=1)))
    ctx = "0"
    if kind == "s4":
        step.scratch_bytes = depth
        step.decls.append(f"eq_context ctx = {{@S{op.index}@, {depth}}};")
        ctx = "&ctx"
    step.call = (f"eq_fully_connected_{kind}({ctx}, &params, {quant}, &input_dims, "
                 f"(const int8_t *){lw.ptr(inp.index)}, &filter_dims, {lw.filter_ptr(filt)}, {bias}, "
                 f"&output_dims, (int8_t *)@T{out.index}@)")
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
    if kind == "f32":
        act, lo, hi = lw.float_activation(step, op) + ", ", 0, 0
        ctype = "float"
    else:
        act, ctype = "", "int8_t"
        lo, hi = lw.activation(op, out.index)
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
