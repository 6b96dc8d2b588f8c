/* CONV_2D with packed int4 weights (TFLite INT4: two values a byte, low nibble first,
 * packed densely over the whole OHWI tensor) and int8 activations. TFLM unpacks the
 * whole filter into its arena; here one output channel at a time is unpacked into
 * caller scratch, so flash keeps the packed form and RAM holds one channel. */
#include "eq_kernels.h"
#include "eq_math.h"

int32_t eq_conv_s4_scratch_size(const eq_dims *filter_dims)
{
    return filter_dims->h * filter_dims->w * filter_dims->c;
}

static void eq_conv_s4_unpack(const uint8_t *packed, int32_t first, int32_t count, int8_t *out)
{
    int32_t i;
    for (i = 0; i < count; i++) {
        const int32_t e = first + i;
        const int32_t byte = packed[e >> 1];
        const int32_t nibble = (e & 1) ? (byte >> 4) : (byte & 0x0F);
        out[i] = (int8_t)(nibble >= 8 ? nibble - 16 : nibble);
    }
}

eq_status eq_conv_s4(const eq_context *ctx, const eq_conv_params *params,
                     const eq_quant_params *quant, const eq_dims *input_dims,
                     const int8_t *input, const eq_dims *filter_dims, const uint8_t *packed_filter,
                     const int32_t *bias, const eq_dims *output_dims, int8_t *output)
{
    const int32_t in_h = input_dims->h, in_w = input_dims->w, in_c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w, out_c = output_dims->c;
    const int32_t filter_size = eq_conv_s4_scratch_size(filter_dims);
    const int32_t zero_point = -params->input_offset;
    int32_t b, oy, ox, oc, ky, kx, ic;
    int8_t *f;
    if (ctx == 0 || ctx->buf == 0 || ctx->size < filter_size) {
        return EQ_ERROR_SCRATCH;
    }
    if (filter_dims->c != in_c || filter_dims->n != out_c) {
        return EQ_ERROR_ARGUMENT;
    }
    f = (int8_t *)ctx->buf;
    for (oc = 0; oc < out_c; oc++) {
        const int32_t q = quant->per_channel ? oc : 0;
        eq_conv_s4_unpack(packed_filter, oc * filter_size, filter_size, f);
        for (b = 0; b < output_dims->n; b++) {
            for (oy = 0; oy < output_dims->h; oy++) {
                const int32_t iy0 = oy * params->stride.h - params->padding.h;
                for (ox = 0; ox < output_dims->w; ox++) {
                    const int32_t ix0 = ox * params->stride.w - params->padding.w;
                    int32_t acc = bias[oc];
                    for (ky = 0; ky < k_h; ky++) {
                        const int32_t iy = iy0 + ky * params->dilation.h;
                        for (kx = 0; kx < k_w; kx++) {
                            const int32_t ix = ix0 + kx * params->dilation.w;
                            const int8_t *w = f + (ky * k_w + kx) * in_c;
                            if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                                const int8_t *in = input + ((b * in_h + iy) * in_w + ix) * in_c;
                                for (ic = 0; ic < in_c; ic++) {
                                    acc += (int32_t)w[ic] * (int32_t)in[ic];
                                }
                            } else {
                                for (ic = 0; ic < in_c; ic++) {
                                    acc += (int32_t)w[ic] * zero_point;
                                }
                            }
                        }
                    }
                    acc = eq_requantize(acc, quant->multiplier[q], quant->shift[q]) + params->output_offset;
                    output[((b * output_dims->h + oy) * output_dims->w + ox) * out_c + oc] =
                        (int8_t)EQ_CLAMP(acc, params->activation.min, params->activation.max);
                }
            }
        }
    }
    return EQ_OK;
}
