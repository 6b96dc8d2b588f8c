"""Generation-time tables: every int8 -> int8 element-wise op of TFLite becomes a
256-entry table evaluated with TFLM's own integer arithmetic, and SOFTMAX gets the
exp of every possible difference to the row maximum.

Tables are ordered by the input's bit pattern (0..127, then -128..-1) so the kernel
indexes them with `(uint8_t)x`.
"""

from __future__ import annotations

import math

import numpy as np

from edgeq.aot.arith import (
    calculate_input_radius,
    downscale_int32_to_int16_multiplier,
    exp_on_negative_values,
    f32,
    logistic,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_doubling_high_mul16,
    saturating_left_shift16,
    srdhm16,
    tanh,
    tflite_round,
    wrap16,
    wrap32,
)

INT8_VALUES = tuple(range(-128, 128))


def _table(fn) -> tuple[int, ...]:
    out = [0] * 256
    for v in INT8_VALUES:
        out[v & 0xFF] = max(-128, min(127, fn(v)))
    return tuple(out)


def _frexp_multiplier(real: float) -> tuple[int, int]:
    """LOGISTIC/TANH prepare: frexp then round, without QuantizeMultiplier's fix-up."""
    q, shift = math.frexp(real)
    return wrap32(tflite_round(q * (1 << 31))), shift


def _saturating_q4_table(input_scale: float, input_zero_point: int, finish) -> tuple[int, ...]:
    """LOGISTIC and TANH share TFLM's int8 front end: saturate outside the input radius, else
    rescale to Q4.27 and let `finish` apply the function and the output shift."""
    multiplier, left_shift = _frexp_multiplier(float(input_scale) * float(1 << 27))
    radius = calculate_input_radius(4, left_shift, 31)

    def fn(v: int) -> int:
        x = v - input_zero_point
        if x <= -radius:
            return -128
        if x >= radius:
            return 127
        return finish(multiply_by_quantized_multiplier(x, multiplier, left_shift))

    return _table(fn)


def logistic_table(input_scale: float, input_zero_point: int) -> tuple[int, ...]:
    return _saturating_q4_table(input_scale, input_zero_point,
                                lambda q4: rounding_divide_by_pot(logistic(q4, 4), 23) - 128)


def tanh_table(input_scale: float, input_zero_point: int) -> tuple[int, ...]:
    return _saturating_q4_table(input_scale, input_zero_point, lambda q4: rounding_divide_by_pot(tanh(q4, 4), 24))


def _rounding_divide_by_pot16(x: int, exponent: int) -> int:
    return wrap16(rounding_divide_by_pot(x, exponent))


def hard_swish_table(input_scale: float, input_zero_point: int, output_scale: float,
                     output_zero_point: int) -> tuple[int, ...]:
    hires_input_scale = np.float32(1.0 / 128.0) * np.float32(input_scale)
    reluish_scale = np.float32(3.0) / np.float32(32768.0)
    out_m32, out_exp = quantize_multiplier(f32(hires_input_scale / np.float32(output_scale)))
    out_m16 = downscale_int32_to_int16_multiplier(out_m32)
    rel_m32, rel_exp = quantize_multiplier(f32(hires_input_scale / reluish_scale))
    rel_m16 = downscale_int32_to_int16_multiplier(rel_m32)

    def fn(v: int) -> int:
        value = wrap16(v - input_zero_point)
        hires = wrap16(value * 128)
        preshift = srdhm16(hires, out_m16)
        reluish = hires
        if rel_exp > 0:
            reluish = saturating_left_shift16(reluish, rel_exp - 1)
        reluish = srdhm16(reluish, rel_m16)
        if rel_exp > 0:
            reluish = saturating_left_shift16(reluish, 1)
        if rel_exp < 0:
            reluish = _rounding_divide_by_pot16(reluish, -rel_exp)
        reluish = wrap16((reluish + (1 << 15)) >> 1)
        out = saturating_doubling_high_mul16(reluish, preshift)
        out = _rounding_divide_by_pot16(out, -out_exp)
        return wrap16(out + output_zero_point)

    return _table(fn)


def leaky_relu_table(input_scale: float, input_zero_point: int, output_scale: float, output_zero_point: int,
                     alpha: float) -> tuple[int, ...]:
    s_in, s_out = np.float32(input_scale), np.float32(output_scale)
    alpha_m, alpha_s = quantize_multiplier(f32((s_in * np.float32(alpha)) / s_out))
    ident_m, ident_s = quantize_multiplier(f32(s_in / s_out))

    def fn(v: int) -> int:
        x = v - input_zero_point
        if x >= 0:
            return output_zero_point + multiply_by_quantized_multiplier(x, ident_m, ident_s)
        scaled = multiply_by_quantized_multiplier(x, abs(alpha_m), alpha_s)
        return output_zero_point + (-scaled if alpha_m < 0 else scaled)

    return _table(fn)


def relu_table(input_scale: float, input_zero_point: int, output_scale: float, output_zero_point: int) -> tuple[int, ...]:
    m, s = quantize_multiplier(f32(np.float32(input_scale) / np.float32(output_scale)))
    lo = max(-128, output_zero_point)

    def fn(v: int) -> int:
        return max(lo, output_zero_point + multiply_by_quantized_multiplier(v - input_zero_point, m, s))

    return _table(fn)


def relu6_table(input_scale: float, input_zero_point: int) -> tuple[int, ...]:
    """TFLM's int8 RELU6 clamps in the input's quantization and ignores the output's."""
    six = max(-128, min(127, tflite_round(f32(np.float32(6.0) / np.float32(input_scale))) + input_zero_point))
    return _table(lambda v: min(max(v, input_zero_point), six))


def requantize_table(input_scale: float, input_zero_point: int, output_scale: float,
                     output_zero_point: int) -> tuple[int, ...]:
    """QUANTIZE int8 -> int8."""
    m, s = quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    return _table(lambda v: output_zero_point + multiply_by_quantized_multiplier(v - input_zero_point, m, s))


def softmax_exp_table(input_scale: float, beta: float) -> tuple[int, ...]:
    """exp(-d * input_scale * beta) in Q0.31 for d = row max - x in [0, 255].

    TFLM's int8 softmax rescales the difference to Q5.26 (PreprocessSoftmaxScaling)
    and skips differences below diff_min; a skipped entry is 0, which adds nothing to
    the sum and yields the output's minimum, exactly what TFLM writes for it.
    """
    real = min(float(np.float32(beta)) * float(np.float32(input_scale)) * float(1 << (31 - 5)), float((1 << 31) - 1))
    multiplier, left_shift = quantize_multiplier(real)
    diff_min = -calculate_input_radius(5, left_shift, 31)
    table = []
    for d in range(256):
        diff = -d
        if diff >= diff_min:
            rescaled = multiply_by_quantized_multiplier(diff, multiplier, left_shift)
            table.append(exp_on_negative_values(rescaled, 5))
        else:
            table.append(0)
    return tuple(table)
