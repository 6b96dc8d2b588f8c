/* QUANTIZE float32 -> int8: round(x / scale) half away from zero, in float, as TFLite. */
#include <math.h>
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_quantize_f32_s8(const eq_context *ctx, const eq_affine_params *params,
                             int32_t size, const float *input, int8_t *output)
{
    int32_t i;
    (void)ctx;
    for (i = 0; i < size; i++) {
        const float r = roundf(input[i] / params->scale);
        int32_t q;
        if (r >= 2147483520.0f) { /* clamp before the cast: int8 saturates anyway */
            q = 127;
        } else if (r <= -2147483520.0f) {
            q = -128;
        } else {
            q = (int32_t)r + params->zero_point;
        }
        output[i] = (int8_t)EQ_CLAMP(q, -128, 127);
    }
    return EQ_OK;
}
