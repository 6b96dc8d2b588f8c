/* FULLY_CONNECTED, int8, per-channel or per-tensor requantization. The filter is blocked
 * (eq_types.h): four output units a pass share each load of the input, through one filter
 * pointer (SMLAD on DSP cores: eq_dot_s8.h). */
#include "eq_kernels.h"
#include "eq_dot_s8.h"

eq_status eq_fully_connected_s8(const eq_context *ctx, const eq_fc_params *params,
                                const eq_quant_params *quant, const eq_dims *input_dims,
                                const int8_t *input, const eq_dims *filter_dims,
                                const int8_t *filter, const int32_t *bias,
                                const eq_dims *output_dims, int8_t *output)
{
    const int32_t depth = filter_dims->c;
    const int32_t units = filter_dims->n;
    int32_t b;
    (void)ctx;
    (void)input_dims;
    for (b = 0; b < output_dims->n; b++) {
        eq_matvec_blocked_s8(filter, depth, units, input + b * depth, bias, quant, params->output_offset,
                             &params->activation, output + b * units);
    }
    return EQ_OK;
}
