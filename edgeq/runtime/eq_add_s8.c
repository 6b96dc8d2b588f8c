/* ADD, int8, with broadcasting through per-input strides. */
#include "eq_kernels.h"
#include "eq_math.h"

static int8_t eq_add_s8_one(const eq_add_params *p, int32_t x, int32_t y)
{
    const int32_t a = eq_requantize((x + p->input1_offset) * (1 << p->left_shift),
                                    p->input1_multiplier, p->input1_shift);
    const int32_t b = eq_requantize((y + p->input2_offset) * (1 << p->left_shift),
                                    p->input2_multiplier, p->input2_shift);
    int32_t out = eq_requantize(a + b, p->output_multiplier, p->output_shift) + p->output_offset;
    return (int8_t)EQ_CLAMP(out, p->activation.min, p->activation.max);
}

eq_status eq_add_s8(const eq_context *ctx, const eq_add_params *params,
                    const eq_strides *input1_strides, const int8_t *input1,
                    const eq_strides *input2_strides, const int8_t *input2,
                    const eq_dims *output_dims, int8_t *output)
{
    const eq_strides *s1 = input1_strides, *s2 = input2_strides;
    int32_t n, h, w, c;
    (void)ctx;
    for (n = 0; n < output_dims->n; n++) {
        for (h = 0; h < output_dims->h; h++) {
            for (w = 0; w < output_dims->w; w++) {
                const int8_t *a = input1 + n * s1->n + h * s1->h + w * s1->w;
                const int8_t *b = input2 + n * s2->n + h * s2->h + w * s2->w;
                for (c = 0; c < output_dims->c; c++) {
                    *output++ = eq_add_s8_one(params, a[c * s1->c], b[c * s2->c]);
                }
            }
        }
    }
    return EQ_OK;
}
