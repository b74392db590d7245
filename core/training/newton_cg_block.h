// ntk/core/training/newton_cg_block.h (internal to core/): many 2a solves
// (docs/model-contract.md "2a. Regularized") that share Theta, Y and
// lambda and differ in F0 -- the samples of MONTE_CARLO
// (docs/model-contract.md "4. PredictDistribution") -- solved in lockstep.
//
//   BlockSolveOptions opt;
//   opt.solve.warm_start_dual = &dual0;       // e.g. the F0 = 0 solution's
//   absl::StatusOr<BlockSolveResult> r =
//       SolveRegularizedCEBlock(theta, y, f0_all, lambda, opt);
//   // r->duals.middleCols(s * C, C): problem s's dual
//
// Each problem is one NewtonCGSolver (newton_cg_solver.h), the solver of
// SolveRegularizedCE. Up to max_in_flight of them advance together: every
// round, each asks for one product with Theta (a CG iteration, a residual,
// a Newton direction: whatever its own iteration needs next), and the round
// computes them all in one pass over Theta (ThetaTimesBatch: the bits of
// one product each, Theta read from memory once instead of once per
// problem); then the problems' own work up to their next product runs in
// parallel over the problems (OpenMP, one problem per thread at a time).
// A problem that ends leaves the block and the next one (in index order)
// enters. So every problem's iterates and answer are the same bits as its
// own SolveRegularizedCE with the same options and eigenbasis (the
// eigenbasis computed here when none is given uses single-threaded
// OpenBLAS, whose GEMM rounds differently with other thread counts),
// whatever max_in_flight, the other problems and the number of OpenMP or
// OpenBLAS threads.
//
// Thread safety: a pure function of its arguments (progress aside); uses
// all OpenMP threads (for rounds whose product is large enough,
// kMinParallelBatchTerms of core/numerics/linalg.h), with OpenBLAS
// single-threaded meanwhile (ScopedSingleThreadedBlas).
// Memory: the preconditioner basis (N (k (k + 1) / 2 + k + 1) doubles,
// shared) plus BlockSolveSlotDoubles(N, C) per problem in flight, plus the
// result (N x S C).
#ifndef NTK_CORE_TRAINING_NEWTON_CG_BLOCK_H_
#define NTK_CORE_TRAINING_NEWTON_CG_BLOCK_H_

#include <cstdint>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/training/progress.h"
#include "core/training/solvers.h"

namespace ntk {

struct BlockSolveOptions {
  // Options of every problem's solve (tolerance, iteration limits, the
  // eigenbasis -- computed once here when null -- and a warm start dual
  // shared by all). Its progress is not used: see `progress`.
  RegularizedCEOptions solve;
  // Problems advancing together; >= 1.
  int max_in_flight = 16;
  // Asked once per round (one product with Theta per problem in flight)
  // and between the blocks of that product, with the fraction of problems
  // finished and the phase "newton block"; false -> CANCELLED. Called from
  // one thread at a time (not always the caller's).
  ProgressFn progress;
};

struct BlockSolveResult {
  Eigen::MatrixXd duals;          // N x (S C): problem s in columns [s C, (s + 1) C)
  std::vector<SolverInfo> info;   // per problem
};

// Workspace of one problem in flight, in doubles (NewtonCGSolver, its
// Hessian blocks and its F0), for memory budgets.
int64_t BlockSolveSlotDoubles(int64_t n, int64_t c);

// Solves problems s = 0..S-1, S = f0.cols() / y.cols(): F0_s = columns
// [s C, (s + 1) C) of f0, all with theta, y and lambda. Errors:
// INVALID_ARGUMENT for bad shapes (f0 must be N x S C, S >= 1) or lambda;
// CANCELLED; otherwise the error of the lowest-index problem that failed in
// the first round any failed (e.g. INVALID_ARGUMENT naming
// spec.training.regularization), its message prefixed by "sample <s>: ",
// and no result. REQUIRES: as SolveRegularizedCE.
absl::StatusOr<BlockSolveResult> SolveRegularizedCEBlock(const Eigen::MatrixXd& theta,
                                                         const Eigen::MatrixXd& y,
                                                         const Eigen::MatrixXd& f0,
                                                         double lambda,
                                                         const BlockSolveOptions& options);

}  // namespace ntk

#endif  // NTK_CORE_TRAINING_NEWTON_CG_BLOCK_H_
