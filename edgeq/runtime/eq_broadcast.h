/* edgeq-c runtime: the loop of the element-wise binary kernels (ADD, MUL).
 *
 * Broadcasting is done by the strides alone (0 along a dimension an input is broadcast
 * over, eq_types.h), so one loop serves every dtype and shape. Outputs are produced in
 * ascending order, each after the input elements it reads, which is what lets ADD run in
 * place over an input that is not broadcast.
 */
#ifndef EQ_BROADCAST_H
#define EQ_BROADCAST_H

#include "eq_types.h"

/* Runs the trailing statements for every output element in NHWC order, with i1 and i2
 * the elements of input 1 and input 2 it combines. */
#define EQ_FOR_EACH_BROADCAST(i1, s1, i2, s2, output_dims, ...)                               \
    do {                                                                                      \
        int32_t eq_n_, eq_h_, eq_w_, eq_c_;                                                   \
        for (eq_n_ = 0; eq_n_ < (output_dims)->n; eq_n_++) {                                  \
            for (eq_h_ = 0; eq_h_ < (output_dims)->h; eq_h_++) {                              \
                for (eq_w_ = 0; eq_w_ < (output_dims)->w; eq_w_++) {                          \
                    const int32_t eq_row1_ = eq_n_ * (s1)->n + eq_h_ * (s1)->h + eq_w_ * (s1)->w; \
                    const int32_t eq_row2_ = eq_n_ * (s2)->n + eq_h_ * (s2)->h + eq_w_ * (s2)->w; \
                    for (eq_c_ = 0; eq_c_ < (output_dims)->c; eq_c_++) {                      \
                        const int32_t i1 = eq_row1_ + eq_c_ * (s1)->c;                        \
                        const int32_t i2 = eq_row2_ + eq_c_ * (s2)->c;                        \
                        __VA_ARGS__                                                           \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    } while (0)

#endif /* EQ_BROADCAST_H */
