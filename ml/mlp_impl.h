// mlp_impl.h: kernels shared by mlp.c (single-threaded passes) and
// mlp_train.c (the multi-threaded trainer). Internal to ml/.
#ifndef CANOPY_MLP_IMPL_H
#define CANOPY_MLP_IMPL_H

#include "ml/mlp.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MLP_HOT                                                                                    \
    __attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3", "no-math-errno")))
#else
#define MLP_HOT
#endif

// mlp_gemm computes C (m,n) = op(A) (m,k) x op(B) (k,n), row-major, with
// cblas_sgemm or the naive double-accumulating reference (kern). ta/tb select
// the transposes as for cblas_sgemm; alpha is 1 and beta 0.
void mlp_gemm(mlp_kernel kern, int ta, int tb, int m, int n, int k, const float *a, int lda,
              const float *b, int ldb, float *c, int ldc);

// mlp_bias_act adds b to every row of z (rows, n) and applies ReLU if relu.
void mlp_bias_act(float *restrict z, const float *restrict b, int rows, int n, int relu);

#endif
