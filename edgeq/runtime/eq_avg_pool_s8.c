/* AVERAGE_POOL_2D, int8. Divides by the number of in-bounds taps, rounding half away
 * from zero with truncating division, as TFLite's reference kernel does. On MVE cores the sums
 * are taken four channels at a time. */
#include "eq_kernels.h"
#include "eq_window.h"

/* The first channels of one window four at a time, their sums widened to 32-bit lanes (the division
 * stays per channel); returns how many it did: on MVE cores all but depth % 4, elsewhere none. */
static int32_t eq_avg_pool_channels4(const eq_pool_taps *taps, const int8_t *input, const eq_pool_params *params,
                                     int8_t *out)
{
    int32_t c = 0;
#if EQ_MVE
    const int32_t count = taps->count;
    for (; c + 4 <= taps->depth; c += 4) {
        int32_t sums[4], j;
        int32x4_t acc = vdupq_n_s32(0);
        EQ_FOR_EACH_POOL_TAP(i, *taps, c, acc = vaddq_s32(acc, vldrbq_s32(input + i)););
        vst1q_s32(sums, acc);
        for (j = 0; j < 4; j++) {
            const int32_t a = sums[j] > 0 ? (sums[j] + count / 2) / count : (sums[j] - count / 2) / count;
            out[c + j] = (int8_t)EQ_CLAMP(a, params->activation.min, params->activation.max);
        }
    }
#else
    (void)taps;
    (void)input;
    (void)params;
    (void)out;
#endif
    return c;
}

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
        c = eq_avg_pool_channels4(&taps, input, params, out);
        for (; c < depth; c++) {
            int32_t acc = 0;
            EQ_FOR_EACH_POOL_TAP(i, taps, c, acc += input[i];);
            acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
            out[c] = (int8_t)EQ_CLAMP(acc, params->activation.min, params->activation.max);
        }
    });
    return EQ_OK;
}
