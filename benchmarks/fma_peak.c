// Register-only peak of one core: AVX-512 FP32 FMA against AVX512-BF16 VDPBF16PS (GFLOP/s).
//   gcc -O3 -funroll-all-loops benchmarks/fma_peak.c -o fma_peak && ./fma_peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now() { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec*1e-9; }
__attribute__((target("avx512f,avx512bf16"))) double bf(long n) {
  __m512 acc[12]; for (int i=0;i<12;i++) acc[i]=_mm512_setzero_ps();
  __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b=(__m512bh)_mm512_set1_epi16(0x3f80);
  double t=now();
  for (long i=0;i<n;i++) { for (int j=0;j<12;j++) { acc[j]=_mm512_dpbf16_ps(acc[j],a,b); } __asm__ volatile("" : "+v"(a)); }
  double e=now()-t; float s=0; for(int i=0;i<12;i++) s+=_mm512_reduce_add_ps(acc[i]);
  printf("bf16 dp: %.1f GFLOP/s (%g)\n", n*12*64.0/e/1e9, s); return e;
}
__attribute__((target("avx512f,fma"))) double fm(long n) {
  __m512 acc[12]; for (int i=0;i<12;i++) acc[i]=_mm512_setzero_ps();
  __m512 a=_mm512_set1_ps(1.0001f), b=_mm512_set1_ps(0.9999f);
  double t=now();
  for (long i=0;i<n;i++) { for (int j=0;j<12;j++) acc[j]=_mm512_fmadd_ps(a,b,acc[j]); __asm__ volatile("" : "+v"(a)); }
  double e=now()-t; float s=0; for(int i=0;i<12;i++) s+=_mm512_reduce_add_ps(acc[i]);
  printf("f32 fma: %.1f GFLOP/s (%g)\n", n*12*32.0/e/1e9, s); return e;
}
int main(){ bf(100000000); fm(100000000); bf(100000000); fm(100000000); }
