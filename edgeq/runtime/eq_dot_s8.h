/* edgeq-c runtime: the int8 dot products under CONV_2D and FULLY_CONNECTED, and the SIMD
 * primitives of the int8 kernels.
 *
 * Two paths, chosen at compile time, bit-exact with each other (integer sums are exact and
 * every int32 accumulator is the same sum in a different order, which wraps identically):
 *  - EQ_DSP (cores with the DSP extension: Cortex-M4, M7, M33 with DSP): four int8 values are
 *    loaded as one word, SXTB16 widens lanes 0 and 2 and (operand rotated by 8) lanes 1 and 3
 *    into int16 pairs, and SMLAD multiplies two pairs and adds both products. Both operands
 *    are split the same way, so lane i meets lane i and no halves need swapping. The input
 *    offset is folded into the bias at generation time (eq_types.h), so no offset is added in
 *    the loop. (The widened kernels' loop is eq_matvec_wide_s8.h's.)
 *  - portable C for the M0/M0+/M3 and the host (written to vectorize there).
 * EQ_DSP is set in eq_math.h; define EQ_PORTABLE to force the portable path on a DSP core.
 */
#ifndef EQ_DOT_S8_H
#define EQ_DOT_S8_H

#include <stdint.h>
#include <string.h>
#include "eq_math.h"

#if EQ_DSP
/* Four int8 values as one word; memcpy because the pointer need not be word aligned (the M4
 * and later load unaligned words in one LDR, which is what GCC emits for this). */
static EQ_HOT_INLINE uint32_t eq_read_s8x4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Lanes 0 and 2 of x, sign-extended to the two int16 halves of the result. */
static EQ_HOT_INLINE int32_t eq_lanes02(uint32_t x)
{
    return __sxtb16((int32_t)x);
}

/* Lanes 1 and 3: SXTB16 with its operand rotated by 8, one instruction (GCC 12 does not fold
 * a rotate written in C into it, and its arm_acle.h has no __ror). */
static EQ_HOT_INLINE int32_t eq_lanes13(uint32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* acc + the four products of matching int8 lanes of a and b: two SMLADs. */
static EQ_HOT_INLINE int32_t eq_mac4(uint32_t a, uint32_t b, int32_t acc)
{
    acc = __smlad(eq_lanes02(a), eq_lanes02(b), acc);
    return __smlad(eq_lanes13(a), eq_lanes13(b), acc);
}
#endif

/* Runs of a few to a few hundred bytes (a window's rows, a pixel's vector), often empty:
 * copied and filled inline, a word at a time where whole words fit (the M3 and later load and
 * store unaligned words), not by library calls that cost more than the run. The empty asm
 * hides the value from GCC, which would otherwise turn the loops back into calls. On MVE cores
 * sixteen bytes a pass, in tail-predicated loops (WLSTP/LETP) whose last pass moves what is left. */
#if defined(__GNUC__)
#define EQ_OPAQUE(v) __asm__("" : "+r"(v))
#else
#define EQ_OPAQUE(v) ((void)0)
#endif

static EQ_HOT_INLINE void eq_copy_s8(int8_t *dst, const int8_t *src, int32_t n)
{
#if EQ_MVE
    __asm__ volatile(
        "wlstp.8 lr, %[n], 2f\n"
        "1:\n\t"
        "vldrb.8 q0, [%[src]], #16\n\t"
        "vstrb.8 q0, [%[dst]], #16\n\t"
        "letp lr, 1b\n"
        "2:"
        : [dst] "+r"(dst), [src] "+r"(src)
        : [n] "r"(n)
        : "lr", "q0", "memory");
#else
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t v;
        memcpy(&v, src + i, 4);
        EQ_OPAQUE(v);
        memcpy(dst + i, &v, 4);
    }
    for (; i < n; i++) {
        int32_t b = src[i];
        EQ_OPAQUE(b);
        dst[i] = (int8_t)b;
    }
#endif
}

static EQ_HOT_INLINE void eq_fill_s8(int8_t *dst, int32_t value, int32_t n)
{
#if EQ_MVE
    __asm__ volatile(
        "vdup.8 q0, %[value]\n\t"
        "wlstp.8 lr, %[n], 2f\n"
        "1:\n\t"
        "vstrb.8 q0, [%[dst]], #16\n\t"
        "letp lr, 1b\n"
        "2:"
        : [dst] "+r"(dst)
        : [n] "r"(n), [value] "r"(value)
        : "lr", "q0", "memory");
#else
    int32_t i;
    for (i = 0; i < n; i++) {
        int32_t b = value;
        EQ_OPAQUE(b);
        dst[i] = (int8_t)b;
    }
#endif
}

#if EQ_DSP
/* An assembly loop of %[n] STEPs: an odd one first (LSRS leaves it in the carry), then two a
 * pass, half the compare and branch of one a pass. */
#define EQ_ASM_BY_TWO(STEP)                                   \
    "lsrs %[n], %[n], #1\n\t"                                 \
    "bcc 2f\n\t" STEP                                         \
    "2:\n\t"                                                  \
    "cmp %[n], #0\n\t"                                        \
    "beq 3f\n"                                                 \
    "1:\n\t" STEP STEP                                        \
    "subs %[n], %[n], #1\n\t"                                 \
    "bne 1b\n"                                                 \
    "3:"

#define EQ_BLOCKED_UNITS 64 /* accumulators a pass, requantized together */
#define EQ_WIDE_DEPTH 1024 /* inputs widened once on the stack (DSP cores), 2 KiB; longer ones are not */

/* xw = x[0..depth) widened once to the int16 pairs (0, 2), (1, 3) of each step, the partial last
 * step zero-padded: a matrix-vector product then loads a step's pairs in one LDRD. */
static inline void eq_widen_s8(const int8_t *x, int32_t depth, int32_t *xw)
{
    const int32_t steps = depth >> 2, r = depth & 3;
    int8_t last[4] = {0, 0, 0, 0};
    int32_t i;
    for (i = 0; i < steps; i++, xw += 2) {
        const uint32_t v = eq_read_s8x4(x + 4 * i);
        xw[0] = eq_lanes02(v);
        xw[1] = eq_lanes13(v);
    }
    if (r != 0) {
        eq_copy_s8(last, x + 4 * steps, r);
        xw[0] = eq_lanes02(eq_read_s8x4(last));
        xw[1] = eq_lanes13(eq_read_s8x4(last));
    }
}

/* Two of a blocked step's four channels: their int8 words in one LDM, each widened in registers
 * by SXTB16 to the pairs (0, 2) and (1, 3), the very pairs the widened input holds, so the
 * weights need no other order than the blocked one. */
#define EQ_BLOCKED_PAIR_ASM(a, b)                             \
    "ldmia %[f]!, {%[u0], %[u1]}\n\t"                          \
    "sxtb16 %[s], %[u0]\n\t"                                   \
    "sxtb16 %[u0], %[u0], ror #8\n\t"                          \
    "smlad %[" a "], %[t], %[s], %[" a "]\n\t"                 \
    "smlad %[" a "], %[v], %[u0], %[" a "]\n\t"                \
    "sxtb16 %[s], %[u1]\n\t"                                   \
    "sxtb16 %[u1], %[u1], ror #8\n\t"                          \
    "smlad %[" b "], %[t], %[s], %[" b "]\n\t"                 \
    "smlad %[" b "], %[v], %[u1], %[" b "]\n\t"
/* One step of four channels: the input's pairs in one LDRD, 16 MACs in 19 instructions. */
#define EQ_BLOCKED_STEP_ASM "ldrd %[t], %[v], [%[p]], #8\n\t" EQ_BLOCKED_PAIR_ASM("a0", "a1") EQ_BLOCKED_PAIR_ASM("a2", "a3")

/* acc[0..4 * groups) = bias + rows . x for `groups` groups of four blocked rows (eq_types.h) of
 * `depth` int8 weights at f, x also given widened (xw, eq_widen_s8): the int8 weights' SIMD
 * loop, about 1.2 instructions a MAC against the widened weights' 0.7 (eq_matvec_wide_s8.h)
 * for half their flash. Returns f past the groups. */
static EQ_NOINLINE const int8_t *eq_matvec_blocked_acc(const int8_t *f, const int8_t *x, const int32_t *xw,
                                                       int32_t depth, int32_t groups, const int32_t *bias,
                                                       int32_t *acc)
{
    const int32_t steps = depth >> 2, r = depth & 3;
    const int8_t *const tail = x + 4 * steps;
    int32_t g, i;
    for (g = 0; g < groups; g++, bias += 4, acc += 4) {
        /* fixed registers, as in eq_matvec_wide16_acc: GCC 12 finds no allocation of twelve
         * operands by itself here, and an LDM list is ascending */
        register int32_t a0 __asm__("r0") = bias[0];
        register int32_t a1 __asm__("r1") = bias[1];
        register int32_t a2 __asm__("r2") = bias[2];
        register int32_t a3 __asm__("r3") = bias[3];
        register const int32_t *p __asm__("r12") = xw;
        register const int8_t *w __asm__("lr") = f;
        register int32_t n __asm__("r9") = steps;
        register int32_t u0 __asm__("r4");
        register int32_t u1 __asm__("r5");
        register int32_t s __asm__("r6");
        register int32_t t __asm__("r10");
        register int32_t v __asm__("r11");
        __asm__(EQ_ASM_BY_TWO(EQ_BLOCKED_STEP_ASM)
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [p] "+r"(p), [f] "+r"(w),
                  [n] "+r"(n), [v] "=&r"(v), [t] "=&r"(t), [u0] "=&r"(u0), [u1] "=&r"(u1), [s] "=&r"(s)
                :
                : "cc", "memory");
        f = w;
        for (i = 0; i < r; i++) { /* the blocked layout's tail: the four rows' last bytes row by row */
            const int32_t xi = tail[i];
            a0 += f[i] * xi;
            a1 += f[r + i] * xi;
            a2 += f[2 * r + i] * xi;
            a3 += f[3 * r + i] * xi;
        }
        f += 4 * r;
        acc[0] = a0;
        acc[1] = a1;
        acc[2] = a2;
        acc[3] = a3;
    }
    return f;
}
#endif

/* acc + sum(a[i] * b[i]) over n int8 values. */
#if EQ_MVE
#include "eq_mve_s8.h"
#endif

EQ_VECTORIZE static EQ_HOT_INLINE int32_t eq_dot_s8(int32_t acc, const int8_t *a, const int8_t *b, int32_t n)
{
    int32_t i = 0;
#if EQ_MVE
    return eq_mve_dot(acc, a, b, n);
#elif EQ_DSP
    for (; i + 4 <= n; i += 4) {
        acc = eq_mac4(eq_read_s8x4(a + i), eq_read_s8x4(b + i), acc);
    }
#endif
    for (; i < n; i++) {
        acc += (int32_t)a[i] * (int32_t)b[i];
    }
    return acc;
}

/* Four rows of f (`stride` apart: four output channels) against one vector x, added to acc:
 * each input word is loaded and widened once for sixteen multiply-accumulates. */
EQ_VECTORIZE static EQ_HOT_INLINE void eq_dot4_s8(const int8_t *f, int32_t stride, const int8_t *x, int32_t n, int32_t *acc)
{
    const int8_t *f0 = f, *f1 = f + stride, *f2 = f + 2 * stride, *f3 = f + 3 * stride;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t i = 0;
#if EQ_DSP
    for (; i + 4 <= n; i += 4) {
        const uint32_t v = eq_read_s8x4(x + i);
        const int32_t v02 = eq_lanes02(v), v13 = eq_lanes13(v);
        uint32_t w = eq_read_s8x4(f0 + i);
        a0 = __smlad(v13, eq_lanes13(w), __smlad(v02, eq_lanes02(w), a0));
        w = eq_read_s8x4(f1 + i);
        a1 = __smlad(v13, eq_lanes13(w), __smlad(v02, eq_lanes02(w), a1));
        w = eq_read_s8x4(f2 + i);
        a2 = __smlad(v13, eq_lanes13(w), __smlad(v02, eq_lanes02(w), a2));
        w = eq_read_s8x4(f3 + i);
        a3 = __smlad(v13, eq_lanes13(w), __smlad(v02, eq_lanes02(w), a3));
    }
#endif
    for (; i < n; i++) {
        const int32_t v = x[i];
        a0 += f0[i] * v;
        a1 += f1[i] * v;
        a2 += f2[i] * v;
        a3 += f3[i] * v;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* acc[j] += row j . x for one group of four blocked rows (eq_types.h) of n values starting
 * at f: one pointer walks the four rows, 4 * EQ_BLOCK bytes a step. */
#if EQ_MVE
static EQ_HOT_INLINE void eq_dot4_blocked_s8(const int8_t *f, const int8_t *x, int32_t n, int32_t *acc)
{
    (void)eq_mve_dot4_blocked(f, x, n, acc, acc);
}
#elif EQ_DSP
EQ_VECTORIZE static EQ_HOT_INLINE void eq_dot4_blocked_s8(const int8_t *f, const int8_t *x, int32_t n, int32_t *acc)
{
    const int32_t r = n & 3;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t t;
    /* pointers rather than an index: fewer live registers, so -Os keeps the loop out of the stack */
    const int8_t *const end = x + (n & ~3);
    while (x != end) {
        const uint32_t v = eq_read_s8x4(x);
        const int32_t v02 = eq_lanes02(v), v13 = eq_lanes13(v);
        uint32_t w = eq_read_s8x4(f);
        a0 = __smlad(v13, eq_lanes13(w), __smlad(v02, eq_lanes02(w), a0));
        w = eq_read_s8x4(f + 4);
        a1 = __smlad(v13, eq_lanes13(w), __smlad(v02, eq_lanes02(w), a1));
        w = eq_read_s8x4(f + 8);
        a2 = __smlad(v13, eq_lanes13(w), __smlad(v02, eq_lanes02(w), a2));
        w = eq_read_s8x4(f + 12);
        a3 = __smlad(v13, eq_lanes13(w), __smlad(v02, eq_lanes02(w), a3));
        x += 4;
        f += 16;
    }
    for (t = 0; t < r; t++) {
        const int32_t v = x[t];
        a0 += f[t] * v;
        a1 += f[r + t] * v;
        a2 += f[2 * r + t] * v;
        a3 += f[3 * r + t] * v;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#else
/* The portable path indexes: on the M3 -Os makes that the faster form. */
EQ_VECTORIZE static EQ_HOT_INLINE void eq_dot4_blocked_s8(const int8_t *f, const int8_t *x, int32_t n, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t i = 0, r, t;
    for (; i + 4 <= n; i += 4, f += 16) {
        for (t = 0; t < 4; t++) {
            const int32_t v = x[i + t];
            a0 += f[t] * v;
            a1 += f[4 + t] * v;
            a2 += f[8 + t] * v;
            a3 += f[12 + t] * v;
        }
    }
    r = n - i;
    for (t = 0; t < r; t++) {
        const int32_t v = x[i + t];
        a0 += f[t] * v;
        a1 += f[r + t] * v;
        a2 += f[2 * r + t] * v;
        a3 += f[3 * r + t] * v;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#endif

/* The channel's (or the tensor's) requantization of acc, in the bounded form when given. */
static EQ_HOT_INLINE int32_t eq_requantize_channel(int32_t acc, const eq_quant_params *quant, int32_t channel)
{
    const int32_t q = quant->per_channel ? channel : 0;
    if (quant->bounded != 0) {
        return eq_requantize_bounded(acc, &quant->bounded[q]);
    }
    return eq_requantize(acc, quant->multiplier[q], quant->shift[q]);
}

/* One int8 output of a convolution or FULLY_CONNECTED: requantized, offset and clamped. */
static EQ_HOT_INLINE int8_t eq_output_s8(int32_t acc, const eq_quant_params *quant, int32_t channel,
                                         int32_t output_offset, const eq_activation *activation)
{
    acc = eq_requantize_channel(acc, quant, channel) + output_offset;
    return (int8_t)EQ_CLAMP(acc, activation->min, activation->max);
}

/* out[i * step] = the int8 outputs of one channel's accumulators acc[0..n). */
static EQ_NOINLINE void eq_output_run_s8(const int32_t *acc, int32_t n, const eq_quant_params *quant,
                                         int32_t channel, int32_t output_offset, const eq_activation *activation,
                                         int8_t *out, int32_t step)
{
    const int32_t q = quant->per_channel ? channel : 0;
    const int32_t lo = activation->min, hi = activation->max;
    const int32_t *const end = acc + n;
    if (quant->bounded != 0) {
        const eq_requant r = quant->bounded[q];
#if EQ_DSP
        if (lo == -128 && hi == 127 && output_offset == 0) { /* offset folded in, no activation left: */
            for (; acc != end; acc++, out += step) {           /* the requantization and one SSAT */
                *out = (int8_t)__ssat(eq_requantize_bounded(*acc, &r), 8);
            }
            return;
        }
        if (lo == -128 && hi == 127) {
            for (; acc != end; acc++, out += step) {
                *out = (int8_t)__ssat(eq_requantize_bounded(*acc, &r) + output_offset, 8);
            }
            return;
        }
#endif
        for (; acc != end; acc++, out += step) {
            int32_t v = eq_requantize_bounded(*acc, &r) + output_offset;
            v = v < lo ? lo : v;
            *out = (int8_t)(v > hi ? hi : v);
        }
    } else {
        const int32_t multiplier = quant->multiplier[q], shift = quant->shift[q];
        for (; acc != end; acc++, out += step) {
            const int32_t v = eq_requantize(*acc, multiplier, shift) + output_offset;
            *out = (int8_t)EQ_CLAMP(v, lo, hi);
        }
    }
}

/* out[0..n) = the int8 outputs of channels c0.. from their accumulators. */
static EQ_NOINLINE void eq_output_channels_s8(const int32_t *acc, int32_t n, const eq_quant_params *quant,
                                              int32_t c0, int32_t output_offset, const eq_activation *activation,
                                              int8_t *out)
{
    const int32_t lo = activation->min, hi = activation->max;
    int32_t i;
    if (!quant->per_channel) {
        eq_output_run_s8(acc, n, quant, 0, output_offset, activation, out, 1);
    } else if (quant->bounded != 0) {
        const eq_requant *r = quant->bounded + c0;
#if EQ_DSP
        if (lo == -128 && hi == 127 && output_offset == 0) { /* offset folded in, no activation left: */
            for (i = 0; i < n; i++, r++) {                     /* the requantization and one SSAT */
                out[i] = (int8_t)__ssat(eq_requantize_bounded(acc[i], r), 8);
            }
            return;
        }
        if (lo == -128 && hi == 127) {
            for (i = 0; i < n; i++, r++) {
                out[i] = (int8_t)__ssat(eq_requantize_bounded(acc[i], r) + output_offset, 8);
            }
            return;
        }
#endif
        for (i = 0; i < n; i++, r++) {
            int32_t v = eq_requantize_bounded(acc[i], r) + output_offset;
            v = v < lo ? lo : v;
            out[i] = (int8_t)(v > hi ? hi : v);
        }
    } else {
        for (i = 0; i < n; i++) {
            const int32_t v = eq_requantize(acc[i], quant->multiplier[c0 + i], quant->shift[c0 + i]) + output_offset;
            out[i] = (int8_t)EQ_CLAMP(v, lo, hi);
        }
    }
}

/* out = requantized(bias + W x) for a blocked filter W of `units` rows of `depth` values:
 * FULLY_CONNECTED's row and a 1x1 convolution's pixel. */
static inline void eq_matvec_blocked_s8(const int8_t *filter, int32_t depth, int32_t units, const int8_t *x,
                                        const int32_t *bias, const eq_quant_params *quant, int32_t output_offset,
                                        const eq_activation *activation, int8_t *out)
{
    const int8_t *f = filter;
    int32_t o = 0, j;
#if EQ_MVE
    /* a run of channels' sums, then their outputs four a pass */
    int32_t acc[EQ_BLOCKED_UNITS];
    for (; o + 4 <= units; o += j) {
        int32_t g;
        j = EQ_MIN(EQ_BLOCKED_UNITS, (units - o) & ~3);
        for (g = 0; g < j; g += 4) {
            f = eq_mve_dot4_blocked(f, x, depth, bias + o + g, acc + g);
        }
        if (quant->bounded != 0) {
            eq_mve_outputs_s8(acc, 1, j, o, 0, quant, output_offset, activation, 0, 0, out + o);
        } else {
            eq_output_channels_s8(acc, j, quant, o, output_offset, activation, out + o);
        }
    }
#elif EQ_DSP
    /* x widened once pays from two groups of four channels on */
    if (depth <= EQ_WIDE_DEPTH && units >= 8) {
        int32_t xw[EQ_WIDE_DEPTH / 2];
        int32_t acc[EQ_BLOCKED_UNITS];
        eq_widen_s8(x, depth, xw);
        for (; o + 4 <= units; o += j) {
            j = EQ_MIN(EQ_BLOCKED_UNITS, (units - o) & ~3);
            f = eq_matvec_blocked_acc(f, x, xw, depth, j / 4, bias + o, acc);
            eq_output_channels_s8(acc, j, quant, o, output_offset, activation, out + o);
        }
    }
#endif
    for (; o + 4 <= units; o += 4, f += 4 * EQ_BLOCK_ROW(depth)) {
        int32_t acc[4];
        for (j = 0; j < 4; j++) {
            acc[j] = bias[o + j];
        }
        eq_dot4_blocked_s8(f, x, depth, acc);
        for (j = 0; j < 4; j++) {
            out[o + j] = eq_output_s8(acc[j], quant, o + j, output_offset, activation);
        }
    }
    for (; o < units; o++, f += EQ_BLOCK_ROW(depth)) {
        out[o] = eq_output_s8(eq_dot_s8(bias[o], f, x, depth), quant, o, output_offset, activation);
    }
}

#endif /* EQ_DOT_S8_H */
