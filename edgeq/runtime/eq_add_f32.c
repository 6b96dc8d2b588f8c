/* ADD, float32, with broadcasting through per-input strides. */
#include "eq_broadcast.h"
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_add_f32(const eq_context *ctx, const eq_activation_f32 *activation,
                     const eq_strides *input1_strides, const float *input1,
                     const eq_strides *input2_strides, const float *input2,
                     const eq_dims *output_dims, float *output)
{
    (void)ctx;
    EQ_FOR_EACH_BROADCAST(i1, input1_strides, i2, input2_strides, output_dims, {
        const float v = input1[i1] + input2[i2];
        *output++ = EQ_CLAMP(v, activation->min, activation->max);
    });
    return EQ_OK;
}
