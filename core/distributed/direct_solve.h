// ntk/core/distributed/direct_solve.h: the exact 2b / 2c solve of
// docs/model-contract.md "2b. Unregularized" and "2c. Squared loss" over
// MPI ranks, with ScaLAPACK doing the factorization (docs/distributed.md).
//
//   // on the root: DirectSystem sys = DirectSystemFrom(problem, x_train, f0);
//   // on every rank (the others start from an empty DirectSystem):
//   absl::Status b = BroadcastDirectSystem(comm, /*root=*/0, &sys);
//   absl::StatusOr<DistributedSolveResult> r = DistributedDirectSolve(comm, sys, {});
//   // root: r->solution.dual, logits, info as Solve (core/training/solve.h) gives them
//
// It solves exactly what the single-process solver does
// (core/training/direct_solve.cc, solvers.h):
//   2b  dual = (Theta + jitter I)^{-1} (log Y - F0)
//   2c  dual = (Theta + (lambda + jitter) I)^{-1} (Y - F0)
// with the same jitter policy (problem.h JitterPolicy: the first jitter
// from mean(diag Theta), x10 per failed factorization), the same residual,
// logits (F0 + Theta dual) and a 1-norm condition estimate (ScaLAPACK
// pdpocon here, LAPACK dpocon there). Both are lower bounds of kappa_1, but
// pdpocon's measured 6-16x below the true kappa_1 where dpocon's was 1-2x
// below (tests/distributed_solve_test.cc, N = 40-300): the statistic is not
// yet the single-process one (docs/distributed.md "Not done yet").
//
// Who computes what: each rank computes ONLY its block-cyclic part of
// Theta_XX (process_grid.h), from the training rows and columns it owns,
// with CrossKernels (core/kernels/kernel.h); the global diagonal is set from
// DiagonalKernels, as TrainKernels sets it (rho = 1 exactly). Off the
// diagonal, entries can differ from TrainKernels' in the last bits (a GEMM
// instead of a SYRK forms the Gram matrix). pdpotrf + pdpotrs factor and
// solve; the dual is summed onto every rank with one MPI_Allreduce of
// N x C doubles, and Theta dual (for the logits) onto the root with one
// MPI_Reduce of N x C.
//
// Memory per rank: the Theta part and the factor's part, about N^2 / K
// doubles each (K ranks; the kernel's transient NNGP part while Theta is
// computed is another N^2 / K), plus O(N (d + C)) for the inputs.
//
// Not here (yet): 2a, progress/cancellation during the factorization,
// keep_factor (the distributed factor is freed on return).
//
// Thread safety: collective calls. Every rank of `comm` must make the same
// sequence of calls with the same options; one thread per rank at a time.
// Every rank returns the same status (the decisions are made collectively),
// so no rank is left waiting in a collective after an error.
#ifndef NTK_CORE_DISTRIBUTED_DIRECT_SOLVE_H_
#define NTK_CORE_DISTRIBUTED_DIRECT_SOLVE_H_

#include <cstdint>

#include <Eigen/Dense>
#include <mpi.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/kernels/kernel.h"
#include "core/training/problem.h"
#include "core/training/solvers.h"

namespace ntk {

// Everything a rank needs for the 2b / 2c solve.
struct DirectSystem {
  KernelSpec kernel;
  Regime regime = Regime::kUnregularizedCE;
  double lambda = 0;
  JitterPolicy jitter;
  Eigen::MatrixXd x;        // N x d training rows, preprocessed (the model's x_train)
  Eigen::MatrixXd targets;  // Y, N x C
  Eigen::MatrixXd f0;       // F0 at the training rows, N x C, or empty (zero)
};

// The system of a decided problem (problem.h) on preprocessed rows.
DirectSystem DirectSystemFrom(const TrainingProblem& problem, const Eigen::MatrixXd& x_train,
                              const Eigen::MatrixXd& f0);

// Collective: copies the root's *system to every rank (one broadcast of a
// fixed header, then of x, Y, F0: O(N (d + C)) doubles). INTERNAL when MPI
// fails (the default MPI error handler aborts the job first).
absl::Status BroadcastDirectSystem(MPI_Comm comm, int root, DirectSystem* system);

struct DistributedSolveOptions {
  // ScaLAPACK block size nb (nb x nb blocks). Small blocks balance the
  // ranks' shares; large ones make the local BLAS calls efficient.
  int block_size = 64;
  int root = 0;  // the rank that receives logits and the statistics
};

// This rank's part of the distributed N x N matrices.
struct LocalTiles {
  int nprow = 0, npcol = 0;  // the process grid
  int myrow = 0, mycol = 0;
  int64_t local_rows = 0;  // rows of Theta (and of the factor) held here
  int64_t local_cols = 0;
  int64_t local_entries() const { return local_rows * local_cols; }
};

struct DistributedSolveResult {
  // Root: dual, logits and info as SolveUnregularizedCE / SolveSquared
  // (solvers.h) fill them (cholesky_factor stays empty). Other ranks: dual
  // and info.jitter only.
  SolverSolution solution;
  LocalTiles tiles;
};

// Collective. REQUIRES: every rank passes the same `system` (e.g. after
// BroadcastDirectSystem) and the same options; ValidateKernelSpec(kernel).
// Errors (the same on every rank): UNIMPLEMENTED for 2a; INVALID_ARGUMENT
// for bad shapes, 2b targets not > 0, a bad 2c lambda (naming the field as
// solvers.h does), non-finite Theta, block_size < 1; FAILED_PRECONDITION
// (the message of the single-process solve) when Theta + shift I is not
// positive definite with the largest jitter; INTERNAL when ScaLAPACK
// reports an argument error.
absl::StatusOr<DistributedSolveResult> DistributedDirectSolve(
    MPI_Comm comm, const DirectSystem& system, const DistributedSolveOptions& options = {});

}  // namespace ntk

#endif  // NTK_CORE_DISTRIBUTED_DIRECT_SOLVE_H_
