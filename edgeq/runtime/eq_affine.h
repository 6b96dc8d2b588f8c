/* edgeq-c runtime: float32 <-> affine-quantized integers, as TFLite's QUANTIZE and
 * DEQUANTIZE reference kernels compute them. Kept apart from eq_math.h so that int8 code
 * never sees a float. */
#ifndef EQ_AFFINE_H
#define EQ_AFFINE_H

#include <math.h>
#include "eq_types.h"
#include "eq_math.h"

/* round(x / scale) half away from zero, in float, plus the zero point, saturated to
 * [q_min, q_max]. Values beyond int32 saturate before the cast, which would be undefined. */
static inline int32_t eq_quantize_value(const eq_affine_params *params, float x, int32_t q_min, int32_t q_max)
{
    const float r = roundf(x / params->scale);
    int32_t q;
    if (r >= 2147483520.0f) {
        q = q_max;
    } else if (r <= -2147483520.0f) {
        q = q_min;
    } else {
        q = (int32_t)r + params->zero_point;
    }
    return EQ_CLAMP(q, q_min, q_max);
}

/* (float)(scale * (q - zero_point)) with the product in double. */
static inline float eq_dequantize_value(double scale, int32_t zero_point, int32_t q)
{
    return (float)(scale * (double)(q - zero_point));
}

#endif /* EQ_AFFINE_H */
