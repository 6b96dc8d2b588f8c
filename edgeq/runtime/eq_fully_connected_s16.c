/* FULLY_CONNECTED, int16 activations, int8 weights, int64 bias and accumulator. */
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_fully_connected_s16(const eq_context *ctx, const eq_fc_params *params,
                                 const eq_quant_params *quant, const eq_dims *input_dims,
                                 const int16_t *input, const eq_dims *filter_dims,
                                 const int8_t *filter, const int64_t *bias,
                                 const eq_dims *output_dims, int16_t *output)
{
    const int32_t depth = filter_dims->c, units = filter_dims->n;
    int32_t b, o, i;
    (void)ctx;
    (void)input_dims;
    for (b = 0; b < output_dims->n; b++) {
        for (o = 0; o < units; o++) {
            int64_t acc = 0;
            for (i = 0; i < depth; i++) {
                acc += (int32_t)filter[o * depth + i] * ((int32_t)input[b * depth + i] + params->input_offset);
            }
            output[b * units + o] = eq_output_s16(acc, bias, quant, o, params->output_offset, &params->activation);
        }
    }
    return EQ_OK;
}
