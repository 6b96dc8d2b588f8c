/* CONV_2D, int8, the filter widened (eq_types.h) for the DSP cores: eq_conv_s8's arithmetic,
 * windows of up to EQ_CONV_COL_BYTES. */
#include "eq_conv_wide_s8_core.h"

eq_status eq_conv_wide_s8(const eq_context *ctx, const eq_conv_params *params,
                          const eq_quant_params *quant, const eq_dims *input_dims,
                          const int8_t *input, const eq_dims *filter_dims, const int32_t *filter,
                          const int32_t *bias, const eq_dims *output_dims, int8_t *output)
{
    (void)ctx;
    return eq_conv_wide_s8_core(params, quant, input_dims, input, filter_dims, filter, bias, output_dims, output, 0,
                                0);
}
