// oneDNN (Debian's libdnnl 2.x) behind the two calls the engine makes: an 8-bit matrix product on
// the calling thread, and the name of the kernel oneDNN picks for it.
#ifndef PARADIT_DNNL_H
#define PARADIT_DNNL_H
#include <stdint.h>

/// C[m×n] (s32, row stride ldc) = A[m×k] (u8, row stride lda) · Bᵀ, B being n×k s8 (row stride
/// ldb, torch's nn.Linear layout), as one oneDNN matmul on the calling thread alone. Sums are exact
/// (s32) where oneDNN runs VNNI or AMX kernels. Returns 0, or the failing oneDNN status.
int paradit_u8s8_matmul(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda,
                        const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc);

/// The implementation oneDNN picks for that product with contiguous operands
/// ("brg:avx512_core_vnni", "brg:avx512_core_amx", …), or NULL when it has none.
const char *paradit_u8s8_matmul_impl(int64_t m, int64_t n, int64_t k);

#endif
