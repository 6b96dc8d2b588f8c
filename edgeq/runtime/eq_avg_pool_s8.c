/* AVERAGE_POOL_2D, int8. Divides by the number of in-bounds taps, rounding half away
 * from zero with truncating division, as TFLite's reference kernel does. */
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_avg_pool_s8(const eq_context *ctx, const eq_pool_params *params,
                         const eq_dims *input_dims, const int8_t *input,
                         const eq_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, depth = input_dims->c;
    int32_t b, oy, ox, c, y, x;
    (void)ctx;
    for (b = 0; b < output_dims->n; b++) {
        for (oy = 0; oy < output_dims->h; oy++) {
            const int32_t iy0 = oy * params->stride.h - params->padding.h;
            const int32_t y_start = EQ_MAX(0, -iy0);
            const int32_t y_end = EQ_MIN(params->filter.h, in_h - iy0);
            for (ox = 0; ox < output_dims->w; ox++) {
                const int32_t ix0 = ox * params->stride.w - params->padding.w;
                const int32_t x_start = EQ_MAX(0, -ix0);
                const int32_t x_end = EQ_MIN(params->filter.w, in_w - ix0);
                const int32_t count = (y_end - y_start) * (x_end - x_start);
                int8_t *out = output + ((b * output_dims->h + oy) * output_dims->w + ox) * depth;
                if (count <= 0) {
                    return EQ_ERROR_ARGUMENT;
                }
                for (c = 0; c < depth; c++) {
                    int32_t acc = 0;
                    for (y = y_start; y < y_end; y++) {
                        const int8_t *in = input + ((b * in_h + iy0 + y) * in_w + ix0) * depth + c;
                        for (x = x_start; x < x_end; x++) {
                            acc += in[x * depth];
                        }
                    }
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    out[c] = (int8_t)EQ_CLAMP(acc, params->activation.min, params->activation.max);
                }
            }
        }
    }
    return EQ_OK;
}
