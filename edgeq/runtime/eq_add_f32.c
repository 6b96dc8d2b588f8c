/* ADD, float32, with broadcasting through per-input strides. */
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_add_f32(const eq_context *ctx, const eq_activation_f32 *activation,
                     const eq_strides *s1, const float *input1, const eq_strides *s2,
                     const float *input2, const eq_dims *output_dims, float *output)
{
    int32_t n, h, w, c;
    (void)ctx;
    for (n = 0; n < output_dims->n; n++) {
        for (h = 0; h < output_dims->h; h++) {
            for (w = 0; w < output_dims->w; w++) {
                const float *a = input1 + n * s1->n + h * s1->h + w * s1->w;
                const float *b = input2 + n * s2->n + h * s2->h + w * s2->w;
                for (c = 0; c < output_dims->c; c++) {
                    const float v = a[c * s1->c] + b[c * s2->c];
                    *output++ = EQ_CLAMP(v, activation->min, activation->max);
                }
            }
        }
    }
    return EQ_OK;
}
