// ntk/core/distribution/exact.cc: method EXACT (2b, 2c) of
// docs/model-contract.md "4. PredictDistribution": the trained logits are a
// linear map of the Gaussian f0, so they are Gaussian. See methods.h.
#include <algorithm>

#include "absl/strings/str_format.h"
#include "core/distribution/methods.h"
#include "core/distribution/moments.h"
#include "core/numerics/parallel.h"

namespace ntk::distribution_internal {

double FitShift(const State& state) {
  double shift = state.stats.jitter;
  if (state.problem.regime == Regime::kSquared) shift += state.problem.lambda;
  return shift;
}

std::shared_ptr<const ExactFactors> ExactFactorsFrom(const State& state,
                                                     MatrixXd nngp_train, MatrixXd chol_a) {
  auto f = std::make_shared<ExactFactors>();
  f->nngp_train = std::move(nngp_train);
  f->chol_a = std::move(chol_a);
  if (!HasInitialOutputs(state)) {
    f->mean_dual = state.dual;
  } else {
    MatrixXd t = state.problem.regime == Regime::kSquared
                     ? state.problem.targets
                     : MatrixXd(state.problem.targets.array().log().matrix());
    SolveCholesky(f->chol_a, &t);
    f->mean_dual = std::move(t);
  }
  return f;
}

absl::StatusOr<std::shared_ptr<const ExactFactors>> GetExactFactors(
    const State& state, FactorSource& source, int64_t budget, const Progress& progress) {
  return source.Get<ExactFactors>(kExactPart, [&]() -> absl::StatusOr<std::shared_ptr<const ExactFactors>> {
  const Index N = state.x_train.rows();
  const Index C = state.problem.targets.cols();
  if (absl::Status s = BudgetCheck("EXACT", 8 * (2 * N * N + N * C), budget);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<KernelMatrices> km = TrainKernelsWithProgress(state, progress, 0.0);
  if (!km.ok()) return km.status();
  // A = Theta_XX + shift I, factored in place by the routine the fit used
  // (same matrix, same bits: Fit may hand this factor over instead).
  const double shift = FitShift(state);
  MatrixXd a = std::move(km->ntk);
  a.diagonal().array() += shift;
  MatrixXd chol;
  if (absl::Status s = RefactorFitMatrix(
          std::move(a), absl::StrFormat("Theta_XX + %g I", shift), 0.5, progress, &chol);
      !s.ok()) {
    return s;
  }
  return ExactFactorsFrom(state, std::move(km->nngp), std::move(chol));
  });
}


// EXACT (2b, 2c): mean center(Theta_xX mean_dual); covariance s(x) P with
//   s(x) = K_xx - 2 r^T K_Xx + r^T K_XX r,   r = A^{-1} Theta_Xx.
// s is a difference of O(1) terms that is ~0 near training points: clamped
// at 0 (a negative value is rounding).
void ExactBatch(const ExactFactors& f, const Batch& b, int C,
                std::vector<PointDistribution>* out) {
  const MatrixXd mean = b.cross.ntk.transpose() * f.mean_dual;  // nb x C
  MatrixXd r = b.cross.ntk;
  SolveCholesky(f.chol_a, &r);
  MatrixXd kr(r.rows(), r.cols());
  ParallelColumnBlocks(r.cols(), [&](Index c0, Index w) {
    kr.middleCols(c0, w).noalias() = f.nngp_train * r.middleCols(c0, w);
  });
  StoreScalarVariance(mean, b.cross.nngp, r, kr, b, C, out);
}

void StoreScalarVariance(const MatrixXd& mean, const MatrixXd& k, const MatrixXd& r,
                         const MatrixXd& kr, const Batch& b, int C,
                         std::vector<PointDistribution>* out) {
  const VectorXd rk = (r.array() * k.array()).colwise().sum().transpose();
  const VectorXd rkr = (r.array() * kr.array()).colwise().sum().transpose();
  const MatrixXd p = MatrixXd::Identity(C, C) - MatrixXd::Constant(C, C, 1.0 / C);
  for (Index j = 0; j < b.size; ++j) {
    PointDistribution& pd = (*out)[b.begin + j];
    pd.logit_mean = CenterVector(mean.row(j).transpose());
    pd.logit_covariance = std::max(0.0, b.diag.nngp[j] - 2 * rk[j] + rkr[j]) * p;
  }
}

}  // namespace ntk::distribution_internal
