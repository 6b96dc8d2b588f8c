/* CONV_2D, int8, batch 1, one output row at a time into caller scratch, then copied into
 * place, so that the output may start before the input's end (output rows 0..y-1 only
 * cover input rows no later row reads: docs/edgeq-c-memory.md, window_rows). Output row y
 * is eq_conv_s8's output row 0 with the top padding moved up by y strides. */
#include "eq_kernels.h"
#include "eq_dot_s8.h"

int32_t eq_conv_rows_s8_scratch_size(const eq_dims *output_dims)
{
    return output_dims->w * output_dims->c;
}

eq_status eq_conv_rows_s8(const eq_context *ctx, const eq_conv_params *params,
                          const eq_quant_params *quant, const eq_dims *input_dims,
                          const int8_t *input, const eq_dims *filter_dims, const int8_t *filter,
                          const int32_t *bias, const eq_dims *output_dims, int8_t *output)
{
    const int32_t row_bytes = eq_conv_rows_s8_scratch_size(output_dims);
    const eq_dims row_dims = {1, 1, output_dims->w, output_dims->c};
    eq_conv_params row_params = *params;
    int8_t *row;
    int32_t y;
    if (ctx == 0 || ctx->buf == 0 || ctx->size < row_bytes) {
        return EQ_ERROR_SCRATCH;
    }
    if (input_dims->n != 1 || output_dims->n != 1) {
        return EQ_ERROR_ARGUMENT;
    }
    row = (int8_t *)ctx->buf;
    for (y = 0; y < output_dims->h; y++) {
        eq_status status;
        row_params.padding.h = params->padding.h - y * params->stride.h;
        status = eq_conv_s8(0, &row_params, quant, input_dims, input, filter_dims, filter, bias, &row_dims, row);
        if (status != EQ_OK) {
            return status;
        }
        eq_copy_s8(output + y * row_bytes, row, row_bytes);
    }
    return EQ_OK;
}
