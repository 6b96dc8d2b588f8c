/* MUL, int8, with broadcasting through per-input strides. */
#include "eq_broadcast.h"
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_mul_s8(const eq_context *ctx, const eq_mul_params *params,
                    const eq_strides *input1_strides, const int8_t *input1,
                    const eq_strides *input2_strides, const int8_t *input2,
                    const eq_dims *output_dims, int8_t *output)
{
    (void)ctx;
    EQ_FOR_EACH_BROADCAST(i1, input1_strides, i2, input2_strides, output_dims, {
        const int32_t x = input1[i1] + params->input1_offset;
        const int32_t y = input2[i2] + params->input2_offset;
        int32_t out = eq_requantize(x * y, params->output_multiplier, params->output_shift);
        out += params->output_offset;
        *output++ = (int8_t)EQ_CLAMP(out, params->activation.min, params->activation.max);
    });
    return EQ_OK;
}
