/* FULLY_CONNECTED, int8, per-channel or per-tensor requantization. Four output units a pass
 * share each load of the input (eq_dot4_s8: SMLAD on DSP cores). */
#include "eq_kernels.h"
#include "eq_dot_s8.h"

static inline int8_t eq_fc_s8_output(int32_t acc, const eq_fc_params *params, const eq_quant_params *quant,
                                     int32_t o)
{
    const int32_t q = quant->per_channel ? o : 0;
    acc = eq_requantize(acc, quant->multiplier[q], quant->shift[q]) + params->output_offset;
    return (int8_t)EQ_CLAMP(acc, params->activation.min, params->activation.max);
}

eq_status eq_fully_connected_s8(const eq_context *ctx, const eq_fc_params *params,
                                const eq_quant_params *quant, const eq_dims *input_dims,
                                const int8_t *input, const eq_dims *filter_dims,
                                const int8_t *filter, const int32_t *bias,
                                const eq_dims *output_dims, int8_t *output)
{
    const int32_t depth = filter_dims->c;
    const int32_t units = filter_dims->n;
    const int32_t batches = output_dims->n;
    int32_t b, o, j;
    (void)ctx;
    (void)input_dims;
    for (b = 0; b < batches; b++) {
        const int8_t *in = input + b * depth;
        int8_t *out = output + b * units;
        for (o = 0; o + 4 <= units; o += 4) {
            int32_t acc[4];
            for (j = 0; j < 4; j++) {
                acc[j] = bias[o + j];
            }
            eq_dot4_s8(filter + o * depth, depth, in, depth, acc);
            for (j = 0; j < 4; j++) {
                out[o + j] = eq_fc_s8_output(acc[j], params, quant, o + j);
            }
        }
        for (; o < units; o++) {
            out[o] = eq_fc_s8_output(eq_dot_s8(bias[o], filter + o * depth, in, depth), params, quant, o);
        }
    }
    return EQ_OK;
}
