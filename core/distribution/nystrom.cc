// ntk/core/distribution/nystrom.cc: PredictDistribution for Nystrom models
// of regime 2b / 2c (docs/model-contract.md "6. Nystrom models",
// "PredictDistribution of a Nystrom model"): the factors built from the
// fit's m x m summaries (never the training rows, which the model does not
// keep), method EXACT (and LINEARIZED, which is EXACT there) and the
// MONTE_CARLO sample sets; and for regime 2a LINEARIZED and
// LAPLACE_POSTERIOR from the fit's Newton summaries. See methods.h.
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
#include "core/distribution/linearized_solver.h"
#include "core/distribution/methods.h"
#include "core/distribution/moments.h"
#include "core/training/problem.h"

namespace ntk::distribution_internal {

namespace {

// The lower Cholesky factor of a PSD m x m matrix `a` (K_mm, or Theta_mm
// for LAPLACE_POSTERIOR's 2a factor), named `name` in errors: `a` itself
// when it is numerically positive definite, else a + j I with j =
// kPriorRelativeJitter * mean(diag a), x10 per failed Cholesky up to
// kMaxRelativeJitter (no jitter first, so that with m = N the prior is the
// exact model's K_XX, not a perturbation of it).
absl::Status FactorPsd(const MatrixXd& a_in, const char* name, const Progress& progress,
                       MatrixXd* chol, double* jitter) {
  double base = a_in.rows() > 0 ? a_in.diagonal().mean() : 1.0;
  if (!(base > 0)) base = 1.0;
  for (double rel = 0; rel <= kMaxRelativeJitter * 1.0001;
       rel = rel == 0 ? kPriorRelativeJitter : rel * 10) {
    MatrixXd a = a_in;
    a.diagonal().array() += rel * base;
    const absl::Status s =
        CholeskyLower(std::move(a), chol, progress, 0.5, "distribution: prior factor");
    if (s.code() == absl::StatusCode::kCancelled) return s;
    if (s.ok()) {
      *jitter = rel * base;
      return absl::OkStatus();
    }
  }
  return absl::InternalError(absl::StrCat(
      "distribution: ", name, " + jitter I is not positive definite for any jitter up to "
      "1e-4 * mean(diag ", name, ")"));
}

// K_mm and Theta_mm as the fit computed them (TrainKernels of Z).
absl::StatusOr<KernelMatrices> CenterKernels(const State& state, const Progress& progress) {
  if (absl::Status s = progress.Report(0, "distribution: kernels"); !s.ok()) return s;
  absl::Status cancelled;
  KernelMatrices km;
  TrainKernels(state.problem.spec.kernel, state.nystrom.centers,
               [&] {
                 cancelled = progress.Report(0, "distribution: kernels");
                 return cancelled.ok();
               },
               &km);
  if (!cancelled.ok()) return cancelled;
  return km;
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
        absl::StatusOr<KernelMatrices> km = CenterKernels(state, progress);
        if (!km.ok()) return km.status();
        auto f = std::make_shared<NystromFactors>();
        const double shift = FitShift(state);  // H's delta
        MatrixXd h = ny.gram + shift * km->ntk;
        absl::Status s = RefactorFitMatrix(
            std::move(h), absl::StrFormat("Theta_mn Theta_nm + %g Theta_mm", shift), 0.25,
            progress, &f->chol_h);
        if (!s.ok()) return s;
        if (s = FactorPsd(km->nngp, "K_mm", progress, &f->chol_k, &f->jitter_k); !s.ok()) {
          return s;
        }
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

// ---- 2a: LINEARIZED and LAPLACE_POSTERIOR from the Newton summaries ----
//
// docs/model-contract.md "PredictDistribution of a Nystrom model", 2a. In
// the phi-features of the contract, with Hn = (L_T^{-1} (x) I) Hb (L_T^{-T}
// (x) I) and E = (L_T^{-1} (x) I) newton_cross (L_K^{-T} (x) I), the
// formulas become, in beta (index c m + a; t = Theta_Zx, k = K_Zx):
//   LINEARIZED  Cov = U (I_C (x) K_mm^{-1}) U^T + (K_xx - |psi|^2) I,
//               U = (I_C (x) k)^T - (I_C (x) t)^T Hb^{-1} newton_cross   (C x m C)
//   LAPLACE     Cov = (Theta_xx - |phi|^2) / lambda I + (I_C (x) t)^T Hb^{-1} (I_C (x) t)
// (L_T cancels in both). Row block c of (I_C (x) t)^T X is t^T X[c m .. c m + m, :].

absl::StatusOr<std::shared_ptr<const Nystrom2aFactors>> GetNystrom2aFactors(
    const State& state, FactorSource& source, bool laplace, int64_t budget,
    const Progress& progress) {
  return source.Get<Nystrom2aFactors>(
      laplace ? kNystrom2aLaplacePart : kNystrom2aLinearizedPart,
      [&]() -> absl::StatusOr<std::shared_ptr<const Nystrom2aFactors>> {
        const State::Nystrom& ny = state.nystrom;
        const Index m = ny.centers.rows();
        const Index C = ny.beta.cols();
        if (absl::Status s = BudgetCheck(laplace ? "LAPLACE_POSTERIOR" : "LINEARIZED",
                                         Nystrom2aFactorBytes(m, C), budget);
            !s.ok()) {
          return s;
        }
        absl::StatusOr<KernelMatrices> km = CenterKernels(state, progress);
        if (!km.ok()) return km.status();
        auto f = std::make_shared<Nystrom2aFactors>();
        double jitter = 0;
        absl::Status s = laplace ? FactorPsd(km->ntk, "Theta_mm", progress, &f->chol, &jitter)
                                 : FactorPsd(km->nngp, "K_mm", progress, &f->chol, &jitter);
        if (!s.ok()) return s;
        // Hb = newton_hessian + lambda (I_C (x) (Theta_mm + j I)): j = 0 (the
        // fit's Hessian) unless Theta_mm is singular to rounding (duplicate
        // centers), then as FactorPsd.
        const double lambda = state.problem.lambda;
        const double scale = km->ntk.rows() > 0 && km->ntk.diagonal().mean() > 0
                                 ? km->ntk.diagonal().mean()
                                 : 1.0;
        MatrixXd h;
        for (double rel = 0;; rel = rel == 0 ? kPriorRelativeJitter : rel * 10) {
          if (rel > kMaxRelativeJitter * 1.0001) {
            return absl::InternalError(
                "distribution: the Newton Hessian of the 2a Nystrom fit is not positive "
                "definite for any jitter up to 1e-4 * mean(diag Theta_mm)");
          }
          h = ny.newton_hessian;
          for (Index c = 0; c < C; ++c) {
            h.block(c * m, c * m, m, m) += lambda * km->ntk;
            h.block(c * m, c * m, m, m).diagonal().array() += lambda * rel * scale;
          }
          s = CholeskyInSteps(&h, "the Newton Hessian", progress.fn(), "distribution: factor");
          if (s.ok()) break;
          if (s.code() == absl::StatusCode::kCancelled) return s;
        }
        if (laplace) {
          s = InverseInSteps(&h, progress.fn(), "distribution: factor", &f->solved);
        } else {
          f->solved = ny.newton_cross;
          s = SolveCholeskyInSteps(h, progress.fn(), "distribution: factor", &f->solved);
        }
        if (!s.ok()) return s;
        return std::shared_ptr<const Nystrom2aFactors>(f);
      });
}

namespace {

// Y_c = T^T X[c m .. c m + m, :] (nb x m C) for c = 0..C-1, asking progress
// before each (2 nb m^2 C flops).
absl::StatusOr<std::vector<MatrixXd>> ClassRowProducts(const MatrixXd& t, const MatrixXd& x,
                                                       const Progress& progress) {
  const Index m = t.rows();
  const Index C = x.rows() / std::max<Index>(1, m);
  std::vector<MatrixXd> y(C);
  for (Index c = 0; c < C; ++c) {
    if (absl::Status s = progress.Report(0, "distribution: points"); !s.ok()) return s;
    y[c].noalias() = t.transpose() * x.middleRows(c * m, m);
  }
  return y;
}

// max(0, diag - |L^{-1} x_j|^2) per column j: a query's prior residual, a
// difference of O(diag) terms that is ~0 at the centers (negative: rounding).
VectorXd Residuals(const MatrixXd& chol, MatrixXd x, const VectorXd& diag) {
  SolveLower(chol, &x);
  return (diag - x.colwise().squaredNorm().transpose()).cwiseMax(0.0);
}

}  // namespace

absl::Status Nystrom2aLinearizedBatch(const Nystrom2aFactors& f, const MatrixXd& beta,
                                      const Batch& b, const Progress& progress,
                                      std::vector<PointDistribution>* out) {
  const Index m = f.chol.rows(), nb = b.size, C = beta.cols();
  absl::StatusOr<std::vector<MatrixXd>> y = ClassRowProducts(b.cross.ntk, f.solved, progress);
  if (!y.ok()) return y.status();
  // g[c'] column j C + c = U_j[c, c' block]^T, then L_K^{-1} of it.
  std::vector<MatrixXd> g(C, MatrixXd(m, nb * C));
  for (Index c = 0; c < C; ++c) {
    for (Index c2 = 0; c2 < C; ++c2) {
      for (Index j = 0; j < nb; ++j) {
        g[c2].col(j * C + c) = -(*y)[c].row(j).segment(c2 * m, m).transpose();
        if (c2 == c) g[c2].col(j * C + c) += b.cross.nngp.col(j);
      }
    }
  }
  y->clear();
  for (Index c2 = 0; c2 < C; ++c2) SolveLower(f.chol, &g[c2]);
  const VectorXd resid = Residuals(f.chol, b.cross.nngp, b.diag.nngp);
  std::vector<MatrixXd> cov(nb, MatrixXd::Zero(C, C));
  for (Index j = 0; j < nb; ++j) {
    for (Index c2 = 0; c2 < C; ++c2) {
      const auto gj = g[c2].middleCols(j * C, C);
      cov[j].noalias() += gj.transpose() * gj;
    }
    cov[j].diagonal().array() += resid[j];
  }
  return StoreWithPredictMean(beta, b, cov, out);
}

absl::Status Nystrom2aLaplaceBatch(const Nystrom2aFactors& f, const MatrixXd& beta,
                                   double lambda, const Batch& b, const Progress& progress,
                                   std::vector<PointDistribution>* out) {
  const Index m = f.chol.rows(), nb = b.size, C = beta.cols();
  absl::StatusOr<std::vector<MatrixXd>> y = ClassRowProducts(b.cross.ntk, f.solved, progress);
  if (!y.ok()) return y.status();
  const VectorXd resid = Residuals(f.chol, b.cross.ntk, b.diag.ntk) / lambda;
  std::vector<MatrixXd> cov(nb, MatrixXd::Zero(C, C));
  for (Index j = 0; j < nb; ++j) {
    for (Index c = 0; c < C; ++c) {
      for (Index c2 = 0; c2 < C; ++c2) {
        cov[j](c, c2) = (*y)[c].row(j).segment(c2 * m, m).dot(b.cross.ntk.col(j));
      }
    }
    cov[j] = (0.5 * (cov[j] + cov[j].transpose())).eval();
    cov[j].diagonal().array() += resid[j];
  }
  return StoreWithPredictMean(beta, b, cov, out);
}

}  // namespace ntk::distribution_internal
