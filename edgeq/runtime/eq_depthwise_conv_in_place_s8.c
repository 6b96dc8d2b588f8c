/* DEPTHWISE_CONV_2D, int8, depth multiplier 1, channel by channel so that the output may
 * be written over the input (output == input); on DSP cores the generator also picks it when
 * the output has its own bytes, being the faster kernel there.
 *
 * For each (batch, channel) the channel's input values are copied to caller scratch, a padded
 * plane (eq_depthwise_plane_s8.h), then every output of that channel is computed from the copy
 * and stored at its NHWC position. An output byte of channel c only ever lands on a channel-c
 * byte of this batch or an earlier one, whose value has already been copied
 * (docs/edgeq-c-memory.md), and bytes of other channels are never written. */
#include "eq_depthwise_plane_s8.h"

int32_t eq_depthwise_conv_in_place_s8_scratch_size(const eq_dw_conv_params *params, const eq_dims *filter_dims,
                                                   const eq_dims *output_dims)
{
    int32_t rows, cols;
    eq_dw_plane_dims(params, filter_dims, output_dims, &rows, &cols);
    return rows * cols;
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
    int32_t b, c;
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
            eq_gather_rows_s8(plane + (iy0 + p_h) * cols + ix0 + p_w, cols, in_batch + (iy0 * in_w + ix0) * depth + c,
                              in_w * depth, depth, ix1 - ix0, iy1 - iy0);
            eq_dw_channel(params, quant, c, bias[c], filter_dims, output_dims, plane, cols, filter + c,
                          out_batch + c, depth);
        }
    }
    return EQ_OK;
}
