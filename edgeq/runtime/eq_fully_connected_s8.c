/* FULLY_CONNECTED, int8, per-channel or per-tensor requantization. */
#include "eq_kernels.h"
#include "eq_math.h"

EQ_VECTORIZE eq_status eq_fully_connected_s8(const eq_context *ctx, const eq_fc_params *params,
                                const eq_quant_params *quant, const eq_dims *input_dims,
                                const int8_t *input, const eq_dims *filter_dims,
                                const int8_t *filter, const int32_t *bias,
                                const eq_dims *output_dims, int8_t *output)
{
    const int32_t depth = filter_dims->c;
    const int32_t units = filter_dims->n;
    const int32_t batches = output_dims->n;
    int32_t b, o, i;
    (void)ctx;
    (void)input_dims;
    for (b = 0; b < batches; b++) {
        const int8_t *in = input + b * depth;
        for (o = 0; o < units; o++) {
            const int8_t *f = filter + o * depth;
            const int32_t q = quant->per_channel ? o : 0;
            int32_t acc = bias[o];
            for (i = 0; i < depth; i++) {
                acc += (int32_t)f[i] * (int32_t)in[i];
            }
            acc = eq_requantize(acc, quant->multiplier[q], quant->shift[q]);
            acc += params->output_offset;
            output[b * units + o] = (int8_t)EQ_CLAMP(acc, params->activation.min, params->activation.max);
        }
    }
    return EQ_OK;
}
