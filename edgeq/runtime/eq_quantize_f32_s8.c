/* QUANTIZE float32 -> int8. */
#include "eq_affine.h"
#include "eq_kernels.h"

eq_status eq_quantize_f32_s8(const eq_context *ctx, const eq_affine_params *params,
                             int32_t size, const float *input, int8_t *output)
{
    int32_t i;
    (void)ctx;
    for (i = 0; i < size; i++) {
        output[i] = (int8_t)eq_quantize_value(params, input[i], -128, 127);
    }
    return EQ_OK;
}
