// ntk/core/training/solve.cc: Solve dispatches a TrainingProblem to its
// solver (solve.h).
#include "core/training/solve.h"

namespace ntk {

absl::StatusOr<SolverSolution> Solve(const TrainingProblem& problem,
                                     const Eigen::MatrixXd& theta,
                                     const SolveOptions& options) {
  static const Eigen::MatrixXd kZero;  // empty: F0 = 0
  const Eigen::MatrixXd& f0 =
      options.initial_outputs != nullptr ? *options.initial_outputs : kZero;
  switch (problem.regime) {
    case Regime::kRegularizedCE: {
      RegularizedCEOptions opt;
      opt.tolerance = options.tolerance;
      opt.max_newton_iterations = options.max_newton_iterations;
      opt.eigenbasis = options.eigenbasis;
      opt.warm_start_dual = options.warm_start_dual;
      opt.progress = options.progress;
      return SolveRegularizedCE(theta, problem.targets, f0, problem.lambda, opt);
    }
    case Regime::kUnregularizedCE:
      return SolveUnregularizedCE(theta, problem.targets, f0, options.progress,
                                  problem.jitter, options.keep_factor);
    case Regime::kSquared:
      return SolveSquared(theta, problem.targets, f0, problem.lambda, options.progress,
                          problem.jitter, options.keep_factor);
  }
  return absl::InternalError("Solve: unknown regime");
}

}  // namespace ntk
