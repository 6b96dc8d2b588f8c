"""Lowering of element-wise and data-movement ops: ADD, MUL, SOFTMAX, the lookup-table
activations, CONCATENATION, PAD, MEAN, QUANTIZE and DEQUANTIZE."""

from __future__ import annotations

import numpy as np

import edgeq.aot.arith as arith
import edgeq.aot.luts as luts
from edgeq.aot.lowering import Lowering, Step, c_dims, dims4, unsupported
from edgeq.graph import Operator
from edgeq.tflm_limits import softmax_scale_aborts

# The C type of each kernel variant's elements, and the variant of each integer tensor type.
_CTYPES = {"s8": "int8_t", "s16": "int16_t", "f32": "float"}
_INT_KINDS = {"INT8": "s8", "INT16": "s16"}


def _broadcast_strides(lw: Lowering, op: Operator, shape, out_shape) -> str:
    n, h, w, c = dims4(tuple(shape))
    on, oh, ow, oc = dims4(tuple(out_shape))
    dense = (h * w * c, w * c, c, 1)
    strides = [0 if d == 1 and od != 1 else s for d, od, s in zip((n, h, w, c), (on, oh, ow, oc), dense)]
    for d, od in zip((n, h, w, c), (on, oh, ow, oc)):
        if d != od and d != 1:
            raise unsupported(lw.g, op, f"shape {tuple(shape)} does not broadcast to {tuple(out_shape)}")
    return "{" + ", ".join(str(s) for s in strides) + "}"

def add_params(lw: Lowering, op: Operator, first: int, second: int, name: str = "params") -> str:
    """The eq_add_params declaration of an int8/int16 ADD with `first` as input 1. TFLite's
    arithmetic is symmetric in its inputs (both are rescaled to twice the larger scale and
    summed), so either input of the op may be passed first."""
    kind = lw.kind(op)
    sa, za = lw.quant(first)
    sb, zb = lw.quant(second)
    so, zo = lw.quant(op.outputs[0])
    lo, hi = lw.activation(op, op.outputs[0])
    left_shift = 15 if kind == "s16" else 20
    twice_max = 2 * float(max(np.float32(sa), np.float32(sb)))
    m1 = arith.quantize_multiplier(float(np.float32(sa)) / twice_max)
    m2 = arith.quantize_multiplier(float(np.float32(sb)) / twice_max)
    mo = arith.quantize_multiplier(twice_max / ((1 << left_shift) * float(np.float32(so))))
    qmax = 32767 if kind == "s16" else 127
    bounded = "0"
    fast = bounded_add(left_shift, qmax, (-za, m1), (-zb, m2), mo)
    if fast is not None:
        bounded = f"{name}_bounded"
        lw_decl = (f"static const eq_requant {bounded}[3] = {{"
                   + ", ".join(f"{{{m}, {r}, {s}}}" for m, r, s in fast) + "}; ")
    else:
        lw_decl = ""
    return (f"{lw_decl}static const eq_add_params {name} = {{{-za}, {-zb}, {zo}, {left_shift}, {m1[0]}, {m1[1]}, "
            f"{m2[0]}, {m2[1]}, {mo[0]}, {mo[1]}, {{{lo}, {hi}}}, {bounded}}};")


def bounded_add(left_shift: int, qmax: int, in1, in2, out) -> list[tuple[int, int, int]] | None:
    """ADD's three requantizations in the bounded form (arith.bounded_requant), when each input's
    shifted value and the sum of the rescaled inputs are bounded: the bounds come from the
    extreme input values, MultiplyByQuantizedMultiplier being monotonic."""
    rescaled = []
    for offset, (m, s) in (in1, in2):
        bound = (qmax + 1 + abs(offset)) << left_shift
        rescaled.append(max(abs(arith.multiply_by_quantized_multiplier(v, m, s)) for v in (bound, -bound)))
    first = arith.bounded_requant([in1[1], in2[1]], [(qmax + 1 + abs(in1[0])) << left_shift,
                                                     (qmax + 1 + abs(in2[0])) << left_shift], zero_shift=True)
    last = arith.bounded_requant([out], [sum(rescaled)], zero_shift=True)
    return first + last if first is not None and last is not None else None

def binary(lw: Lowering, op: Operator) -> Step:
    kind = lw.kind(op)
    if kind == "s4" or kind == "?" or (op.opcode == "MUL" and kind != "s8"):
        raise unsupported(lw.g, op)
    a, b, out = lw.t(op.inputs[0]), lw.t(op.inputs[1]), lw.t(op.outputs[0])
    if len(out.shape) > 4:
        raise unsupported(lw.g, op, "rank above 4")
    ctype = _CTYPES[kind]
    kernel = f"eq_{op.opcode.lower()}_{kind}"
    step = lw.new_step(op, kernel)
    if kind == "f32":
        params = lw.float_activation(step, op)
    elif op.opcode == "ADD":
        step.decls.append(add_params(lw, op, a.index, b.index))
        params = "&params"
    else:
        sa, za = lw.quant(a.index)
        sb, zb = lw.quant(b.index)
        so, zo = lw.quant(out.index)
        lo, hi = lw.activation(op, out.index)
        step.macs = out.element_count
        m = arith.quantize_multiplier(float(np.float32(sa)) * float(np.float32(sb)) / float(np.float32(so)))
        step.decls.append(
            f"static const eq_mul_params params = {{{-za}, {-zb}, {zo}, {m[0]}, {m[1]}, {{{lo}, {hi}}}}};")
        params = "&params"
    step.decls += [
        f"static const eq_strides strides1 = {_broadcast_strides(lw, op, a.shape, out.shape)};",
        f"static const eq_strides strides2 = {_broadcast_strides(lw, op, b.shape, out.shape)};",
        f"static const eq_dims output_dims = {c_dims(out.shape)};",
    ]
    step.call = (f"{kernel}(0, {params}, &strides1, (const {ctype} *){lw.ptr(a.index)}, &strides2, "
                 f"(const {ctype} *){lw.ptr(b.index)}, &output_dims, ({ctype} *)@T{out.index}@)")
    return step

def softmax(lw: Lowering, op: Operator) -> Step:
    inp, out = lw.t(op.inputs[0]), lw.t(op.outputs[0])
    if lw.kind(op) == "f32":
        step = lw.new_step(op, "eq_softmax_f32")
        depth = inp.shape[-1]
        step.call = (f"eq_softmax_f32(0, {_c_float(op.options.beta)}, {inp.element_count // depth}, {depth}, "
                     f"(const float *){lw.ptr(inp.index)}, (float *)@T{out.index}@)")
        return step
    lw.require(op, ("INT8",), ("INT8",))
    in_scale, _ = lw.quant(inp.index)
    out_scale, out_zp = lw.quant(out.index)
    if out_zp != -128 or np.float32(out_scale) != np.float32(1.0 / 256):
        raise unsupported(lw.g, op, "int8 output must have scale 1/256 and zero point -128")
    if softmax_scale_aborts(op.options.beta, in_scale):
        raise unsupported(lw.g, op, f"input scale {in_scale:.3g} is below what TFLM's softmax runs (it aborts), so "
                                    "edgeq-c has no reference arithmetic to match: calibrate on data that reaches "
                                    "this layer, or let edgeq convert the model (it widens such a range)")
    step = lw.new_step(op, "eq_softmax_s8")
    table = lw.arr(step, "exp_table", "int32_t", luts.softmax_exp_table(in_scale, op.options.beta))
    depth = inp.shape[-1]
    step.decls.append(f"static const eq_softmax_params params = {{{table}}};")
    step.call = (f"eq_softmax_s8(0, &params, {inp.element_count // depth}, {depth}, "
                 f"(const int8_t *){lw.ptr(inp.index)}, (int8_t *)@T{out.index}@)")
    return step

def lut(lw: Lowering, op: Operator) -> Step:
    inp, out = lw.t(op.inputs[0]), lw.t(op.outputs[0])
    if op.opcode == "QUANTIZE" and inp.type == "INT8" and out.type == "INT8":
        pass
    else:
        lw.require(op, ("INT8",), ("INT8",))
    si, zi = lw.quant(inp.index)
    so, zo = lw.quant(out.index)
    if op.opcode == "LOGISTIC":
        table = luts.logistic_table(si, zi)
    elif op.opcode == "TANH":
        table = luts.tanh_table(si, zi)
    elif op.opcode == "HARD_SWISH":
        table = luts.hard_swish_table(si, zi, so, zo)
    elif op.opcode == "LEAKY_RELU":
        table = luts.leaky_relu_table(si, zi, so, zo, op.options.alpha)
    elif op.opcode == "RELU":
        table = luts.relu_table(si, zi, so, zo)
    elif op.opcode == "RELU6":
        table = luts.relu6_table(si, zi)
    else:
        table = luts.requantize_table(si, zi, so, zo)
    step = lw.new_step(op, "eq_lut_s8")
    name = lw.arr(step, "table", "int8_t", table)
    step.call = (f"eq_lut_s8(0, {name}, {inp.element_count}, (const int8_t *){lw.ptr(inp.index)}, "
                 f"(int8_t *)@T{out.index}@)")
    return step

def concatenation(lw: Lowering, op: Operator) -> Step:
    out = lw.t(op.outputs[0])
    ins = [lw.t(i) for i in op.inputs]
    if out.type != "INT8" or any(t.type != "INT8" for t in ins):
        raise unsupported(lw.g, op)
    oq = lw.quant(out.index)
    for t in ins:
        if np.float32(lw.quant(t.index)[0]) != np.float32(oq[0]) or lw.quant(t.index)[1] != oq[1]:
            raise unsupported(lw.g, op, "int8 inputs must share the output's scale and zero point")
    lo, hi = lw.activation(op, out.index)
    if (lo, hi) != (-128, 127):
        raise unsupported(lw.g, op, "a fused activation")
    axis = op.options.axis % len(out.shape)
    outer = int(np.prod(out.shape[:axis], dtype=np.int64))
    sizes = [int(np.prod(t.shape[axis:], dtype=np.int64)) for t in ins]
    step = lw.new_step(op, "eq_concatenation_s8")
    sizes_name = lw.arr(step, "sizes", "int32_t", sizes)
    ptrs = ", ".join(f"(const int8_t *){lw.ptr(t.index)}" for t in ins)
    step.decls.append(f"const int8_t *const inputs[{len(ins)}] = {{{ptrs}}};")
    step.call = f"eq_concatenation_s8(0, {len(ins)}, inputs, {sizes_name}, {outer}, (int8_t *)@T{out.index}@)"
    return step

def pad(lw: Lowering, op: Operator) -> Step:
    inp, pads, out = lw.t(op.inputs[0]), lw.t(op.inputs[1]), lw.t(op.outputs[0])
    if inp.type != "INT8" or out.type != "INT8" or not pads.is_constant or len(inp.shape) > 4:
        raise unsupported(lw.g, op)
    p = pads.numpy().astype(np.int64).reshape(-1, 2)
    p = np.concatenate([np.zeros((4 - len(p), 2), np.int64), p])
    _, zo = lw.quant(out.index)
    pad_value = zo
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        cv = lw.t(op.inputs[2])
        if not cv.is_constant:
            raise unsupported(lw.g, op, "the padding value must be constant")
        pad_value = int(cv.numpy().reshape(-1)[0])
    return _shaped_step(lw, op, "eq_pad_s8", out.shape,
                           f"static const eq_pad_params params = {{{{{', '.join(str(int(v)) for v in p[:, 0])}}}, "
                           f"{{{', '.join(str(int(v)) for v in p[:, 1])}}}, {pad_value}}};")

def mean(lw: Lowering, op: Operator) -> Step:
    inp, axes, out = lw.t(op.inputs[0]), lw.t(op.inputs[1]), lw.t(op.outputs[0])
    if inp.type != "INT8" or out.type != "INT8" or not axes.is_constant or len(inp.shape) > 4:
        raise unsupported(lw.g, op)
    rank = len(inp.shape)
    reduced = sorted({int(a) % rank for a in axes.numpy().reshape(-1)})
    flags = [0] * 4
    for a in reduced:
        flags[a + 4 - rank] = 1
    in4 = dims4(tuple(inp.shape))
    out4 = tuple(1 if f else d for d, f in zip(in4, flags))
    count = int(np.prod([in4[i] for i in range(4) if flags[i]], dtype=np.int64))
    si, zi = lw.quant(inp.index)
    so, zo = lw.quant(out.index)
    multiplier, shift = arith.quantize_multiplier(float(np.float32(si)) / float(np.float32(so)))
    # QuantizedMeanOrSum folds the division by the element count into the multiplier.
    s = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier = arith.wrap32(int(np.int64(multiplier) << np.int64(s)) // count)
    shift -= s
    return _shaped_step(lw, op, "eq_mean_s8", out4,
                           f"static const eq_mean_params params = {{{-zi}, {zo}, {multiplier}, {shift}, {count}, "
                           f"{{{', '.join(map(str, flags))}}}}};")

def _shaped_step(lw: Lowering, op: Operator, kernel: str, out_shape, params: str) -> Step:
    """An int8 kernel of the form kernel(ctx, &params, &input_dims, input, &output_dims, output)."""
    inp, out = lw.t(op.inputs[0]), lw.t(op.outputs[0])
    step = lw.new_step(op, kernel)
    step.decls += [params, f"static const eq_dims input_dims = {c_dims(inp.shape)};",
                   f"static const eq_dims output_dims = {c_dims(out_shape)};"]
    step.call = (f"{kernel}(0, &params, &input_dims, (const int8_t *){lw.ptr(inp.index)}, &output_dims, "
                 f"(int8_t *)@T{out.index}@)")
    return step

def quantize(lw: Lowering, op: Operator) -> Step:
    inp, out = lw.t(op.inputs[0]), lw.t(op.outputs[0])
    if inp.type == "INT8" and out.type == "INT8":
        return lut(lw, op)
    if inp.type != "FLOAT32" or out.type not in ("INT8", "INT16"):
        raise unsupported(lw.g, op)
    kind = _INT_KINDS[out.type]
    return _affine_step(lw, op, "quantize", out.index, "f32", kind)

def dequantize(lw: Lowering, op: Operator) -> Step:
    inp, out = lw.t(op.inputs[0]), lw.t(op.outputs[0])
    if inp.type not in ("INT8", "INT16") or out.type != "FLOAT32":
        raise unsupported(lw.g, op)
    kind = _INT_KINDS[inp.type]
    return _affine_step(lw, op, "dequantize", inp.index, kind, "f32")

def _affine_step(lw: Lowering, op: Operator, name: str, quantized: int, src: str, dst: str) -> Step:
    """eq_quantize_f32_<dst> or eq_dequantize_<src>_f32, with the `quantized` tensor's scale and
    zero point."""
    inp, out = lw.t(op.inputs[0]), lw.t(op.outputs[0])
    kernel = f"eq_{name}_{src}_{dst}"
    scale, zero_point = lw.quant(quantized)
    step = lw.new_step(op, kernel)
    step.decls.append(f"static const eq_affine_params params = {{{_c_float(scale)}, {zero_point}}};")
    step.call = (f"{kernel}(0, &params, {inp.element_count}, (const {_CTYPES[src]} *){lw.ptr(inp.index)}, "
                 f"({_CTYPES[dst]} *)@T{out.index}@)")
    return step


def _c_float(x: float) -> str:
    return f"{float(np.float32(x))!r}f" if np.isfinite(x) else "0.0f"


HANDLERS = {
    "ADD": binary,
    "MUL": binary,
    "SOFTMAX": softmax,
    "LOGISTIC": lut,
    "TANH": lut,
    "HARD_SWISH": lut,
    "LEAKY_RELU": lut,
    "RELU": lut,
    "RELU6": lut,
    "CONCATENATION": concatenation,
    "PAD": pad,
    "PADV2": pad,
    "MEAN": mean,
    "QUANTIZE": quantize,
    "DEQUANTIZE": dequantize,
}
