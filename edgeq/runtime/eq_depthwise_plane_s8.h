/* The padded-plane machinery of the int8 depthwise kernels that work a channel at a time
 * (eq_depthwise_conv_in_place_s8, eq_depthwise_conv_rows_s8): a channel's input copied into a
 * plane of every row and column its windows touch, the padding the zero point (taps outside
 * the image read it: the folded bias expects them, eq_types.h), so no window needs a bounds
 * test. Rows are at least four bytes past the last window's start, so that on DSP cores a
 * window row of up to four taps (no horizontal dilation) is one word: SXTB16 splits it into
 * lanes 0, 2 and 1, 3 against the row's taps widened once per channel into the same two int16
 * pairs (a missing fourth tap is 0), two SMLADs a row; 3x3 filters are unrolled. */
#ifndef EQ_DEPTHWISE_PLANE_S8_H
#define EQ_DEPTHWISE_PLANE_S8_H

#include "eq_kernels.h"
#include "eq_dot_s8.h"

#define EQ_DW_ROWS 16 /* rows of a filter packed for the DSP path */

/* The padded plane's rows and row length. */
static inline void eq_dw_plane_dims(const eq_dw_conv_params *params, const eq_dims *filter_dims,
                             const eq_dims *output_dims, int32_t *rows, int32_t *cols)
{
    const int32_t reach_w = (filter_dims->w - 1) * params->dilation.w + 1;
    *rows = (output_dims->h - 1) * params->stride.h + (filter_dims->h - 1) * params->dilation.h + 1;
    *cols = (output_dims->w - 1) * params->stride.w + EQ_MAX(reach_w, 4);
}

/* dst[0..n) = src[0], src[stride], ...: one channel's part of an input row, four a pass (the
 * copy is a sixth of the kernel's work at stride 1). */
static EQ_HOT_INLINE void eq_gather_s8(int8_t *dst, const int8_t *src, int32_t stride, int32_t n)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4, src += 4 * stride) {
        const int8_t a = src[0], b = src[stride], c = src[2 * stride], d = src[3 * stride];
        dst[i] = a;
        dst[i + 1] = b;
        dst[i + 2] = c;
        dst[i + 3] = d;
    }
    for (; i < n; i++, src += stride) {
        dst[i] = *src;
    }
}

#define EQ_DW_RUN 64 /* accumulators computed before they are requantized together */

/* A run of outputs: `rows` rows of `cols` windows, the first starting at p, s_w apart along a
 * row, row_step between rows' first windows; acc[] takes their sums, row after row. */
typedef struct {
    const int8_t *p;
    int32_t s_w, row_step, tap_row;
    int32_t rows, cols;
} eq_dw_run;

#if EQ_DSP
static inline int32_t eq_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu));
}

/* acc + one window row of up to four taps: the word at p against the row's taps packed as
 * (0, 2) and (1, 3). */
static EQ_HOT_INLINE int32_t eq_dw_row(int32_t acc, const int8_t *p, int32_t w02, int32_t w13)
{
    const uint32_t x = eq_read_s8x4(p);
    return __smlad(eq_lanes13(x), w13, __smlad(eq_lanes02(x), w02, acc));
}

/* 3-row windows; w = the rows' packed taps. */
static EQ_NOINLINE void eq_dw_run_3_dsp(const eq_dw_run *run, const int32_t *w, int32_t bias, int32_t *acc)
{
    const int32_t a02 = w[0], a13 = w[1], b02 = w[2], b13 = w[3], c02 = w[4], c13 = w[5];
    const int32_t s_w = run->s_w, tap_row = run->tap_row;
    const int8_t *row = run->p;
    int32_t y;
    for (y = 0; y < run->rows; y++, row += run->row_step) {
        const int8_t *p = row;
        int32_t *const end = acc + run->cols;
        for (; acc != end; acc++, p += s_w) {
            *acc = eq_dw_row(eq_dw_row(eq_dw_row(bias, p, a02, a13), p + tap_row, b02, b13), p + 2 * tap_row, c02,
                             c13);
        }
    }
}

/* 3x3 windows at stride 1, two outputs a pass: a row's word (a, b, c, d) holds both windows'
 * taps, (a, c) . (w0, w2) + (b, d) . (w1, 0) for the first and (b, d) . (w0, w2) + c * w1 for
 * the second, so each word is loaded and widened once for both. In assembly: in C, GCC keeps
 * the seventeen values live at -Os on the stack; here a row's two packed tap words are
 * reloaded with one LDRD instead. */
static EQ_NOINLINE void eq_dw_run_3x3_s1_dsp(const eq_dw_run *run, const int32_t *w, int32_t bias, int32_t *acc)
{
    const int32_t tap_row = run->tap_row;
    const int8_t *row = run->p;
    int32_t y;
    for (y = 0; y < run->rows; y++, row += run->row_step) {
        const int8_t *p = row;
        int32_t n = run->cols >> 1;
        if (n > 0) {
            int32_t wa, wb, v, x, s0, s1;
            __asm__("1:\n\t"
                    "ldrd %[wa], %[wb], [%[w]]\n\t"
                    "ldr %[v], [%[p]]\n\t"
                    "sxtb16 %[x], %[v]\n\t"
                    "sxtb16 %[v], %[v], ror #8\n\t"
                    "smlad %[s0], %[x], %[wa], %[bias]\n\t"
                    "smlad %[s0], %[v], %[wb], %[s0]\n\t"
                    "smlad %[s1], %[v], %[wa], %[bias]\n\t"
                    "smlatb %[s1], %[x], %[wb], %[s1]\n\t"
                    "ldrd %[wa], %[wb], [%[w], #8]\n\t"
                    "ldr %[v], [%[p], %[t]]\n\t"
                    "sxtb16 %[x], %[v]\n\t"
                    "sxtb16 %[v], %[v], ror #8\n\t"
                    "smlad %[s0], %[x], %[wa], %[s0]\n\t"
                    "smlad %[s0], %[v], %[wb], %[s0]\n\t"
                    "smlad %[s1], %[v], %[wa], %[s1]\n\t"
                    "smlatb %[s1], %[x], %[wb], %[s1]\n\t"
                    "ldrd %[wa], %[wb], [%[w], #16]\n\t"
                    "ldr %[v], [%[p], %[t], lsl #1]\n\t"
                    "sxtb16 %[x], %[v]\n\t"
                    "sxtb16 %[v], %[v], ror #8\n\t"
                    "smlad %[s0], %[x], %[wa], %[s0]\n\t"
                    "smlad %[s0], %[v], %[wb], %[s0]\n\t"
                    "smlad %[s1], %[v], %[wa], %[s1]\n\t"
                    "smlatb %[s1], %[x], %[wb], %[s1]\n\t"
                    "strd %[s0], %[s1], [%[acc]], #8\n\t"
                    "adds %[p], %[p], #2\n\t"
                    "subs %[n], %[n], #1\n\t"
                    "bne 1b"
                    : [p] "+r"(p), [acc] "+r"(acc), [n] "+r"(n), [wa] "=&r"(wa), [wb] "=&r"(wb), [v] "=&r"(v),
                      [x] "=&r"(x), [s0] "=&r"(s0), [s1] "=&r"(s1)
                    : [w] "r"(w), [t] "r"(tap_row), [bias] "r"(bias)
                    : "cc", "memory");
        }
        if (run->cols & 1) {
            *acc++ = eq_dw_row(eq_dw_row(eq_dw_row(bias, p, w[0], w[1]), p + tap_row, w[2], w[3]),
                               p + 2 * tap_row, w[4], w[5]);
        }
    }
}

/* k_h-row windows. */
static EQ_NOINLINE void eq_dw_run_dsp(const eq_dw_run *run, const int32_t *w, int32_t k_h, int32_t bias, int32_t *acc)
{
    int32_t y, x, ky;
    for (y = 0; y < run->rows; y++) {
        for (x = 0; x < run->cols; x++) {
            const int8_t *p = run->p + y * run->row_step + x * run->s_w;
            int32_t a = bias;
            for (ky = 0; ky < k_h; ky++, p += run->tap_row) {
                a = eq_dw_row(a, p, w[2 * ky], w[2 * ky + 1]);
            }
            *acc++ = a;
        }
    }
}
#endif

/* Tap by tap, the taps `depth` apart from f. */
static EQ_NOINLINE void eq_dw_run_taps(const eq_dw_run *run, int32_t d_w, const int8_t *f, int32_t depth, int32_t k_h,
                                       int32_t k_w, int32_t bias, int32_t *acc)
{
    int32_t y, x, ky, kx;
    for (y = 0; y < run->rows; y++) {
        for (x = 0; x < run->cols; x++) {
            const int8_t *p = run->p + y * run->row_step + x * run->s_w;
            int32_t a = bias;
            for (ky = 0; ky < k_h; ky++, p += run->tap_row) {
                const int8_t *t = f + ky * k_w * depth;
                for (kx = 0; kx < k_w; kx++) {
                    a += (int32_t)t[kx * depth] * (int32_t)p[kx * d_w];
                }
            }
            *acc++ = a;
        }
    }
}

/* One channel's outputs from its padded plane (`cols` a row) and its filter taps, `depth` apart
 * from f (the interleaved 1HWC filter): up to EQ_DW_RUN accumulators at a time (whole output
 * rows when they fit, else pieces of one), then requantized together: two short loops keep
 * their values in registers at -Os. */
static inline void eq_dw_channel(const eq_dw_conv_params *params, const eq_quant_params *quant, int32_t c, int32_t bias,
                          const eq_dims *filter_dims, const eq_dims *output_dims, const int8_t *plane, int32_t cols,
                          const int8_t *f, int8_t *out, int32_t depth)
{
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t rows_per_run = EQ_MAX(1, EQ_DW_RUN / out_w);
    int32_t acc[EQ_DW_RUN];
    eq_dw_run run;
    int32_t oy, ox;
#if EQ_DSP
    const int packed = params->dilation.w == 1 && k_w <= 4 && k_h <= EQ_DW_ROWS;
    int32_t w[2 * EQ_DW_ROWS];
    int32_t ky;
    if (packed) {
        for (ky = 0; ky < k_h; ky++) {
            const int8_t *row = f + ky * k_w * depth;
            w[2 * ky] = eq_pack16(row[0], k_w > 2 ? row[2 * depth] : 0);
            w[2 * ky + 1] = eq_pack16(k_w > 1 ? row[depth] : 0, k_w > 3 ? row[3 * depth] : 0);
        }
    }
#endif
    run.s_w = params->stride.w;
    run.row_step = params->stride.h * cols;
    run.tap_row = params->dilation.h * cols;
    for (oy = 0; oy < out_h; oy += run.rows) {
        run.rows = EQ_MIN(rows_per_run, out_h - oy);
        for (ox = 0; ox < out_w; ox += run.cols) {
            run.cols = EQ_MIN(EQ_DW_RUN, out_w - ox);
            run.p = plane + oy * run.row_step + ox * run.s_w;
#if EQ_DSP
            if (packed && k_h == 3 && k_w == 3 && run.s_w == 1) {
                eq_dw_run_3x3_s1_dsp(&run, w, bias, acc);
            } else if (packed && k_h == 3) {
                eq_dw_run_3_dsp(&run, w, bias, acc);
            } else if (packed) {
                eq_dw_run_dsp(&run, w, k_h, bias, acc);
            } else
#endif
            {
                eq_dw_run_taps(&run, params->dilation.w, f, depth, k_h, k_w, bias, acc);
            }
            eq_output_run_s8(acc, run.rows * run.cols, quant, c, params->output_offset, &params->activation,
                             out + (oy * out_w + ox) * depth, depth);
        }
    }
}

#endif /* EQ_DEPTHWISE_PLANE_S8_H */
