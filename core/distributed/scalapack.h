// ntk/core/distributed/scalapack.h: the Fortran ScaLAPACK routines and C
// BLACS calls core/distributed/ uses, declared once (Debian's
// libscalapack-openmpi ships no C header). Nothing here is ours: see the
// ScaLAPACK Users' Guide for each routine.
//
// Conventions: Fortran routines take every argument by pointer and their
// matrices column-major; an array descriptor (DESC) is 9 ints (kDescSize).
// Thread safety: BLACS contexts are per process; call these from one
// thread per process at a time (the MPI rank's thread that owns the
// context).
#ifndef NTK_CORE_DISTRIBUTED_SCALAPACK_H_
#define NTK_CORE_DISTRIBUTED_SCALAPACK_H_

#include <mpi.h>

namespace ntk::scalapack {

inline constexpr int kDescSize = 9;

}  // namespace ntk::scalapack

extern "C" {

// BLACS (C interface).
void Cblacs_pinfo(int* mypnum, int* nprocs);
// The BLACS system handle of an MPI communicator (to make a grid on it).
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int* context, const char* order, int nprow, int npcol);
void Cblacs_gridinfo(int context, int* nprow, int* npcol, int* myrow, int* mycol);
void Cblacs_gridexit(int context);

// Tools.
int numroc_(const int* n, const int* nb, const int* iproc, const int* isrcproc,
            const int* nprocs);
void descinit_(int* desc, const int* m, const int* n, const int* mb, const int* nb,
               const int* irsrc, const int* icsrc, const int* context, const int* lld,
               int* info);

// Cholesky factorization of a distributed SPD matrix, and the solve with it.
void pdpotrf_(const char* uplo, const int* n, double* a, const int* ia, const int* ja,
              const int* desca, int* info);
void pdpotrs_(const char* uplo, const int* n, const int* nrhs, const double* a,
              const int* ia, const int* ja, const int* desca, double* b, const int* ib,
              const int* jb, const int* descb, int* info);
// Reciprocal 1-norm condition estimate from the Cholesky factor
// (lwork = liwork = -1: workspace query).
void pdpocon_(const char* uplo, const int* n, const double* a, const int* ia,
              const int* ja, const int* desca, const double* anorm, double* rcond,
              double* work, const int* lwork, int* iwork, const int* liwork, int* info);

}  // extern "C"

#endif  // NTK_CORE_DISTRIBUTED_SCALAPACK_H_
