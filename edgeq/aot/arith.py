"""TFLite's integer arithmetic, reproduced bit for bit in Python.

Parameter preparation (QuantizeMultiplier and friends) runs in double precision with
TFLite's float32 casts; the fixed-point primitives follow gemmlowp's int32 (and the
int16 ones used by HARD_SWISH) with two's-complement wrapping. edgeq-c evaluates these
at generation time to build requantization constants and lookup tables.
"""

from __future__ import annotations

import math

import numpy as np

from edgeq.quant.maps import round_half_away_from_zero

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def wrap32(x: int) -> int:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def wrap16(x: int) -> int:
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def f32(x: float) -> float:
    """Round a Python float to float32, as a C++ `float` would hold it."""
    return float(np.float32(x))


def tflite_round(x: float) -> int:
    """std::round: half away from zero (Python's round() is half to even)."""
    return int(round_half_away_from_zero(float(x)))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier from quantization_util.cc: Q31 significand and exponent."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = tflite_round(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def activation_range(activation: str, scale: float, zero_point: int, qmin: int, qmax: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: f / scale in float32, then std::round."""
    def quantize(f: float) -> int:
        return zero_point + tflite_round(f32(np.float32(f) / np.float32(scale)))

    if activation == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    return qmin, qmax


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1) * float(1 << (total_signed_bits - input_integer_bits))
                          / float(1 << input_left_shift))
    return int(math.floor(max_input_rescaled))


# ---- gemmlowp fixed point, int32 ----

def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    q = abs(v) >> 31  # C++ division truncates toward zero
    return wrap32(q if v >= 0 else -q)


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return rounding_divide_by_pot(srdhm(wrap32(x << left), multiplier), right)


# An accumulator below this in magnitude doubles without overflow, and so does the product
# of the double with a Q31 multiplier, rounded to its high word, plus any rounding term.
BOUNDED_ACCUMULATOR = 1 << 29


def bounded_requant(pairs: list[tuple[int, int]], bounds, zero_shift: bool = False
                    ) -> list[tuple[int, int, int]] | None:
    """(multiplier, round, right_shift) for each channel's (multiplier, shift) when
    every channel's accumulator is bounded below BOUNDED_ACCUMULATOR and its shift is a right
    shift of 0 to 31, else None. Under those conditions MultiplyByQuantizedMultiplier(x, m, s)
    is (h + round + (h < 0 and right_shift ? -1 : 0)) >> right_shift with h = (2x * m + 2^31) >> 32
    (SMMULR): the doubled product is SaturatingRoundingDoublingHighMul's without its
    saturation (which needs x = m = INT32_MIN), and adding round (2^(right_shift - 1)) and -1
    below zero is RoundingDivideByPOT's rounding half away from zero; a shift of 0 adds nothing
    (requantize_bounded). A channel outside those conditions whose result is one value over
    its whole range gets (0, 2c, 1), which gives that value c. The kernels' outputs take no
    shift of 0 (their form adds the -1
    unmasked, eq_requantize_bounded); ADD's inputs, one of which always has it, do
    (`zero_shift`, eq_requantize_bounded_any)."""
    if len(bounds) != len(pairs) and len(pairs) != 1:
        return None
    ranges = [(int(b[0]), int(b[1])) if isinstance(b, tuple) else (-int(b), int(b)) for b in bounds]
    if len(pairs) == 1:  # one pair for every channel: the union of the ranges holds for all
        ranges = [(min(r[0] for r in ranges), max(r[1] for r in ranges))]
    out = []
    for (m, shift), (lo, hi) in zip(pairs, ranges):
        if (max(-lo, hi) < BOUNDED_ACCUMULATOR and -31 <= shift <= (0 if zero_shift else -1)
                and 0 <= m <= INT32_MAX):
            out.append((m, (1 << (-shift - 1)) if shift else 0, -shift))
            continue
        # A channel whose result cannot change over its accumulators' range (tiny weights under a
        # huge bias, say): MultiplyByQuantizedMultiplier is monotonic while x << left does not
        # wrap, so equal results at both ends mean that value throughout; (0, 2c, 1) gives c.
        left = max(shift, 0)
        if m >= 0 and max(-lo, hi) << left <= INT32_MAX:
            first, last = (multiply_by_quantized_multiplier(v, m, shift) for v in (lo, hi))
            if first == last:
                out.append((0, 2 * first, 1))
                continue
        return None
    return out


def fold_output_offset(fast: list[tuple[int, int, int]], offset: int) -> list[tuple[int, int, int]] | None:
    """The bounded form (bounded_requant, right shifts of at least 1) with the output offset
    added before the shift instead of after: (v + offset * 2^s) >> s = (v >> s) + offset, exact
    while the sum fits, which |h| < 2^29, round <= 2^30 and |offset| * 2^s <= 2^30 guarantee.
    None when some channel's shift is too large for that."""
    out = []
    for m, round_, shift in fast:
        if shift < 1 or abs(offset) << shift > 1 << 30 or abs(round_ + (offset << shift)) > 1 << 30:
            return None
        out.append((m, round_ + (offset << shift), shift))
    return out


def requantize_bounded(x: int, multiplier: int, round_: int, right_shift: int) -> int:
    """eq_requantize_bounded_any of eq_math.h (eq_requantize_bounded for right shifts >= 1)."""
    high = wrap32((2 * x * multiplier + (1 << 31)) >> 32)
    return (high + round_ + (-1 if high < 0 and right_shift else 0)) >> right_shift


def saturating_shl(x: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT with a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return wrap32(x << exponent)


def rescale(x: int, src_integer_bits: int, dst_integer_bits: int) -> int:
    exponent = src_integer_bits - dst_integer_bits
    if exponent > 0:
        return saturating_shl(x, exponent)
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    return x


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(wrap32(srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp::exp_on_negative_values: Q(integer_bits) in, Q0.31 out."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap32((a & mask) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent and remainder & (1 << (fractional_bits + exponent)):
            result = srdhm(result, multiplier)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        if a < clamp:
            result = 0
    if a == 0:
        result = INT32_MAX
    return result


def _truncating_div(v: int, d: int) -> int:
    q = abs(v) // d
    return q if v >= 0 else -q


def _rounding_half_sum(a: int, b: int) -> int:
    total = a + b
    return wrap32(_truncating_div(total + (1 if total >= 0 else -1), 2))


def _newton_raphson_reciprocal(a: int) -> int:
    """The shared Newton-Raphson core: x ~ 1 / ((1 + a) / 2) in Q2.29."""
    half_denominator = _rounding_half_sum(a, INT32_MAX)
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    one_q2 = 1 << 29
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = wrap32(one_q2 - half_denominator_times_x)
        x = wrap32(x + rescale(srdhm(x, one_minus), 4, 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    return rescale(_newton_raphson_reciprocal(a), 1, 0)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    return rescale(wrap32(_newton_raphson_reciprocal(a) - (1 << 29)), 2, 0)


def logistic(a: int, integer_bits: int) -> int:
    abs_input = a if a > 0 else wrap32(-a)
    result_if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-abs_input), integer_bits))
    if a == 0:
        return 1 << 30
    if a > 0:
        return result_if_positive
    return wrap32(INT32_MAX - result_if_positive)


def tanh(a: int, integer_bits: int) -> int:
    n = a if a < 0 else wrap32(-a)
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    if a == 0:
        return 0
    return wrap32(-t) if a < 0 else t


# ---- int16 variants (HARD_SWISH) ----

def srdhm16(a: int, b: int) -> int:
    if a == b == -32768:
        return 32767
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    v = ab + nudge
    q = abs(v) >> 15
    return wrap16(q if v >= 0 else -q)


def saturating_doubling_high_mul16(a: int, b: int) -> int:
    if a == b == -32768:
        return 32767
    ab = a * b
    q = abs(ab) >> 15
    return wrap16(q if ab >= 0 else -q)


def saturating_left_shift16(value: int, amount: int) -> int:
    return max(-32768, min(32767, value * (1 << amount)))


def downscale_int32_to_int16_multiplier(multiplier: int) -> int:
    if multiplier >= INT32_MAX - (1 << 15):
        return 32767
    return (multiplier + (1 << 15)) >> 16
