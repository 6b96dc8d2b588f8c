/* eq_conv_add_s8 with the filter widened (eq_types.h) for the DSP cores: CONV_2D with the ADD
 * that consumes its output fused in, safe in place over the skip tensor (out[i] is written
 * after skip[i] is read). */
#include "eq_conv_wide_s8_core.h"

eq_status eq_conv_add_wide_s8(const eq_context *ctx, const eq_conv_params *params,
                              const eq_quant_params *quant, const eq_add_params *add,
                              const eq_dims *input_dims, const int8_t *input,
                              const eq_dims *filter_dims, const int32_t *filter, const int32_t *bias,
                              const int8_t *skip, const eq_dims *output_dims, int8_t *output)
{
    (void)ctx;
    if (add == 0 || skip == 0) {
        return EQ_ERROR_ARGUMENT;
    }
    return eq_conv_wide_s8_core(params, quant, input_dims, input, filter_dims, filter, bias, output_dims, output,
                                add, skip);
}
