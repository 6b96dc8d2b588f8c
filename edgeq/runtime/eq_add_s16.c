/* ADD, int16 (left_shift 15), with broadcasting through per-input strides. */
#include "eq_kernels.h"
#include "eq_math.h"

eq_status eq_add_s16(const eq_context *ctx, const eq_add_params *p,
                     const eq_strides *s1, const int16_t *input1,
                     const eq_strides *s2, const int16_t *input2,
                     const eq_dims *output_dims, int16_t *output)
{
    int32_t n, h, w, c;
    (void)ctx;
    for (n = 0; n < output_dims->n; n++) {
        for (h = 0; h < output_dims->h; h++) {
            for (w = 0; w < output_dims->w; w++) {
                const int16_t *a = input1 + n * s1->n + h * s1->h + w * s1->w;
                const int16_t *b = input2 + n * s2->n + h * s2->h + w * s2->w;
                for (c = 0; c < output_dims->c; c++) {
                    const int32_t x = eq_requantize(eq_shift_left_wrapping(a[c * s1->c] + p->input1_offset, p->left_shift),
                                                    p->input1_multiplier, p->input1_shift);
                    const int32_t y = eq_requantize(eq_shift_left_wrapping(b[c * s2->c] + p->input2_offset, p->left_shift),
                                                    p->input2_multiplier, p->input2_shift);
                    int32_t out = eq_requantize(x + y, p->output_multiplier, p->output_shift) + p->output_offset;
                    *output++ = (int16_t)EQ_CLAMP(out, p->activation.min, p->activation.max);
                }
            }
        }
    }
    return EQ_OK;
}
