/* edgeq-c runtime: the window loops of the portable pooling and convolution kernels.
 *
 * Each macro declares its loop position under the name the kernel gives it and runs the
 * trailing arguments (statements; commas allowed) at every step, so the int8, int16 and
 * float32 kernels share one copy of the index arithmetic and spell only their own sums.
 * Outputs are visited in NHWC order and taps row by row, column by column: the order of
 * TFLite's reference kernels, which the float32 sums must keep to round the same way.
 */
#ifndef EQ_WINDOW_H
#define EQ_WINDOW_H

#include "eq_types.h"
#include "eq_math.h"

/* One output pixel and where its window starts in the input. */
typedef struct {
    int32_t b;
    int32_t iy0;   /* input row of tap (0, 0): negative inside the leading padding */
    int32_t ix0;   /* input column of tap (0, 0) */
    int32_t pixel; /* NHWC pixel number: output element = pixel * channels + channel */
} eq_window;

/* A convolution tap whose input lies inside the image. */
typedef struct {
    int32_t k;     /* tap number within the filter, ky * filter width + kx */
    int32_t pixel; /* input pixel number: input element = pixel * channels + channel */
} eq_conv_tap;

/* The part of a pooling window inside the input, which is all TFLite pools over: rows
 * [y_start, y_end) and columns [x_start, x_end), counted from the window's start. */
typedef struct {
    int32_t y_start, y_end, x_start, x_end;
    int32_t count;  /* in-bounds taps */
    int32_t origin; /* input element of tap (0, 0), channel 0; read only with in-bounds offsets */
    int32_t row;    /* input elements per image row */
    int32_t depth;
} eq_pool_taps;

static inline eq_pool_taps eq_pool_taps_of(const eq_window *win, const eq_pool_params *params,
                                           const eq_dims *input_dims)
{
    eq_pool_taps t;
    t.y_start = EQ_MAX(0, -win->iy0);
    t.y_end = EQ_MIN(params->filter.h, input_dims->h - win->iy0);
    t.x_start = EQ_MAX(0, -win->ix0);
    t.x_end = EQ_MIN(params->filter.w, input_dims->w - win->ix0);
    t.count = (t.y_end - t.y_start) * (t.x_end - t.x_start);
    t.depth = input_dims->c;
    t.row = input_dims->w * t.depth;
    t.origin = ((win->b * input_dims->h + win->iy0) * input_dims->w + win->ix0) * t.depth;
    return t;
}

/* `params` is any params struct with stride and padding: conv, depthwise or pool. */
#define EQ_FOR_EACH_WINDOW(win, params, output_dims, ...)                                     \
    do {                                                                                      \
        eq_window win;                                                                        \
        int32_t eq_oy_, eq_ox_;                                                               \
        for (win.b = 0; win.b < (output_dims)->n; win.b++) {                                  \
            for (eq_oy_ = 0; eq_oy_ < (output_dims)->h; eq_oy_++) {                           \
                win.iy0 = eq_oy_ * (params)->stride.h - (params)->padding.h;                  \
                for (eq_ox_ = 0; eq_ox_ < (output_dims)->w; eq_ox_++) {                       \
                    win.ix0 = eq_ox_ * (params)->stride.w - (params)->padding.w;              \
                    win.pixel = (win.b * (output_dims)->h + eq_oy_) * (output_dims)->w + eq_ox_; \
                    __VA_ARGS__                                                               \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    } while (0)

/* Taps outside the image are skipped: the int16x8 and float32 zero points are 0. */
#define EQ_FOR_EACH_CONV_TAP(tap, win, params, input_dims, filter_dims, ...)                  \
    do {                                                                                      \
        eq_conv_tap tap;                                                                      \
        int32_t eq_ky_, eq_kx_;                                                               \
        for (eq_ky_ = 0; eq_ky_ < (filter_dims)->h; eq_ky_++) {                               \
            const int32_t eq_iy_ = (win).iy0 + eq_ky_ * (params)->dilation.h;                 \
            for (eq_kx_ = 0; eq_kx_ < (filter_dims)->w; eq_kx_++) {                           \
                const int32_t eq_ix_ = (win).ix0 + eq_kx_ * (params)->dilation.w;             \
                if (eq_iy_ < 0 || eq_iy_ >= (input_dims)->h || eq_ix_ < 0 ||                  \
                    eq_ix_ >= (input_dims)->w) {                                              \
                    continue;                                                                 \
                }                                                                             \
                tap.k = eq_ky_ * (filter_dims)->w + eq_kx_;                                   \
                tap.pixel = ((win).b * (input_dims)->h + eq_iy_) * (input_dims)->w + eq_ix_;  \
                __VA_ARGS__                                                                   \
            }                                                                                 \
        }                                                                                     \
    } while (0)

/* `i` is the input element of channel c at each in-bounds tap of the window. */
#define EQ_FOR_EACH_POOL_TAP(i, taps, c, ...)                                                 \
    do {                                                                                      \
        int32_t eq_y_, eq_x_;                                                                 \
        for (eq_y_ = (taps).y_start; eq_y_ < (taps).y_end; eq_y_++) {                         \
            for (eq_x_ = (taps).x_start; eq_x_ < (taps).x_end; eq_x_++) {                     \
                const int32_t i = (taps).origin + eq_y_ * (taps).row + eq_x_ * (taps).depth + (c); \
                __VA_ARGS__                                                                   \
            }                                                                                 \
        }                                                                                     \
    } while (0)

#endif /* EQ_WINDOW_H */
