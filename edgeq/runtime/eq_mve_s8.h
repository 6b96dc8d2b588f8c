/* edgeq-c runtime: the int8 dot products and output stage on cores with Helium (MVE), included by
 * eq_dot_s8.h; empty elsewhere.
 *
 * A blocked filter (eq_types.h) steps EQ_BLOCK = 16 bytes a row here: each step of a group holds 16
 * weights of each of its four rows in turn, so one 16-byte load of the input meets four 16-byte loads
 * of weights, and VMLADAVA multiplies sixteen int8 pairs and adds all sixteen products to a row's
 * accumulator: 64 multiply-accumulates in ten instructions, the loop's end (LE) included. Rows are
 * zero-padded to whole steps (EQ_BLOCK_ROW), so the last, partial step loads whole weight vectors
 * and only the input's load is tail-predicated (VCTP): it touches nothing past the input, and its
 * lanes past the depth, zero, meet zero weights.
 *
 * Sums are exact and wrap like the portable path's, so the results are bit-exact with it. The
 * requantization of four outputs at once is eq_requantize_bounded lane by lane: VQRDMULH is
 * (2ab + 2^31) >> 32, which is SMMULR(2a, b) for the accumulators the generator has bounded.
 */
#ifndef EQ_MVE_S8_H
#define EQ_MVE_S8_H

#include "eq_math.h"

#if EQ_MVE

/* acc[0..4) = init[0..4) + rows 0..3 of the blocked group at f . x over n values (acc may be init);
 * returns f past the group. Fixed registers: VMLADAVA accumulates into even-numbered registers only. */
static EQ_HOT_INLINE const int8_t *eq_mve_dot4_blocked(const int8_t *f, const int8_t *x, int32_t n,
                                                       const int32_t *init, int32_t *acc)
{
    register int32_t a0 __asm__("r0") = init[0];
    register int32_t a1 __asm__("r2") = init[1];
    register int32_t a2 __asm__("r4") = init[2];
    register int32_t a3 __asm__("r6") = init[3];
    register const int8_t *w __asm__("r8") = f;
    register const int8_t *v __asm__("r10") = x;
    const int32_t r = n & 15;
    int32_t steps = n >> 4;
    __asm__ volatile(
        "wls lr, %[steps], 2f\n"
        "1:\n\t"
        "vldrb.8 q0, [%[v]], #16\n\t"
        "vldrb.8 q1, [%[w]], #16\n\t"
        "vldrb.8 q2, [%[w]], #16\n\t"
        "vmladava.s8 %[a0], q1, q0\n\t"
        "vldrb.8 q3, [%[w]], #16\n\t"
        "vmladava.s8 %[a1], q2, q0\n\t"
        "vldrb.8 q1, [%[w]], #16\n\t"
        "vmladava.s8 %[a2], q3, q0\n\t"
        "vmladava.s8 %[a3], q1, q0\n\t"
        "le lr, 1b\n"
        "2:"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w] "+r"(w), [v] "+r"(v)
        : [steps] "r"(steps)
        : "lr", "q0", "q1", "q2", "q3", "memory");
    if (r != 0) { /* the last, partial step: x's r values under a tail predicate, zero past them */
        const int8x16_t xv = vldrbq_z_s8(v, vctp8q((uint32_t)r));
        a0 = vmladavaq_s8(a0, vld1q_s8(w), xv);
        a1 = vmladavaq_s8(a1, vld1q_s8(w + 16), xv);
        a2 = vmladavaq_s8(a2, vld1q_s8(w + 32), xv);
        a3 = vmladavaq_s8(a3, vld1q_s8(w + 48), xv);
        w += 64;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    return w;
}

/* Two windows' multiply-accumulates against four blocked rows, one 16-byte step: q0 and q1 hold the
 * windows' values, r1 walks the weights. */
#define EQ_MVE_STEP4X2                                        \
    "vldrb.8 q2, [r1], #16\n\t"                               \
    "vldrb.8 q3, [r1], #16\n\t"                               \
    "vmladava.s8 r0, q2, q0\n\t"                              \
    "vmladava.s8 r8, q2, q1\n\t"                              \
    "vldrb.8 q2, [r1], #16\n\t"                               \
    "vmladava.s8 r2, q3, q0\n\t"                              \
    "vmladava.s8 r10, q3, q1\n\t"                             \
    "vldrb.8 q3, [r1], #16\n\t"                               \
    "vmladava.s8 r4, q2, q0\n\t"                              \
    "vmladava.s8 r12, q2, q1\n\t"                             \
    "vmladava.s8 r6, q3, q0\n\t"                              \
    "vmladava.s8 lr, q3, q1\n\t"

/* What eq_mve_dot4x2_groups reads and advances, by offset: the two windows, their whole steps and
 * the last step's values, then the bias and the two accumulator runs, each advanced a group. */
typedef struct {
    const int8_t *x0, *x1;
    int32_t steps, rest;
    const int32_t *bias;
    int32_t *acc0, *acc1;
} eq_mve_pair;

/* A group's end in the two-window kernels: the eight accumulators stored to the pair's acc0 (offset
 * 20) and acc1 (24) runs, each advanced past them; r7 holds the pair, r9 is free. */
#define EQ_MVE_PAIR_STORE_ASM                                 \
    "ldr r9, [r7, #20]\n\t"                                   \
    "stm r9!, {r0, r2, r4, r6}\n\t"                           \
    "str r9, [r7, #20]\n\t"                                   \
    "ldr r9, [r7, #24]\n\t"                                   \
    "stm r9!, {r8, r10, r12, lr}\n\t"                         \
    "str r9, [r7, #24]\n\t"

/* Two windows against `groups` groups of four blocked rows from f: acc0[4g..4g+3] = bias + rows .
 * x0, acc1 the same for x1; each weight load serves both windows, 128 multiply-accumulates in
 * fifteen instructions. All in assembly, groups included: the eight accumulators take every even
 * register (VMLADAVA accumulates into even registers only), lr among them, so the loops count with
 * SUBS/BNE, and what a group needs is read from `pair` (r7). Returns f past the groups. */
static EQ_NOINLINE EQ_NO_FRAME_POINTER const int8_t *eq_mve_dot4x2_groups(const int8_t *f, eq_mve_pair *pair, int32_t groups)
{
    register const int8_t *w __asm__("r1") = f;
    register eq_mve_pair *p __asm__("r7") = pair;
    register int32_t left __asm__("r11") = groups;
    __asm__ volatile(
        "1:\n\t"
        "ldr r9, [r7, #16]\n\t"
        "ldm r9, {r0, r2, r4, r6}\n\t"
        "ldm r9!, {r8, r10, r12, lr}\n\t"
        "str r9, [r7, #16]\n\t"
        "ldrd r3, r5, [r7]\n\t"
        "ldr r9, [r7, #8]\n\t"
        "cmp r9, #0\n\t"
        "beq 3f\n"
        "2:\n\t"
        "vldrb.8 q0, [r3], #16\n\t"
        "vldrb.8 q1, [r5], #16\n\t"
        EQ_MVE_STEP4X2
        "subs r9, r9, #1\n\t"
        "bne 2b\n"
        "3:\n\t"
        "ldr r9, [r7, #12]\n\t"
        "cmp r9, #0\n\t"
        "beq 4f\n\t"
        /* the last, partial step: the windows' values under a tail predicate, zero past them, against
           whole weight vectors (rows are zero-padded to whole steps) */
        "vctp.8 r9\n\t"
        "vpstt\n\t"
        "vldrbt.8 q0, [r3]\n\t"
        "vldrbt.8 q1, [r5]\n\t"
        EQ_MVE_STEP4X2
        "4:\n\t"
        EQ_MVE_PAIR_STORE_ASM
        "subs %[left], %[left], #1\n\t"
        "bne 1b"
        : [w] "+r"(w), [left] "+r"(left)
        : [p] "r"(p)
        : "r0", "r2", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r12", "lr", "q0", "q1", "q2", "q3", "cc",
          "memory");
    return w;
}

/* acc0, acc1 = bias + the blocked filter at f (`channels` rows, a multiple of 4, of n values) . x0
 * and . x1; returns f past the filter. */
static EQ_HOT_INLINE const int8_t *eq_mve_matvec2(const int8_t *f, const int8_t *x0, const int8_t *x1, int32_t n,
                                                  int32_t channels, const int32_t *bias, int32_t *acc0,
                                                  int32_t *acc1)
{
    eq_mve_pair pair;
    pair.x0 = x0;
    pair.x1 = x1;
    pair.steps = n >> 4;
    pair.rest = n & 15;
    pair.bias = bias;
    pair.acc0 = acc0;
    pair.acc1 = acc1;
    return channels >= 4 ? eq_mve_dot4x2_groups(f, &pair, channels / 4) : f;
}

/* acc + a . b over n int8 values (an unblocked row). */
static EQ_HOT_INLINE int32_t eq_mve_dot(int32_t acc, const int8_t *a, const int8_t *b, int32_t n)
{
    for (; n >= 16; n -= 16, a += 16, b += 16) {
        acc = vmladavaq_s8(acc, vld1q_s8(a), vld1q_s8(b));
    }
    if (n > 0) {
        const mve_pred16_t p = vctp8q((uint32_t)n);
        acc = vmladavaq_s8(acc, vldrbq_z_s8(a, p), vldrbq_z_s8(b, p));
    }
    return acc;
}

/* eq_requantize_bounded_any lane by lane, every lane with the same eq_requant, each field a scalar
 * operand: VQRDMULH is (2ab + 2^31) >> 32, SMMULR(2a, b) for the accumulators the generator has
 * bounded; `away` is 1 where the shift rounds half away from zero (a shift of at least 1), else 0. */
static EQ_HOT_INLINE int32x4_t eq_mve_requantize_n(int32x4_t acc, int32_t multiplier, int32_t round,
                                                   int32_t minus_shift, int32_t away)
{
    int32x4_t high = vqrdmulhq_n_s32(acc, multiplier);
    high = vaddq_n_s32(vaddq_s32(high, vmulq_n_s32(vshrq_n_s32(high, 31), away)), round);
    return vshlq_r_s32(high, minus_shift);
}

/* Offset and clamp four requantized values to the activation's range. */
static EQ_HOT_INLINE int32x4_t eq_mve_clamp(int32x4_t v, int32_t output_offset, int32x4_t lo, int32x4_t hi)
{
    return vminq_s32(vmaxq_s32(vaddq_n_s32(v, output_offset), lo), hi);
}

/* An ADD's bounded parameters as its four-lane arithmetic uses them, read once for a run of outputs. */
typedef struct {
    int32_t offset1, offset2, factor, output_offset;
    int32_t multiplier[3], round[3], minus_shift[3], away[3];
} eq_mve_add;

static inline void eq_mve_add_of(const eq_add_params *p, eq_mve_add *a)
{
    int32_t k;
    a->offset1 = p->input1_offset;
    a->offset2 = p->input2_offset;
    a->factor = 1 << p->left_shift;
    a->output_offset = p->output_offset;
    for (k = 0; k < 3; k++) {
        a->multiplier[k] = p->bounded[k].multiplier;
        a->round[k] = p->bounded[k].round;
        a->minus_shift[k] = -p->bounded[k].right_shift;
        a->away[k] = p->bounded[k].right_shift != 0;
    }
}

/* eq_add_quantized of four lanes before the output's clamp. */
static EQ_HOT_INLINE int32x4_t eq_mve_add_quantized(const eq_mve_add *p, int32x4_t x, int32x4_t y)
{
    const int32x4_t a = eq_mve_requantize_n(vmulq_n_s32(vaddq_n_s32(x, p->offset1), p->factor), p->multiplier[0],
                                            p->round[0], p->minus_shift[0], p->away[0]);
    const int32x4_t b = eq_mve_requantize_n(vmulq_n_s32(vaddq_n_s32(y, p->offset2), p->factor), p->multiplier[1],
                                            p->round[1], p->minus_shift[1], p->away[1]);
    return eq_mve_requantize_n(vaddq_s32(a, b), p->multiplier[2], p->round[2], p->minus_shift[2], p->away[2]);
}

/* The int8 outputs of `pixels` pixels' channels c0..c0+channels-1 from their accumulators (channels
 * a pixel, `channels` a multiple of 4), four a pass, into out (channel c0 of the first pixel, the
 * pixels `stride` bytes apart), in the bounded form, which the generator gives every int8
 * convolution and FULLY_CONNECTED it can bound (the caller checks). With `add`, each value then goes
 * through ADD's arithmetic with skip's (laid out as out), as eq_conv_add_s8 does, its requantization
 * bounded too. A call's set-up costs a few dozen instructions: callers hand it whole rows. */
static EQ_NOINLINE void eq_mve_outputs_s8(const int32_t *acc, int32_t pixels, int32_t channels, int32_t c0,
                                          int32_t stride, const eq_quant_params *quant, int32_t output_offset,
                                          const eq_activation *activation, const eq_add_params *add,
                                          const int8_t *skip, int8_t *out)
{
    const eq_requant *r = quant->bounded + (quant->per_channel ? c0 : 0);
    const int32x4_t lo = vdupq_n_s32(activation->min), hi = vdupq_n_s32(activation->max);
    const uint32x4_t at = vmulq_n_u32(vidupq_n_u32(0, 1), 3); /* lane i's eq_requant: words 3i.. */
    int32_t p, i;
    if (add == 0 && quant->per_channel) {
        for (p = 0; p < pixels; p++, out += stride) {
            const eq_requant *q = r;
            for (i = 0; i < channels; i += 4, acc += 4, q += 4) {
                int32x4_t v = vqrdmulhq_s32(vld1q_s32(acc), vldrwq_gather_shifted_offset_s32(&q->multiplier, at));
                v = vaddq_s32(vaddq_s32(v, vshrq_n_s32(v, 31)), vldrwq_gather_shifted_offset_s32(&q->round, at));
                v = vshlq_s32(v, vnegq_s32(vldrwq_gather_shifted_offset_s32(&q->right_shift, at)));
                vstrbq_s32(out + i, eq_mve_clamp(v, output_offset, lo, hi));
            }
        }
        return;
    }
    if (add == 0) {
        const int32_t multiplier = r->multiplier, round = r->round, minus_shift = -r->right_shift;
        for (p = 0; p < pixels; p++, out += stride) {
            for (i = 0; i < channels; i += 4, acc += 4) {
                const int32x4_t v = eq_mve_requantize_n(vld1q_s32(acc), multiplier, round, minus_shift, 1);
                vstrbq_s32(out + i, eq_mve_clamp(v, output_offset, lo, hi));
            }
        }
        return;
    }
    {
        const int32x4_t add_lo = vdupq_n_s32(add->activation.min), add_hi = vdupq_n_s32(add->activation.max);
        eq_mve_add sum;
        eq_mve_add_of(add, &sum);
        for (p = 0; p < pixels; p++, out += stride, skip += stride) {
            const eq_requant *q = r;
            for (i = 0; i < channels; i += 4, acc += 4) {
                int32x4_t v = vld1q_s32(acc);
                if (quant->per_channel) {
                    v = vqrdmulhq_s32(v, vldrwq_gather_shifted_offset_s32(&q->multiplier, at));
                    v = vaddq_s32(vaddq_s32(v, vshrq_n_s32(v, 31)), vldrwq_gather_shifted_offset_s32(&q->round, at));
                    v = vshlq_s32(v, vnegq_s32(vldrwq_gather_shifted_offset_s32(&q->right_shift, at)));
                    q += 4;
                } else {
                    v = eq_mve_requantize_n(v, r->multiplier, r->round, -r->right_shift, 1);
                }
                v = eq_mve_add_quantized(&sum, eq_mve_clamp(v, output_offset, lo, hi), vldrbq_s32(skip + i));
                vstrbq_s32(out + i, eq_mve_clamp(v, sum.output_offset, add_lo, add_hi));
            }
        }
    }
}

#endif /* EQ_MVE */

#endif /* EQ_MVE_S8_H */
