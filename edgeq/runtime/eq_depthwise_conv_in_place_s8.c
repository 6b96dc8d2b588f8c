/* DEPTHWISE_CONV_2D, int8, depth multiplier 1, channel by channel so that the output may
 * be written over the input (output == input).
 *
 * For each (batch, channel) the channel's input values are copied to caller scratch, then every
 * output of that channel is computed from the copy and stored at its NHWC position. An output
 * byte of channel c only ever lands on a channel-c byte of this batch or an earlier one, whose
 * value has already been copied (docs/edgeq-c-memory.md), and bytes of other channels are never
 * written.
 *
 * The copy is a padded plane: the rows and columns every window touches, the padding filled
 * with the zero point once per call (taps outside the image read it: the folded bias expects
 * them, eq_types.h), so no window needs a bounds test. Its rows are at least four bytes past
 * the last window's start, so that on DSP cores a window row of up to four taps (no
 * horizontal dilation) is one word: SXTB16 splits it into lanes 0, 2 and 1, 3 against the row's
 * taps widened once per channel into the same two int16 pairs (a missing fourth tap is 0), two
 * SMLADs a row; 3x3 filters are unrolled. */
#include "eq_kernels.h"
#include "eq_dot_s8.h"

#define EQ_DW_ROWS 16 /* rows of a filter packed for the DSP path */

/* The padded plane's rows and row length. */
static void eq_dw_plane_dims(const eq_dw_conv_params *params, const eq_dims *filter_dims,
                             const eq_dims *output_dims, int32_t *rows, int32_t *cols)
{
    const int32_t reach_w = (filter_dims->w - 1) * params->dilation.w + 1;
    *rows = (output_dims->h - 1) * params->stride.h + (filter_dims->h - 1) * params->dilation.h + 1;
    *cols = (output_dims->w - 1) * params->stride.w + EQ_MAX(reach_w, 4);
}

int32_t eq_depthwise_conv_in_place_s8_scratch_size(const eq_dw_conv_params *params, const eq_dims *filter_dims,
                                                   const eq_dims *output_dims)
{
    int32_t rows, cols;
    eq_dw_plane_dims(params, filter_dims, output_dims, &rows, &cols);
    return rows * cols;
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
static void eq_dw_channel(const eq_dw_conv_params *params, const eq_quant_params *quant, int32_t c, int32_t bias,
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
            if (packed && k_h == 3) {
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

eq_status eq_depthwise_conv_in_place_s8(const eq_context *ctx, const eq_dw_conv_params *params,
                                        const eq_quant_params *quant, const eq_dims *input_dims,
                                        const int8_t *input, const eq_dims *filter_dims,
                                        const int8_t *filter, const int32_t *bias,
                                        const eq_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, depth = input_dims->c;
    const int32_t p_h = params->padding.h, p_w = params->padding.w;
    int32_t rows, cols, iy0, iy1, ix0, ix1;
    int8_t *plane;
    int32_t b, c, iy, ix;
    if (ctx == 0 || ctx->buf == 0 ||
        ctx->size < eq_depthwise_conv_in_place_s8_scratch_size(params, filter_dims, output_dims)) {
        return EQ_ERROR_SCRATCH;
    }
    if (params->depth_multiplier != 1 || output_dims->c != depth || filter_dims->c != depth ||
        output_dims->h * output_dims->w > in_h * in_w) {
        return EQ_ERROR_ARGUMENT;
    }
    eq_dw_plane_dims(params, filter_dims, output_dims, &rows, &cols);
    plane = (int8_t *)ctx->buf;
    memset(plane, -params->input_offset, (size_t)(rows * cols));
    /* the input rows and columns inside the plane: plane (y, x) is input (y - p_h, x - p_w) */
    iy0 = EQ_MAX(0, -p_h);
    iy1 = EQ_MIN(in_h, rows - p_h);
    ix0 = EQ_MAX(0, -p_w);
    ix1 = EQ_MIN(in_w, cols - p_w);
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + b * in_h * in_w * depth;
        int8_t *out_batch = output + b * output_dims->h * output_dims->w * depth;
        for (c = 0; c < depth; c++) {
            for (iy = iy0; iy < iy1; iy++) {
                const int8_t *src = in_batch + (iy * in_w + ix0) * depth + c;
                int8_t *dst = plane + (iy + p_h) * cols + ix0 + p_w;
                for (ix = ix0; ix < ix1; ix++, src += depth) {
                    *dst++ = *src;
                }
            }
            eq_dw_channel(params, quant, c, bias[c], filter_dims, output_dims, plane, cols, filter + c,
                          out_batch + c, depth);
        }
    }
    return EQ_OK;
}
