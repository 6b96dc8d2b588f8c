/* edgeq-c runtime: TFLite's fixed-point primitives, bit for bit.
 *
 * Semantics follow gemmlowp's SaturatingRoundingDoublingHighMul and
 * RoundingDivideByPOT and TFLite's double-rounding MultiplyByQuantizedMultiplier.
 * Shifts of negative values are arithmetic (true of every compiler edgeq targets);
 * overflowing left shifts wrap through uint32_t as TFLite's code does in practice.
 */
#ifndef EQ_MATH_H
#define EQ_MATH_H

#include <stdint.h>
#include "eq_types.h"

/* Cores with the DSP extension (Cortex-M4, M7, M33 with DSP) take the SIMD paths of eq_dot_s8.h
 * and the kernels; define EQ_PORTABLE to force the portable path on them. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(EQ_PORTABLE)
#define EQ_DSP 1
#include <arm_acle.h>
#else
#define EQ_DSP 0
#endif

/* Cores with the M-profile Vector Extension's integer instructions (Helium: Cortex-M55, M85) take
 * the MVE paths instead, where a kernel has one: sixteen int8 lanes a vector, VMLADAVA for dot
 * products. Their blocked filters step 16 bytes a row instead of 4 (EQ_BLOCK, eq_types.h), each row
 * zero-padded to whole steps (EQ_BLOCK_ROW), so that no weight load needs a tail; the generator
 * must know it (edgeq.aot.lowering.block_filter). EQ_PORTABLE forces the portable path. */
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && !defined(EQ_PORTABLE)
#define EQ_MVE 1
#include <arm_mve.h>
#define EQ_BLOCK 16
#define EQ_BLOCK_ROW(n) (((n) + 15) & ~15) /* a blocked row's bytes: zero-padded to whole steps */
#else
#define EQ_MVE 0
#define EQ_BLOCK 4
#define EQ_BLOCK_ROW(n) (n)
#endif

/* Inner loops are written to vectorize. On hosts with SIMD, ask GCC to do so even at
 * -O2 (whose cost model skips loops with a remainder); size-optimized and
 * microcontroller builds are left alone. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__OPTIMIZE_SIZE__) && \
    (defined(__x86_64__) || defined(__aarch64__))
#define EQ_VECTORIZE __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#else
#define EQ_VECTORIZE
#endif

/* Inner-loop helpers that -Os would otherwise leave as calls: a call in a loop of a few
 * multiply-accumulates costs more than its body. */
#if defined(__GNUC__)
#define EQ_HOT_INLINE inline __attribute__((always_inline))
#else
#define EQ_HOT_INLINE inline
#endif

/* Loops kept out of line so that their few live values stay in registers at -Os (unused:
 * some are defined in headers that not every kernel calls all of). */
#if defined(__GNUC__)
#define EQ_NOINLINE __attribute__((noinline, unused))
#else
#define EQ_NOINLINE
#endif

/* Assembly that binds r7, which Thumb code keeps as its frame pointer when it keeps one (-O0). */
#if defined(__GNUC__) && !defined(__clang__)
#define EQ_NO_FRAME_POINTER __attribute__((optimize("omit-frame-pointer")))
#else
#define EQ_NO_FRAME_POINTER
#endif

#define EQ_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EQ_MAX(a, b) ((a) > (b) ? (a) : (b))
#define EQ_CLAMP(x, lo, hi) EQ_MIN(EQ_MAX((x), (lo)), (hi))

/* gemmlowp adds 2^30 (1 - 2^30 below zero) and divides by 2^31 truncating toward zero. For
 * a negative product that truncation is a ceiling, ceil(t / 2^31) = floor((t + 2^31 - 1) / 2^31),
 * and t + 2^31 - 1 = ab + 2^30: both signs come to floor((ab + 2^30) / 2^31), one arithmetic
 * shift, which a Cortex-M computes in a few instructions instead of a 64-bit sign fix-up. */
static inline int32_t eq_sat_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

static inline int32_t eq_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

static inline int32_t eq_shift_left_wrapping(int32_t x, int32_t amount)
{
    return (int32_t)((uint32_t)x << amount);
}

/* TFLite's MultiplyByQuantizedMultiplier(int32_t x, multiplier, shift). */
static inline int32_t eq_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return eq_rounding_divide_by_pot(
        eq_sat_rounding_doubling_high_mul(eq_shift_left_wrapping(x, left), multiplier), right);
}

/* (2a * b + 2^31) >> 32: SaturatingRoundingDoublingHighMul(a, b) when 2a does not overflow
 * and b is not INT32_MIN (SMMULR on DSP cores). The doubling wraps (through uint32_t) for the
 * channels the generator gives b = 0, whose accumulators may be large. */
static EQ_HOT_INLINE int32_t eq_doubling_high_mul_bounded(int32_t a, int32_t b)
{
    const int32_t twice = (int32_t)((uint32_t)a << 1);
#if EQ_DSP
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(twice), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)twice * b + ((int64_t)1 << 31)) >> 32);
#endif
}

/* MultiplyByQuantizedMultiplier for an accumulator the generator has bounded (eq_requant):
 * RoundingDivideByPOT's rounding half away from zero is adding 2^(s-1), less one below zero.
 * The kernels' outputs have right shifts of at least 1, so the -1 needs no mask. */
static EQ_HOT_INLINE int32_t eq_requantize_bounded(int32_t acc, const eq_requant *r)
{
    const int32_t high = eq_doubling_high_mul_bounded(acc, r->multiplier);
    return (high + (high >> 31) + r->round) >> r->right_shift;
}

/* The same for any right shift, 0 included (ADD's inputs): a shift of 0 rounds nothing. */
static EQ_HOT_INLINE int32_t eq_requantize_bounded_any(int32_t acc, const eq_requant *r)
{
    const int32_t high = eq_doubling_high_mul_bounded(acc, r->multiplier);
    return (high + ((high >> 31) & -(r->right_shift != 0)) + r->round) >> r->right_shift;
}

/* TFLite's MultiplyByQuantizedMultiplier(int64_t x, multiplier, shift): the int16x8
 * path, which rounds the multiplier to 16 bits first. */
static inline int32_t eq_requantize_s64(int64_t x, int32_t multiplier, int32_t shift)
{
    const int32_t reduced = multiplier < 0x7FFF0000 ? ((multiplier + (1 << 15)) >> 16) : 0x7FFF;
    const int32_t total_shift = 15 - shift;
    const int64_t rounded = x * (int64_t)reduced + ((int64_t)1 << (total_shift - 1));
    return (int32_t)(rounded >> total_shift);
}

/* The int16x8 output stage shared by CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: the
 * int64 accumulator plus the channel's bias (when there is one), requantized with the
 * channel's or the tensor's multiplier, offset and clamped to the activation. */
static inline int16_t eq_output_s16(int64_t acc, const int64_t *bias, const eq_quant_params *quant,
                                    int32_t channel, int32_t output_offset, const eq_activation *activation)
{
    const int32_t q = quant->per_channel ? channel : 0;
    int32_t v;
    if (bias != 0) {
        acc += bias[channel];
    }
    v = eq_requantize_s64(acc, quant->multiplier[q], quant->shift[q]) + output_offset;
    return (int16_t)EQ_CLAMP(v, activation->min, activation->max);
}

/* One element of TFLite's int8 or int16 ADD (left_shift 20 or 15): both inputs rescaled
 * to a common shifted scale, summed, requantized to the output and clamped to the fused
 * activation. An int16 value plus any int16 offset, times 2^15, still fits in int32. */
static inline int32_t eq_add_quantized(const eq_add_params *p, int32_t x, int32_t y)
{
    int32_t a, b, out;
    if (p->bounded != 0) {
        a = eq_requantize_bounded_any((x + p->input1_offset) * (1 << p->left_shift), &p->bounded[0]);
        b = eq_requantize_bounded_any((y + p->input2_offset) * (1 << p->left_shift), &p->bounded[1]);
        out = eq_requantize_bounded_any(a + b, &p->bounded[2]) + p->output_offset;
    } else {
        a = eq_requantize((x + p->input1_offset) * (1 << p->left_shift), p->input1_multiplier, p->input1_shift);
        b = eq_requantize((y + p->input2_offset) * (1 << p->left_shift), p->input2_multiplier, p->input2_shift);
        out = eq_requantize(a + b, p->output_multiplier, p->output_shift) + p->output_offset;
    }
    return EQ_CLAMP(out, p->activation.min, p->activation.max);
}

static inline int32_t eq_count_leading_zeros(uint32_t x)
{
#if defined(__GNUC__)
    return x == 0 ? 32 : __builtin_clz(x);
#else
    int32_t n = 0;
    if (x == 0) {
        return 32;
    }
    while ((x & 0x80000000u) == 0) {
        x <<= 1;
        n++;
    }
    return n;
#endif
}

#endif /* EQ_MATH_H */
