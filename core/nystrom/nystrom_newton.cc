// ntk/core/nystrom/nystrom_newton.cc: the 2a solver of a Nystrom model,
// Newton's method with FALKON-preconditioned conjugate gradients in the
// m x C parametrization beta (nystrom_solve.h; docs/model-contract.md
// "6. Nystrom models"). Written from the papers cited there; the
// preconditioner follows FALKON's construction with the per-point
// curvature W_i of the cross-entropy replaced by its mean.
#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "core/numerics/cholesky.h"
#include "core/numerics/parallel.h"
#include "core/numerics/work_steps.h"
#include "core/nystrom/nystrom_solve.h"
#include "core/training/newton_cg_preconditioner.h"  // BlockHessian
#include "core/training/solver_util.h"

namespace ntk::nystrom_internal {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using solver_internal::BlockHessian;

using solver_internal::Dot;
using solver_internal::InfNorm;

// M^{-1} = L^{-T} R^{-T} R^{-1} L^{-1} with Theta_mm + jitter I = L L^T and
// s L^T L + lambda I = R R^T: the inverse of the FALKON approximation
// L (s L^T L + lambda I) L^T = s Theta_mm^2 + lambda Theta_mm of the Hessian.
class FalkonPreconditioner {
 public:
  // CANCELLED / FAILED_PRECONDITION from the Cholesky of Theta_mm.
  absl::Status Init(const MatrixXd& theta_mm, double mean_diag, const JitterPolicy& policy,
                    const ProgressFn& progress) {
    const double scale = mean_diag > 0 ? mean_diag : 1.0;
    // Theta_mm is PSD and may be singular to rounding (duplicate centers):
    // the preconditioner only needs a nearby positive definite matrix.
    for (double jitter = 0;; jitter = jitter == 0 ? policy.relative * scale : 10 * jitter) {
      l_ = theta_mm;
      l_.diagonal().array() += jitter;
      const absl::Status st = CholeskyLowerInPlace(
          &l_, [&] { return ReportProgress(progress, 0.0, "preconditioner"); });
      if (st.ok()) break;
      if (st.code() == absl::StatusCode::kCancelled) return st;
      if (jitter > policy.max_relative * scale) {
        return absl::FailedPreconditionError(
            "features: the center kernel Theta_mm is not positive definite even with jitter");
      }
    }
    ltl_.noalias() = l_.transpose().triangularView<Eigen::Upper>() * l_;
    return absl::OkStatus();
  }
  // Rebuild R for the curvature scale s = N w / m.
  void Update(double s, double lambda) {
    r_ = s * ltl_;
    r_.diagonal().array() += lambda;
    // s L^T L + lambda I is positive definite (lambda > 0).
    (void)CholeskyLowerInPlace(&r_);
  }
  void Apply(const MatrixXd& v, MatrixXd* out) const {
    *out = v;
    l_.triangularView<Eigen::Lower>().solveInPlace(*out);
    r_.triangularView<Eigen::Lower>().solveInPlace(*out);
    r_.transpose().triangularView<Eigen::Upper>().solveInPlace(*out);
    l_.transpose().triangularView<Eigen::Upper>().solveInPlace(*out);
  }

 private:
  MatrixXd l_, ltl_, r_;
};

class NystromNewton {
 public:
  NystromNewton(const NystromKernels& k, const MatrixXd& y, const MatrixXd& f0, double lambda,
                const NystromSolveOptions& o)
      : k_(k), y_(y), f0_(f0), lambda_(lambda), o_(o), n_(y.rows()), c_(y.cols()),
        m_(k.theta_mm.rows()) {}

  absl::StatusOr<NystromSolution> Run() {
    if (absl::Status s = precond_.Init(k_.theta_mm, k_.mean_diag, JitterPolicy(), o_.progress);
        !s.ok()) {
      return s;
    }
    beta_ = MatrixXd::Zero(m_, c_);
    u_ = MatrixXd::Zero(m_, c_);  // Theta_mm beta
    t_ = MatrixXd::Zero(n_, c_);  // Theta_nm beta
    SetIterate();
    psi_ = Psi(t_, beta_, u_);
    double first_rel = -1, best_rel = std::numeric_limits<double>::infinity();
    int stagnant = 0;
    for (int it = 0;; ++it) {
      // g = Theta_mn (p - Y) + lambda Theta_mm beta; residual g / lambda.
      g_.noalias() = k_.theta_nm.transpose() * (p_ - y_);
      g_ += lambda_ * u_;
      info_.fixed_point_residual = InfNorm(g_) / lambda_;
      const double rel = info_.fixed_point_residual / std::max(1.0, InfNorm(f_));
      info_.relative_residual = rel;
      if (first_rel < 0) first_rel = std::max(rel, 10 * o_.tolerance);
      if (rel <= o_.tolerance) break;
      if (rel < 0.5 * best_rel) {
        best_rel = rel;
        stagnant = 0;
      } else if (rel < 1e2 * o_.tolerance || (rel < 1e-8 && ++stagnant >= 3)) {
        break;  // the rounding floor (as the exact solver, solvers.h)
      }
      if (it >= o_.max_newton_iterations) {
        return absl::InternalError(absl::StrFormat(
            "2a Nystrom Newton solver did not converge in %d iterations (relative residual "
            "%.3g, target %.3g)",
            o_.max_newton_iterations, rel, o_.tolerance));
      }
      frac_ = std::log(first_rel / std::max(rel, 1e-300)) / std::log(first_rel / o_.tolerance);
      if (!ReportProgress(o_.progress, frac_, "newton")) return Cancelled();
      if (!NewtonStep(rel)) return Cancelled();
      double slope = Dot(g_, d_);
      if (!(slope < 0)) {
        d_ = -g_;  // CG stopped on a nearly singular system: steepest descent
        dt_.noalias() = -(k_.theta_nm * g_);
        du_.noalias() = -(k_.theta_mm * g_);
        slope = Dot(g_, d_);
        if (!(slope < 0)) break;  // g == 0 to rounding
      }
      LineSearchAndStep(slope);
      info_.newton_iterations = it + 1;
    }
    NystromSolution sol;
    sol.info = info_;
    sol.logits = std::move(f_);
    sol.beta = std::move(beta_);
    return sol;
  }

 private:
  static absl::Status Cancelled() {
    return absl::CancelledError("fit cancelled during the 2a Nystrom Newton solve");
  }
  void SetIterate() {
    f_ = f0_ + t_;
    p_ = RowSoftmax(f_);
  }
  double Psi(const MatrixXd& t, const MatrixXd& beta, const MatrixXd& u) const {
    return SumCrossEntropy(y_, f0_ + t) + 0.5 * lambda_ * Dot(beta, u);
  }
  // H v = Theta_mn W Theta_nm v + lambda Theta_mm v.
  void Hessian(const MatrixXd& v, MatrixXd* out) {
    nv_.noalias() = k_.theta_nm * v;
    hess_.ApplyW(nv_, &wv_);
    out->noalias() = k_.theta_nm.transpose() * wv_;
    out->noalias() += lambda_ * (k_.theta_mm * v);
  }
  // PCG on H d = -g; leaves d_, dt_ = Theta_nm d, du_ = Theta_mm d. False on cancel.
  bool NewtonStep(double rel) {
    hess_.Build(p_);
    const double w = hess_.vals.size() > 0 ? hess_.vals.mean() : 0.0;
    precond_.Update(static_cast<double>(n_) * w / static_cast<double>(m_), lambda_);
    // Inexact-Newton forcing term as the exact solver's (solvers.h).
    const double eta =
        std::clamp(std::max(std::min(rel, std::sqrt(rel)), 0.1 * o_.tolerance / rel), 1e-14,
                   1e-4);
    d_ = MatrixXd::Zero(m_, c_);
    r_ = -g_;
    const double r0 = r_.norm();
    precond_.Apply(r_, &z_);
    q_ = z_;
    double rz = Dot(r_, z_);
    for (int cg = 0; cg < o_.max_cg_iterations && r_.norm() > eta * r0; ++cg) {
      if (!ReportProgress(o_.progress, frac_, "newton")) return false;
      Hessian(q_, &hq_);
      const double qhq = Dot(q_, hq_);
      if (!(qhq > 0)) break;
      const double alpha = rz / qhq;
      d_ += alpha * q_;
      r_ -= alpha * hq_;
      ++info_.cg_iterations;
      precond_.Apply(r_, &z_);
      const double rz_new = Dot(r_, z_);
      q_ = z_ + (rz_new / rz) * q_;
      rz = rz_new;
    }
    dt_.noalias() = k_.theta_nm * d_;
    du_.noalias() = k_.theta_mm * d_;
    return true;
  }
  // Backtracking (Armijo, c = 1e-4) on Psi; the full step when the predicted
  // decrease is below Psi's rounding level.
  void LineSearchAndStep(double slope) {
    const double noise = 1e3 * std::numeric_limits<double>::epsilon() * (std::abs(psi_) + 1);
    double step = 1.0, psi_new = psi_;
    for (int ls = 0; ls < 60; ++ls) {
      psi_new = Psi(t_ + step * dt_, beta_ + step * d_, u_ + step * du_);
      if (psi_new <= psi_ + 1e-4 * step * slope || -slope * step < noise) break;
      step *= 0.5;
    }
    beta_ += step * d_;
    t_ += step * dt_;
    u_ += step * du_;
    psi_ = psi_new;
    SetIterate();
  }

  const NystromKernels& k_;
  const MatrixXd& y_;
  const MatrixXd& f0_;
  const double lambda_;
  const NystromSolveOptions& o_;
  const Index n_, c_, m_;
  FalkonPreconditioner precond_;
  BlockHessian hess_;
  SolverInfo info_;
  double psi_ = 0, frac_ = 0;
  MatrixXd beta_, u_, t_, f_, p_, g_, d_, dt_, du_, r_, z_, q_, hq_, nv_, wv_;
};

}  // namespace

absl::StatusOr<NystromSolution> SolveNystromNewton(const NystromKernels& k, const MatrixXd& y,
                                                   const MatrixXd& f0, double lambda,
                                                   const NystromSolveOptions& options) {
  if (!(lambda > 0) || !std::isfinite(lambda)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "spec.training.regularization: 2a needs lambda > 0, got %g", lambda));
  }
  NystromNewton solver(k, y, f0, lambda, options);
  return solver.Run();
}

}  // namespace ntk::nystrom_internal

namespace ntk {


absl::Status NewtonSummaries(const NystromKernels& k, const Eigen::MatrixXd& p,
                             const ProgressFn& progress, Eigen::MatrixXd* hessian,
                             Eigen::MatrixXd* cross) {
  using Eigen::Index;
  const Index n = k.theta_nm.rows(), m = k.theta_nm.cols(), c = p.cols();
  hessian->setZero(m * c, m * c);
  cross->setZero(m * c, m * c);
  // Rows per block: one pair's two products, 4 rows m^2 flops, per step.
  const double mm = std::max(1.0, static_cast<double>(m) * static_cast<double>(m));
  const Index block = std::clamp<Index>(static_cast<Index>(kFlopsPerStep / (4 * mm)), 1, 4096);
  Eigen::MatrixXd tw;
  for (Index r0 = 0; r0 < n; r0 += block) {
    const Index rows = std::min(block, n - r0);
    const auto t = k.theta_nm.middleRows(r0, rows);
    const auto kn = k.nngp_nm.middleRows(r0, rows);
    for (Index a = 0; a < c; ++a) {
      for (Index b = a; b < c; ++b) {
        if (!ReportProgress(progress, static_cast<double>(r0) / n, "summaries")) {
          return absl::CancelledError("fit cancelled while accumulating the 2a summaries");
        }
        // W_i[a, b] = delta_ab p_ia - p_ia p_ib
        Eigen::VectorXd w =
            -(p.col(a).segment(r0, rows).array() * p.col(b).segment(r0, rows).array()).matrix();
        if (a == b) w += p.col(a).segment(r0, rows);
        tw.noalias() = t.transpose() * w.asDiagonal();  // m x rows
        ParallelBlocks(m, 64, [&](int64_t j, int64_t width) {
          hessian->block(a * m, b * m + j, m, width).noalias() += tw * t.middleCols(j, width);
          cross->block(a * m, b * m + j, m, width).noalias() += tw * kn.middleCols(j, width);
        });
      }
    }
  }
  // W_i is symmetric: block (b, a) = block (a, b) for both.
  for (Index a = 0; a < c; ++a) {
    for (Index b = a + 1; b < c; ++b) {
      hessian->block(b * m, a * m, m, m) = hessian->block(a * m, b * m, m, m);
      cross->block(b * m, a * m, m, m) = cross->block(a * m, b * m, m, m);
    }
  }
  return absl::OkStatus();
}

}  // namespace ntk
