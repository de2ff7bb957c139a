// The attention microkernel on AVX-512: 12 rows × 32 columns (two 16-column panels) of C in 24
// zmm registers for the whole k loop, one broadcast of A per row and step — twice the columns per
// instruction of the AVX2 kernel's 6 × 16 tile, with the same per-output order of operations.
#include "paradit_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

int paradit_has_avx512f(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

int paradit_cpu_is_amd(void) {
    __builtin_cpu_init();
    return __builtin_cpu_is("amd");
}

#define AVX512 __attribute__((target("avx512f"), always_inline)) static inline

// One R×(16·P) tile; R and P are constants at every call site, so the loops unroll and the
// accumulators stay in registers.
AVX512 void tile(int R, int P, int64_t k, float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                 int64_t panelStride, float *c, int64_t ldc, int accumulate, float *laneMax) {
    __m512 acc[12][2];
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
        acc[r][0] = _mm512_setzero_ps();
        acc[r][1] = _mm512_setzero_ps();
    }
    const float *b0 = b, *b1 = b + panelStride;
    for (int64_t q = 0; q < k; q++) {
        __m512 v0 = _mm512_loadu_ps(b0 + q * ldb);
        __m512 v1 = P > 1 ? _mm512_loadu_ps(b1 + q * ldb) : v0;
#pragma clang loop unroll(full)
        for (int r = 0; r < R; r++) {
            __m512 x = _mm512_set1_ps(a[r * lda + q]);
            acc[r][0] = _mm512_fmadd_ps(x, v0, acc[r][0]);
            if (P > 1) acc[r][1] = _mm512_fmadd_ps(x, v1, acc[r][1]);
        }
    }
    __m512 al = _mm512_set1_ps(alpha);
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) {
        __m256 lanes = _mm256_set1_ps(-__builtin_inff());
        for (int p = 0; p < P; p++) {
            float *dst = c + r * ldc + 16 * p;
            __m512 scaled = _mm512_mul_ps(acc[r][p], al);
            _mm512_storeu_ps(dst, accumulate ? _mm512_fmadd_ps(acc[r][p], al, _mm512_loadu_ps(dst)) : scaled);
            __m256 lo = _mm512_castps512_ps256(scaled);
            __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(scaled), 1));
            // maxps returns its second operand when either is NaN: a NaN score never enters the maximum.
            lanes = _mm256_max_ps(lo, _mm256_max_ps(hi, lanes));
        }
        if (laneMax) _mm256_storeu_ps(laneMax + 8 * r, _mm256_max_ps(_mm256_loadu_ps(laneMax + 8 * r), lanes));
    }
}

// Rows i.. of every column pair, then a last single panel, for R rows.
AVX512 void rows(int R, int64_t n, int64_t k, float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                 int64_t panelStride, float *c, int64_t ldc, int accumulate, float *laneMax) {
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        tile(R, 2, k, alpha, a, lda, b + j / 16 * panelStride, ldb, panelStride, c + j, ldc, accumulate, laneMax);
    }
    if (j < n) tile(R, 1, k, alpha, a, lda, b + j / 16 * panelStride, ldb, panelStride, c + j, ldc, accumulate,
                    laneMax);
}

__attribute__((target("avx512f")))
void paradit_micro_gemm_avx512(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                               const float *b, int64_t ldb, int64_t panelStride, float *c, int64_t ldc,
                               int accumulate, float *laneMax) {
    int64_t i = 0;
    for (; i + 12 <= m; i += 12) {
        rows(12, n, k, alpha, a + i * lda, lda, b, ldb, panelStride, c + i * ldc, ldc, accumulate,
             laneMax ? laneMax + 8 * i : 0);
    }
    const float *ar = a + i * lda;
    float *cr = c + i * ldc, *lr = laneMax ? laneMax + 8 * i : 0;
    switch (m - i) {
#define REST(R) case R: rows(R, n, k, alpha, ar, lda, b, ldb, panelStride, cr, ldc, accumulate, lr); break;
    REST(1) REST(2) REST(3) REST(4) REST(5) REST(6) REST(7) REST(8) REST(9) REST(10) REST(11)
#undef REST
    default: break;
    }
}

#else

int paradit_has_avx512f(void) { return 0; }

int paradit_cpu_is_amd(void) { return 0; }

void paradit_micro_gemm_avx512(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                               const float *b, int64_t ldb, int64_t panelStride, float *c, int64_t ldc,
                               int accumulate, float *laneMax) {
    (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)b; (void)ldb; (void)panelStride;
    (void)c; (void)ldc; (void)accumulate; (void)laneMax;
}

#endif
