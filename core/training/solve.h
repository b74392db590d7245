// ntk/core/training/solve.h: the one entry point that trains a
// TrainingProblem (docs/model-contract.md "2. Training objective").
//
//   absl::StatusOr<SolverSolution> s = Solve(problem, theta, options);
//   // f(x) = f0(x) + Theta(x, X) * s->dual;  s->logits = F at the training points
//
// Solve dispatches on problem.regime (decided by DecideTrainingProblem,
// problem.h): 2a Newton-CG (newton_cg.cc), 2b / 2c one Cholesky
// (direct_solve.cc). Fit, every PredictDistribution method and the tools
// call this (MONTE_CARLO's 2a samples run the same solver as a block:
// core/training/newton_cg_block.h).
//
// Thread safety: a pure function of its arguments; safe to call
// concurrently (see solvers.h for the threads it uses).
#ifndef NTK_CORE_TRAINING_SOLVE_H_
#define NTK_CORE_TRAINING_SOLVE_H_

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/training/problem.h"
#include "core/training/progress.h"
#include "core/training/solvers.h"

namespace ntk {

struct SolveOptions {
  // F0 at the training points (N x C); nullptr or empty: zero. Not owned.
  const Eigen::MatrixXd* initial_outputs = nullptr;
  // 2a only (ignored by 2b / 2c): start from this dual (N x C; not owned;
  // nullptr: beta = 0), and the preconditioner's precomputed eigenbasis of
  // this Theta (not owned; nullptr: computed by the solve).
  const Eigen::MatrixXd* warm_start_dual = nullptr;
  const ThetaEigenbasis* eigenbasis = nullptr;
  double tolerance = 1e-12;        // 2a: relative fixed-point residual target
  int max_newton_iterations = 100;  // 2a
  ProgressFn progress;              // may be empty; false -> CANCELLED
  // 2b / 2c only: return the Cholesky factor in SolverSolution::cholesky_factor.
  bool keep_factor = false;
};

// Trains `problem` with the training NTK `theta` (N x N). Errors: those of
// the solvers (solvers.h): INVALID_ARGUMENT for bad shapes, CANCELLED,
// FAILED_PRECONDITION (2b/2c: not positive definite with the largest
// jitter), INVALID_ARGUMENT naming spec.training.regularization (2a did
// not converge).
absl::StatusOr<SolverSolution> Solve(const TrainingProblem& problem,
                                     const Eigen::MatrixXd& theta,
                                     const SolveOptions& options = {});

}  // namespace ntk

#endif  // NTK_CORE_TRAINING_SOLVE_H_
