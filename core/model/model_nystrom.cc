// ntk/core/model/model_nystrom.cc: FitNystrom (model_state.h), the Nystrom
// branch of FittedModel::Fit (docs/model-contract.md "6. Nystrom models").
#include <utility>
#include <vector>

#include "core/model/model_state.h"
#include "core/nystrom/centers.h"
#include "core/nystrom/nystrom_solve.h"

namespace ntk {

absl::Status FitNystrom(FittedModel::State* s, const FitOptions& options,
                        const ProgressFn& kernel_progress, const ProgressFn& solve_progress,
                        Eigen::MatrixXd* logits, SolverInfo* info) {
  const TrainingProblem& p = s->problem;
  const Eigen::Index n = s->x_train.rows();
  const std::vector<Eigen::Index> rows =
      SelectCenters(n, p.spec.approximation.num_centers, p.spec.approximation.seed);
  absl::StatusOr<NystromKernels> k =
      ComputeNystromKernels(p.spec.kernel, s->x_train, rows, kernel_progress);
  if (!k.ok()) return k.status();
  NystromSolveOptions so;
  so.initial_outputs = &options.initial_train_outputs;
  so.tolerance = options.tolerance;
  so.max_newton_iterations = options.max_iterations;
  so.progress = solve_progress;
  absl::StatusOr<NystromSolution> sol = SolveNystrom(p, *k, so);
  if (!sol.ok()) return sol.status();
  FittedModel::State::Nystrom& ny = s->nystrom;
  ny.centers.resize(static_cast<Eigen::Index>(rows.size()), s->x_train.cols());
  for (size_t j = 0; j < rows.size(); ++j) {
    ny.centers.row(static_cast<Eigen::Index>(j)) = s->x_train.row(rows[j]);
  }
  ny.centers_sq_norms = ny.centers.rowwise().squaredNorm();
  ny.beta = std::move(sol->beta);
  ny.num_train = n;
  *logits = std::move(sol->logits);
  *info = sol->info;
  return absl::OkStatus();
}

}  // namespace ntk
