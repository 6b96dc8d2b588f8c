/* FULLY_CONNECTED with packed int4 weights (low nibble first), int8 activations.
 * Each output unit's row is unpacked into caller scratch, then used for every batch. */
#include "eq_kernels.h"
#include "eq_math.h"

int32_t eq_fully_connected_s4_scratch_size(const eq_dims *filter_dims)
{
    return filter_dims->c;
}

eq_status eq_fully_connected_s4(const eq_context *ctx, const eq_fc_params *params,
                                const eq_quant_params *quant, const eq_dims *input_dims,
                                const int8_t *input, const eq_dims *filter_dims,
                                const uint8_t *packed_filter, const int32_t *bias,
                                const eq_dims *output_dims, int8_t *output)
{
    const int32_t depth = filter_dims->c, units = filter_dims->n;
    int32_t b, o, i;
    int8_t *row;
    (void)input_dims;
    if (ctx == 0 || ctx->buf == 0 || ctx->size < depth) {
        return EQ_ERROR_SCRATCH;
    }
    row = (int8_t *)ctx->buf;
    for (o = 0; o < units; o++) {
        const int32_t q = quant->per_channel ? o : 0;
        for (i = 0; i < depth; i++) {
            const int32_t e = o * depth + i;
            const int32_t byte = packed_filter[e >> 1];
            const int32_t nibble = (e & 1) ? (byte >> 4) : (byte & 0x0F);
            row[i] = (int8_t)(nibble >= 8 ? nibble - 16 : nibble);
        }
        for (b = 0; b < output_dims->n; b++) {
            const int8_t *in = input + b * depth;
            int32_t acc = bias[o];
            for (i = 0; i < depth; i++) {
                acc += (int32_t)row[i] * (int32_t)in[i];
            }
            acc = eq_requantize(acc, quant->multiplier[q], quant->shift[q]) + params->output_offset;
            output[b * units + o] = (int8_t)EQ_CLAMP(acc, params->activation.min, params->activation.max);
        }
    }
    return EQ_OK;
}
