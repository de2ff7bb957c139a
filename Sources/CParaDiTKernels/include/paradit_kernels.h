// The engine's own kernels for instruction sets the Swift code is not compiled for: the Swift
// kernels target AVX2 (one binary for every x86_64 with AVX2), and these AVX-512 variants run
// where the CPU has it, chosen at run time.
#ifndef PARADIT_KERNELS_H
#define PARADIT_KERNELS_H
#include <stdint.h>

/// 1 when the CPU (and the OS) run AVX-512F code, else 0.
int paradit_has_avx512f(void);

/// 1 on an AMD CPU, else 0 (AMD's Zen 4 runs AVX512-BF16 at the FMA rate, Intel's at half).
int paradit_cpu_is_amd(void);

/// microGemm (ParaDiTTensor/Kernels/Microkernel.swift) on AVX-512: C[m×n] = alpha · A[m×k] · B
/// (+ C when accumulate), A and C row-major, n a multiple of 16, B in 16-column panels (panel j
/// at b + j·panelStride, rows ldb apart). Every output is summed in the same order with the same
/// fused multiply-adds as the Swift kernel, so the two give identical bits. laneMax, if not NULL,
/// holds 8 floats per row that take the lane-wise maximum of the stored alpha·A·B (column c into
/// lane c mod 8). Only call when paradit_has_avx512f().
void paradit_micro_gemm_avx512(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                               const float *b, int64_t ldb, int64_t panelStride, float *c, int64_t ldc,
                               int accumulate, float *laneMax);

#endif
