/* QUANTIZE float32 -> int16: round(x / scale) half away from zero, in float, as TFLite. */
#include <math.h>
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_quantize_f32_s16(const eq_context *ctx, const eq_affine_params *params,
                              int32_t size, const float *input, int16_t *output)
{
    int32_t i;
    (void)ctx;
    for (i = 0; i < size; i++) {
        const float r = roundf(input[i] / params->scale);
        int32_t q;
        if (r >= 2147483520.0f) {
            q = 32767;
        } else if (r <= -2147483520.0f) {
            q = -32768;
        } else {
            q = (int32_t)r + params->zero_point;
        }
        output[i] = (int16_t)EQ_CLAMP(q, -32768, 32767);
    }
    return EQ_OK;
}
