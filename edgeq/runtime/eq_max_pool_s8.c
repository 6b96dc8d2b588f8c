/* MAX_POOL_2D, int8.
 *
 * On MVE cores sixteen channels a pass: each tap one VMAX of sixteen lanes, the last channels under a
 * tail predicate. */
#include "eq_kernels.h"
#include "eq_window.h"

/* The outputs of one window's channels. */
static void eq_max_pool_channels(const eq_pool_taps *taps, const eq_pool_params *params, const int8_t *input,
                                 int8_t *out)
{
    int32_t c;
#if EQ_MVE
    const int8x16_t lo = vdupq_n_s8((int8_t)params->activation.min), hi = vdupq_n_s8((int8_t)params->activation.max);
    for (c = 0; c < taps->depth; c += 16) {
        const mve_pred16_t p = vctp8q((uint32_t)(taps->depth - c));
        int8x16_t m = vdupq_n_s8(-128);
        EQ_FOR_EACH_POOL_TAP(i, *taps, c, m = vmaxq_s8(m, vldrbq_z_s8(input + i, p)););
        vstrbq_p_s8(out + c, vminq_s8(vmaxq_s8(m, lo), hi), p);
    }
#else
    for (c = 0; c < taps->depth; c++) {
        int32_t m = -128;
        EQ_FOR_EACH_POOL_TAP(i, *taps, c, m = EQ_MAX(m, (int32_t)input[i]););
        out[c] = (int8_t)EQ_CLAMP(m, params->activation.min, params->activation.max);
    }
#endif
}

eq_status eq_max_pool_s8(const eq_context *ctx, const eq_pool_params *params,
                         const eq_dims *input_dims, const int8_t *input,
                         const eq_dims *output_dims, int8_t *output)
{
    (void)ctx;
    EQ_FOR_EACH_WINDOW(win, params, output_dims, {
        const eq_pool_taps taps = eq_pool_taps_of(&win, params, input_dims);
        eq_max_pool_channels(&taps, params, input, output + win.pixel * input_dims->c);
    });
    return EQ_OK;
}
