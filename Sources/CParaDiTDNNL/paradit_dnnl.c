// Primitives are built once per shape and kept (building one costs milliseconds); each call runs on
// the calling thread only, with its own scratchpad, so the engine's pool threads can each run one.
#include "paradit_dnnl.h"
#include <dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// libgomp's, linked through libdnnl (OpenMP runtime); declared here to need no omp.h.
extern void omp_set_num_threads(int n);

// m, n, k, lda, ldb, ldc, and the operands' kind (an enum paradit_matmul_kind).
#define KEY 7

typedef struct {
    int64_t key[KEY];
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t a, b, c, scratch;
    size_t scratch_bytes;
} entry_t;

// Open addressing; a full table builds (and drops) a primitive per call instead of failing.
#define SLOTS 4096
static entry_t table[SLOTS];
static int used[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static _Thread_local int one_thread_set;
static _Thread_local void *scratch;
static _Thread_local size_t scratch_size;

static void make_engine(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

static dnnl_status_t build(const int64_t key[KEY], entry_t *e) {
    int64_t m = key[0], n = key[1], k = key[2], lda = key[3], ldb = key[4], ldc = key[5];
    int64_t ad[2] = {m, k}, as[2] = {lda, 1}, bd[2] = {k, n}, bs[2] = {1, ldb}, cd[2] = {m, n}, cs[2] = {ldc, 1};
    int bf16 = key[6] == PARADIT_BF16;
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_strides(&e->a, 2, ad, bf16 ? dnnl_bf16 : dnnl_u8, as)) != dnnl_success) return s;
    if ((s = dnnl_memory_desc_init_by_strides(&e->b, 2, bd, bf16 ? dnnl_bf16 : dnnl_s8, bs)) != dnnl_success) return s;
    if ((s = dnnl_memory_desc_init_by_strides(&e->c, 2, cd, bf16 ? dnnl_f32 : dnnl_s32, cs)) != dnnl_success) return s;
    dnnl_matmul_desc_t desc;
    if ((s = dnnl_matmul_desc_init(&desc, &e->a, &e->b, NULL, &e->c)) != dnnl_success) return s;
    dnnl_primitive_attr_t attr;
    if ((s = dnnl_primitive_attr_create(&attr)) != dnnl_success) return s;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_primitive_desc_t pd;
    s = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) return s;
    e->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->scratch_bytes = dnnl_memory_desc_get_size(&e->scratch);
    s = dnnl_primitive_create(&e->primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    memcpy(e->key, key, sizeof e->key);
    return s;
}

// The cached entry for `key`, built on first use; `*owned` when the table is full and the caller
// must destroy the primitive after use.
static dnnl_status_t lookup(const int64_t key[KEY], entry_t *out, int *owned) {
    pthread_once(&engine_once, make_engine);
    if (!engine) return dnnl_runtime_error;
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < KEY; i++) h = (h ^ (uint64_t)key[i]) * 1099511628211ull;
    *owned = 0;
    pthread_mutex_lock(&lock);
    for (int probe = 0; probe < SLOTS; probe++) {
        int slot = (int)((h + (uint64_t)probe) % SLOTS);
        if (used[slot] && memcmp(table[slot].key, key, sizeof table[slot].key) == 0) {
            *out = table[slot];
            pthread_mutex_unlock(&lock);
            return dnnl_success;
        }
        if (!used[slot]) {
            dnnl_status_t s = build(key, &table[slot]);
            if (s == dnnl_success) { used[slot] = 1; *out = table[slot]; }
            pthread_mutex_unlock(&lock);
            return s;
        }
    }
    pthread_mutex_unlock(&lock);
    *owned = 1;
    return build(key, out);
}

static int run(const int64_t key[KEY], const void *a, const void *b, void *c) {
    if (!one_thread_set) { omp_set_num_threads(1); one_thread_set = 1; }
    entry_t e;
    int owned;
    dnnl_status_t s = lookup(key, &e, &owned);
    if (s != dnnl_success) return (int)s;
    if (e.scratch_bytes > scratch_size) {
        free(scratch);
        scratch = malloc(e.scratch_bytes);
        scratch_size = scratch ? e.scratch_bytes : 0;
        if (!scratch) return (int)dnnl_out_of_memory;
    }
    dnnl_memory_t am = NULL, bm = NULL, cm = NULL, sm = NULL;
    dnnl_stream_t stream = NULL;
    if ((s = dnnl_memory_create(&am, &e.a, engine, (void *)a)) != dnnl_success) goto done;
    if ((s = dnnl_memory_create(&bm, &e.b, engine, (void *)b)) != dnnl_success) goto done;
    if ((s = dnnl_memory_create(&cm, &e.c, engine, c)) != dnnl_success) goto done;
    if ((s = dnnl_memory_create(&sm, &e.scratch, engine, scratch)) != dnnl_success) goto done;
    if ((s = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags)) != dnnl_success) goto done;
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}, {DNNL_ARG_SCRATCHPAD, sm}};
    if ((s = dnnl_primitive_execute(e.primitive, stream, 4, args)) != dnnl_success) goto done;
    s = dnnl_stream_wait(stream);
done:
    if (stream) dnnl_stream_destroy(stream);
    if (am) dnnl_memory_destroy(am);
    if (bm) dnnl_memory_destroy(bm);
    if (cm) dnnl_memory_destroy(cm);
    if (sm) dnnl_memory_destroy(sm);
    if (owned) dnnl_primitive_destroy(e.primitive);
    return (int)s;
}

int paradit_u8s8_matmul(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda,
                        const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc) {
    int64_t key[KEY] = {m, n, k, lda, ldb, ldc, PARADIT_U8S8};
    return run(key, a, b, c);
}

int paradit_bf16_matmul(int64_t m, int64_t n, int64_t k, const uint16_t *a, int64_t lda,
                        const uint16_t *b, int64_t ldb, float *c, int64_t ldc) {
    int64_t key[KEY] = {m, n, k, lda, ldb, ldc, PARADIT_BF16};
    return run(key, a, b, c);
}

const char *paradit_matmul_impl(enum paradit_matmul_kind kind, int64_t m, int64_t n, int64_t k) {
    int64_t key[KEY] = {m, n, k, k, k, n, kind};
    entry_t e;
    int owned;
    if (lookup(key, &e, &owned) != dnnl_success) return NULL;
    const_dnnl_primitive_desc_t pd;
    const char *impl = NULL;
    if (dnnl_primitive_get_primitive_desc(e.primitive, &pd) == dnnl_success)
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if (owned) { dnnl_primitive_destroy(e.primitive); return NULL; }
    return impl;
}
