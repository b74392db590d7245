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
  // 2b/2c keep K_mn Theta_nm for PredictDistribution (docs/model-contract.md
  // "6. Nystrom models", "PredictDistribution of a Nystrom model"); 2a keeps
  // the Newton summaries at the F0 = 0 solution when they fit under the cap
  // (and then K_nm during the fit to accumulate them).
  const bool linear = p.regime != Regime::kRegularizedCE;
  using SummaryState = FittedModel::State::Nystrom::SummaryState;
  SummaryState summary = SummaryState::kKept;
  if (!linear) {
    if (options.initial_train_outputs.size() != 0) {
      summary = SummaryState::kInitialOutputs;
    } else if (NystromSummaryBytes(static_cast<int64_t>(rows.size()), p.num_classes) >
               options.max_nystrom_summary_bytes) {
      summary = SummaryState::kOverCap;
    }
  }
  const bool summaries_2a = !linear && summary == SummaryState::kKept;
  absl::StatusOr<NystromKernels> k = ComputeNystromKernels(
      p.spec.kernel, s->x_train, rows, kernel_progress, linear, summaries_2a);
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
  ny.summary_state = summary;
  ny.summary_cap_bytes = options.max_nystrom_summary_bytes;
  if (summaries_2a) {
    const ProgressFn at_end = [&solve_progress](double, const char* phase) {
      return ReportProgress(solve_progress, 1.0, phase);
    };
    if (absl::Status st = NewtonSummaries(*k, RowSoftmax(sol->logits), at_end,
                                          &ny.newton_hessian, &ny.newton_cross);
        !st.ok()) {
      return st;
    }
  }
  if (linear) {
    ny.gram = std::move(sol->gram);
    ny.nngp_theta = std::move(k->nngp_theta);
    if (options.initial_train_outputs.size() != 0) {
      // beta solved T - F0; the F0 = 0 mean needs Theta_mn T.
      const Eigen::MatrixXd t = p.regime == Regime::kSquared
                                    ? p.targets
                                    : Eigen::MatrixXd(p.targets.array().log().matrix());
      ny.mean_rhs.noalias() = k->theta_nm.transpose() * t;
    }
  }
  *logits = std::move(sol->logits);
  *info = sol->info;
  return absl::OkStatus();
}

}  // namespace ntk
