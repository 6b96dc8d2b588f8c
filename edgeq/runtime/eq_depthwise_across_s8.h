/* DEPTHWISE_CONV_2D int8, depth multiplier 1, a row of outputs at a time straight from the
 * input, no copy of it: the body of eq_depthwise_conv_strided_s8, of the row-buffered kernel at
 * strides above 1 (where the channel planes of eq_depthwise_plane_s8.h would copy four input
 * bytes an output) and, on DSP cores, of eq_depthwise_conv_s8 at depth multiplier 1.
 *
 * On DSP cores four channels a pass, which NHWC keeps side by side: one word of input per tap,
 * split by SXTB16 into lanes 0, 2 and 1, 3, multiplied lane by lane against the taps
 * (SMLABB/SMLATT), the four sums in registers over the window. The four channels' taps are
 * widened once per row into the same two int16 pairs on the stack, so the loop loads them with
 * no SXTB16 and the filter keeps its int8 bytes in flash. Windows wholly inside the image take
 * an unrolled 3x3 loop with no bounds test; the border's windows test each tap, and a tap outside
 * reads the zero point in every lane (the folded bias expects it: eq_types.h). Elsewhere, and
 * for the channels past the last four, one channel at a time. */
#ifndef EQ_DEPTHWISE_ACROSS_S8_H
#define EQ_DEPTHWISE_ACROSS_S8_H

#include "eq_kernels.h"
#include "eq_dot_s8.h"

#define EQ_DW_ACROSS_TAPS 64 /* a window of up to this many taps (8x8); larger ones are refused */
/* Below this output width the border's windows, bounds-tested tap by tap, outweigh the plane's
 * copy (measured on MobileNet's 6x6 and 3x3 maps at stride 2). */
#define EQ_DW_ACROSS_MIN_WIDTH 8

/* Whether a strided depthwise layer runs a row at a time rather than through the plane. */
static inline int eq_dw_strided_across(const eq_dw_conv_params *params, const eq_dims *filter_dims,
                                       const eq_dims *output_dims)
{
    return (params->stride.h > 1 || params->stride.w > 1) && filter_dims->h * filter_dims->w <= EQ_DW_ACROSS_TAPS &&
           output_dims->w >= EQ_DW_ACROSS_MIN_WIDTH;
}

#if EQ_DSP
/* Four sums + one tap: the input word v against the tap's widened pair w[0], w[1]. */
#define EQ_DW_TAP4(v, w)                                          \
    do {                                                          \
        const uint32_t v_ = (v);                                  \
        const int32_t x02_ = eq_lanes02(v_), x13_ = eq_lanes13(v_); \
        a0 = __smlabb(x02_, (w)[0], a0);                          \
        a2 = __smlatt(x02_, (w)[0], a2);                          \
        a1 = __smlabb(x13_, (w)[1], a1);                          \
        a3 = __smlatt(x13_, (w)[1], a3);                          \
    } while (0)

/* One tap of a 3x3 window in assembly: the input word at `addr`, the tap's pair at w + off. */
#define EQ_DW3_TAP_ASM(addr, off)                             \
    "ldr %[v], " addr "\n\t"                                  \
    "sxtb16 %[t], %[v]\n\t"                                   \
    "sxtb16 %[v], %[v], ror #8\n\t"                           \
    "ldrd %[wa], %[wb], [%[w], #" off "]\n\t"                 \
    "smlabb %[a0], %[t], %[wa], %[a0]\n\t"                    \
    "smlatt %[a2], %[t], %[wa], %[a2]\n\t"                    \
    "smlabb %[a1], %[v], %[wb], %[a1]\n\t"                    \
    "smlatt %[a3], %[v], %[wb], %[a3]\n\t"
#define EQ_DW3_ROW_ASM(o0, o1, o2)                            \
    EQ_DW3_TAP_ASM("[%[x]]", o0)                              \
    EQ_DW3_TAP_ASM("[%[x], %[c]]", o1)                        \
    EQ_DW3_TAP_ASM("[%[x], %[c], lsl #1]", o2)                \
    "add %[x], %[x], %[r]\n\t"

#define EQ_DW_ACROSS_RUN 32 /* pixels whose sums are requantized together, channel by channel */

/* acc[k], acc[RUN + k], acc[2 RUN + k], acc[3 RUN + k] = bias + the 3x3 window of the k-th of n
 * pixels wholly inside the image, `step` apart from x on: c the step between taps along a row, r
 * from a row's first tap to the next row's, w the widened taps. Eight instructions a tap, in
 * assembly: in C, GCC keeps the loop's values on the stack at -Os. */
static EQ_NOINLINE void eq_dw3x3_span4(const int8_t *x, int32_t n, int32_t step, int32_t c, int32_t r,
                                       const int32_t *w, const int32_t *bias, int32_t *acc)
{
    const int32_t *const end = acc + n;
    for (; acc != end; acc++, x += step) {
        int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
        const int8_t *p = x;
        int32_t v, t, wa, wb;
        __asm__(EQ_DW3_ROW_ASM("0", "8", "16") EQ_DW3_ROW_ASM("24", "32", "40") EQ_DW3_ROW_ASM("48", "56", "64")
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(p), [v] "=&r"(v),
                  [t] "=&r"(t), [wa] "=&r"(wa), [wb] "=&r"(wb)
                : [c] "r"(c), [r] "r"(r), [w] "r"(w)
                : "memory");
        acc[0] = a0;
        acc[EQ_DW_ACROSS_RUN] = a1;
        acc[2 * EQ_DW_ACROSS_RUN] = a2;
        acc[3 * EQ_DW_ACROSS_RUN] = a3;
    }
}

/* The same for one window of any size, the border's included: each tap tested, one outside
 * the image reading `pad`, the zero point in every lane. */
static EQ_NOINLINE void eq_dw_window4(const eq_dw_conv_params *params, const eq_dims *input_dims,
                                      const eq_dims *filter_dims, const int8_t *x, int32_t iy0, int32_t ix0,
                                      uint32_t pad, const int32_t *t, const int32_t *bias, int32_t *acc)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, channels = input_dims->c;
    const int32_t d_h = params->dilation.h, d_w = params->dilation.w;
    const int32_t tap_w = d_w * channels, tap_h = d_h * in_w * channels;
    int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
    int32_t ky, kx;
    for (ky = 0; ky < filter_dims->h; ky++, x += tap_h) {
        const int32_t iy = iy0 + ky * d_h;
        for (kx = 0; kx < filter_dims->w; kx++, t += 2) {
            const int32_t ix = ix0 + kx * d_w;
            const int inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
            EQ_DW_TAP4(inside ? eq_read_s8x4(x + kx * tap_w) : pad, t);
        }
    }
    acc[0] = a0;
    acc[EQ_DW_ACROSS_RUN] = a1;
    acc[2 * EQ_DW_ACROSS_RUN] = a2;
    acc[3 * EQ_DW_ACROSS_RUN] = a3;
}

/* Output rows [oy0, oy1) of one batch, channels c0..c0+3, into out (row oy0's first pixel),
 * `channels` apart from pixel to pixel: a run of pixels' four sums, then each channel's run
 * requantized in one loop (eq_output_run_s8). */
static EQ_NOINLINE void eq_dw_across4(const eq_dw_conv_params *params, const eq_quant_params *quant,
                                      const eq_dims *input_dims, const int8_t *in_batch, const eq_dims *filter_dims,
                                      const int32_t *w, const int32_t *bias, int32_t oy0, int32_t oy1, int32_t out_w,
                                      int32_t c0, int8_t *out)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, channels = input_dims->c;
    const int32_t s_w = params->stride.w, p_w = params->padding.w;
    const int32_t reach_h = (filter_dims->h - 1) * params->dilation.h;
    const int32_t reach_w = (filter_dims->w - 1) * params->dilation.w;
    const int32_t tap_w = params->dilation.w * channels, tap_h = params->dilation.h * in_w * channels;
    const uint32_t pad = (uint32_t)(uint8_t)(int8_t)-params->input_offset * 0x01010101u;
    const int three = filter_dims->h == 3 && filter_dims->w == 3;
    /* the outputs whose windows lie wholly inside the image's columns: [lo, hi) */
    const int32_t last = in_w - 1 - reach_w + p_w; /* the last window's first column, plus p_w */
    const int32_t lo = EQ_MIN(out_w, (p_w + s_w - 1) / s_w);
    const int32_t hi = last < 0 ? lo : EQ_MAX(lo, EQ_MIN(out_w, last / s_w + 1));
    int32_t acc[4 * EQ_DW_ACROSS_RUN];
    int32_t oy, ox0, ox, n, e, j;
    for (oy = oy0; oy < oy1; oy++, out += out_w * channels) {
        const int32_t iy0 = oy * params->stride.h - params->padding.h;
        const int rows_inside = iy0 >= 0 && iy0 + reach_h < in_h;
        const int8_t *row = in_batch + iy0 * in_w * channels + c0;
        for (ox0 = 0; ox0 < out_w; ox0 += n) {
            n = EQ_MIN(EQ_DW_ACROSS_RUN, out_w - ox0);
            for (ox = ox0; ox < ox0 + n; ox = e) {
                const int32_t ix0 = ox * s_w - p_w;
                e = EQ_MIN(ox0 + n, hi);
                if (three && rows_inside && ox >= lo && ox < e) {
                    eq_dw3x3_span4(row + ix0 * channels, e - ox, s_w * channels, tap_w, tap_h, w, bias,
                                   acc + (ox - ox0));
                } else {
                    eq_dw_window4(params, input_dims, filter_dims, row + ix0 * channels, iy0, ix0, pad, w, bias,
                                  acc + (ox - ox0));
                    e = ox + 1;
                }
            }
            for (j = 0; j < 4; j++) {
                eq_output_run_s8(acc + j * EQ_DW_ACROSS_RUN, n, quant, c0 + j, params->output_offset,
                                 &params->activation, out + ox0 * channels + j, channels);
            }
        }
    }
}

#endif

/* Output rows [oy0, oy1) of one batch into out (row oy0's first byte); the channels past the
 * last four one at a time. Returns 0, or -1 for a window too large for the stack's taps. */
static inline int eq_dw_rows_s8(const eq_dw_conv_params *params, const eq_quant_params *quant,
                                const eq_dims *input_dims, const int8_t *in_batch, const eq_dims *filter_dims,
                                const int8_t *filter, const int32_t *bias, int32_t oy0, int32_t oy1, int32_t out_w,
                                int8_t *out)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, channels = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w, taps = k_h * k_w;
    const int32_t zero_point = -params->input_offset;
    int32_t c = 0, oy, ox, ky, kx;
#if EQ_DSP
    int32_t w[2 * EQ_DW_ACROSS_TAPS];
    int32_t k;
    if (taps > EQ_DW_ACROSS_TAPS) {
        return -1;
    }
    for (; c + 4 <= channels; c += 4) {
        for (k = 0; k < taps; k++) {
            const uint32_t v = eq_read_s8x4(filter + k * channels + c);
            w[2 * k] = eq_lanes02(v);
            w[2 * k + 1] = eq_lanes13(v);
        }
        eq_dw_across4(params, quant, input_dims, in_batch, filter_dims, w, bias + c, oy0, oy1, out_w, c, out + c);
    }
#else
    (void)taps;
#endif
    for (; c < channels; c++) {
        int8_t *o = out + c;
        for (oy = oy0; oy < oy1; oy++) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            for (ox = 0; ox < out_w; ox++, o += channels) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
                int32_t acc = bias[c];
                for (ky = 0; ky < k_h; ky++) {
                    const int32_t iy = iy0 + ky * params->dilation.h;
                    for (kx = 0; kx < k_w; kx++) {
                        const int32_t ix = ix0 + kx * params->dilation.w;
                        const int32_t x = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w)
                                              ? in_batch[(iy * in_w + ix) * channels + c] : zero_point;
                        acc += (int32_t)filter[(ky * k_w + kx) * channels + c] * x;
                    }
                }
                *o = eq_output_s8(acc, quant, c, params->output_offset, &params->activation);
            }
        }
    }
    return 0;
}

#endif /* EQ_DEPTHWISE_ACROSS_S8_H */
