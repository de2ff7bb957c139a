// Open MPI's C API, plus functions for the handles mpi.h defines as macros over global objects
// (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, …), which do not import into Swift.
#ifndef CPARADIT_MPI_SHIM_H
#define CPARADIT_MPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm paradit_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm paradit_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype paradit_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype paradit_mpi_int(void) { return MPI_INT; }
static inline MPI_Op paradit_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op paradit_mpi_max(void) { return MPI_MAX; }
static inline MPI_Datatype paradit_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Status *paradit_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int paradit_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int paradit_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline MPI_Info paradit_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline int paradit_mpi_success(void) { return MPI_SUCCESS; }
static inline MPI_Errhandler paradit_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
#endif
