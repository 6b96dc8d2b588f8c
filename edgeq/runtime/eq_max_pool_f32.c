/* MAX_POOL_2D, float32. */
#include <float.h>
#include "eq_kernels.h"
#include "eq_window.h"

eq_status eq_max_pool_f32(const eq_context *ctx, const eq_pool_params *params,
                          const eq_activation_f32 *activation, const eq_dims *input_dims,
                          const float *input, const eq_dims *output_dims, float *output)
{
    const int32_t depth = input_dims->c;
    int32_t c;
    (void)ctx;
    EQ_FOR_EACH_WINDOW(win, params, output_dims, {
        const eq_pool_taps taps = eq_pool_taps_of(&win, params, input_dims);
        for (c = 0; c < depth; c++) {
            float m = -FLT_MAX;
            EQ_FOR_EACH_POOL_TAP(i, taps, c, m = EQ_MAX(m, input[i]););
            output[win.pixel * depth + c] = EQ_CLAMP(m, activation->min, activation->max);
        }
    });
    return EQ_OK;
}
