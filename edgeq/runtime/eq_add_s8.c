/* ADD, int8, with broadcasting through per-input strides.
 *
 * On MVE cores, when both inputs run along the channels with unit stride and the requantization has
 * the bounded form, each row of channels goes four lanes at a time (eq_mve_add_quantized, as the
 * fused residual ADD of eq_conv_add_s8), the last lanes under a tail predicate. */
#include "eq_broadcast.h"
#include "eq_kernels.h"
#include "eq_math.h"
#include "eq_mve_s8.h"

#if EQ_MVE
static void eq_add_rows_mve(const eq_add_params *params, const eq_strides *s1, const int8_t *input1,
                            const eq_strides *s2, const int8_t *input2, const eq_dims *output_dims, int8_t *output)
{
    const int32x4_t lo = vdupq_n_s32(params->activation.min), hi = vdupq_n_s32(params->activation.max);
    const int32_t c = output_dims->c;
    eq_mve_add sum;
    int32_t n, h, w, i;
    eq_mve_add_of(params, &sum);
    for (n = 0; n < output_dims->n; n++) {
        for (h = 0; h < output_dims->h; h++) {
            for (w = 0; w < output_dims->w; w++, output += c) {
                const int8_t *x = input1 + n * s1->n + h * s1->h + w * s1->w;
                const int8_t *y = input2 + n * s2->n + h * s2->h + w * s2->w;
                for (i = 0; i < c; i += 4) {
                    const mve_pred16_t p = vctp32q((uint32_t)(c - i));
                    const int32x4_t v = eq_mve_add_quantized(&sum, vldrbq_z_s32(x + i, p), vldrbq_z_s32(y + i, p));
                    vstrbq_p_s32(output + i, eq_mve_clamp(v, sum.output_offset, lo, hi), p);
                }
            }
        }
    }
}
#endif

eq_status eq_add_s8(const eq_context *ctx, const eq_add_params *params,
                    const eq_strides *input1_strides, const int8_t *input1,
                    const eq_strides *input2_strides, const int8_t *input2,
                    const eq_dims *output_dims, int8_t *output)
{
    (void)ctx;
#if EQ_MVE
    if (params->bounded != 0 && input1_strides->c == 1 && input2_strides->c == 1) {
        eq_add_rows_mve(params, input1_strides, input1, input2_strides, input2, output_dims, output);
        return EQ_OK;
    }
#endif
    EQ_FOR_EACH_BROADCAST(i1, input1_strides, i2, input2_strides, output_dims,
                          *output++ = (int8_t)eq_add_quantized(params, input1[i1], input2[i2]););
    return EQ_OK;
}
