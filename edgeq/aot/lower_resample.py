"""Lowering of the resampling ops, int8: TRANSPOSE_CONV (int8 weights, per-channel or
per-tensor, optional int32 bias) and RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR. Every
source index, interpolation weight and offset sum is worked out here, with TFLM's reference
arithmetic, so the kernels only gather, multiply and add."""

from __future__ import annotations

import numpy as np

import edgeq.aot.arith as arith
from edgeq.aot.lowering import Lowering, Step, _padding, c_dims, unsupported
from edgeq.graph import Operator

# TRANSPOSE_CONV's inputs (TFLite order): the output shape, the filter (OHWI), the input, the bias.
_SHAPE, _FILTER, _INPUT, _BIAS = 0, 1, 2, 3


def _windowed_out_size(padding: int, size: int, kernel: int, stride: int) -> int:
    """ComputeOutSize of TFLite's padding.h for dilation 1 (padding 0 = SAME, else VALID)."""
    if padding == 0:
        return (size + stride - 1) // stride
    return int((size + stride - kernel) / stride)  # C division: truncates toward zero


def _transpose_padding(padding: int, out_size: int, kernel: int, stride: int) -> int:
    """The leading padding TFLM gives TRANSPOSE_CONV: that of a convolution whose input is the
    transposed convolution's output (ComputePaddingHeightWidth)."""
    return _padding(padding, out_size, kernel, stride, 1, _windowed_out_size(padding, out_size, kernel, stride))


def transpose_conv(lw: Lowering, op: Operator) -> Step:
    if len(op.inputs) < 3 or len(op.outputs) != 1:
        raise unsupported(lw.g, op, "expects the output shape, filter and input (and optionally a bias)")
    filt, inp, out = lw.t(op.inputs[_FILTER]), lw.t(op.inputs[_INPUT]), lw.t(op.outputs[0])
    if (inp.type, filt.type, out.type) != ("INT8", "INT8", "INT8"):
        raise unsupported(lw.g, op, "only int8 activations with int8 weights")
    if not filt.is_constant:
        raise unsupported(lw.g, op, "the filter must be constant")
    if len(inp.shape) != 4 or len(out.shape) != 4 or len(filt.shape) != 4:
        raise unsupported(lw.g, op, "input, filter and output must be 4D")
    oc, kh, kw, ic = filt.shape
    if ic != inp.shape[3] or oc != out.shape[3] or inp.shape[0] != out.shape[0]:
        raise unsupported(lw.g, op, f"filter {tuple(filt.shape)} does not fit input {tuple(inp.shape)} "
                                    f"and output {tuple(out.shape)}")
    o = op.options
    sh, sw = o.strideH, o.strideW
    if sh < 1 or sw < 1:
        raise unsupported(lw.g, op, f"stride {sh}x{sw}")
    bias_index = op.inputs[_BIAS] if len(op.inputs) > _BIAS and op.inputs[_BIAS] >= 0 else None
    if bias_index is not None:
        b = lw.t(bias_index)
        if not b.is_constant or b.type != "INT32" or b.element_count != oc:
            raise unsupported(lw.g, op, "the bias must be a constant INT32 tensor of one value per output channel")
    ph = _transpose_padding(o.padding, out.shape[1], kh, sh)
    pw = _transpose_padding(o.padding, out.shape[2], kw, sw)

    step = lw.new_step(op, "eq_transpose_conv_s8")
    step.macs = int(np.prod(inp.shape)) * kh * kw * oc  # the reference's scatter, borders included
    in_scale, in_zp = lw.quant(inp.index)
    out_scale, out_zp = lw.quant(out.index)
    fscales = lw.filter_quant(op, filt, oc)
    # PopulateConvolutionQuantizationParams: input scale * filter scale / output scale in double
    reals = [float(np.float32(in_scale)) * float(np.float32(s)) / float(np.float32(out_scale)) for s in fscales]
    w = filt.numpy().astype(np.int64).reshape(oc, kh * kw, ic)
    bias = lw.t(bias_index).numpy().astype(np.int64).reshape(-1) if bias_index is not None else np.zeros(oc, np.int64)
    # Each input value enters the sums as (x + input_offset), |x + input_offset| <= 255.
    spread = 255 * np.abs(w).sum(axis=(1, 2))
    bounds = [(int(c - s), int(c + s)) for c, s in zip(bias, spread)]
    quant, out_offset = lw.requant_arrays(step, reals, bounds, out_zp)
    lo, hi = lw.activation(op, out.index)
    # input_offset * each tap's weight sum: added once for every tap that lands inside the input
    tap_offsets = lw.fold(np.zeros(oc * kh * kw, np.int64), -in_zp, w.sum(axis=2).reshape(-1))
    offsets = lw.arr(step, "tap_offsets", "int32_t", tap_offsets)
    window = f"{{{sw}, {sh}}}, {{{pw}, {ph}}}, {{1, 1}}"  # stride, padding, dilation
    step.decls += [
        f"static const eq_conv_params params = {{{-in_zp}, {out_offset}, {window}, {{{lo}, {hi}}}}};",
        f"static const eq_dims input_dims = {c_dims(inp.shape)};",
        f"static const eq_dims filter_dims = {c_dims(filt.shape)};",
        f"static const eq_dims output_dims = {c_dims(out.shape)};",
    ]
    bias_ptr = f"(const int32_t *){lw.ptr(bias_index)}" if bias_index is not None else "0"
    step.call = (f"eq_transpose_conv_s8(0, &params, {quant}, &input_dims, (const int8_t *){lw.ptr(inp.index)}, "
                 f"&filter_dims, (const int8_t *){lw.ptr(filt.index)}, {bias_ptr}, {offsets}, &output_dims, "
                 f"(int8_t *)@T{out.index}@)")
    return step


def _resize_checks(lw: Lowering, op: Operator) -> tuple[bool, bool]:
    """(align_corners, half_pixel_centers) of an int8 resize edgeq-c can run, else BadInput. (Only
    RESIZE_BILINEAR forbids the two together; GetNearestNeighbor applies both.)"""
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        raise unsupported(lw.g, op, "expects an input and a size")
    inp, size, out = lw.t(op.inputs[0]), lw.t(op.inputs[1]), lw.t(op.outputs[0])
    if inp.type != "INT8" or out.type != "INT8":
        raise unsupported(lw.g, op, "only int8")
    if len(inp.shape) != 4 or len(out.shape) != 4 or inp.shape[0] != out.shape[0] or inp.shape[3] != out.shape[3]:
        raise unsupported(lw.g, op, "input and output must be 4D NHWC with the same batch and channels")
    if not size.is_constant or size.type != "INT32" or size.element_count != 2:
        raise unsupported(lw.g, op, "the size must be a constant INT32 pair")
    if tuple(int(v) for v in size.numpy().reshape(-1)) != tuple(out.shape[1:3]):
        raise unsupported(lw.g, op, f"size {tuple(size.numpy().reshape(-1))} differs from the output's "
                                    f"{tuple(out.shape[1:3])}")
    (si, zi), (so, zo) = lw.quant(inp.index), lw.quant(out.index)
    if np.float32(si) != np.float32(so) or zi != zo:
        raise unsupported(lw.g, op, "int8 input and output must share scale and zero point "
                                    "(TFLM's kernel does not requantize)")
    align, half = bool(op.options.alignCorners), bool(op.options.halfPixelCenters)
    if align and half and op.opcode == "RESIZE_BILINEAR":
        raise unsupported(lw.g, op, "align_corners and half_pixel_centers together (TFLM refuses them)")
    return align, half


def bilinear_taps(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """[out_size][3]: the lower and upper source index of each output row (or column) and the
    upper one's weight in 1/1024 (the lower one's is 1024 minus it), exactly as TFLite's
    ResizeBilinearInteger computes them; the weight may fall outside [0, 1024] at a border, where
    both indices are the same."""
    if align_corners and out_size > 1:
        scale = ((in_size - 1) * 1024 + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale = (in_size * 1024 + out_size // 2) // out_size
    taps = []
    for v in range(out_size):
        scaled = v * scale + scale // 2 - 512 if half_pixel_centers else v * scale
        lower = max(int(scaled / 1024), 0)  # C division: truncates toward zero
        upper = min(int((scaled + 1023) / 1024), in_size - 1)
        taps.append((lower, upper, scaled - 1024 * lower))
    return np.array(taps, np.int64).reshape(out_size, 3)


def nearest_taps(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """The source index of each output row (or column): TFLite's GetNearestNeighbor in float32."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    offset = f32(0.5) if half_pixel_centers else f32(0.0)
    taps = []
    for v in range(out_size):
        scaled = (f32(v) + offset) * scale
        index = arith.tflite_round(float(scaled)) if align_corners else int(np.floor(scaled))
        index = min(index, in_size - 1)
        taps.append(max(index, 0) if half_pixel_centers else index)
    return np.array(taps, np.int64)


def _resize_step(lw: Lowering, op: Operator, kernel: str, rows: np.ndarray, cols: np.ndarray) -> Step:
    inp, out = lw.t(op.inputs[0]), lw.t(op.outputs[0])
    for what, taps, size in (("row", rows, inp.shape[1]), ("column", cols, inp.shape[2])):
        indices = taps[:, :2] if taps.ndim == 2 else taps
        if indices.size and (indices.min() < 0 or indices.max() >= size):
            raise unsupported(lw.g, op, f"TFLM's arithmetic reads {what} {int(indices.max())} of an input "
                                        f"{size} high/wide")
    step = lw.new_step(op, kernel)
    rows_name = lw.arr(step, "rows", "int32_t", rows)
    cols_name = lw.arr(step, "cols", "int32_t", cols)
    step.decls += [f"static const eq_dims input_dims = {c_dims(inp.shape)};",
                   f"static const eq_dims output_dims = {c_dims(out.shape)};"]
    step.call = (f"{kernel}(0, {rows_name}, {cols_name}, &input_dims, (const int8_t *){lw.ptr(inp.index)}, "
                 f"&output_dims, (int8_t *)@T{out.index}@)")
    return step


def resize_bilinear(lw: Lowering, op: Operator) -> Step:
    align, half = _resize_checks(lw, op)
    inp, out = lw.t(op.inputs[0]), lw.t(op.outputs[0])
    rows = bilinear_taps(inp.shape[1], out.shape[1], align, half)
    cols = bilinear_taps(inp.shape[2], out.shape[2], align, half)
    # The kernel sums the four weighted int8 values in int32: bound the weights' magnitudes.
    reach = [int(np.abs(1024 - t[:, 2]).max(initial=0) + np.abs(t[:, 2]).max(initial=0)) for t in (rows, cols)]
    if 128 * reach[0] * reach[1] >= 1 << 31:
        raise unsupported(lw.g, op, "interpolation weights too large for an int32 sum")
    step = _resize_step(lw, op, "eq_resize_bilinear_s8", rows, cols)
    step.macs = 4 * out.element_count
    return step


def resize_nearest(lw: Lowering, op: Operator) -> Step:
    align, half = _resize_checks(lw, op)
    inp, out = lw.t(op.inputs[0]), lw.t(op.outputs[0])
    rows = nearest_taps(inp.shape[1], out.shape[1], align, half)
    cols = nearest_taps(inp.shape[2], out.shape[2], align, half)
    return _resize_step(lw, op, "eq_resize_nearest_neighbor_s8", rows, cols)


HANDLERS = {
    "TRANSPOSE_CONV": transpose_conv,
    "RESIZE_BILINEAR": resize_bilinear,
    "RESIZE_NEAREST_NEIGHBOR": resize_nearest,
}
