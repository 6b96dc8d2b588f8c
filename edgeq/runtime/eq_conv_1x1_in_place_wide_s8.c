/* CONV_2D 1x1, stride 1, int8, pixel by pixel so that the output may be written over the
 * input: eq_conv_1x1_in_place_s8 with the filter widened (eq_types.h) for the DSP cores'
 * SMLAD loop (eq_matvec_wide_s8.h). Each pixel's input vector is copied to caller scratch
 * before the pixel's outputs are stored (the planner's rule: docs/edgeq-c-memory.md), except
 * on DSP cores up to EQ_WIDE_DEPTH inputs, where the product widens the vector onto its stack
 * before it stores anything. */
#include "eq_kernels.h"
#include "eq_matvec_wide_s8.h"

eq_status eq_conv_1x1_in_place_wide_s8(const eq_context *ctx, const eq_conv_params *params,
                                       const eq_quant_params *quant, const eq_dims *input_dims,
                                       const int8_t *input, const eq_dims *filter_dims, const int32_t *filter,
                                       const int32_t *bias, const eq_dims *output_dims, int8_t *output)
{
    const int32_t in_c = input_dims->c, out_c = output_dims->c;
    const int32_t pixels = input_dims->n * input_dims->h * input_dims->w;
    int8_t *vector;
    int32_t p;
    if (ctx == 0 || ctx->buf == 0 || ctx->size < in_c) { /* one pixel's input vector */
        return EQ_ERROR_SCRATCH;
    }
    if (filter_dims->h != 1 || filter_dims->w != 1 || params->stride.h != 1 || params->stride.w != 1 ||
        filter_dims->c != in_c || filter_dims->n != out_c ||
        output_dims->n * output_dims->h * output_dims->w != pixels) {
        return EQ_ERROR_ARGUMENT;
    }
    vector = (int8_t *)ctx->buf;
    for (p = 0; p < pixels; p++) {
        const int8_t *x = input + p * in_c;
#if EQ_DSP
        if (in_c > EQ_WIDE_DEPTH)
#endif
        {
            eq_copy_s8(vector, x, in_c);
            x = vector;
        }
        eq_matvec_wide_s8(filter, in_c, out_c, x, bias, quant, params->output_offset, &params->activation,
                          output + p * out_c);
    }
    return EQ_OK;
}
