/* The padded-plane machinery of the int8 depthwise kernels that work a channel at a time
 * (eq_depthwise_conv_in_place_s8, eq_depthwise_conv_rows_s8): a channel's input copied into a
 * plane of every row and column its windows touch, the padding the zero point (taps outside
 * the image read it: the folded bias expects them, eq_types.h), so no window needs a bounds
 * test. Rows are at least four bytes past the last window's start, so that on DSP cores a
 * window row of up to four taps (no horizontal dilation) is one word: SXTB16 splits it into
 * lanes 0, 2 and 1, 3 against the row's taps widened once per channel into the same two int16
 * pairs (a missing fourth tap is 0), two SMLADs a row; 3x3 filters are unrolled. */
#ifndef EQ_DEPTHWISE_PLANE_S8_H
#define EQ_DEPTHWISE_PLANE_S8_H

#include "eq_kernels.h"
#include "eq_dot_s8.h"

#define EQ_DW_ROWS 16 /* rows of a filter packed for the DSP path */

/* The padded plane's rows and row length. */
static inline void eq_dw_plane_dims(const eq_dw_conv_params *params, const eq_dims *filter_dims,
                             const eq_dims *output_dims, int32_t *rows, int32_t *cols)
{
    const int32_t reach_w = (filter_dims->w - 1) * params->dilation.w + 1;
    *rows = (output_dims->h - 1) * params->stride.h + (filter_dims->h - 1) * params->dilation.h + 1;
    *cols = (output_dims->w - 1) * params->stride.w + EQ_MAX(reach_w, 4);
}

/* dst[0..n) = src[0], src[stride], ...: one channel's part of an input row, four a pass (the
 * copy is a sixth of the kernel's work at stride 1). */
static EQ_HOT_INLINE void eq_gather_s8(int8_t *dst, const int8_t *src, int32_t stride, int32_t n)
{
    int32_t i = 0;
#if EQ_MVE
    /* eight a pass: a gather with 16-bit offsets (eight values fit them below 65536 / 8 apart) and a
       narrowing store, in a tail-predicated loop (WLSTP/LETP) whose last pass moves what is left */
    if (stride < 8192) {
        const int32_t pass = 8 * stride;
        register uint32_t first __asm__("r12") = 0; /* VIDUP: an even register, written back */
        __asm__ volatile(
            "vidup.u16 q1, %[first], #1\n\t"
            "vmul.i16 q1, q1, %[stride]\n\t"
            "wlstp.16 lr, %[n], 2f\n"
            "1:\n\t"
            "vldrb.s16 q0, [%[src], q1]\n\t"
            "vstrb.16 q0, [%[dst]], #8\n\t"
            "add %[src], %[src], %[pass]\n\t"
            "letp lr, 1b\n"
            "2:"
            : [dst] "+r"(dst), [src] "+r"(src), [first] "+r"(first)
            : [n] "r"(n), [stride] "r"(stride), [pass] "r"(pass)
            : "lr", "q0", "q1", "memory");
        return;
    }
#endif
    for (; i + 4 <= n; i += 4, src += 4 * stride) {
        const int8_t a = src[0], b = src[stride], c = src[2 * stride], d = src[3 * stride];
        dst[i] = a;
        dst[i + 1] = b;
        dst[i + 2] = c;
        dst[i + 3] = d;
    }
    for (; i < n; i++, src += stride) {
        dst[i] = *src;
    }
}

/* `rows` rows of eq_gather_s8: row r from src + r * src_row into dst + r * dst_row. On MVE cores one
 * loop in assembly, the rows' set-up included. */
static inline void eq_gather_rows_s8(int8_t *dst, int32_t dst_row, const int8_t *src, int32_t src_row,
                                     int32_t stride, int32_t n, int32_t rows)
{
#if EQ_MVE
    if (stride < 8192 && rows > 0 && n > 0) {
        __asm__ volatile(
            "movs r4, #0\n\t"
            "vidup.u16 q1, r4, #1\n\t"
            "vmul.i16 q1, q1, %[stride]\n"
            "1:\n\t"
            "mov r4, %[src]\n\t"
            "mov r5, %[dst]\n\t"
            "wlstp.16 lr, %[n], 3f\n"
            "2:\n\t"
            "vldrb.s16 q0, [r4, q1]\n\t"
            "vstrb.16 q0, [r5], #8\n\t"
            "add r4, r4, %[stride], lsl #3\n\t"
            "letp lr, 2b\n"
            "3:\n\t"
            "add %[src], %[src], %[src_row]\n\t"
            "add %[dst], %[dst], %[dst_row]\n\t"
            "subs %[rows], %[rows], #1\n\t"
            "bne 1b"
            : [dst] "+r"(dst), [src] "+r"(src), [rows] "+r"(rows)
            : [n] "r"(n), [stride] "r"(stride), [src_row] "r"(src_row), [dst_row] "r"(dst_row)
            : "r4", "r5", "lr", "q0", "q1", "cc", "memory");
        return;
    }
#endif
    for (; rows > 0; rows--, src += src_row, dst += dst_row) {
        eq_gather_s8(dst, src, stride, n);
    }
}

#define EQ_DW_RUN 64 /* accumulators computed before they are requantized together */

/* A run of outputs: `rows` rows of `cols` windows, the first starting at p, s_w apart along a
 * row, row_step between rows' first windows; acc[] takes their sums, row after row. */
typedef struct {
    const int8_t *p;
    int32_t s_w, row_step, tap_row;
    int32_t rows, cols;
} eq_dw_run;

#if EQ_DSP
static inline int32_t eq_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu));
}

/* acc + one window row of up to four taps: the word at p against the row's taps packed as
 * (0, 2) and (1, 3). */
static EQ_HOT_INLINE int32_t eq_dw_row(int32_t acc, const int8_t *p, int32_t w02, int32_t w13)
{
    const uint32_t x = eq_read_s8x4(p);
    return __smlad(eq_lanes13(x), w13, __smlad(eq_lanes02(x), w02, acc));
}

/* 3-row windows; w = the rows' packed taps. */
static EQ_NOINLINE void eq_dw_run_3_dsp(const eq_dw_run *run, const int32_t *w, int32_t bias, int32_t *acc)
{
    const int32_t a02 = w[0], a13 = w[1], b02 = w[2], b13 = w[3], c02 = w[4], c13 = w[5];
    const int32_t s_w = run->s_w, tap_row = run->tap_row;
    const int8_t *row = run->p;
    int32_t y;
    for (y = 0; y < run->rows; y++, row += run->row_step) {
        const int8_t *p = row;
        int32_t *const end = acc + run->cols;
        for (; acc != end; acc++, p += s_w) {
            *acc = eq_dw_row(eq_dw_row(eq_dw_row(bias, p, a02, a13), p + tap_row, b02, b13), p + 2 * tap_row, c02,
                             c13);
        }
    }
}

/* 3x3 windows at stride 1, two outputs a pass: a row's word (a, b, c, d) holds both windows'
 * taps, (a, c) . (w0, w2) + (b, d) . (w1, 0) for the first and (b, d) . (w0, w2) + c * w1 for
 * the second, so each word is loaded and widened once for both. In assembly: in C, GCC keeps
 * the seventeen values live at -Os on the stack; here a row's two packed tap words are
 * reloaded with one LDRD instead. */
static EQ_NOINLINE void eq_dw_run_3x3_s1_dsp(const eq_dw_run *run, const int32_t *w, int32_t bias, int32_t *acc)
{
    const int32_t tap_row = run->tap_row;
    const int8_t *row = run->p;
    int32_t y;
    for (y = 0; y < run->rows; y++, row += run->row_step) {
        const int8_t *p = row;
        int32_t n = run->cols >> 1;
        if (n > 0) {
            int32_t wa, wb, v, x, s0, s1;
            __asm__("1:\n\t"
                    "ldrd %[wa], %[wb], [%[w]]\n\t"
                    "ldr %[v], [%[p]]\n\t"
                    "sxtb16 %[x], %[v]\n\t"
                    "sxtb16 %[v], %[v], ror #8\n\t"
                    "smlad %[s0], %[x], %[wa], %[bias]\n\t"
                    "smlad %[s0], %[v], %[wb], %[s0]\n\t"
                    "smlad %[s1], %[v], %[wa], %[bias]\n\t"
                    "smlatb %[s1], %[x], %[wb], %[s1]\n\t"
                    "ldrd %[wa], %[wb], [%[w], #8]\n\t"
                    "ldr %[v], [%[p], %[t]]\n\t"
                    "sxtb16 %[x], %[v]\n\t"
                    "sxtb16 %[v], %[v], ror #8\n\t"
                    "smlad %[s0], %[x], %[wa], %[s0]\n\t"
                    "smlad %[s0], %[v], %[wb], %[s0]\n\t"
                    "smlad %[s1], %[v], %[wa], %[s1]\n\t"
                    "smlatb %[s1], %[x], %[wb], %[s1]\n\t"
                    "ldrd %[wa], %[wb], [%[w], #16]\n\t"
                    "ldr %[v], [%[p], %[t], lsl #1]\n\t"
                    "sxtb16 %[x], %[v]\n\t"
                    "sxtb16 %[v], %[v], ror #8\n\t"
                    "smlad %[s0], %[x], %[wa], %[s0]\n\t"
                    "smlad %[s0], %[v], %[wb], %[s0]\n\t"
                    "smlad %[s1], %[v], %[wa], %[s1]\n\t"
                    "smlatb %[s1], %[x], %[wb], %[s1]\n\t"
                    "strd %[s0], %[s1], [%[acc]], #8\n\t"
                    "adds %[p], %[p], #2\n\t"
                    "subs %[n], %[n], #1\n\t"
                    "bne 1b"
                    : [p] "+r"(p), [acc] "+r"(acc), [n] "+r"(n), [wa] "=&r"(wa), [wb] "=&r"(wb), [v] "=&r"(v),
                      [x] "=&r"(x), [s0] "=&r"(s0), [s1] "=&r"(s1)
                    : [w] "r"(w), [t] "r"(tap_row), [bias] "r"(bias)
                    : "cc", "memory");
        }
        if (run->cols & 1) {
            *acc++ = eq_dw_row(eq_dw_row(eq_dw_row(bias, p, w[0], w[1]), p + tap_row, w[2], w[3]),
                               p + 2 * tap_row, w[4], w[5]);
        }
    }
}

/* k_h-row windows. */
static EQ_NOINLINE void eq_dw_run_dsp(const eq_dw_run *run, const int32_t *w, int32_t k_h, int32_t bias, int32_t *acc)
{
    int32_t y, x, ky;
    for (y = 0; y < run->rows; y++) {
        for (x = 0; x < run->cols; x++) {
            const int8_t *p = run->p + y * run->row_step + x * run->s_w;
            int32_t a = bias;
            for (ky = 0; ky < k_h; ky++, p += run->tap_row) {
                a = eq_dw_row(a, p, w[2 * ky], w[2 * ky + 1]);
            }
            *acc++ = a;
        }
    }
}
#endif

/* Tap by tap, the taps `depth` apart from f. */
static EQ_NOINLINE void eq_dw_run_taps(const eq_dw_run *run, int32_t d_w, const int8_t *f, int32_t depth, int32_t k_h,
                                       int32_t k_w, int32_t bias, int32_t *acc)
{
    int32_t y, x, ky, kx;
    for (y = 0; y < run->rows; y++) {
        for (x = 0; x < run->cols; x++) {
            const int8_t *p = run->p + y * run->row_step + x * run->s_w;
            int32_t a = bias;
            for (ky = 0; ky < k_h; ky++, p += run->tap_row) {
                const int8_t *t = f + ky * k_w * depth;
                for (kx = 0; kx < k_w; kx++) {
                    a += (int32_t)t[kx * depth] * (int32_t)p[kx * d_w];
                }
            }
            *acc++ = a;
        }
    }
}

#if EQ_MVE
/* One row of a 3x3 window for four outputs: the tap weights at [%[k], #off] (two words, then one),
 * each tap's four values gathered from the row's base plus the windows' origins (q0). */
#define EQ_DW3_ROW_MVE(base, off0, off2)                      \
    "ldrd r4, r5, [%[k], #" off0 "]\n\t"                      \
    "ldr r6, [%[k], #" off2 "]\n\t"                           \
    "vldrb.s32 q3, [" base ", q0]\n\t"                         \
    "vmla.s32 q2, q3, r4\n\t"                                  \
    "vldrb.s32 q3, [" base ", q7]\n\t"                         \
    "vmla.s32 q2, q3, r5\n\t"                                  \
    "adds r4, " base ", #2\n\t"                                \
    "vldrb.s32 q3, [r4, q0]\n\t"                               \
    "vmla.s32 q2, q3, r6\n\t"

/* eq_dw_channel_mve's 3x3 loop without dilation, in assembly (in C, GCC keeps the taps on the
 * stack and reloads each one byte by byte): k = the nine taps as int32, then bias, multiplier,
 * round, -right_shift, the output offset, the stride, the depth and the activation's bounds. */
static EQ_NOINLINE EQ_NO_FRAME_POINTER void eq_dw3x3_channel_mve(const int8_t *plane, int32_t tap_row, const int32_t *k, int8_t *out,
                                             int32_t n, int32_t out_step, int32_t out_w, int32_t s_w, int32_t wrap)
{
    register const int8_t *p __asm__("r0") = plane;
    register int8_t *o __asm__("r1") = out;
    register int32_t left __asm__("r2") = n;
    register int32_t t __asm__("r3") = tap_row;
    register const int32_t *kp __asm__("r7") = k;
    register int32_t step __asm__("r9") = out_step;
    register int32_t width __asm__("r11") = out_w;
    register int32_t next __asm__("r12") = wrap;
    register int32_t advance __asm__("lr") = 4 * s_w;
    __asm__ volatile(
        /* q0 = the windows' origins, q7 = the same + 1, q1 = the outputs' columns, q6 = where they go;
           q4, q5 the activation's bounds */
        "ldrd r4, r5, [%[k], #56]\n\t"
        "ldrd r6, r8, [%[k], #64]\n\t"
        "vdup.32 q4, r6\n\t"
        "vdup.32 q5, r8\n\t"
        "movs r6, #0\n\t"
        "vidup.u32 q1, r6, #1\n\t"
        "vmul.i32 q0, q1, r4\n\t"
        "vmul.i32 q6, q1, r5\n\t"
        "add r10, %[p], %[t]\n"
        "1:\n\t"
        "ldr r4, [%[k], #36]\n\t"
        "movs r5, #1\n\t"
        "vdup.32 q2, r4\n\t"
        "vadd.i32 q7, q0, r5\n\t"
        EQ_DW3_ROW_MVE("%[p]", "0", "8")
        EQ_DW3_ROW_MVE("r10", "12", "20")
        "add r8, r10, %[t]\n\t"
        EQ_DW3_ROW_MVE("r8", "24", "32")
        "ldrd r4, r5, [%[k], #40]\n\t"
        "ldrd r6, r8, [%[k], #48]\n\t"
        "vqrdmulh.s32 q2, q2, r4\n\t"
        "vshr.s32 q3, q2, #31\n\t"
        "vadd.i32 q2, q2, q3\n\t"
        "vadd.i32 q2, q2, r5\n\t"
        "vshl.s32 q2, r6\n\t"
        "vadd.i32 q2, q2, r8\n\t"
        "vmax.s32 q2, q2, q4\n\t"
        "vmin.s32 q2, q2, q5\n\t"
        "vctp.32 %[left]\n\t"
        "vpst\n\t"
        "vstrbt.32 q2, [%[o], q6]\n\t"
        "add %[o], %[o], %[step]\n\t"
        "movs r4, #4\n\t"
        "vadd.i32 q1, q1, r4\n\t"
        "vadd.i32 q0, q0, %[advance]\n\t"
        "vptt.u32 cs, q1, %[width]\n\t"
        "vsubt.i32 q1, q1, %[width]\n\t"
        "vaddt.i32 q0, q0, %[next]\n\t"
        "subs %[left], %[left], #4\n\t"
        "bgt 1b"
        : [o] "+r"(o), [left] "+r"(left)
        : [p] "r"(p), [t] "r"(t), [k] "r"(kp), [step] "r"(step), [width] "r"(width), [next] "r"(next),
          [advance] "r"(advance)
        : "r4", "r5", "r6", "r8", "r10", "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "cc", "memory");
}

/* One channel's outputs from its padded plane on MVE cores: four outputs a pass in the order they
 * are stored (row after row, so a pass may span two rows), whose windows' origins in the plane are
 * one vector; each tap is one gather of the four windows' values times the tap's weight (VMLA by a
 * scalar). The four sums are requantized together and stored `depth` apart by one scatter, the
 * channel's last outputs under a tail predicate (VCTP). Needs the bounded requantization, whose
 * shifts are at least 1. */
static EQ_NOINLINE void eq_dw_channel_mve(const eq_dw_conv_params *params, const eq_quant_params *quant, int32_t c,
                                          int32_t bias, const eq_dims *filter_dims, const eq_dims *output_dims,
                                          const int8_t *plane, int32_t cols, const int8_t *f, int8_t *out,
                                          int32_t depth)
{
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_w = output_dims->w, s_w = params->stride.w;
    const int32_t tap_row = params->dilation.h * cols, d_w = params->dilation.w;
    /* from the last window of a row to the first of the next, less the pass's 4 * s_w */
    const int32_t wrap = params->stride.h * cols - out_w * s_w;
    const eq_requant *r = &quant->bounded[quant->per_channel ? c : 0];
    const int32x4_t lo = vdupq_n_s32(params->activation.min), hi = vdupq_n_s32(params->activation.max);
    const uint32x4_t spread = vmulq_n_u32(vidupq_n_u32(0, 1), (uint32_t)depth);
    int32_t n = output_dims->h * out_w;
    uint32x4_t x = vidupq_n_u32(0, 1);                 /* each lane's output column */
    uint32x4_t at = vmulq_n_u32(x, (uint32_t)s_w);     /* and its window's origin in the plane */
    const int32_t wraps = (4 + out_w - 1) / out_w;
    int32_t ky, kx, k;
    if (k_h == 3 && k_w == 3 && d_w == 1 && out_w >= 4) {
        int32_t taps[18];
        for (ky = 0; ky < 9; ky++) {
            taps[ky] = f[ky * depth];
        }
        taps[9] = bias;
        taps[10] = r->multiplier;
        taps[11] = r->round;
        taps[12] = -r->right_shift;
        taps[13] = params->output_offset;
        taps[14] = s_w;
        taps[15] = depth;
        taps[16] = params->activation.min;
        taps[17] = params->activation.max;
        eq_dw3x3_channel_mve(plane, tap_row, taps, out, n, 4 * depth, out_w, s_w, wrap);
        return;
    }
    for (; n > 0; n -= 4, out += 4 * depth) {
        int32x4_t a = vdupq_n_s32(bias);
        /* lanes past their row's end move to the next row, as many times as four outputs span rows */
        for (k = 0; k < wraps; k++) {
            const mve_pred16_t wrapped = vcmpcsq_n_u32(x, (uint32_t)out_w);
            x = vsubq_m_n_u32(x, x, (uint32_t)out_w, wrapped);
            at = vaddq_m_n_u32(at, at, (uint32_t)wrap, wrapped);
        }
        for (ky = 0; ky < k_h; ky++) {
            for (kx = 0; kx < k_w; kx++) {
                a = vmlaq_n_s32(a, vldrbq_gather_offset_s32(plane + ky * tap_row + kx * d_w, at),
                                f[(ky * k_w + kx) * depth]);
            }
        }
        a = vqrdmulhq_n_s32(a, r->multiplier);
        a = vaddq_n_s32(vaddq_s32(a, vshrq_n_s32(a, 31)), r->round);
        a = vminq_s32(vmaxq_s32(vaddq_n_s32(vshlq_r_s32(a, -r->right_shift), params->output_offset), lo), hi);
        vstrbq_scatter_offset_p_s32(out, spread, a, vctp32q((uint32_t)n));
        x = vaddq_n_u32(x, 4);
        at = vaddq_n_u32(at, (uint32_t)(4 * s_w));
    }
}
#endif

/* One channel's outputs from its padded plane (`cols` a row) and its filter taps, `depth` apart
 * from f (the interleaved 1HWC filter): up to EQ_DW_RUN accumulators at a time (whole output
 * rows when they fit, else pieces of one), then requantized together: two short loops keep
 * their values in registers at -Os. */
static inline void eq_dw_channel(const eq_dw_conv_params *params, const eq_quant_params *quant, int32_t c, int32_t bias,
                          const eq_dims *filter_dims, const eq_dims *output_dims, const int8_t *plane, int32_t cols,
                          const int8_t *f, int8_t *out, int32_t depth)
{
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t rows_per_run = EQ_MAX(1, EQ_DW_RUN / out_w);
    int32_t acc[EQ_DW_RUN];
    eq_dw_run run;
    int32_t oy, ox;
#if EQ_MVE
    if (quant->bounded != 0) {
        eq_dw_channel_mve(params, quant, c, bias, filter_dims, output_dims, plane, cols, f, out, depth);
        return;
    }
#endif
#if EQ_DSP
    const int packed = params->dilation.w == 1 && k_w <= 4 && k_h <= EQ_DW_ROWS;
    int32_t w[2 * EQ_DW_ROWS];
    int32_t ky;
    if (packed) {
        for (ky = 0; ky < k_h; ky++) {
            const int8_t *row = f + ky * k_w * depth;
            w[2 * ky] = eq_pack16(row[0], k_w > 2 ? row[2 * depth] : 0);
            w[2 * ky + 1] = eq_pack16(k_w > 1 ? row[depth] : 0, k_w > 3 ? row[3 * depth] : 0);
        }
    }
#endif
    run.s_w = params->stride.w;
    run.row_step = params->stride.h * cols;
    run.tap_row = params->dilation.h * cols;
    for (oy = 0; oy < out_h; oy += run.rows) {
        run.rows = EQ_MIN(rows_per_run, out_h - oy);
        for (ox = 0; ox < out_w; ox += run.cols) {
            run.cols = EQ_MIN(EQ_DW_RUN, out_w - ox);
            run.p = plane + oy * run.row_step + ox * run.s_w;
#if EQ_DSP
            if (packed && k_h == 3 && k_w == 3 && run.s_w == 1) {
                eq_dw_run_3x3_s1_dsp(&run, w, bias, acc);
            } else if (packed && k_h == 3) {
                eq_dw_run_3_dsp(&run, w, bias, acc);
            } else if (packed) {
                eq_dw_run_dsp(&run, w, k_h, bias, acc);
            } else
#endif
            {
                eq_dw_run_taps(&run, params->dilation.w, f, depth, k_h, k_w, bias, acc);
            }
            eq_output_run_s8(acc, run.rows * run.cols, quant, c, params->output_offset, &params->activation,
                             out + (oy * out_w + ox) * depth, depth);
        }
    }
}

#endif /* EQ_DEPTHWISE_PLANE_S8_H */
