/* SOFTMAX, int8 in (any scale), int8 out (scale 1/256, zero point -128).
 * TFLite's int8 path is gemmlowp fixed point: exp of each difference to the row
 * maximum in Q0.31, a Q12.19 sum, a Newton-Raphson reciprocal. The exp of every
 * possible difference is a generation-time table; the reciprocal depends on the data
 * and is computed here with the same fixed-point steps. */
#include "eq_kernels.h"
#include "eq_math.h"

static int32_t eq_softmax_s8_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    const int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

static int32_t eq_softmax_s8_saturating_shl(int32_t x, int32_t exponent)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return eq_shift_left_wrapping(x, exponent);
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out. */
static int32_t eq_softmax_s8_one_over_one_plus_x(int32_t a)
{
    const int32_t half_denominator = eq_softmax_s8_rounding_half_sum(a, INT32_MAX);
    const int32_t one_q2 = (int32_t)1 << 29;
    int32_t x = (int32_t)((uint32_t)1515870810 +
                          (uint32_t)eq_sat_rounding_doubling_high_mul(half_denominator, -1010580540));
    int i;
    for (i = 0; i < 3; i++) {
        const int32_t hdx = eq_sat_rounding_doubling_high_mul(half_denominator, x);
        const int32_t one_minus = (int32_t)((uint32_t)one_q2 - (uint32_t)hdx);
        const int32_t step = eq_softmax_s8_saturating_shl(eq_sat_rounding_doubling_high_mul(x, one_minus), 2);
        x = (int32_t)((uint32_t)x + (uint32_t)step);
    }
    return eq_softmax_s8_saturating_shl(x, 1);
}

eq_status eq_softmax_s8(const eq_context *ctx, const eq_softmax_params *params,
                        int32_t rows, int32_t depth, const int8_t *input, int8_t *output)
{
    const int32_t *table = params->exp_table;
    int32_t r, c;
    (void)ctx;
    for (r = 0; r < rows; r++) {
        const int8_t *in = input + r * depth;
        int8_t *out = output + r * depth;
        int32_t max = -128;
        uint32_t sum = 0;
        int32_t headroom, exponent, scale;
        for (c = 0; c < depth; c++) {
            max = EQ_MAX(max, (int32_t)in[c]);
        }
        for (c = 0; c < depth; c++) {
            sum += (uint32_t)eq_rounding_divide_by_pot(table[max - in[c]], 12);
        }
        headroom = eq_count_leading_zeros(sum);
        scale = eq_softmax_s8_one_over_one_plus_x((int32_t)((sum << headroom) - 0x80000000u));
        exponent = (12 - headroom) + 31 - 8;
        for (c = 0; c < depth; c++) {
            int32_t v = eq_rounding_divide_by_pot(
                eq_sat_rounding_doubling_high_mul(scale, table[max - in[c]]), exponent);
            v -= 128;
            out[c] = (int8_t)EQ_CLAMP(v, -128, 127);
        }
    }
    return EQ_OK;
}
