/* CONV_2D with int4 weights in the paired layout (eq_matvec_paired_s4.h) over
 * [output channels][kh * kw * in_c], unpacked in registers; int8 activations. Each output pixel
 * is a matrix-vector product with its window, gathered into a stack buffer as eq_conv_s8 does
 * (taps outside the image the zero point: the folded bias expects them, eq_types.h).
 *
 * On DSP cores two pixels of a row a pass: a row's weights are unpacked once (a load, two ANDs,
 * four SXTB16s) for both windows, widened side by side (eq_widen_pair), 16 MACs in 21
 * instructions against 26 one pixel at a time.
 *
 * On MVE cores two pixels a pass too: each 16-byte weight load, unpacked by a VSHL and a VAND, serves
 * both windows, 256 MACs in 32 instructions (eq_mve_paired_dot4x2_groups). */
#include "eq_conv_s8_core.h"
#include "eq_matvec_paired_s4.h"

#if EQ_MVE
/* One row of a group against both windows' step: q0/q1 hold window a's low and high sixteen values,
 * q2/q3 window b's, q6 0xF0 in every byte; r1 walks the weights. */
#define EQ_MVE_PAIRED_ROW(a, b)                               \
    "vldrb.8 q4, [r1], #16\n\t"                               \
    "vshl.i8 q5, q4, #4\n\t"                                  \
    "vand q4, q4, q6\n\t"                                     \
    "vmladava.s8 " a ", q5, q0\n\t"                           \
    "vmladava.s8 " b ", q5, q2\n\t"                           \
    "vmladava.s8 " a ", q4, q1\n\t"                           \
    "vmladava.s8 " b ", q4, q3\n\t"

/* Two windows (zero-padded to whole steps) against `groups` groups of four rows from f: acc0[4g..4g+3]
 * = 16 times rows . x0, acc1 the same for x1, through eq_mve_pair (r7; its bias unused). As
 * eq_mve_dot4x2_groups: the eight accumulators take every even register, lr among them. */
static EQ_NOINLINE EQ_NO_FRAME_POINTER void eq_mve_paired_dot4x2_groups(const uint32_t *f, eq_mve_pair *pair,
                                                                       int32_t groups)
{
    register const uint32_t *w __asm__("r1") = f;
    register eq_mve_pair *p __asm__("r7") = pair;
    register int32_t left __asm__("r11") = groups;
    __asm__ volatile(
        "vmov.i8 q6, #0xF0\n"
        "1:\n\t"
        "movs r0, #0\n\t"
        "movs r2, #0\n\t"
        "movs r4, #0\n\t"
        "movs r6, #0\n\t"
        "mov r8, #0\n\t"
        "mov r10, #0\n\t"
        "mov r12, #0\n\t"
        "mov lr, #0\n\t"
        "ldrd r3, r5, [r7]\n\t"
        "ldr r9, [r7, #8]\n"
        "2:\n\t"
        "vldrb.8 q0, [r3], #16\n\t"
        "vldrb.8 q1, [r3], #16\n\t"
        "vldrb.8 q2, [r5], #16\n\t"
        "vldrb.8 q3, [r5], #16\n\t"
        EQ_MVE_PAIRED_ROW("r0", "r8")
        EQ_MVE_PAIRED_ROW("r2", "r10")
        EQ_MVE_PAIRED_ROW("r4", "r12")
        EQ_MVE_PAIRED_ROW("r6", "lr")
        "subs r9, r9, #1\n\t"
        "bne 2b\n\t"
        EQ_MVE_PAIR_STORE_ASM
        "subs %[left], %[left], #1\n\t"
        "bne 1b"
        : [w] "+r"(w), [left] "+r"(left)
        : [p] "r"(p)
        : "r0", "r2", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r12", "lr", "q0", "q1", "q2", "q3", "q4", "q5",
          "q6", "cc", "memory");
}
#undef EQ_MVE_PAIRED_ROW

/* The outputs of two pixels from their windows a and b (zero-padded to whole steps). */
static EQ_NOINLINE void eq_conv_paired_2px(const uint32_t *filter, int32_t size, int32_t out_c, const int8_t *a,
                                           const int8_t *b, const int32_t *bias, const eq_quant_params *quant,
                                           const eq_conv_params *params, int8_t *out_a, int8_t *out_b)
{
    const int32_t steps = eq_paired_steps(size);
    int32_t acc[2 * EQ_BLOCKED_UNITS];
    eq_mve_pair pair;
    int32_t o, n, m;
    pair.x0 = a;
    pair.x1 = b;
    pair.steps = steps;
    pair.rest = 0;
    pair.bias = bias;
    for (o = 0; o < out_c; o += n) { /* EQ_BLOCKED_UNITS is a multiple of four */
        n = EQ_MIN(EQ_BLOCKED_UNITS, out_c - o);
        m = (n + 3) & ~3;
        pair.acc0 = acc;
        pair.acc1 = acc + m;
        eq_mve_paired_dot4x2_groups(filter + o * 4 * steps, &pair, m / 4);
        eq_paired_outputs(acc, 2, n, m, o, (int32_t)(out_b - out_a), bias, quant, params->output_offset,
                          &params->activation, out_a + o);
    }
}
#elif EQ_DSP
/* xw = windows a and b widened step by step: per step of eight inputs a's four pairs (0, 2),
 * (1, 3), (4, 6), (5, 7), then b's; both zero-padded to whole steps by the caller. */
static void eq_widen_pair(const int8_t *a, const int8_t *b, int32_t steps, int32_t *xw)
{
    int32_t k;
    for (k = 0; k < 2 * steps; k++) {
        const uint32_t va = eq_read_s8x4(a + 4 * k), vb = eq_read_s8x4(b + 4 * k);
        int32_t *d = xw + (k >> 1) * 8 + (k & 1) * 2;
        d[0] = eq_lanes02(va);
        d[1] = eq_lanes13(va);
        d[4] = eq_lanes02(vb);
        d[5] = eq_lanes13(vb);
    }
}

/* One row's sums times 16 for both windows: its words are every other one from f on. */
static EQ_HOT_INLINE void eq_paired_row_2px(const uint32_t *f, const int32_t *xw, int32_t steps, int32_t *s0,
                                            int32_t *s1)
{
    int32_t a0 = 0, a1 = 0, u0, u1, u2, u3, t, w;
    const int32_t *p = xw;
    const uint32_t mask = 0xF0F0F0F0u;
    __asm__("1:\n\t"
            "ldr %[w], [%[f]], #8\n\t"
            "and %[t], %[m], %[w], lsl #4\n\t"
            "and %[w], %[w], %[m]\n\t"
            "sxtb16 %[u0], %[t]\n\t"
            "sxtb16 %[u1], %[t], ror #8\n\t"
            "sxtb16 %[u2], %[w]\n\t"
            "sxtb16 %[u3], %[w], ror #8\n\t"
            "ldrd %[t], %[w], [%[p]], #8\n\t"
            "smlad %[a0], %[t], %[u0], %[a0]\n\t"
            "smlad %[a0], %[w], %[u1], %[a0]\n\t"
            "ldrd %[t], %[w], [%[p]], #8\n\t"
            "smlad %[a0], %[t], %[u2], %[a0]\n\t"
            "smlad %[a0], %[w], %[u3], %[a0]\n\t"
            "ldrd %[t], %[w], [%[p]], #8\n\t"
            "smlad %[a1], %[t], %[u0], %[a1]\n\t"
            "smlad %[a1], %[w], %[u1], %[a1]\n\t"
            "ldrd %[t], %[w], [%[p]], #8\n\t"
            "smlad %[a1], %[t], %[u2], %[a1]\n\t"
            "smlad %[a1], %[w], %[u3], %[a1]\n\t"
            "subs %[n], %[n], #1\n\t"
            "bne 1b"
            : [a0] "+r"(a0), [a1] "+r"(a1), [p] "+r"(p), [f] "+r"(f), [n] "+r"(steps), [u0] "=&r"(u0),
              [u1] "=&r"(u1), [u2] "=&r"(u2), [u3] "=&r"(u3), [t] "=&r"(t), [w] "=&r"(w)
            : [m] "r"(mask)
            : "cc", "memory");
    *s0 = a0;
    *s1 = a1;
}

/* The outputs of two pixels from their windows a and b (zero-padded to whole steps). */
static EQ_NOINLINE void eq_conv_paired_2px(const uint32_t *filter, int32_t size, int32_t out_c, const int8_t *a,
                                           const int8_t *b, const int32_t *bias, const eq_quant_params *quant,
                                           const eq_conv_params *params, int8_t *out_a, int8_t *out_b)
{
    const int32_t steps = eq_paired_steps(size);
    int32_t xw[EQ_PAIRED_MAX_DEPTH];
    int32_t acc_a[EQ_BLOCKED_UNITS], acc_b[EQ_BLOCKED_UNITS];
    int32_t o, k, n;
    eq_widen_pair(a, b, steps, xw);
    for (o = 0; o < out_c; o += n) {
        n = EQ_MIN(EQ_BLOCKED_UNITS, out_c - o);
        for (k = 0; k < n; k++) {
            const int32_t u = o + k;
            int32_t s0, s1;
            eq_paired_row_2px(filter + (u >> 1) * 2 * steps + (u & 1), xw, steps, &s0, &s1);
            acc_a[k] = bias[u] + (s0 >> 4);
            acc_b[k] = bias[u] + (s1 >> 4);
        }
        eq_output_channels_s8(acc_a, n, quant, o, params->output_offset, &params->activation, out_a + o);
        eq_output_channels_s8(acc_b, n, quant, o, params->output_offset, &params->activation, out_b + o);
    }
}
#endif

eq_status eq_conv_paired_s4(const eq_context *ctx, const eq_conv_params *params,
                            const eq_quant_params *quant, const eq_dims *input_dims,
                            const int8_t *input, const eq_dims *filter_dims, const uint32_t *filter,
                            const int32_t *bias, const eq_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t size = filter_dims->h * filter_dims->w * in_c;
    int8_t col[EQ_PAIRED_MAX_DEPTH];
    int32_t b, oy, ox;
#if EQ_DSP
    int8_t col_b[EQ_PAIRED_MAX_DEPTH];
    const int32_t padded = eq_paired_steps(size) * EQ_PAIRED_STEP;
#endif
    (void)ctx;
    if (filter_dims->c != in_c || filter_dims->n != out_c || size > EQ_PAIRED_MAX_DEPTH) {
        return EQ_ERROR_ARGUMENT;
    }
#if EQ_DSP
    eq_fill_s8(col + size, 0, padded - size); /* the last step's weights past the window are 0 */
    eq_fill_s8(col_b + size, 0, padded - size);
#endif
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + b * in_h * in_w * in_c;
        for (oy = 0; oy < out_h; oy++) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            int8_t *out_row = output + (b * out_h + oy) * out_w * out_c;
            ox = 0;
#if EQ_DSP
            for (; ox + 2 <= out_w; ox += 2) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
#if EQ_MVE
                /* copied, never read in place: the kernel reads whole steps, past the window */
                const int rows_inside = iy0 >= 0 && iy0 + (filter_dims->h - 1) * params->dilation.h < in_h;
                eq_conv_s8_window_mve(params, input_dims, filter_dims, in_batch, iy0, ix0, rows_inside, 0, col);
                eq_conv_s8_window_mve(params, input_dims, filter_dims, in_batch, iy0, ix0 + params->stride.w,
                                      rows_inside, 0, col_b);
#else
                eq_conv_s8_gather_window(params, input_dims, filter_dims, in_batch, iy0, ix0, col);
                eq_conv_s8_gather_window(params, input_dims, filter_dims, in_batch, iy0, ix0 + params->stride.w,
                                         col_b);
#endif
                eq_conv_paired_2px(filter, size, out_c, col, col_b, bias, quant, params, out_row + ox * out_c,
                                   out_row + (ox + 1) * out_c);
            }
#endif
            for (; ox < out_w; ox++) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
                eq_conv_s8_gather_window(params, input_dims, filter_dims, in_batch, iy0, ix0, col);
                eq_matvec_paired_s4(filter, size, out_c, col, bias, quant, params->output_offset,
                                    &params->activation, out_row + ox * out_c);
            }
        }
    }
    return EQ_OK;
}
