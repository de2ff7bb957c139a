// oneDNN (Debian's libdnnl 2.x) behind the calls the engine makes: 8-bit and BF16 matrix products
// on the calling thread, and the name of the kernel oneDNN picks for them.
#ifndef PARADIT_DNNL_H
#define PARADIT_DNNL_H
#include <stdint.h>

/// The operands of a product: u8 × s8 → s32, or bf16 × bf16 → f32.
enum paradit_matmul_kind { PARADIT_U8S8 = 0, PARADIT_BF16 = 1 };

/// C[m×n] (s32, row stride ldc) = A[m×k] (u8, row stride lda) · Bᵀ, B being n×k s8 (row stride
/// ldb, torch's nn.Linear layout), as one oneDNN matmul on the calling thread alone. Sums are exact
/// (s32) where oneDNN runs VNNI or AMX kernels. Returns 0, or the failing oneDNN status.
int paradit_u8s8_matmul(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda,
                        const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc);

/// C[m×n] (f32) = A[m×k] (bf16 bits) · Bᵀ, B being n×k bf16, summed in f32; as above.
int paradit_bf16_matmul(int64_t m, int64_t n, int64_t k, const uint16_t *a, int64_t lda,
                        const uint16_t *b, int64_t ldb, float *c, int64_t ldc);

/// The implementation oneDNN picks for a product of that kind with contiguous operands
/// ("brg:avx512_core_vnni", "brg:avx512_core_amx_bf16", …), or NULL when it has none.
const char *paradit_matmul_impl(enum paradit_matmul_kind kind, int64_t m, int64_t n, int64_t k);

#endif
