/* AVERAGE_POOL_2D, int8. Divides by the number of in-bounds taps, rounding half away
 * from zero with truncating division, as TFLite's reference kernel does. */
#include "eq_kernels.h"
#include "eq_window.h"

eq_status eq_avg_pool_s8(const eq_context *ctx, const eq_pool_params *params,
                         const eq_dims *input_dims, const int8_t *input,
                         const eq_dims *output_dims, int8_t *output)
{
    const int32_t depth = input_dims->c;
    int32_t c;
    (void)ctx;
    EQ_FOR_EACH_WINDOW(win, params, output_dims, {
        const eq_pool_taps taps = eq_pool_taps_of(&win, params, input_dims);
        const int32_t count = taps.count;
        int8_t *out = output + win.pixel * depth;
        if (count <= 0) {
            return EQ_ERROR_ARGUMENT;
        }
        for (c = 0; c < depth; c++) {
            int32_t acc = 0;
            EQ_FOR_EACH_POOL_TAP(i, taps, c, acc += input[i];);
            acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
            out[c] = (int8_t)EQ_CLAMP(acc, params->activation.min, params->activation.max);
        }
    });
    return EQ_OK;
}
