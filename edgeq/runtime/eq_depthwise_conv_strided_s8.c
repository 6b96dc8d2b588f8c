/* DEPTHWISE_CONV_2D, int8, depth multiplier 1, strides above 1 (eq_dw_strided_across), so that
 * the output may be written over the input (output == input) or have its own bytes.
 *
 * Output rows are computed straight from the input (eq_depthwise_across_s8.h) into a ring of rows
 * in caller scratch, and each row is written into place once no output row still to come reads
 * an input byte it covers: the input row its last byte lands on has no reader left
 * (docs/edgeq-c-memory.md). At stride 1 the channel planes' loop (eq_depthwise_conv_in_place_s8)
 * takes two outputs a pass and stays the faster; at stride 2 copying a plane costs four input
 * bytes an output, and this kernel none. */
#include "eq_depthwise_across_s8.h"

/* The last output row that reads input row `iy` or an earlier one: its window starts there. */
static int32_t eq_dw_last_reader(const eq_dw_conv_params *params, int32_t iy, int32_t out_h)
{
    return EQ_MIN(out_h - 1, (iy + params->padding.h) / params->stride.h);
}

/* The last output row to compute before output row y may be written over the input. */
static int32_t eq_dw_commit_after(const eq_dw_conv_params *params, const eq_dims *input_dims,
                                  const eq_dims *output_dims, int32_t y)
{
    const int32_t row_out = output_dims->w * output_dims->c, row_in = input_dims->w * input_dims->c;
    return eq_dw_last_reader(params, ((y + 1) * row_out - 1) / row_in, output_dims->h);
}

/* Rows of the ring: one more than the most output rows computed ahead of the oldest unwritten. */
static int32_t eq_dw_ring_rows(const eq_dw_conv_params *params, const eq_dims *input_dims, const eq_dims *output_dims)
{
    int32_t y, ahead = 0;
    for (y = 0; y < output_dims->h; y++) {
        ahead = EQ_MAX(ahead, eq_dw_commit_after(params, input_dims, output_dims, y) - y);
    }
    return ahead + 1;
}

int32_t eq_depthwise_conv_strided_s8_scratch_size(const eq_dw_conv_params *params, const eq_dims *input_dims,
                                                  const eq_dims *output_dims)
{
    return eq_dw_ring_rows(params, input_dims, output_dims) * output_dims->w * output_dims->c;
}

eq_status eq_depthwise_conv_strided_s8(const eq_context *ctx, const eq_dw_conv_params *params,
                                       const eq_quant_params *quant, const eq_dims *input_dims,
                                       const int8_t *input, const eq_dims *filter_dims, const int8_t *filter,
                                       const int32_t *bias, const eq_dims *output_dims, int8_t *output)
{
    const int32_t depth = input_dims->c, row_bytes = output_dims->w * output_dims->c;
    int32_t ring_rows, b, y, next;
    int8_t *ring;
    if (ctx == 0 || ctx->buf == 0 ||
        ctx->size < eq_depthwise_conv_strided_s8_scratch_size(params, input_dims, output_dims)) {
        return EQ_ERROR_SCRATCH;
    }
    if (params->depth_multiplier != 1 || output_dims->c != depth || filter_dims->c != depth ||
        output_dims->h * output_dims->w > input_dims->h * input_dims->w ||
        filter_dims->h * filter_dims->w > EQ_DW_ACROSS_TAPS) {
        return EQ_ERROR_ARGUMENT;
    }
    ring = (int8_t *)ctx->buf;
    ring_rows = eq_dw_ring_rows(params, input_dims, output_dims);
    for (b = 0; b < output_dims->n; b++) {
        const int8_t *in_batch = input + b * input_dims->h * input_dims->w * depth;
        int8_t *out_batch = output + b * output_dims->h * row_bytes;
        for (y = 0, next = 0; y < output_dims->h; y++) { /* next: the oldest output row not yet written */
            (void)eq_dw_rows_s8(params, quant, input_dims, in_batch, filter_dims, filter, bias, y, y + 1,
                                output_dims->w, ring + (y % ring_rows) * row_bytes);
            for (; next <= y && eq_dw_commit_after(params, input_dims, output_dims, next) <= y; next++) {
                eq_copy_s8(out_batch + next * row_bytes, ring + (next % ring_rows) * row_bytes, row_bytes);
            }
        }
        for (; next < output_dims->h; next++) {
            eq_copy_s8(out_batch + next * row_bytes, ring + (next % ring_rows) * row_bytes, row_bytes);
        }
    }
    return EQ_OK;
}
