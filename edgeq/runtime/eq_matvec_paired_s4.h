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
 * is exact. The portable path reads the same layout a nibble at a time. */
#ifndef EQ_MATVEC_PAIRED_S4_H
#define EQ_MATVEC_PAIRED_S4_H

#include "eq_dot_s8.h"

#define EQ_PAIRED_MAX_DEPTH 1024 /* the widened input's stack buffer (EQ_WIDE_DEPTH) */

/* The words of one row: its steps of eight. */
static inline int32_t eq_paired_steps(int32_t depth)
{
    return (depth + 7) / 8;
}

#if EQ_DSP
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
#if EQ_DSP
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
