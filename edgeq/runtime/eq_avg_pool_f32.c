/* AVERAGE_POOL_2D, float32: the sum of in-bounds taps over their count. */
#include "eq_kernels.h"
#include "eq_window.h"

eq_status eq_avg_pool_f32(const eq_context *ctx, const eq_pool_params *params,
                          const eq_activation_f32 *activation, const eq_dims *input_dims,
                          const float *input, const eq_dims *output_dims, float *output)
{
    const int32_t depth = input_dims->c;
    int32_t c;
    (void)ctx;
    EQ_FOR_EACH_WINDOW(win, params, output_dims, {
        const eq_pool_taps taps = eq_pool_taps_of(&win, params, input_dims);
        if (taps.count <= 0) {
            return EQ_ERROR_ARGUMENT;
        }
        for (c = 0; c < depth; c++) {
            float total = 0.0f;
            float avg;
            EQ_FOR_EACH_POOL_TAP(i, taps, c, total += input[i];);
            avg = total / (float)taps.count;
            output[win.pixel * depth + c] = EQ_CLAMP(avg, activation->min, activation->max);
        }
    });
    return EQ_OK;
}
