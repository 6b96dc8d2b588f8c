/* QUANTIZE float32 -> int16. */
#include "eq_affine.h"
#include "eq_kernels.h"

eq_status eq_quantize_f32_s16(const eq_context *ctx, const eq_affine_params *params,
                              int32_t size, const float *input, int16_t *output)
{
    int32_t i;
    (void)ctx;
    for (i = 0; i < size; i++) {
        output[i] = (int16_t)eq_quantize_value(params, input[i], -32768, 32767);
    }
    return EQ_OK;
}
