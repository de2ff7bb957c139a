// OpenBLAS's CBLAS interface plus its thread-count controls (openblas_set_num_threads).
#ifndef CPARADIT_BLAS_SHIM_H
#define CPARADIT_BLAS_SHIM_H
#include <cblas.h>
#endif
