// Exact streamed LINEARIZED covariance; see linearized_solver.h and
// docs/linearized-derivation.md for the formulas and the cost model.
#include "core/distribution/linearized_solver.h"

#include <cmath>
#include <string>

#include <lapacke.h>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/numerics/parallel.h"

namespace ntk {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

absl::Status Cancelled() {
  return absl::CancelledError("linearized: cancelled");
}

bool Report(const ProgressFn& progress, double fraction, const char* phase) {
  return !progress || progress(fraction, phase);
}

// In place: the lower triangle of *a becomes L with L L^T = a.
absl::Status CholeskyInPlace(MatrixXd* a, const char* what) {
  const lapack_int info = LAPACKE_dpotrf(
      LAPACK_COL_MAJOR, 'L', static_cast<lapack_int>(a->rows()), a->data(),
      static_cast<lapack_int>(a->outerStride()));
  if (info != 0) {
    return absl::InternalError(absl::StrFormat(
        "linearized: %s is not positive definite (LAPACK dpotrf info %d; "
        "Theta_XX not PSD?)",
        what, static_cast<int>(info)));
  }
  return absl::OkStatus();
}

// *work = S_c = I + D^{1/2} Theta D^{1/2} / lambda (both triangles), then its
// lower Cholesky factor in place.
absl::Status FactorClass(const MatrixXd& theta, const VectorXd& sqrt_p,
                         double lambda, MatrixXd* work) {
  const VectorXd s = sqrt_p / std::sqrt(lambda);
  work->noalias() = s.asDiagonal() * theta * s.asDiagonal();
  work->diagonal().array() += 1.0;
  return CholeskyInPlace(work, "I + D_c^1/2 Theta D_c^1/2 / lambda");
}

// x <- E_c x = D^{1/2} L^{-T} L^{-1} D^{1/2} x with L the lower factor of S_c
// in `chol` (two dtrsm, 2 N^2 flops per column).
void ApplyE(const MatrixXd& chol, const VectorXd& sqrt_p, MatrixXd* x) {
  *x = sqrt_p.asDiagonal() * (*x);
  chol.triangularView<Eigen::Lower>().solveInPlace(*x);
  chol.triangularView<Eigen::Lower>().transpose().solveInPlace(*x);
  *x = sqrt_p.asDiagonal() * (*x);
}

double ColDot(const MatrixXd& a, Index i, const MatrixXd& b, Index j) {
  return a.col(i).dot(b.col(j));
}

}  // namespace

int64_t LinearizedFactor::Bytes() const {
  return 8 * static_cast<int64_t>(theta_.size() + nngp_.size() +
                                  chol_m_.size() + sqrt_p_.size());
}

absl::StatusOr<std::shared_ptr<const LinearizedFactor>> PrepareLinearized(
    MatrixXd theta, MatrixXd nngp, const MatrixXd& p, double lambda,
    const ProgressFn& progress) {
  const Index n = theta.rows();
  if (n == 0 || theta.cols() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: theta must be square and non-empty, got %d x %d",
        theta.rows(), theta.cols()));
  }
  if (nngp.rows() != n || nngp.cols() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: nngp must be %d x %d like theta, got %d x %d", n, n,
        nngp.rows(), nngp.cols()));
  }
  if (p.rows() != n || p.cols() < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: p must be %d x C (C >= 1), got %d x %d", n, p.rows(),
        p.cols()));
  }
  if (!(p.array() >= 0.0).all() || !(p.array() <= 1.0).all()) {
    return absl::InvalidArgumentError(
        "linearized: p must hold probabilities in [0, 1]");
  }
  if (!(lambda > 0) || !std::isfinite(lambda)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: lambda must be finite and > 0, got %g", lambda));
  }
  const Index c_count = p.cols();
  auto f = std::make_shared<LinearizedFactor>();
  f->sqrt_p_ = p.array().sqrt();
  f->lambda_ = lambda;
  // M's lower triangle accumulates sum_c D^{1/2} S_c^{-1} D^{1/2}.
  MatrixXd m = MatrixXd::Zero(n, n);
  MatrixXd work(n, n);
  for (Index c = 0; c < c_count; ++c) {
    if (!Report(progress, static_cast<double>(c) / c_count,
                "linearized: factor M")) {
      return Cancelled();
    }
    const VectorXd s = f->sqrt_p_.col(c);
    if (absl::Status st = FactorClass(theta, s, lambda, &work); !st.ok()) {
      return st;
    }
    // S_c^{-1} from its factor (dpotri, lower triangle, 2 N^3 / 3 flops).
    const lapack_int info = LAPACKE_dpotri(
        LAPACK_COL_MAJOR, 'L', static_cast<lapack_int>(n), work.data(),
        static_cast<lapack_int>(work.outerStride()));
    if (info != 0) {
      return absl::InternalError(absl::StrFormat(
          "linearized: dpotri failed (info %d)", static_cast<int>(info)));
    }
#pragma omp parallel for schedule(static)
    for (Index j = 0; j < n; ++j) {
      for (Index i = j; i < n; ++i) m(i, j) += s(i) * work(i, j) * s(j);
    }
  }
  work.resize(0, 0);
  if (absl::Status st = CholeskyInPlace(&m, "M = sum_c E_c"); !st.ok()) {
    return st;
  }
  f->chol_m_ = std::move(m);
  f->theta_ = std::move(theta);
  f->nngp_ = std::move(nngp);
  return std::shared_ptr<const LinearizedFactor>(std::move(f));
}

// Two passes over the classes (see linearized_solver.h for the names):
// pass 1 factors S_c and forms a_c = E_c v; then g_c = M^{-1} a_c and
// K a_c; pass 2 factors S_c'' again and forms y = E_c'' g_c for every c,
// accumulating T2x = sum_c'' y^T K y and, at c'' = c, the cross terms.
absl::StatusOr<std::vector<MatrixXd>> ApplyLinearized(
    const LinearizedFactor& f, const MatrixXd& theta_xq,
    const MatrixXd& nngp_xq, const VectorXd& nngp_qq,
    const ProgressFn& progress) {
  const Index n = f.theta_.rows();
  const Index cc = f.sqrt_p_.cols();
  const Index m = theta_xq.cols();
  if (theta_xq.rows() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: theta_xq must have %d rows, got %d", n, theta_xq.rows()));
  }
  if (nngp_xq.rows() != n || nngp_xq.cols() != m) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: nngp_xq must be %d x %d like theta_xq, got %d x %d", n, m,
        nngp_xq.rows(), nngp_xq.cols()));
  }
  if (nngp_qq.size() != m) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: nngp_qq must have %d entries, got %d", m, nngp_qq.size()));
  }
  std::vector<MatrixXd> cov(m, MatrixXd::Zero(cc, cc));
  if (m == 0) return cov;
  const MatrixXd v = theta_xq / f.lambda_;
  // Column c * m + j: class c, query j.
  MatrixXd a(n, cc * m);
  MatrixXd work(n, n);
  const int steps = static_cast<int>(2 * cc);
  for (Index c = 0; c < cc; ++c) {
    if (!Report(progress, static_cast<double>(c) / steps, "linearized: pass 1")) {
      return Cancelled();
    }
    if (absl::Status st = FactorClass(f.theta_, f.sqrt_p_.col(c), f.lambda_, &work);
        !st.ok()) {
      return st;
    }
    MatrixXd block = v;
    ApplyE(work, f.sqrt_p_.col(c), &block);
    a.middleCols(c * m, m) = block;
  }
  MatrixXd g = a;  // M^{-1} a
  f.chol_m_.triangularView<Eigen::Lower>().solveInPlace(g);
  f.chol_m_.triangularView<Eigen::Lower>().transpose().solveInPlace(g);
  MatrixXd ka(n, cc * m);
  ka.noalias() = f.nngp_ * a;
  // Per query: t2x(c, c') = sum_c'' y_c^T K y_c', cross(c, c') =
  // (K a_c).(E_c g_c'), t1g(c, c') = (E_c' g_c).k.
  std::vector<MatrixXd> t2x(m, MatrixXd::Zero(cc, cc)), cross(m, MatrixXd(cc, cc)),
      t1g(m, MatrixXd(cc, cc));
  MatrixXd y(n, cc * m), ky(n, cc * m);
  for (Index c2 = 0; c2 < cc; ++c2) {
    if (!Report(progress, static_cast<double>(cc + c2) / steps,
                "linearized: pass 2")) {
      return Cancelled();
    }
    if (absl::Status st = FactorClass(f.theta_, f.sqrt_p_.col(c2), f.lambda_, &work);
        !st.ok()) {
      return st;
    }
    y = g;
    ApplyE(work, f.sqrt_p_.col(c2), &y);
    ky.noalias() = f.nngp_ * y;
#pragma omp parallel for schedule(static)
    for (Index j = 0; j < m; ++j) {
      for (Index c = 0; c < cc; ++c) {
        for (Index d = 0; d <= c; ++d) {
          const double s = ColDot(y, c * m + j, ky, d * m + j);
          t2x[j](c, d) += s;
          if (d != c) t2x[j](d, c) += s;
        }
        // y's block c is E_c2 g_c: t1g(c, c2) = (E_c2 g_c).k.
        t1g[j](c, c2) = y.col(c * m + j).dot(nngp_xq.col(j));
        // At c'' = c2: cross(c2, c) = (K a_c2).(E_c2 g_c).
        cross[j](c2, c) = ColDot(ka, c2 * m + j, y, c * m + j);
      }
    }
  }
  RegionExceptions trap;  // core/numerics/parallel.h
#pragma omp parallel for schedule(static)
  for (Index j = 0; j < m; ++j) {
    trap.Run([&] {
      MatrixXd t1 = -t1g[j];
      MatrixXd t2 = t2x[j] - cross[j] - cross[j].transpose();
      for (Index c = 0; c < cc; ++c) {
        t1(c, c) += a.col(c * m + j).dot(nngp_xq.col(j));
        t2(c, c) += ColDot(a, c * m + j, ka, c * m + j);
      }
      MatrixXd s = t2 - t1 - t1.transpose();
      s.diagonal().array() += nngp_qq(j);
      cov[j] = 0.5 * (s + s.transpose());
    });
  }
  trap.Rethrow();
  if (!Report(progress, 1.0, "linearized: done")) return Cancelled();
  return cov;
}

}  // namespace ntk
