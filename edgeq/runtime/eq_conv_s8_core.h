/* CONV_2D int8 body shared by eq_conv_s8 and eq_conv_add_s8 (static inline: each kernel file
 * compiles its own copy, so a model using only one of them links only one).
 *
 * The filter is blocked (eq_types.h) over [output channels][kh * kw * in_c]: every output pixel
 * is a matrix-vector product of it with the pixel's window, four output channels a pass through
 * one filter pointer (eq_dot4_blocked_s8: SMLAD on DSP cores). The window is read in place
 * when it is one contiguous run of the input (1x1 filters, full-width windows); otherwise it is
 * first gathered into a stack buffer of EQ_CONV_COL_BYTES, taps outside the image as the zero
 * point (the folded bias expects them: eq_types.h). A window larger than the buffer is
 * gathered a buffer's length at a time for each group of four output channels. */
#ifndef EQ_CONV_S8_CORE_H
#define EQ_CONV_S8_CORE_H

#include "eq_kernels.h"
#include "eq_math.h"
#include "eq_dot_s8.h"

/* A multiple of 4 (whole filter steps); on the stack, which edgeq's boards reserve 16 KiB of. */
#ifndef EQ_CONV_COL_BYTES
#define EQ_CONV_COL_BYTES 1024
#endif

/* col[0..k1-k0) = window elements [k0, k1) of the span of `len` elements that starts at window
 * element `at`: input bytes from `src`, or the zero point when src is null. */
static EQ_HOT_INLINE void eq_conv_s8_span(int8_t *col, int32_t k0, int32_t k1, int32_t at, int32_t len,
                                          const int8_t *src, int8_t zero_point)
{
    const int32_t lo = EQ_MAX(k0, at), hi = EQ_MIN(k1, at + len);
    if (hi <= lo) {
        return;
    }
    if (src != 0) {
        eq_copy_s8(col + lo - k0, src + lo - at, hi - lo);
    } else {
        eq_fill_s8(col + lo - k0, zero_point, hi - lo);
    }
}

/* Gathers window elements [k0, k1) (OHWI tap order) of the window from input tap (iy0, ix0). */
static inline void eq_conv_s8_gather(const eq_conv_params *params, const eq_dims *input_dims,
                                     const eq_dims *filter_dims, const int8_t *in_batch, int32_t iy0, int32_t ix0,
                                     int32_t k0, int32_t k1, int8_t *col)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t d_h = params->dilation.h, d_w = params->dilation.w;
    const int32_t row_len = k_w * in_c;
    const int8_t zero_point = (int8_t)-params->input_offset;
    int32_t ky, kx;
    for (ky = 0; ky < k_h; ky++) {
        const int32_t iy = iy0 + ky * d_h;
        const int32_t at = ky * row_len;
        if (at >= k1 || at + row_len <= k0) {
            continue;
        }
        if (iy < 0 || iy >= in_h) {
            eq_conv_s8_span(col, k0, k1, at, row_len, 0, zero_point);
        } else if (d_w == 1) {
            /* the in-bounds taps of the row are one run of the input, padding either side */
            const int32_t kx0 = EQ_MIN(k_w, EQ_MAX(0, -ix0));
            const int32_t kx1 = EQ_MAX(kx0, EQ_MIN(k_w, in_w - ix0));
            eq_conv_s8_span(col, k0, k1, at, kx0 * in_c, 0, zero_point);
            eq_conv_s8_span(col, k0, k1, at + kx0 * in_c, (kx1 - kx0) * in_c,
                            in_batch + (iy * in_w + ix0 + kx0) * in_c, zero_point);
            eq_conv_s8_span(col, k0, k1, at + kx1 * in_c, (k_w - kx1) * in_c, 0, zero_point);
        } else {
            for (kx = 0; kx < k_w; kx++) {
                const int32_t ix = ix0 + kx * d_w;
                eq_conv_s8_span(col, k0, k1, at + kx * in_c, in_c,
                                ix >= 0 && ix < in_w ? in_batch + (iy * in_w + ix) * in_c : 0, zero_point);
            }
        }
    }
}

/* The whole window from input tap (iy0, ix0) into col, OHWI tap order, taps outside the image
 * as the zero point: for each filter row, the padding either side and the run of the input
 * between. Without horizontal dilation; eq_conv_s8_gather otherwise. */
static inline void eq_conv_s8_gather_window(const eq_conv_params *params, const eq_dims *input_dims,
                                            const eq_dims *filter_dims, const int8_t *in_batch, int32_t iy0,
                                            int32_t ix0, int8_t *col)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t row_len = k_w * in_c;
    const int zero_point = -params->input_offset;
    const int32_t kx0 = EQ_MIN(k_w, EQ_MAX(0, -ix0));
    const int32_t kx1 = EQ_MAX(kx0, EQ_MIN(k_w, in_w - ix0));
    int32_t ky;
    if (params->dilation.w != 1) {
        eq_conv_s8_gather(params, input_dims, filter_dims, in_batch, iy0, ix0, 0, k_h * row_len, col);
        return;
    }
    for (ky = 0; ky < k_h; ky++, col += row_len) {
        const int32_t iy = iy0 + ky * params->dilation.h;
        if (iy < 0 || iy >= in_h) {
            eq_fill_s8(col, zero_point, row_len);
            continue;
        }
        eq_fill_s8(col, zero_point, kx0 * in_c);
        eq_copy_s8(col + kx0 * in_c, in_batch + (iy * in_w + ix0 + kx0) * in_c, (kx1 - kx0) * in_c);
        eq_fill_s8(col + kx1 * in_c, zero_point, (k_w - kx1) * in_c);
    }
}

/* The convolution's own int8 output, clamped to its activation range; with a fused ADD,
 * that value then goes through ADD's arithmetic with the skip tensor's value, exactly as
 * the two standalone ops would compute it. */
static EQ_HOT_INLINE int8_t eq_conv_s8_output(int32_t acc, const eq_quant_params *quant, int32_t oc,
                                              const eq_conv_params *params, const eq_add_params *add,
                                              const int8_t *skip)
{
    const int8_t own = eq_output_s8(acc, quant, oc, params->output_offset, &params->activation);
    return add != 0 ? (int8_t)eq_add_quantized(add, own, skip[oc]) : own;
}

#if EQ_MVE
#define EQ_MVE_ROW_ACC 512 /* accumulators of a row's pixels requantized in one call: 2 KiB of stack */

/* The window of output column ox on MVE cores: in place when it is one run of the input, else its
 * rows copied into col sixteen bytes a pass when it lies inside the image, else gathered. */
static inline const int8_t *eq_conv_s8_window_mve(const eq_conv_params *params, const eq_dims *input_dims,
                                                  const eq_dims *filter_dims, const int8_t *in_batch,
                                                  int32_t iy0, int32_t ix0, int rows_inside, int contiguous,
                                                  int8_t *col)
{
    const int32_t in_w = input_dims->w, in_c = input_dims->c, k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t row_len = k_w * in_c;
    const int inside = rows_inside && ix0 >= 0 && ix0 + (k_w - 1) * params->dilation.w < in_w;
    const int8_t *window = in_batch + (iy0 * in_w + ix0) * in_c;
    int32_t ky;
    if (inside && contiguous) {
        return window;
    }
    if (params->dilation.w == 1 && params->dilation.h == 1) {
        /* each row: the padding left of the image, the run inside it, the padding right of it */
        const int32_t kx0 = EQ_MIN(k_w, EQ_MAX(0, -ix0)), kx1 = EQ_MAX(kx0, EQ_MIN(k_w, in_w - ix0));
        const int32_t zero_point = -params->input_offset;
        for (ky = 0; ky < k_h; ky++, window += in_w * in_c) {
            int8_t *to = col + ky * row_len;
            if (inside) {
                eq_copy_s8(to, window, row_len);
            } else if (iy0 + ky < 0 || iy0 + ky >= input_dims->h) {
                eq_fill_s8(to, zero_point, row_len);
            } else {
                eq_fill_s8(to, zero_point, kx0 * in_c);
                eq_copy_s8(to + kx0 * in_c, window + kx0 * in_c, (kx1 - kx0) * in_c);
                eq_fill_s8(to + kx1 * in_c, zero_point, (k_w - kx1) * in_c);
            }
        }
        return col;
    }
    eq_conv_s8_gather(params, input_dims, filter_dims, in_batch, iy0, ix0, 0, k_h * row_len, col);
    return col;
}

/* One output row (its first byte `at` in output and skip) on MVE cores, when the vector output stage
 * can take it: two pixels at a time, each group of four channels' weights loaded once for both
 * windows (eq_mve_dot4x2_groups), every group's sums into a run of pixels' accumulators, then
 * requantized (and added) in one eq_mve_outputs_s8 call. Returns 0, leaving the row to the generic
 * path, when it cannot. */
static inline int eq_conv_s8_row_mve(const eq_conv_params *params, const eq_quant_params *quant,
                                     const eq_dims *input_dims, const int8_t *in_batch, const eq_dims *filter_dims,
                                     const int8_t *filter, const int32_t *bias, const eq_dims *output_dims,
                                     int32_t at, int8_t *output, const eq_add_params *add, const int8_t *skip,
                                     int32_t iy0, int8_t *col)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t size = k_h * k_w * in_c, s_w = params->stride.w, p_w = params->padding.w;
    const int contiguous = params->dilation.w == 1 && (k_h == 1 || (k_w == in_w && params->dilation.h == 1));
    const int rows_inside = iy0 >= 0 && iy0 + (k_h - 1) * params->dilation.h < in_h;
    const int32_t run = EQ_MVE_ROW_ACC / EQ_MAX(out_c, 1);
    int8_t col2[EQ_CONV_COL_BYTES];
    int32_t acc[EQ_MVE_ROW_ACC];
    int32_t ox0, ox, g, n;
    if (quant->bounded == 0 || (add != 0 && add->bounded == 0) || out_c % 4 != 0 || run == 0 ||
        (size > EQ_CONV_COL_BYTES && !(contiguous && rows_inside))) {
        return 0;
    }
    for (ox0 = 0; ox0 < out_w; ox0 += n) {
        n = EQ_MIN(run, out_w - ox0);
        for (ox = ox0; ox < ox0 + n; ox += 2) {
            const int8_t *a = eq_conv_s8_window_mve(params, input_dims, filter_dims, in_batch, iy0, ox * s_w - p_w,
                                                    rows_inside, contiguous, col);
            const int8_t *f = filter;
            int32_t *sums = acc + (ox - ox0) * out_c;
            if (ox + 1 < ox0 + n) {
                const int8_t *b = eq_conv_s8_window_mve(params, input_dims, filter_dims, in_batch, iy0,
                                                        (ox + 1) * s_w - p_w, rows_inside, contiguous, col2);
                (void)eq_mve_matvec2(f, a, b, size, out_c, bias, sums, sums + out_c);
            } else {
                for (g = 0; g < out_c; g += 4) {
                    f = eq_mve_dot4_blocked(f, a, size, bias + g, sums + g);
                }
            }
        }
        eq_mve_outputs_s8(acc, n, out_c, 0, out_c, quant, params->output_offset, &params->activation, add,
                          add != 0 ? skip + at + ox0 * out_c : 0, output + at + ox0 * out_c);
    }
    return 1;
}
#endif

/* `skip` (read only when `add` is given) has the output's shape; output may be skip itself. */
static inline eq_status eq_conv_s8_core(const eq_conv_params *params, const eq_quant_params *quant,
                                        const eq_dims *input_dims, const int8_t *input,
                                        const eq_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                                        const eq_dims *output_dims, int8_t *output,
                                        const eq_add_params *add, const int8_t *skip)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, out_c = output_dims->c;
    const int32_t size = k_h * k_w * in_c; /* one output channel's filter: the window's length */
    const int32_t groups = out_c / 4;
    /* whole windows are one run of the input when each is a single row of it, or full rows */
    const int contiguous_rows = params->dilation.w == 1 && (k_h == 1 || (k_w == in_w && params->dilation.h == 1));
    uint32_t col_words[EQ_CONV_COL_BYTES / 4]; /* words: the gathered window is read a word at a time */
    int8_t *col = (int8_t *)col_words;
#if EQ_DSP && !EQ_MVE
    int32_t xw[EQ_WIDE_DEPTH / 2]; /* the window widened (eq_widen_s8) */
#endif
#if EQ_DSP && !EQ_MVE
    int32_t acc_run[EQ_BLOCKED_UNITS];
    int32_t n;
#endif
    int32_t b, oy, ox, g, oc, j, k0;
    if (filter_dims->c != in_c || filter_dims->n != out_c) {
        return EQ_ERROR_ARGUMENT;
    }
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + (int32_t)b * in_h * in_w * in_c;
        for (oy = 0; oy < out_h; oy++) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            const int rows_inside = iy0 >= 0 && iy0 + (k_h - 1) * params->dilation.h < in_h;
#if EQ_MVE
            if (eq_conv_s8_row_mve(params, quant, input_dims, in_batch, filter_dims, filter, bias, output_dims,
                                   ((int32_t)b * out_h + oy) * out_w * out_c, output, add, skip, iy0, col)) {
                continue;
            }
#endif
            for (ox = 0; ox < out_w; ox++) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
                const int32_t pixel = (((int32_t)b * out_h + oy) * out_w + ox) * out_c;
                const int inside = rows_inside && ix0 >= 0 && ix0 + (k_w - 1) * params->dilation.w < in_w;
                const int8_t *res = add != 0 ? skip + pixel : 0;
                int8_t *out = output + pixel;
                const int8_t *window = col;
                const int8_t *f = filter;
                if (inside && contiguous_rows) {
                    window = in_batch + (iy0 * in_w + ix0) * in_c;
                } else if (size <= EQ_CONV_COL_BYTES) {
                    eq_conv_s8_gather(params, input_dims, filter_dims, in_batch, iy0, ix0, 0, size, col);
                } else {
                    window = 0; /* gathered piece by piece below */
                }
                g = 0;
#if EQ_DSP && !EQ_MVE
                /* the window widened once for all the groups (eq_matvec_blocked_acc) */
                if (window != 0 && groups >= 2 && size <= EQ_WIDE_DEPTH) {
                    eq_widen_s8(window, size, xw);
                    for (oc = 0; oc < 4 * groups; oc += n) {
                        n = EQ_MIN(EQ_BLOCKED_UNITS, 4 * groups - oc);
                        f = eq_matvec_blocked_acc(f, window, xw, size, n / 4, bias + oc, acc_run);
                        for (j = 0; j < n; j++) {
                            out[oc + j] = eq_conv_s8_output(acc_run[j], quant, oc + j, params, add, res);
                        }
                    }
                    g = groups;
                }
#endif
                for (; g < groups; g++, f += 4 * EQ_BLOCK_ROW(size)) {
                    int32_t acc[4];
                    oc = 4 * g;
                    for (j = 0; j < 4; j++) {
                        acc[j] = bias[oc + j];
                    }
                    if (window != 0) {
                        eq_dot4_blocked_s8(f, window, size, acc);
                    } else {
                        for (k0 = 0; k0 < size; k0 += EQ_CONV_COL_BYTES) {
                            const int32_t k1 = EQ_MIN(size, k0 + EQ_CONV_COL_BYTES);
                            eq_conv_s8_gather(params, input_dims, filter_dims, in_batch, iy0, ix0, k0, k1, col);
                            eq_dot4_blocked_s8(f + 4 * k0, col, k1 - k0, acc);
                        }
                    }
                    for (j = 0; j < 4; j++) {
                        out[oc + j] = eq_conv_s8_output(acc[j], quant, oc + j, params, add, res);
                    }
                }
                for (oc = 4 * groups; oc < out_c; oc++, f += EQ_BLOCK_ROW(size)) {
                    int32_t acc = bias[oc];
                    if (window != 0) {
                        acc = eq_dot_s8(acc, f, window, size);
                    } else {
                        for (k0 = 0; k0 < size; k0 += EQ_CONV_COL_BYTES) {
                            const int32_t k1 = EQ_MIN(size, k0 + EQ_CONV_COL_BYTES);
                            eq_conv_s8_gather(params, input_dims, filter_dims, in_batch, iy0, ix0, k0, k1, col);
                            acc = eq_dot_s8(acc, f + k0, col, k1 - k0);
                        }
                    }
                    out[oc] = eq_conv_s8_output(acc, quant, oc, params, add, res);
                }
            }
        }
    }
    return EQ_OK;
}

#endif /* EQ_CONV_S8_CORE_H */
