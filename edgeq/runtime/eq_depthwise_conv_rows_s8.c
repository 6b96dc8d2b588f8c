/* DEPTHWISE_CONV_2D, int8, batch 1, one output row at a time into caller scratch, then
 * copied into place, so that the output may start before the input's end (window_rows in
 * docs/edgeq-c-memory.md). Output row y is eq_depthwise_conv_s8's output row 0 with the
 * top padding moved up by y strides; that kernel's accumulators follow the row in scratch. */
#include "eq_kernels.h"

static int32_t eq_depthwise_conv_rows_s8_row_bytes(const eq_dims *output_dims)
{
    return (output_dims->w * output_dims->c + 3) / 4 * 4; /* the accumulators after it are int32 */
}

int32_t eq_depthwise_conv_rows_s8_scratch_size(const eq_dims *output_dims)
{
    return eq_depthwise_conv_rows_s8_row_bytes(output_dims) + eq_depthwise_conv_s8_scratch_size(output_dims);
}

eq_status eq_depthwise_conv_rows_s8(const eq_context *ctx, const eq_dw_conv_params *params,
                                    const eq_quant_params *quant, const eq_dims *input_dims,
                                    const int8_t *input, const eq_dims *filter_dims,
                                    const int8_t *filter, const int32_t *bias,
                                    const eq_dims *output_dims, int8_t *output)
{
    const int32_t row_bytes = output_dims->w * output_dims->c;
    const int32_t acc_at = eq_depthwise_conv_rows_s8_row_bytes(output_dims);
    const eq_dims row_dims = {1, 1, output_dims->w, output_dims->c};
    eq_dw_conv_params row_params = *params;
    eq_context acc_ctx;
    int8_t *row;
    int32_t y, i;
    if (ctx == 0 || ctx->buf == 0 || ctx->size < eq_depthwise_conv_rows_s8_scratch_size(output_dims)) {
        return EQ_ERROR_SCRATCH;
    }
    if (input_dims->n != 1 || output_dims->n != 1) {
        return EQ_ERROR_ARGUMENT;
    }
    row = (int8_t *)ctx->buf;
    acc_ctx.buf = row + acc_at;
    acc_ctx.size = ctx->size - acc_at;
    for (y = 0; y < output_dims->h; y++) {
        eq_status status;
        row_params.padding.h = params->padding.h - y * params->stride.h;
        status = eq_depthwise_conv_s8(&acc_ctx, &row_params, quant, input_dims, input, filter_dims, filter, bias,
                                      &row_dims, row);
        if (status != EQ_OK) {
            return status;
        }
        for (i = 0; i < row_bytes; i++) {
            output[y * row_bytes + i] = row[i];
        }
    }
    return EQ_OK;
}
