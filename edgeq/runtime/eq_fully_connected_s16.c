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
            const int32_t q = quant->per_channel ? o : 0;
            int64_t acc = 0;
            int32_t v;
            for (i = 0; i < depth; i++) {
                acc += (int32_t)filter[o * depth + i] * ((int32_t)input[b * depth + i] + params->input_offset);
            }
            if (bias != 0) {
                acc += bias[o];
            }
            v = eq_requantize_s64(acc, quant->multiplier[q], quant->shift[q]) + params->output_offset;
            output[b * units + o] = (int16_t)EQ_CLAMP(v, params->activation.min, params->activation.max);
        }
    }
    return EQ_OK;
}
