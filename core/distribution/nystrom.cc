// ntk/core/distribution/nystrom.cc: PredictDistribution for Nystrom models
// of regime 2b / 2c (docs/model-contract.md "6. Nystrom models",
// "PredictDistribution of a Nystrom model"): the factors built from the
// fit's m x m summaries (never the training rows, which the model does not
// keep), method EXACT (and LINEARIZED, which is EXACT there) and the
// MONTE_CARLO sample sets. See methods.h.
//
// Notation: Z the m centers, L_H L_H^T = H = Theta_mn Theta_nm + delta
// Theta_mm (the fit's matrix), L_K L_K^T = K_mm (+ jitter), psi(x) =
// L_K^{-1} K_Zx, W = L_K^{-1} K_mn Theta_nm. The prior is the Nystrom NNGP
// on the training points (F0 = Psi z, Psi = K_nm L_K^{-T}, z ~ N(0, I_m)
// per class) and the exact NNGP at the query: f0(x) = psi(x)^T z + e(x),
// e(x) ~ N(0, K_xx - |psi(x)|^2) independent.
#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/distribution/methods.h"
#include "core/distribution/moments.h"
#include "core/training/problem.h"

namespace ntk::distribution_internal {

namespace {

// L_K: K_mm itself when it is numerically positive definite, else
// K_mm + j I with j = kPriorRelativeJitter * mean(diag K_mm), x10 per
// failed Cholesky up to kMaxRelativeJitter (no jitter first, so that with
// m = N the prior is the exact model's K_XX, not a perturbation of it).
absl::Status FactorNngp(const MatrixXd& nngp_mm, const Progress& progress, MatrixXd* chol,
                        double* jitter) {
  double base = nngp_mm.rows() > 0 ? nngp_mm.diagonal().mean() : 1.0;
  if (!(base > 0)) base = 1.0;
  for (double rel = 0; rel <= kMaxRelativeJitter * 1.0001;
       rel = rel == 0 ? kPriorRelativeJitter : rel * 10) {
    MatrixXd a = nngp_mm;
    a.diagonal().array() += rel * base;
    const absl::Status s =
        CholeskyLower(std::move(a), chol, progress, 0.5, "distribution: prior factor");
    if (s.code() == absl::StatusCode::kCancelled) return s;
    if (s.ok()) {
      *jitter = rel * base;
      return absl::OkStatus();
    }
  }
  return absl::InternalError(
      "distribution: K_mm + jitter I is not positive definite for any jitter up to "
      "1e-4 * mean(diag K_mm)");
}

}  // namespace

absl::StatusOr<std::shared_ptr<const NystromFactors>> GetNystromFactors(
    const State& state, FactorSource& source, const char* method, int64_t budget,
    const Progress& progress) {
  return source.Get<NystromFactors>(
      kNystromPart, [&]() -> absl::StatusOr<std::shared_ptr<const NystromFactors>> {
        const State::Nystrom& ny = state.nystrom;
        const Index m = ny.centers.rows();
        const Index C = ny.beta.cols();
        if (absl::Status s = BudgetCheck(method, NystromFactorBytes(m, C), budget); !s.ok()) {
          return s;
        }
        if (absl::Status s = progress.Report(0, "distribution: kernels"); !s.ok()) return s;
        // K_mm and Theta_mm as the fit computed them (TrainKernels of Z).
        absl::Status cancelled;
        KernelMatrices km;
        TrainKernels(state.problem.spec.kernel, ny.centers,
                     [&] {
                       cancelled = progress.Report(0, "distribution: kernels");
                       return cancelled.ok();
                     },
                     &km);
        if (!cancelled.ok()) return cancelled;
        auto f = std::make_shared<NystromFactors>();
        const double shift = FitShift(state);  // H's delta
        MatrixXd h = ny.gram + shift * km.ntk;
        absl::Status s = RefactorFitMatrix(
            std::move(h), absl::StrFormat("Theta_mn Theta_nm + %g Theta_mm", shift), 0.25,
            progress, &f->chol_h);
        if (!s.ok()) return s;
        if (s = FactorNngp(km.nngp, progress, &f->chol_k, &f->jitter_k); !s.ok()) return s;
        f->w = ny.nngp_theta;
        SolveLower(f->chol_k, &f->w);
        if (ny.mean_rhs.size() == 0) {
          f->mean_beta = ny.beta;
        } else {
          f->mean_beta = ny.mean_rhs;
          SolveCholesky(f->chol_h, &f->mean_beta);
        }
        return std::shared_ptr<const NystromFactors>(f);
      });
}

// EXACT: f(x) = f0(x) + Theta_xZ H^{-1} Theta_mn (T - F0), so the centered
// logits are Gaussian with mean center(Theta_xZ mean_beta) and covariance
// s(x) P, s(x) = K_xx - 2 psi(x).u(x) + |u(x)|^2, u(x) = W H^{-1} Theta_Zx
// (= Psi^T a(x)^T, a(x) = Theta_xZ H^{-1} Theta_mn).
void NystromExactBatch(const NystromFactors& f, const Batch& b, int C,
                       std::vector<PointDistribution>* out) {
  const MatrixXd mean = b.cross.ntk.transpose() * f.mean_beta;  // nb x C
  MatrixXd g = b.cross.ntk;
  SolveCholesky(f.chol_h, &g);
  const MatrixXd u = f.w * g;
  MatrixXd psi = b.cross.nngp;
  SolveLower(f.chol_k, &psi);
  StoreScalarVariance(mean, psi, u, u, b, C, out);
}

// MONTE_CARLO training side: z_s ~ N(0, I_m) per class from (seed, s)
// (NewSampleSet, as the exact model's), and beta_s = mean_beta -
// H^{-1} Theta_mn F0_s with Theta_mn F0_s = Theta_mn Psi z_s = W^T z_s.
// Stacked as MonteCarloSamples documents, with m rows in place of N, so
// that MonteCarloBatch (prior factor L_K, cross kernels against Z) draws
// f_s(x) = psi(x)^T z_s + e_s(x) + Theta_xZ beta_s.
absl::StatusOr<std::shared_ptr<const MonteCarloSamples>> GetNystromSamples(
    const NystromFactors& f, FactorSource& source, uint64_t seed, int S, int64_t budget,
    const Progress& progress) {
  return source.Get<MonteCarloSamples>(
      absl::StrCat("mc/seed=", seed, "/S=", S),
      [&]() -> absl::StatusOr<std::shared_ptr<const MonteCarloSamples>> {
        const Index m = f.chol_h.rows();
        const Index C = f.mean_beta.cols();
        const int64_t bytes = NystromFactorBytes(m, C) + 8 * 2 * m * int64_t{S} * C;
        if (absl::Status s = BudgetCheck("MONTE_CARLO", bytes, budget); !s.ok()) return s;
        if (absl::Status s = progress.Report(0, "distribution: samples"); !s.ok()) return s;
        std::shared_ptr<MonteCarloSamples> out = NewSampleSet(seed, S, C, m);
        MatrixXd b = f.w.transpose() * out->z_and_dual.topRows(m);  // Theta_mn F0_s
        SolveCholesky(f.chol_h, &b);
        SetLinearSampleDuals(f.mean_beta, b, out.get());
        return std::shared_ptr<const MonteCarloSamples>(out);
      });
}

}  // namespace ntk::distribution_internal
