/* The matrix-vector product under the *paired* int4 kernels (eq_fully_connected_paired_s4,
 * eq_conv_paired_s4): int8 inputs against int4 weights kept two a byte in flash, in an order
 * made at generation time (edgeq.aot.lowering.pair_nibbles) so that SXTB16 unpacks them with
 * no reordering: for a row's step s of eight weights, one word whose byte k holds weight 8s + k
 * in its low nibble and weight 8s + 4 + k in its high nibble; rows two by two, their words
 * alternating step by step; rows padded to whole steps and to an even count with zeros.
 *
 * On DSP cores, W & 0xF0F0F0F0 puts weights 4..7 and (W << 4) & 0xF0F0F0F0 weights 0..3 at the
 * top of their bytes, so SXTB16 and its rotated form give them as int16 pairs times 16, the
 * pairs (0, 2), (1, 3), (4, 6), (5, 7) of the input widened once (eq_widen_s8): one word, three
 * ALU instructions, four SXTB16 and four SMLAD for eight MACs. The sums are 16 times the true
 * ones, which are small enough (|x w| <= 1024 a MAC, depth <= EQ_WIDE_DEPTH) that the shift back
 * is exact. The portable path reads the same layout a nibble at a time.
 *
 * On MVE cores (pair_nibbles(w, MVE_BLOCK)) a step is 32 weights, 16 bytes whose byte k holds weight
 * 32s + k in its low nibble and 32s + 16 + k in its high one, and rows go four by four, a group's
 * steps holding each of its rows' 16 bytes in turn, as the int8 blocked filters do; rows padded to
 * whole steps and to a multiple of four with zeros. VSHL #4 and an AND with 0xF0 give sixteen
 * weights each, times 16, as int8 lanes, which VMLADAVA multiplies with sixteen inputs: 32 MACs of
 * a row in a load, two ALU instructions and two VMLADAVA. */
#ifndef EQ_MATVEC_PAIRED_S4_H
#define EQ_MATVEC_PAIRED_S4_H

#include "eq_dot_s8.h"

#define EQ_PAIRED_MAX_DEPTH 1024 /* the widened input's stack buffer (EQ_WIDE_DEPTH) */
#if EQ_MVE
#define EQ_PAIRED_STEP 32 /* weights a row's step holds */
#else
#define EQ_PAIRED_STEP 8
#endif

/* The steps of one row. */
static inline int32_t eq_paired_steps(int32_t depth)
{
    return (depth + EQ_PAIRED_STEP - 1) / EQ_PAIRED_STEP;
}

#if EQ_MVE
/* One row's step: q0/q1 hold the inputs' low and high sixteen, q4 0xF0 in every byte. */
#define EQ_MVE_PAIRED_ROW1(a)                                 \
    "vldrb.8 q2, [%[w]], #16\n\t"                             \
    "vshl.i8 q3, q2, #4\n\t"                                  \
    "vand q2, q2, q4\n\t"                                     \
    "vmladava.s8 %[" a "], q3, q0\n\t"                        \
    "vmladava.s8 %[" a "], q2, q1\n\t"

/* acc[0..4) = 16 times rows 0..3 of the group at f . x over `depth` values: whole steps in a WLS/LE
 * loop (128 MACs in 23 instructions), the last, partial one with the inputs under a tail predicate
 * (nothing read past x's depth). Returns f past the group. */
static EQ_HOT_INLINE const uint8_t *eq_mve_paired_dot4(const uint8_t *f, const int8_t *x, int32_t depth, int32_t *acc)
{
    register int32_t a0 __asm__("r0") = 0; /* VMLADAVA accumulates into even registers only */
    register int32_t a1 __asm__("r2") = 0;
    register int32_t a2 __asm__("r4") = 0;
    register int32_t a3 __asm__("r6") = 0;
    register const uint8_t *w __asm__("r8") = f;
    register const int8_t *v __asm__("r10") = x;
    const int32_t left = depth & 31;
    __asm__ volatile(
        "vmov.i8 q4, #0xF0\n\t"
        "wls lr, %[steps], 2f\n"
        "1:\n\t"
        "vldrb.8 q0, [%[v]], #16\n\t"
        "vldrb.8 q1, [%[v]], #16\n\t"
        EQ_MVE_PAIRED_ROW1("a0") EQ_MVE_PAIRED_ROW1("a1") EQ_MVE_PAIRED_ROW1("a2") EQ_MVE_PAIRED_ROW1("a3")
        "le lr, 1b\n"
        "2:"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w] "+r"(w), [v] "+r"(v)
        : [steps] "r"(depth >> 5)
        : "lr", "q0", "q1", "q2", "q3", "q4", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    if (left != 0) {
        const uint8x16_t high = vdupq_n_u8(0xF0);
        const int8x16_t lo_x = vldrbq_z_s8(v, vctp8q((uint32_t)EQ_MIN(left, 16)));
        const int8x16_t hi_x = vldrbq_z_s8(v + 16, vctp8q((uint32_t)EQ_MAX(left - 16, 0)));
        int32_t k;
        for (k = 0; k < 4; k++, w += 16) {
            const uint8x16_t q = vld1q_u8(w);
            acc[k] = vmladavaq_s8(acc[k], vreinterpretq_s8_u8(vshlq_n_u8(q, 4)), lo_x);
            acc[k] = vmladavaq_s8(acc[k], vreinterpretq_s8_u8(vandq_u8(q, high)), hi_x);
        }
    }
    return w;
}
#undef EQ_MVE_PAIRED_ROW1

/* The int8 outputs of `pixels` pixels' channels c0..c0+n-1 (`stride` bytes apart in out) from their
 * sums times 16 (acc, pixel after pixel, m >= n apart, m a multiple of four): the bias added, then
 * requantized four lanes at a time when the form and the count allow it. */
static EQ_HOT_INLINE void eq_paired_outputs(int32_t *acc, int32_t pixels, int32_t n, int32_t m, int32_t c0,
                                            int32_t stride, const int32_t *bias, const eq_quant_params *quant,
                                            int32_t output_offset, const eq_activation *activation, int8_t *out)
{
    int32_t p, k;
    for (k = 0; k < m; k += 4) {
        const int32_t *at = bias + c0 + k;
        const int32x4_t b = n - k >= 4 ? vld1q_s32(at) : vldrwq_z_s32(at, vctp32q((uint32_t)(n - k)));
        for (p = 0; p < pixels; p++) {
            int32_t *a = acc + p * m + k;
            vst1q_s32(a, vaddq_s32(b, vshrq_n_s32(vld1q_s32(a), 4)));
        }
    }
    if (quant->bounded != 0 && n == m) {
        eq_mve_outputs_s8(acc, pixels, n, c0, stride, quant, output_offset, activation, 0, 0, out);
        return;
    }
    for (p = 0; p < pixels; p++) {
        eq_output_channels_s8(acc + p * m, n, quant, c0, output_offset, activation, out + p * stride);
    }
}
#elif EQ_DSP
#define EQ_PAIRED_UNIT_ASM(a)                                  \
    "ldr %[w], [%[f]], #4\n\t"                                 \
    "and %[t], %[m], %[w], lsl #4\n\t"                         \
    "and %[w], %[w], %[m]\n\t"                                 \
    "sxtb16 %[s], %[t]\n\t"                                    \
    "smlad %[" a "], %[x02], %[s], %[" a "]\n\t"               \
    "sxtb16 %[t], %[t], ror #8\n\t"                            \
    "smlad %[" a "], %[x13], %[t], %[" a "]\n\t"               \
    "sxtb16 %[s], %[w]\n\t"                                    \
    "smlad %[" a "], %[x46], %[s], %[" a "]\n\t"               \
    "sxtb16 %[w], %[w], ror #8\n\t"                            \
    "smlad %[" a "], %[x57], %[w], %[" a "]\n\t"

/* The sums of two rows times 16 against xw (`steps` steps of eight, widened) from f on; returns f
 * past them. */
static EQ_HOT_INLINE const uint32_t *eq_paired_dot2(const uint32_t *f, const int32_t *xw, int32_t steps,
                                                    int32_t *s0, int32_t *s1)
{
    int32_t a0 = 0, a1 = 0, x02, x13, x46, x57, w, t, s;
    const int32_t *p = xw;
    const uint32_t mask = 0xF0F0F0F0u;
#define EQ_PAIRED_STEP_ASM                                     \
    "ldrd %[x02], %[x13], [%[p]], #8\n\t"                      \
    "ldrd %[x46], %[x57], [%[p]], #8\n\t" EQ_PAIRED_UNIT_ASM("a0") EQ_PAIRED_UNIT_ASM("a1")
    __asm__(EQ_ASM_BY_TWO(EQ_PAIRED_STEP_ASM)
            : [a0] "+r"(a0), [a1] "+r"(a1), [p] "+r"(p), [f] "+r"(f), [n] "+r"(steps), [x02] "=&r"(x02),
              [x13] "=&r"(x13), [x46] "=&r"(x46), [x57] "=&r"(x57), [w] "=&r"(w), [t] "=&r"(t), [s] "=&r"(s)
            : [m] "r"(mask)
            : "cc", "memory");
#undef EQ_PAIRED_STEP_ASM
    *s0 = a0;
    *s1 = a1;
    return f;
}
#else
/* Weight i of a step's word. */
static EQ_HOT_INLINE int32_t eq_paired_weight(uint32_t word, int32_t i)
{
    const int32_t byte = (int32_t)((word >> (8 * (i & 3))) & 0xFFu);
    const int32_t nibble = i < 4 ? byte & 0x0F : byte >> 4;
    return nibble >= 8 ? nibble - 16 : nibble;
}
#endif

/* out[0..units) = requantized(bias + W x) for the paired int4 filter W of `units` rows of
 * `depth` weights, depth <= EQ_PAIRED_MAX_DEPTH. */
static EQ_NOINLINE void eq_matvec_paired_s4(const uint32_t *filter, int32_t depth, int32_t units, const int8_t *x,
                                            const int32_t *bias, const eq_quant_params *quant, int32_t output_offset,
                                            const eq_activation *activation, int8_t *out)
{
    const int32_t steps = eq_paired_steps(depth);
    const uint32_t *f = filter;
    int32_t o, k;
#if EQ_MVE
    const uint8_t *g = (const uint8_t *)f;
    int32_t n;
    (void)steps;
    for (o = 0; o < units; o += n) { /* EQ_BLOCKED_UNITS is a multiple of four */
        int32_t acc[EQ_BLOCKED_UNITS];
        n = EQ_MIN(EQ_BLOCKED_UNITS, units - o);
        for (k = 0; k < n; k += 4) {
            g = eq_mve_paired_dot4(g, x, depth, acc + k);
        }
        eq_paired_outputs(acc, 1, n, (n + 3) & ~3, o, 0, bias, quant, output_offset, activation, out + o);
    }
#elif EQ_DSP
    int32_t xw[EQ_PAIRED_MAX_DEPTH / 2];
    int32_t i, n;
    eq_widen_s8(x, depth, xw);
    for (i = (depth + 3) / 4 * 2; i < 4 * steps; i++) {
        xw[i] = 0; /* the last step's missing half */
    }
    /* the sums of up to EQ_BLOCKED_UNITS rows, then requantized together */
    for (o = 0; o < units; o += n) {
        int32_t acc[EQ_BLOCKED_UNITS];
        n = EQ_MIN(EQ_BLOCKED_UNITS, units - o);
        for (k = 0; k < n; k += 2) {
            int32_t s0, s1;
            f = eq_paired_dot2(f, xw, steps, &s0, &s1);
            acc[k] = bias[o + k] + (s0 >> 4);
            acc[k + 1] = k + 1 < n ? bias[o + k + 1] + (s1 >> 4) : 0;
        }
        eq_output_channels_s8(acc, n, quant, o, output_offset, activation, out + o);
    }
#else
    for (o = 0; o < units; o += 2) {
        int32_t a0 = bias[o], a1 = o + 1 < units ? bias[o + 1] : 0;
        int32_t s;
        for (s = 0; s < steps; s++, f += 2) {
            for (k = 0; k < 8 && 8 * s + k < depth; k++) {
                a0 += eq_paired_weight(f[0], k) * x[8 * s + k];
                a1 += eq_paired_weight(f[1], k) * x[8 * s + k];
            }
        }
        out[o] = eq_output_s8(a0, quant, o, output_offset, activation);
        if (o + 1 < units) {
            out[o + 1] = eq_output_s8(a1, quant, o + 1, output_offset, activation);
        }
    }
#endif
}

#endif /* EQ_MATVEC_PAIRED_S4_H */
