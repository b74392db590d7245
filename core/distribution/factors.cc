// ntk/core/distribution/factors.cc: factor sizes, FactorSource, and the
// small helpers every method shares (methods.h).
#include "core/distribution/factors.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/distribution/methods.h"
#include "core/numerics/cholesky.h"
#include "core/numerics/parallel.h"

namespace ntk {

int64_t ExactFactors::Bytes() const {
  return 8 * (nngp_train.size() + chol_a.size() + mean_dual.size());
}
int64_t PriorFactor::Bytes() const { return 8 * chol_k.size(); }
int64_t MonteCarloSamples::Bytes() const { return 8 * z_and_dual.size(); }
int64_t MatrixFactor::Bytes() const { return 8 * value.size(); }
int64_t Nystrom2aFactors::Bytes() const { return 8 * (chol.size() + solved.size()); }
int64_t NystromFactors::Bytes() const {
  return 8 * (chol_h.size() + chol_k.size() + w.size() + mean_beta.size());
}

absl::StatusOr<std::shared_ptr<const CacheEntry>> FactorSource::GetEntry(
    const std::string& part,
    const std::function<absl::StatusOr<std::shared_ptr<const CacheEntry>>()>& compute) {
  if (auto it = memo_.find(part); it != memo_.end()) return it->second;
  absl::StatusOr<std::shared_ptr<const CacheEntry>> e =
      scope_.cache == nullptr
          ? compute()
          : scope_.cache->GetOrCompute({scope_.model_id, scope_.generation, part}, compute);
  if (e.ok()) memo_[part] = *e;
  return e;
}

namespace distribution_internal {

absl::Status Progress::Report(double fraction, const char* phase) const {
  if (fn_ && !fn_(std::clamp(fraction, 0.0, 1.0), phase)) {
    return absl::CancelledError(absl::StrCat("PredictDistribution cancelled during ", phase));
  }
  return absl::OkStatus();
}

absl::Status BudgetCheck(const char* what, int64_t bytes, int64_t budget) {
  if (bytes > budget) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "method: %s needs %d bytes of cached factors in the model (budget "
        "%d bytes)",
        what, bytes, budget));
  }
  return absl::OkStatus();
}

bool CholeskyLower(const MatrixXd& a, MatrixXd* l) {
  *l = a;
  return CholeskyLowerInPlace(l).ok();
}

absl::Status CholeskyLower(MatrixXd a, MatrixXd* l, const Progress& progress, double fraction,
                           const char* phase) {
  absl::Status cancelled;
  absl::Status s = CholeskyLowerInPlace(&a, [&] {
    cancelled = progress.Report(fraction, phase);
    return cancelled.ok();
  });
  if (!cancelled.ok()) return cancelled;
  if (s.ok()) *l = std::move(a);
  return s;
}

absl::Status RefactorFitMatrix(MatrixXd a, const std::string& name, double fraction,
                               const Progress& progress, MatrixXd* l) {
  absl::Status s = CholeskyLower(std::move(a), l, progress, fraction, "distribution: factor");
  if (s.ok() || s.code() == absl::StatusCode::kCancelled) return s;
  return absl::InternalError(absl::StrCat(
      "distribution: ", name, " is not positive definite although the fit factored it"));
}

// Columns of x are independent right-hand sides: solved in column blocks on
// the OpenMP threads (core/numerics/parallel.h ParallelColumnBlocks).
void SolveLower(const MatrixXd& l, MatrixXd* x) {
  ParallelColumnBlocks(x->cols(), [&](Index b, Index w) {
    auto blk = x->middleCols(b, w);
    l.triangularView<Eigen::Lower>().solveInPlace(blk);
  });
}
void SolveLowerT(const MatrixXd& l, MatrixXd* x) {
  ParallelColumnBlocks(x->cols(), [&](Index b, Index w) {
    auto blk = x->middleCols(b, w);
    l.triangularView<Eigen::Lower>().transpose().solveInPlace(blk);
  });
}
void SolveCholesky(const MatrixXd& l, MatrixXd* x) {
  SolveLower(l, x);
  SolveLowerT(l, x);
}

absl::StatusOr<KernelMatrices> TrainKernelsWithProgress(const State& state,
                                                       const Progress& progress,
                                                       double fraction) {
  absl::Status cancelled;
  KernelMatrices km;
  TrainKernels(state.problem.spec.kernel, state.x_train,
               [&] {
                 cancelled = progress.Report(fraction, "distribution: kernels");
                 return cancelled.ok();
               },
               &km);
  if (!cancelled.ok()) return cancelled;
  return km;
}

absl::StatusOr<const KernelMatrices*> TrainingKernelsOnce::Get(const Progress& progress) {
  if (!km_) {
    absl::StatusOr<KernelMatrices> km = TrainKernelsWithProgress(state_, progress, 0);
    if (!km.ok()) return km.status();
    km_ = *std::move(km);
  }
  return &*km_;
}

absl::StatusOr<KernelMatrices> TrainingKernelsOnce::Take(const Progress& progress) {
  if (absl::StatusOr<const KernelMatrices*> km = Get(progress); !km.ok()) return km.status();
  KernelMatrices out = *std::move(km_);
  km_.reset();
  return out;
}

}  // namespace distribution_internal
}  // namespace ntk
