/* DEPTHWISE_CONV_2D, int8, batch 1, one output row at a time into caller scratch, then
 * copied into place, so that the output may start before the input's end (window_rows in
 * docs/edgeq-c-memory.md). Depth multiplier 1: each channel's input rows under the output
 * row are copied into a padded plane of one window's height (eq_depthwise_plane_s8.h), which
 * follows the row in scratch; other depth multipliers run eq_depthwise_conv_s8 on the row,
 * whose accumulators follow it instead. */
#include "eq_depthwise_plane_s8.h"
#include "eq_depthwise_across_s8.h"

static int32_t eq_depthwise_conv_rows_s8_row_bytes(const eq_dims *output_dims)
{
    return (output_dims->w * output_dims->c + 3) / 4 * 4; /* what follows it is read a word at a time */
}

/* The one-row plane's rows and row length. */
static void eq_dw_rows_plane(const eq_dw_conv_params *params, const eq_dims *filter_dims,
                             const eq_dims *output_dims, int32_t *rows, int32_t *cols)
{
    const eq_dims row_dims = {1, 1, output_dims->w, output_dims->c};
    eq_dw_plane_dims(params, filter_dims, &row_dims, rows, cols);
}

int32_t eq_depthwise_conv_rows_s8_scratch_size(const eq_dw_conv_params *params, const eq_dims *filter_dims,
                                               const eq_dims *output_dims)
{
    int32_t rows, cols;
    if (params->depth_multiplier != 1) {
        return eq_depthwise_conv_rows_s8_row_bytes(output_dims) + eq_depthwise_conv_s8_scratch_size(output_dims);
    }
    eq_dw_rows_plane(params, filter_dims, output_dims, &rows, &cols);
    return eq_depthwise_conv_rows_s8_row_bytes(output_dims) + rows * cols;
}

eq_status eq_depthwise_conv_rows_s8(const eq_context *ctx, const eq_dw_conv_params *params,
                                    const eq_quant_params *quant, const eq_dims *input_dims,
                                    const int8_t *input, const eq_dims *filter_dims,
                                    const int8_t *filter, const int32_t *bias,
                                    const eq_dims *output_dims, int8_t *output)
{
    const int32_t row_bytes = output_dims->w * output_dims->c;
    const int32_t after = eq_depthwise_conv_rows_s8_row_bytes(output_dims);
    const int32_t in_h = input_dims->h, in_w = input_dims->w, depth = input_dims->c;
    const eq_dims row_dims = {1, 1, output_dims->w, output_dims->c};
    eq_dw_conv_params row_params = *params;
    int8_t *row, *plane;
    int32_t rows, cols, ix0, ix1, y, r, c;
    if (ctx == 0 || ctx->buf == 0 ||
        ctx->size < eq_depthwise_conv_rows_s8_scratch_size(params, filter_dims, output_dims)) {
        return EQ_ERROR_SCRATCH;
    }
    if (input_dims->n != 1 || output_dims->n != 1) {
        return EQ_ERROR_ARGUMENT;
    }
    row = (int8_t *)ctx->buf;
    if (params->depth_multiplier != 1) {
        eq_context acc_ctx;
        acc_ctx.buf = row + after;
        acc_ctx.size = ctx->size - after;
        for (y = 0; y < output_dims->h; y++) {
            eq_status status;
            row_params.padding.h = params->padding.h - y * params->stride.h;
            status = eq_depthwise_conv_s8(&acc_ctx, &row_params, quant, input_dims, input, filter_dims, filter,
                                          bias, &row_dims, row);
            if (status != EQ_OK) {
                return status;
            }
            eq_copy_s8(output + y * row_bytes, row, row_bytes);
        }
        return EQ_OK;
    }
    if (output_dims->c != depth || filter_dims->c != depth) {
        return EQ_ERROR_ARGUMENT;
    }
#if EQ_DSP && !EQ_MVE
    /* strided: four channels a pass straight from the input, no plane (eq_depthwise_across_s8.h) */
    if (eq_dw_strided_across(params, filter_dims, output_dims)) {
        for (y = 0; y < output_dims->h; y++) {
            (void)eq_dw_rows_s8(params, quant, input_dims, input, filter_dims, filter, bias, y, y + 1,
                                output_dims->w, row);
            eq_copy_s8(output + y * row_bytes, row, row_bytes);
        }
        return EQ_OK;
    }
#endif
    plane = row + after;
    eq_dw_rows_plane(params, filter_dims, output_dims, &rows, &cols);
    /* the plane's columns: plane x is input x - p_w; the padding columns stay the zero point */
    memset(plane, -params->input_offset, (size_t)(rows * cols));
    ix0 = EQ_MAX(0, -params->padding.w);
    ix1 = EQ_MIN(in_w, cols - params->padding.w);
    row_params.padding.h = 0;
    for (y = 0; y < output_dims->h; y++) {
        const int32_t iy0 = y * params->stride.h - params->padding.h; /* input row of plane row 0 */
        for (c = 0; c < depth; c++) {
            for (r = 0; r < rows; r++) {
                const int32_t iy = iy0 + r;
                int8_t *dst = plane + r * cols + ix0 + params->padding.w;
                if (iy < 0 || iy >= in_h) {
                    memset(dst, -params->input_offset, (size_t)(ix1 - ix0));
                } else {
                    eq_gather_s8(dst, input + (iy * in_w + ix0) * depth + c, depth, ix1 - ix0);
                }
            }
            eq_dw_channel(&row_params, quant, c, bias[c], filter_dims, &row_dims, plane, cols, filter + c, row + c,
                          depth);
        }
        eq_copy_s8(output + y * row_bytes, row, row_bytes);
    }
    return EQ_OK;
}
