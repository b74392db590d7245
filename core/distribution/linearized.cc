// ntk/core/distribution/linearized.cc: method LINEARIZED (2a) of
// docs/model-contract.md "4. PredictDistribution": the map F0 -> f(x)
// linearized at F0 = 0, with the factors E_c, L_M that LAPLACE_POSTERIOR
// (laplace.cc) shares. See methods.h and factors.h.
#include "absl/strings/str_cat.h"
#include "core/distribution/methods.h"
#include "core/distribution/moments.h"
#include "core/numerics/parallel.h"
#include "core/training/solve.h"
#include "core/training/solvers.h"

namespace ntk::distribution_internal {

absl::StatusOr<std::shared_ptr<const MatrixFactor>> GetZeroF0Dual(
    const State& state, FactorSource& source, const MatrixXd& theta) {
  return source.Get<MatrixFactor>(
      "zero_f0_dual", [&]() -> absl::StatusOr<std::shared_ptr<const MatrixFactor>> {
        auto dual = std::make_shared<MatrixFactor>();
        if (!HasInitialOutputs(state)) {
          dual->value = state.dual;
        } else {
          SolveOptions opt;
          opt.warm_start_dual = &state.dual;
          absl::StatusOr<SolverSolution> sol = Solve(state.problem, theta, opt);
          if (!sol.ok()) return sol.status();
          dual->value = std::move(sol->dual);
        }
        return std::shared_ptr<const MatrixFactor>(dual);
      });
}

absl::StatusOr<std::shared_ptr<const LinearizedFactors>> GetLinearizedFactors(
    const State& state, FactorSource& source, TrainingKernelsOnce& kernels,
    bool need_covariance, int64_t budget, const Progress& progress) {
  return source.Get<LinearizedFactors>(
      "linearized", [&]() -> absl::StatusOr<std::shared_ptr<const LinearizedFactors>> {
        const Index N = state.x_train.rows();
        const Index C = state.problem.targets.cols();
        const double lambda = state.problem.lambda;
        if (absl::Status s = BudgetCheck(
                need_covariance ? "LINEARIZED" : "LAPLACE_POSTERIOR",
                8 * ((C + (need_covariance ? 3 : 1)) * N * N + N * C), budget);
            !s.ok()) {
          return s;
        }
        absl::StatusOr<const KernelMatrices*> km = kernels.Get(progress);
        if (!km.ok()) return km.status();
        const MatrixXd& ntk = (*km)->ntk;
        absl::StatusOr<std::shared_ptr<const MatrixFactor>> dual0 =
            GetZeroF0Dual(state, source, ntk);
        if (!dual0.ok()) return dual0.status();
        // F* at F0 = 0 is Theta dual0; the fit's own logits when it used F0 = 0.
        const MatrixXd fstar = HasInitialOutputs(state)
                                   ? MatrixXd(ntk * (*dual0)->value)
                                   : state.train_logits;
        const MatrixXd p = RowSoftmax(fstar);

        auto f = std::make_shared<LinearizedFactors>();
        f->mean_dual = (*dual0)->value;
        f->e.resize(C);
        MatrixXd m = MatrixXd::Zero(N, N);
        MatrixXd work(N, N);
        for (Index c = 0; c < C; ++c) {
          if (absl::Status s =
                  progress.Report(static_cast<double>(c) / C, "distribution: factor");
              !s.ok()) {
            return s;
          }
          const VectorXd sqrt_d = p.col(c).array().sqrt();
          // S_c = I + D^{1/2} (Theta / lambda) D^{1/2} = L_c L_c^T.
          work = (sqrt_d.asDiagonal() * ntk * sqrt_d.asDiagonal()) / lambda;
          work.diagonal().array() += 1.0;
          MatrixXd l;
          if (!CholeskyLower(work, &l)) {
            return absl::InternalError(
                "distribution: I + D^1/2 Theta D^1/2 / lambda is not positive "
                "definite (Theta_XX not PSD?)");
          }
          // V = L_c^{-1} D^{1/2}; E_c = V^T V = D^{1/2} S_c^{-1} D^{1/2} (dsyrk).
          work = sqrt_d.asDiagonal();
          SolveLower(l, &work);
          l.resize(0, 0);
          MatrixXd e = MatrixXd::Zero(N, N);
          e.selfadjointView<Eigen::Lower>().rankUpdate(work.transpose());
          e.triangularView<Eigen::StrictlyUpper>() = e.transpose();
          m += e;
          f->e[c] = std::move(e);
        }
        if (!CholeskyLower(m, &f->chol_m)) {
          return absl::InternalError("distribution: M = sum_c E_c is not positive definite");
        }
        return std::shared_ptr<const LinearizedFactors>(f);
      });
}

absl::StatusOr<std::shared_ptr<const LinearizedCovarianceFactors>>
GetLinearizedCovarianceFactors(const State& state, FactorSource& source,
                               TrainingKernelsOnce& kernels, const LinearizedFactors& lin,
                               int64_t budget, const Progress& progress) {
  return source.Get<LinearizedCovarianceFactors>(
      "linearized_cov",
      [&]() -> absl::StatusOr<std::shared_ptr<const LinearizedCovarianceFactors>> {
        const Index N = state.x_train.rows();
        const Index C = state.problem.targets.cols();
        if (absl::Status s = BudgetCheck("LINEARIZED", 8 * ((C + 3) * N * N + N * C), budget);
            !s.ok()) {
          return s;
        }
        absl::StatusOr<const KernelMatrices*> km = kernels.Get(progress);
        if (!km.ok()) return km.status();
        auto cov = std::make_shared<LinearizedCovarianceFactors>();
        cov->h = MatrixXd::Zero(N, N);
        MatrixXd work(N, N);
        for (Index c = 0; c < C; ++c) {
          if (absl::Status s =
                  progress.Report(static_cast<double>(c) / C, "distribution: factor H");
              !s.ok()) {
            return s;
          }
          // H += E_c K E_c (two dgemm).
          const MatrixXd& e = lin.e[c];
          work.noalias() = e * (*km)->nngp;
          cov->h.noalias() += work * e;
        }
        Symmetrize(&cov->h);
        cov->nngp_train = (*km)->nngp;
        return std::shared_ptr<const LinearizedCovarianceFactors>(cov);
      });
}

// With k' = Theta_Xx / lambda, a_c = E_c k', b_c = E_c K_Xx,
// alpha_c = L_M^{-1} a_c, beta_c = L_M^{-1} b_c, g_c = M^{-1} a_c = L_M^{-T} alpha_c,
// h_c = E_c K_XX a_c. The B-blocks: B_cc' = delta_cc' E_c - E_c M^{-1} E_c'.
// Both LINEARIZED's and LAPLACE_POSTERIOR's means are Predict's logits at
// F0 = 0: Theta_xX mean_dual.
LinearizedProjections ProjectLinearized(const LinearizedFactors& f, const Batch& b, int C,
                                        double lambda) {
  const Index N = f.chol_m.rows();
  const Index nb = b.size;
  LinearizedProjections p;
  p.mean = b.cross.ntk.transpose() * f.mean_dual;  // nb x C
  p.kp = b.cross.ntk / lambda;                     // k', N x nb
  // Class blocks side by side: column c * nb + j.
  p.a.resize(N, C * nb);
  for (Index c = 0; c < C; ++c) p.a.middleCols(c * nb, nb).noalias() = f.e[c] * p.kp;
  p.alpha = p.a;
  SolveLower(f.chol_m, &p.alpha);
  return p;
}

// LINEARIZED: df(x) = df0(x) - Q^T dF0 with Q column c = B (e_c (x) k')
// (block c'' of it: delta a_c - E_c'' g_c). (f0(x), F0) ~ N(0, K (x) I):
//   Cov = K_xx I - T1 - T1^T + T2,
//   T1_cc' = Cov(Q^T F0, f0(x))_cc' = k'^T B_cc' K_Xx
//          = delta k'.b_c - alpha_c.beta_c',
//   T2_cc' = (Q^T (K_XX (x) I) Q)_cc'
//          = delta a_c^T K a_c - h_c.g_c' - g_c.h_c' + g_c^T H g_c',
//   H = sum_c E_c K E_c (cached). ~13 C N^2 flops per point.
void LinearizedBatch(const LinearizedFactors& f, const LinearizedCovarianceFactors& fc,
                     const Batch& b, int C, double lambda,
                     std::vector<PointDistribution>* out) {
  const Index N = f.chol_m.rows();
  const Index nb = b.size;
  const LinearizedProjections p = ProjectLinearized(f, b, C, lambda);
  const MatrixXd& kp = p.kp;
  const MatrixXd& a = p.a;
  const MatrixXd& alpha = p.alpha;
  MatrixXd bm, beta, g, ka, h, hg;
  bm.resize(N, C * nb);
  for (Index c = 0; c < C; ++c) {
    bm.middleCols(c * nb, nb).noalias() = f.e[c] * b.cross.nngp;
  }
  beta = bm;
  SolveLower(f.chol_m, &beta);
  g = alpha;
  SolveLowerT(f.chol_m, &g);
  ka.noalias() = fc.nngp_train * a;
  h.resize(N, C * nb);
  for (Index c = 0; c < C; ++c) {
    h.middleCols(c * nb, nb).noalias() = f.e[c] * ka.middleCols(c * nb, nb);
  }
  hg.noalias() = fc.h * g;
  auto dot = [](const MatrixXd& u, Index i, const MatrixXd& v, Index k) {
    return u.col(i).dot(v.col(k));
  };
  RegionExceptions trap;  // core/numerics/parallel.h
#pragma omp parallel for schedule(static)
  for (Index j = 0; j < nb; ++j) {
    trap.Run([&] {
      MatrixXd cov(C, C);
      MatrixXd t1(C, C);
      for (Index c = 0; c < C; ++c) {
        for (Index c2 = 0; c2 < C; ++c2) {
          t1(c, c2) = -dot(alpha, c * nb + j, beta, c2 * nb + j);
        }
        t1(c, c) += kp.col(j).dot(bm.col(c * nb + j));
      }
      for (Index c = 0; c < C; ++c) {
        for (Index c2 = 0; c2 <= c; ++c2) {
          const Index i1 = c * nb + j, i2 = c2 * nb + j;
          double t2 = -dot(h, i1, g, i2) - dot(g, i1, h, i2) + dot(g, i1, hg, i2);
          if (c == c2) t2 += dot(a, i1, ka, i1);
          double v = t2 - t1(c, c2) - t1(c2, c);
          if (c == c2) v += b.diag.nngp[j];
          cov(c, c2) = v;
          cov(c2, c) = v;
        }
      }
      StoreCenteredLogits(p.mean.row(j).transpose(), cov, &(*out)[b.begin + j]);
    });
  }
  trap.Rethrow();
}

}  // namespace ntk::distribution_internal
