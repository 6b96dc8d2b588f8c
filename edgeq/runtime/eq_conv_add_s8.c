/* CONV_2D int8 with the ADD that consumes its output fused in: the convolution's output is
 * never stored; each value is added to the skip tensor's value at once. TFLite's
 * arithmetic for both ops is kept, so the result is bit-exact with CONV_2D then ADD.
 * Safe in place over the skip tensor (output == skip): out[i] is written after skip[i]
 * is read, and nothing else reads skip. */
#include "eq_conv_s8_core.h"

eq_status eq_conv_add_s8(const eq_context *ctx, const eq_conv_params *params,
                         const eq_quant_params *quant, const eq_add_params *add,
                         const eq_dims *input_dims, const int8_t *input,
                         const eq_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                         const int8_t *skip, const eq_dims *output_dims, int8_t *output)
{
    (void)ctx;
    if (add == 0 || skip == 0) {
        return EQ_ERROR_ARGUMENT;
    }
    return eq_conv_s8_core(params, quant, input_dims, input, filter_dims, filter, bias, output_dims, output,
                           add, skip);
}
