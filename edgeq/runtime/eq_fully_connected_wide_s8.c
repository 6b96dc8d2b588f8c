/* FULLY_CONNECTED, int8, per-channel or per-tensor requantization, the filter widened
 * (eq_types.h) for the DSP cores' SMLAD loop (eq_matvec_wide_s8.h). */
#include "eq_kernels.h"
#include "eq_matvec_wide_s8.h"

eq_status eq_fully_connected_wide_s8(const eq_context *ctx, const eq_fc_params *params,
                                     const eq_quant_params *quant, const eq_dims *input_dims,
                                     const int8_t *input, const eq_dims *filter_dims,
                                     const int32_t *filter, const int32_t *bias,
                                     const eq_dims *output_dims, int8_t *output)
{
    const int32_t depth = filter_dims->c;
    const int32_t units = filter_dims->n;
    int32_t b;
    (void)ctx;
    (void)input_dims;
    for (b = 0; b < output_dims->n; b++) {
        eq_matvec_wide_s8(filter, depth, units, input + b * depth, bias, quant, params->output_offset,
                          &params->activation, output + b * units);
    }
    return EQ_OK;
}
