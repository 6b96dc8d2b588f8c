/* DEQUANTIZE int8 -> float32. */
#include "eq_affine.h"
#include "eq_kernels.h"

eq_status eq_dequantize_s8_f32(const eq_context *ctx, const eq_affine_params *params,
                               int32_t size, const int8_t *input, float *output)
{
    const double scale = (double)params->scale;
    int32_t i;
    (void)ctx;
    for (i = 0; i < size; i++) {
        output[i] = eq_dequantize_value(scale, params->zero_point, input[i]);
    }
    return EQ_OK;
}
