#ifndef CMPI_SHIM_H
#define CMPI_SHIM_H

// Open MPI's C API. MPI_COMM_WORLD, the datatypes and the operations are macros over global
// symbols, which Swift cannot import: they come through here as prefixed static inline functions.
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

static inline MPI_Comm cmpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype cmpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype cmpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype cmpi_int(void) { return MPI_INT; }
static inline MPI_Datatype cmpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op cmpi_sum(void) { return MPI_SUM; }
static inline int cmpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int cmpi_success(void) { return MPI_SUCCESS; }
static inline void *cmpi_in_place(void) { return MPI_IN_PLACE; }

#endif
