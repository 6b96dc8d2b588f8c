/* MAX_POOL_2D, int8. */
#include "eq_kernels.h"
#include "eq_window.h"

eq_status eq_max_pool_s8(const eq_context *ctx, const eq_pool_params *params,
                         const eq_dims *input_dims, const int8_t *input,
                         const eq_dims *output_dims, int8_t *output)
{
    const int32_t depth = input_dims->c;
    int32_t c;
    (void)ctx;
    EQ_FOR_EACH_WINDOW(win, params, output_dims, {
        const eq_pool_taps taps = eq_pool_taps_of(&win, params, input_dims);
        int8_t *out = output + win.pixel * depth;
        for (c = 0; c < depth; c++) {
            int32_t m = -128;
            EQ_FOR_EACH_POOL_TAP(i, taps, c, m = EQ_MAX(m, (int32_t)input[i]););
            out[c] = (int8_t)EQ_CLAMP(m, params->activation.min, params->activation.max);
        }
    });
    return EQ_OK;
}
