// ntk/core/distribution/linearized.cc: method LINEARIZED (2a) of
// docs/model-contract.md "4. PredictDistribution": the map F0 -> f(x)
// linearized at F0 = 0, computed by linearized_solver.h from a factor it
// shares with LAPLACE_POSTERIOR (laplace.cc). See methods.h.
#include <algorithm>

#include "core/distribution/linearized_solver.h"
#include "core/distribution/methods.h"
#include "core/distribution/moments.h"
#include "core/model/cost.h"
#include "core/training/solve.h"
#include "core/training/solvers.h"

namespace ntk::distribution_internal {

absl::StatusOr<std::shared_ptr<const MatrixFactor>> GetZeroF0Dual(
    const State& state, FactorSource& source,
    const std::function<absl::StatusOr<const MatrixXd*>()>& theta) {
  return source.Get<MatrixFactor>(
      "zero_f0_dual", [&]() -> absl::StatusOr<std::shared_ptr<const MatrixFactor>> {
        auto dual = std::make_shared<MatrixFactor>();
        if (!HasInitialOutputs(state)) {
          dual->value = state.dual;
        } else {
          absl::StatusOr<const MatrixXd*> t = theta();
          if (!t.ok()) return t.status();
          SolveOptions opt;
          opt.warm_start_dual = &state.dual;
          absl::StatusOr<SolverSolution> sol = Solve(state.problem, **t, opt);
          if (!sol.ok()) return sol.status();
          dual->value = std::move(sol->dual);
        }
        return std::shared_ptr<const MatrixFactor>(dual);
      });
}

absl::StatusOr<std::shared_ptr<const MatrixFactor>> GetZeroF0Dual(
    const State& state, FactorSource& source, TrainingKernelsOnce& kernels,
    const Progress& progress) {
  return GetZeroF0Dual(state, source, [&]() -> absl::StatusOr<const MatrixXd*> {
    absl::StatusOr<const KernelMatrices*> km = kernels.Get(progress);
    if (!km.ok()) return km.status();
    return &(*km)->ntk;
  });
}

absl::StatusOr<std::shared_ptr<const LinearizedFactor>> GetLinearizedFactor(
    const State& state, FactorSource& source, TrainingKernelsOnce& kernels, const char* method,
    int64_t capacity, int64_t budget, const Progress& progress) {
  return source.Get<LinearizedFactor>(
      "linearized", [&]() -> absl::StatusOr<std::shared_ptr<const LinearizedFactor>> {
        const Index N = state.x_train.rows();
        const Index C = state.problem.targets.cols();
        const bool keep = KeepClassFactors(N, C, capacity);
        if (absl::Status s = BudgetCheck(method, LinearizedFactorBytes(N, C, keep), budget);
            !s.ok()) {
          return s;
        }
        absl::StatusOr<std::shared_ptr<const MatrixFactor>> dual0 =
            GetZeroF0Dual(state, source, kernels, progress);
        if (!dual0.ok()) return dual0.status();
        absl::StatusOr<KernelMatrices> km = kernels.Take(progress);
        if (!km.ok()) return km.status();
        // F* at F0 = 0 is Theta dual0; the fit's own logits when it used F0 = 0.
        const MatrixXd p = RowSoftmax(HasInitialOutputs(state)
                                          ? MatrixXd(km->ntk * (*dual0)->value)
                                          : state.train_logits);
        return PrepareLinearized(std::move(km->ntk), std::move(km->nngp), p,
                                 state.problem.lambda, keep, progress.fn());
      });
}

absl::Status StoreWithPredictMean(const MatrixXd& mean_dual, const Batch& b,
                                  const absl::StatusOr<std::vector<MatrixXd>>& cov,
                                  std::vector<PointDistribution>* out) {
  if (!cov.ok()) return cov.status();
  const MatrixXd mean = b.cross.ntk.transpose() * mean_dual;  // nb x C
  for (Index j = 0; j < b.size; ++j) {
    StoreCenteredLogits(mean.row(j).transpose(), (*cov)[j], &(*out)[b.begin + j]);
  }
  return absl::OkStatus();
}

absl::Status LinearizedBatch(const LinearizedFactor& f, const MatrixXd& mean_dual,
                             const Batch& b, const Progress& progress,
                             std::vector<PointDistribution>* out) {
  return StoreWithPredictMean(
      mean_dual, b, ApplyLinearized(f, b.cross.ntk, b.cross.nngp, b.diag.nngp, progress.fn()),
      out);
}

}  // namespace ntk::distribution_internal
