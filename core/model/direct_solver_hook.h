// ntk/core/model/direct_solver_hook.h: a process-wide replacement for the
// exact 2b / 2c solve inside FittedModel::Fit (docs/distributed.md).
//
// ntk_server --distributed under mpirun with K > 1 ranks installs one on
// rank 0 (server/distributed/): Fit then hands the decided problem, the
// preprocessed training rows and F0 to it instead of computing Theta_XX
// and calling Solve itself, and the K ranks compute Theta's tiles and
// factor it with ScaLAPACK (core/distributed/direct_solve.h). 2a, Nystrom
// models and model selection are unaffected. With no hook installed (every
// single-process run) Fit is unchanged.
//
// Thread safety: SetExactDirectSolver only before any Fit starts (from
// main, before the server's threads); GetExactDirectSolver from any thread
// after that. The solver itself must be safe to call from any thread
// (concurrent fits call it concurrently).
#ifndef NTK_CORE_MODEL_DIRECT_SOLVER_HOOK_H_
#define NTK_CORE_MODEL_DIRECT_SOLVER_HOOK_H_

#include <functional>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/training/problem.h"
#include "core/training/solvers.h"

namespace ntk {

// Returns what Solve (core/training/solve.h) returns for a 2b / 2c problem:
// dual, logits (F0 + Theta dual) and info; cholesky_factor empty.
// x_train: N x d preprocessed rows; f0: N x C or empty (zero).
using ExactDirectSolver = std::function<absl::StatusOr<SolverSolution>(
    const TrainingProblem& problem, const Eigen::MatrixXd& x_train,
    const Eigen::MatrixXd& f0)>;

void SetExactDirectSolver(ExactDirectSolver solver);  // empty: none
const ExactDirectSolver& GetExactDirectSolver();       // empty when none

}  // namespace ntk

#endif  // NTK_CORE_MODEL_DIRECT_SOLVER_HOOK_H_
