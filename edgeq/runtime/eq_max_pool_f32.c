/* MAX_POOL_2D, float32. */
#include <float.h>
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_max_pool_f32(const eq_context *ctx, const eq_pool_params *params,
                          const eq_activation_f32 *activation, const eq_dims *input_dims,
                          const float *input, const eq_dims *output_dims, float *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, depth = input_dims->c;
    int32_t b, oy, ox, c, y, x;
    (void)ctx;
    for (b = 0; b < output_dims->n; b++) {
        for (oy = 0; oy < output_dims->h; oy++) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            const int32_t y_start = EQ_MAX(0, -iy0), y_end = EQ_MIN(params->filter.h, in_h - iy0);
            for (ox = 0; ox < output_dims->w; ox++) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
                const int32_t x_start = EQ_MAX(0, -ix0), x_end = EQ_MIN(params->filter.w, in_w - ix0);
                for (c = 0; c < depth; c++) {
                    float m = -FLT_MAX;
                    for (y = y_start; y < y_end; y++) {
                        for (x = x_start; x < x_end; x++) {
                            m = EQ_MAX(m, input[((b * in_h + iy0 + y) * in_w + ix0 + x) * depth + c]);
                        }
                    }
                    output[((b * output_dims->h + oy) * output_dims->w + ox) * depth + c] =
                        EQ_CLAMP(m, activation->min, activation->max);
                }
            }
        }
    }
    return EQ_OK;
}
