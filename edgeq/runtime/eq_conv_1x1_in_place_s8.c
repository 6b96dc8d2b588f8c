/* CONV_2D 1x1, stride 1, int8, pixel by pixel so that the output may be written over the
 * input. Each pixel's input vector is copied to caller scratch before the pixel's outputs
 * are stored: the output of pixel p must start at or below input + p * (Cin - Cout) for
 * every p (docs/edgeq-c-memory.md), which the planner guarantees. The arithmetic is
 * eq_conv_s8's, run on one pixel at a time, but the filter is blocked (eq_types.h): four
 * output channels a pass through one filter pointer. */
#include "eq_kernels.h"
#include "eq_dot_s8.h"

#define EQ_MVE_RUN_ACC 512 /* a run of pixels' accumulators, on the stack: 2 KiB */

int32_t eq_conv_1x1_in_place_s8_scratch_size(const eq_dims *input_dims)
{
    return input_dims->c;
}

eq_status eq_conv_1x1_in_place_s8(const eq_context *ctx, const eq_conv_params *params,
                                  const eq_quant_params *quant, const eq_dims *input_dims,
                                  const int8_t *input, const eq_dims *filter_dims, const int8_t *filter,
                                  const int32_t *bias, const eq_dims *output_dims, int8_t *output)
{
    const int32_t in_c = input_dims->c, out_c = output_dims->c;
    const int32_t pixels = input_dims->n * input_dims->h * input_dims->w;
    int8_t *vector;
    int32_t p;
    if (ctx == 0 || ctx->buf == 0 || ctx->size < eq_conv_1x1_in_place_s8_scratch_size(input_dims)) {
        return EQ_ERROR_SCRATCH;
    }
    if (filter_dims->h != 1 || filter_dims->w != 1 || params->stride.h != 1 || params->stride.w != 1 ||
        filter_dims->c != in_c || filter_dims->n != out_c ||
        output_dims->n * output_dims->h * output_dims->w != pixels) {
        return EQ_ERROR_ARGUMENT;
    }
    vector = (int8_t *)ctx->buf;
#if EQ_MVE
    /* Two pixels a pass, their inputs read in place (eq_mve_matvec2), a run of pairs' sums taken
       before any of their outputs is stored: pixel q's output ends at or below pixel q + 1's input,
       so no output lands on an input still to be read. The run's outputs in one call. */
    if (quant->bounded != 0 && out_c % 4 == 0 && 2 * out_c <= EQ_MVE_RUN_ACC) {
        const int32_t run = EQ_MVE_RUN_ACC / (2 * out_c) * 2;
        int32_t acc[EQ_MVE_RUN_ACC];
        int32_t n, q;
        for (p = 0; p + 2 <= pixels; p += n) {
            n = EQ_MIN(run, (pixels - p) & ~1);
            for (q = 0; q < n; q += 2) {
                const int8_t *x = input + (p + q) * in_c;
                (void)eq_mve_matvec2(filter, x, x + in_c, in_c, out_c, bias, acc + q * out_c, acc + (q + 1) * out_c);
            }
            eq_mve_outputs_s8(acc, n, out_c, 0, out_c, quant, params->output_offset, &params->activation, 0, 0,
                              output + p * out_c);
        }
    } else {
        p = 0;
    }
    for (; p < pixels; p++) {
#else
    for (p = 0; p < pixels; p++) {
#endif
        memcpy(vector, input + p * in_c, (size_t)in_c);
        eq_matvec_blocked_s8(filter, in_c, out_c, vector, bias, quant, params->output_offset, &params->activation,
                             output + p * out_c);
    }
    return EQ_OK;
}
