// oneDNN 2.6 matmul (Debian's libdnnl-dev) on M×K·K×N with weights reordered to the library's
// packed layout (or plain), in f32, bf16 or u8×s8 (f32 output); prints the implementation
// oneDNN picked (brg:avx512_core, brg:avx512_core_bf16, brg:avx512_core_amx_bf16) and GFLOP/s.
//   gcc -O2 benchmarks/onednn_matmul.c -o onednn_matmul -ldnnl -fopenmp
//   ./onednn_matmul M K N PACKED THREADS [f32|bf16|s8]   (s8: u8 activations × s8 weights, VNNI)
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <omp.h>
#define CHK(x) do { dnnl_status_t s = (x); if (s != dnnl_success) { printf("fail %s: %d\n", #x, s); exit(1);} } while(0)
static double now() { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec*1e-9; }
int main(int argc, char** argv) {
  int64_t M = atol(argv[1]), K = atol(argv[2]), N = atol(argv[3]); int packed = atoi(argv[4]); int threads = atoi(argv[5]); dnnl_data_type_t dt = (argc > 6 && argv[6][0]=='f') ? dnnl_f32 : (argc > 6 && argv[6][0]=='s') ? dnnl_s8 : dnnl_bf16;
  dnnl_data_type_t srct = dt == dnnl_s8 ? dnnl_u8 : dt;
  omp_set_num_threads(threads);
  dnnl_engine_t eng; CHK(dnnl_engine_create(&eng, dnnl_cpu, 0));
  dnnl_stream_t st; CHK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
  dnnl_memory_desc_t a_md, b_md, c_md, bias_md, b_any;
  int64_t ad[2]={M,K}, bd[2]={K,N}, cd[2]={M,N}, biasd[2]={1,N};
  CHK(dnnl_memory_desc_init_by_tag(&a_md, 2, ad, srct, dnnl_ab));
  CHK(dnnl_memory_desc_init_by_tag(&b_md, 2, bd, dt, dnnl_ba));
  CHK(dnnl_memory_desc_init_by_tag(&b_any, 2, bd, dt, dnnl_format_tag_any));
  CHK(dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_f32, dnnl_ab));
  CHK(dnnl_memory_desc_init_by_tag(&bias_md, 2, biasd, dnnl_f32, dnnl_ab));
  dnnl_matmul_desc_t md; CHK(dnnl_matmul_desc_init(&md, &a_md, packed ? &b_any : &b_md, &bias_md, &c_md));
  dnnl_primitive_desc_t pd; CHK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
  const char* impl; CHK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
  const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  size_t wsz = dnnl_memory_desc_get_size(wmd);
  dnnl_primitive_t prim; CHK(dnnl_primitive_create(&prim, pd));
  dnnl_memory_t am, bm, cm, biasm;
  CHK(dnnl_memory_create(&am, &a_md, eng, DNNL_MEMORY_ALLOCATE));
  CHK(dnnl_memory_create(&bm, wmd, eng, DNNL_MEMORY_ALLOCATE));
  CHK(dnnl_memory_create(&cm, &c_md, eng, DNNL_MEMORY_ALLOCATE));
  CHK(dnnl_memory_create(&biasm, &bias_md, eng, DNNL_MEMORY_ALLOCATE));
  dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, am},{DNNL_ARG_WEIGHTS, bm},{DNNL_ARG_BIAS, biasm},{DNNL_ARG_DST, cm}};
  for (int i=0;i<3;i++) CHK(dnnl_primitive_execute(prim, st, 4, args));
  CHK(dnnl_stream_wait(st));
  int reps = 10; double best = 1e9;
  for (int r=0;r<5;r++){ double t=now(); for (int i=0;i<reps;i++) CHK(dnnl_primitive_execute(prim, st, 4, args)); CHK(dnnl_stream_wait(st)); double e=(now()-t)/reps; if(e<best)best=e;}
  printf("%s %ldx%ldx%ld packed=%d thr=%d impl=%s wsize=%zu  %.1f GFLOP/s\n", dt==dnnl_f32?"f32":dt==dnnl_s8?"u8s8":"bf16", M,K,N,packed,threads,impl,wsz, 2.0*M*N*K/best/1e9);
  return 0;
}
