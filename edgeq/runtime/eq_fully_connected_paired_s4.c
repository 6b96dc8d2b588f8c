/* FULLY_CONNECTED with int4 weights in the paired layout (eq_matvec_paired_s4.h), two a byte in
 * flash as TFLite's packed INT4, unpacked in registers; int8 activations. */
#include "eq_kernels.h"
#include "eq_matvec_paired_s4.h"

eq_status eq_fully_connected_paired_s4(const eq_context *ctx, const eq_fc_params *params,
                                       const eq_quant_params *quant, const eq_dims *input_dims,
                                       const int8_t *input, const eq_dims *filter_dims,
                                       const uint32_t *filter, const int32_t *bias,
                                       const eq_dims *output_dims, int8_t *output)
{
    const int32_t depth = filter_dims->c, units = filter_dims->n;
    int32_t b;
    (void)ctx;
    (void)input_dims;
    if (depth > EQ_PAIRED_MAX_DEPTH) {
        return EQ_ERROR_ARGUMENT;
    }
    for (b = 0; b < output_dims->n; b++) {
        eq_matvec_paired_s4(filter, depth, units, input + b * depth, bias, quant, params->output_offset,
                            &params->activation, output + b * units);
    }
    return EQ_OK;
}
