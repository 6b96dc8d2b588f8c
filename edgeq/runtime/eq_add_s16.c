/* ADD, int16 (left_shift 15), with broadcasting through per-input strides. */
#include "eq_broadcast.h"
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_add_s16(const eq_context *ctx, const eq_add_params *params,
                     const eq_strides *input1_strides, const int16_t *input1,
                     const eq_strides *input2_strides, const int16_t *input2,
                     const eq_dims *output_dims, int16_t *output)
{
    (void)ctx;
    EQ_FOR_EACH_BROADCAST(i1, input1_strides, i2, input2_strides, output_dims,
                          *output++ = (int16_t)eq_add_quantized(params, input1[i1], input2[i2]););
    return EQ_OK;
}
