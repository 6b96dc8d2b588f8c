/* The int8 matrix-vector product under the *widened* FULLY_CONNECTED and 1x1 CONV_2D kernels:
 * int8 inputs against weights widened to int16 at generation time (the layout in eq_types.h),
 * so that on DSP cores the inner loop is one word of input, two SXTB16s and, per output
 * channel, two words of weights in the order SMLAD takes them: four channels' eight words are
 * two LDMs, 16 MACs in 15 instructions. The portable path reads the same layout.
 *
 * Accumulators are computed for up to EQ_WIDE_UNITS channels, then requantized together: two
 * short loops whose values stay in registers at -Os. */
#ifndef EQ_MATVEC_WIDE_S8_H
#define EQ_MATVEC_WIDE_S8_H

#include "eq_dot_s8.h"

#define EQ_WIDE_UNITS 64  /* a multiple of 4: whole groups of the layout */

/* Two int16 halves of a word of the widened layout. */
static EQ_HOT_INLINE int32_t eq_lo16(int32_t w)
{
    return (int32_t)((uint32_t)w << 16) >> 16;
}

static EQ_HOT_INLINE int32_t eq_hi16(int32_t w)
{
    return w >> 16;
}

#if EQ_DSP
/* One step of four channels: a word of input widened to pairs (0, 2) and (1, 3), then the
 * channels' two words each, LDM'd four at a time, against them. */
#define EQ_WIDE_STEP_ASM                                      \
    "ldr %[v], [%[p]], #4\n\t"                                \
    "sxtb16 %[t], %[v]\n\t"                                   \
    "sxtb16 %[v], %[v], ror #8\n\t"                           \
    "ldmia %[f]!, {%[u0], %[u1], %[u2], %[u3]}\n\t"           \
    "smlad %[a0], %[t], %[u0], %[a0]\n\t"                     \
    "smlad %[a0], %[v], %[u1], %[a0]\n\t"                     \
    "smlad %[a1], %[t], %[u2], %[a1]\n\t"                     \
    "smlad %[a1], %[v], %[u3], %[a1]\n\t"                     \
    "ldmia %[f]!, {%[u0], %[u1], %[u2], %[u3]}\n\t"           \
    "smlad %[a2], %[t], %[u0], %[a2]\n\t"                     \
    "smlad %[a2], %[v], %[u1], %[a2]\n\t"                     \
    "smlad %[a3], %[t], %[u2], %[a3]\n\t"                     \
    "smlad %[a3], %[v], %[u3], %[a3]\n\t"

/* acc + one step of one channel: input pairs (0, 2) and (1, 3) against its two words. */
static EQ_HOT_INLINE int32_t eq_wide_step(int32_t acc, int32_t x02, int32_t x13, const int32_t *w)
{
    return __smlad(x13, w[1], __smlad(x02, w[0], acc));
}
#else
static EQ_HOT_INLINE int32_t eq_wide_step(int32_t acc, const int8_t *x, const int32_t *w)
{
    return acc + x[0] * eq_lo16(w[0]) + x[2] * eq_hi16(w[0]) + x[1] * eq_lo16(w[1]) + x[3] * eq_hi16(w[1]);
}
#endif

/* acc[o] = bias[o] + row o . x for `units` rows of `depth` values of the widened filter f. */
static EQ_NOINLINE void eq_matvec_wide_acc(const int32_t *f, const int8_t *x, int32_t depth, int32_t units,
                                           const int32_t *bias, int32_t *acc)
{
    const int32_t steps = depth >> 2, r = depth & 3;
    int8_t last[4] = {0, 0, 0, 0}; /* the partial last step's inputs, zero-padded */
    int32_t o, i;
    eq_copy_s8(last, x + 4 * steps, r);
    for (o = 0; o + 4 <= units; o += 4) {
        int32_t a0 = bias[o], a1 = bias[o + 1], a2 = bias[o + 2], a3 = bias[o + 3];
#if EQ_DSP
        const int8_t *p = x;
        int32_t n = steps;
        /* fixed registers: an LDM list is written in ascending order */
        register int32_t u0 __asm__("r4");
        register int32_t u1 __asm__("r5");
        register int32_t u2 __asm__("r6");
        register int32_t u3 __asm__("r8");
        int32_t v, t;
        __asm__(EQ_ASM_BY_TWO(EQ_WIDE_STEP_ASM)
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [p] "+r"(p), [f] "+r"(f),
                  [n] "+r"(n), [v] "=&r"(v), [t] "=&r"(t), [u0] "=&r"(u0), [u1] "=&r"(u1), [u2] "=&r"(u2),
                  [u3] "=&r"(u3)
                :
                : "cc", "memory");
        if (r != 0) {
            const uint32_t v = eq_read_s8x4(last);
            const int32_t x02 = eq_lanes02(v), x13 = eq_lanes13(v);
            a0 = eq_wide_step(a0, x02, x13, f);
            a1 = eq_wide_step(a1, x02, x13, f + 2);
            a2 = eq_wide_step(a2, x02, x13, f + 4);
            a3 = eq_wide_step(a3, x02, x13, f + 6);
            f += 8;
        }
#else
        for (i = 0; i < steps; i++, f += 8) {
            a0 = eq_wide_step(a0, x + 4 * i, f);
            a1 = eq_wide_step(a1, x + 4 * i, f + 2);
            a2 = eq_wide_step(a2, x + 4 * i, f + 4);
            a3 = eq_wide_step(a3, x + 4 * i, f + 6);
        }
        if (r != 0) {
            a0 = eq_wide_step(a0, last, f);
            a1 = eq_wide_step(a1, last, f + 2);
            a2 = eq_wide_step(a2, last, f + 4);
            a3 = eq_wide_step(a3, last, f + 6);
            f += 8;
        }
#endif
        acc[o] = a0;
        acc[o + 1] = a1;
        acc[o + 2] = a2;
        acc[o + 3] = a3;
    }
    for (; o < units; o++) {
        int32_t a = bias[o];
        for (i = 0; i < steps; i++, f += 2) {
#if EQ_DSP
            const uint32_t v = eq_read_s8x4(x + 4 * i);
            a = eq_wide_step(a, eq_lanes02(v), eq_lanes13(v), f);
#else
            a = eq_wide_step(a, x + 4 * i, f);
#endif
        }
        if (r != 0) {
#if EQ_DSP
            const uint32_t v = eq_read_s8x4(last);
            a = eq_wide_step(a, eq_lanes02(v), eq_lanes13(v), f);
#else
            a = eq_wide_step(a, last, f);
#endif
            f += 2;
        }
        acc[o] = a;
    }
}

#if EQ_DSP
/* One step of four channels against a widened input step: its pairs in one LDRD. */
#define EQ_WIDE16_STEP_ASM                                    \
    "ldrd %[t], %[v], [%[p]], #8\n\t"                         \
    "ldmia %[f]!, {%[u0], %[u1], %[u2], %[u3]}\n\t"           \
    "smlad %[a0], %[t], %[u0], %[a0]\n\t"                     \
    "smlad %[a0], %[v], %[u1], %[a0]\n\t"                     \
    "smlad %[a1], %[t], %[u2], %[a1]\n\t"                     \
    "smlad %[a1], %[v], %[u3], %[a1]\n\t"                     \
    "ldmia %[f]!, {%[u0], %[u1], %[u2], %[u3]}\n\t"           \
    "smlad %[a2], %[t], %[u0], %[a2]\n\t"                     \
    "smlad %[a2], %[v], %[u1], %[a2]\n\t"                     \
    "smlad %[a3], %[t], %[u2], %[a3]\n\t"                     \
    "smlad %[a3], %[v], %[u3], %[a3]\n\t"

/* eq_matvec_wide_acc against the widened input xw of `steps` steps. */
static EQ_NOINLINE void eq_matvec_wide16_acc(const int32_t *f, const int32_t *xw, int32_t steps, int32_t units,
                                             const int32_t *bias, int32_t *acc)
{
    int32_t o, i;
    for (o = 0; o + 4 <= units; o += 4) {
        /* every operand in a fixed register: with thirteen of them GCC 12 finds no allocation
         * by itself here (the LDM list must be ascending in any case) */
        register int32_t a0 __asm__("r0") = bias[o];
        register int32_t a1 __asm__("r1") = bias[o + 1];
        register int32_t a2 __asm__("r2") = bias[o + 2];
        register int32_t a3 __asm__("r3") = bias[o + 3];
        register const int32_t *p __asm__("r12") = xw;
        register const int32_t *w __asm__("lr") = f;
        register int32_t n __asm__("r9") = steps;
        register int32_t u0 __asm__("r4");
        register int32_t u1 __asm__("r5");
        register int32_t u2 __asm__("r6");
        register int32_t u3 __asm__("r8");
        register int32_t t __asm__("r10");
        register int32_t v __asm__("r11");
        __asm__(EQ_ASM_BY_TWO(EQ_WIDE16_STEP_ASM)
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [p] "+r"(p), [f] "+r"(w),
                  [n] "+r"(n), [v] "=&r"(v), [t] "=&r"(t), [u0] "=&r"(u0), [u1] "=&r"(u1), [u2] "=&r"(u2),
                  [u3] "=&r"(u3)
                :
                : "cc", "memory");
        f = w;
        acc[o] = a0;
        acc[o + 1] = a1;
        acc[o + 2] = a2;
        acc[o + 3] = a3;
    }
    for (; o < units; o++) {
        int32_t a = bias[o];
        for (i = 0; i < steps; i++, f += 2) {
            a = __smlad(xw[2 * i + 1], f[1], __smlad(xw[2 * i], f[0], a));
        }
        acc[o] = a;
    }
}
#endif

/* out = requantized(bias + W x) for the widened filter W of `units` rows of `depth` values. */
static inline void eq_matvec_wide_s8(const int32_t *filter, int32_t depth, int32_t units, const int8_t *x,
                                     const int32_t *bias, const eq_quant_params *quant, int32_t output_offset,
                                     const eq_activation *activation, int8_t *out)
{
    const int32_t row_words = (depth + 3) / 4 * 2;
    int32_t acc[EQ_WIDE_UNITS];
    int32_t o, n;
#if EQ_DSP
    if (depth <= EQ_WIDE_DEPTH) {
        int32_t xw[EQ_WIDE_DEPTH / 2];
        eq_widen_s8(x, depth, xw);
        for (o = 0; o < units; o += n) {
            n = EQ_MIN(EQ_WIDE_UNITS, units - o);
            eq_matvec_wide16_acc(filter + o * row_words, xw, row_words / 2, n, bias + o, acc);
            eq_output_channels_s8(acc, n, quant, o, output_offset, activation, out + o);
        }
        return;
    }
#endif
    for (o = 0; o < units; o += n) {
        n = EQ_MIN(EQ_WIDE_UNITS, units - o);
        eq_matvec_wide_acc(filter + o * row_words, x, depth, n, bias + o, acc);
        eq_output_channels_s8(acc, n, quant, o, output_offset, activation, out + o);
    }
}

#endif /* EQ_MATVEC_WIDE_S8_H */
