// Exact LINEARIZED / LAPLACE_POSTERIOR covariances; see linearized_solver.h
// and docs/model-contract.md "4. PredictDistribution" for the formulas and
// the cost model.
#include "core/distribution/linearized_solver.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/numerics/parallel.h"
#include "core/numerics/cholesky.h"
#include "core/numerics/work_steps.h"

namespace ntk {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

// The factor's fields, for the functions of this file only.
class LinearizedAccess {
 public:
  static MatrixXd& packed(LinearizedFactor& f) { return f.packed_; }
  static VectorXd& theta_diag(LinearizedFactor& f) { return f.theta_diag_; }
  static MatrixXd& chol_m(LinearizedFactor& f) { return f.chol_m_; }
  static std::vector<MatrixXd>& chol_c(LinearizedFactor& f) { return f.chol_c_; }
  static MatrixXd& sqrt_p(LinearizedFactor& f) { return f.sqrt_p_; }
  static double& lambda(LinearizedFactor& f) { return f.lambda_; }
  static const MatrixXd& packed(const LinearizedFactor& f) { return f.packed_; }
  static const VectorXd& theta_diag(const LinearizedFactor& f) { return f.theta_diag_; }
  static const MatrixXd& chol_m(const LinearizedFactor& f) { return f.chol_m_; }
  static const std::vector<MatrixXd>& chol_c(const LinearizedFactor& f) { return f.chol_c_; }
  static const MatrixXd& sqrt_p(const LinearizedFactor& f) { return f.sqrt_p_; }
  static double lambda(const LinearizedFactor& f) { return f.lambda_; }
};

namespace {

using A = LinearizedAccess;

// Asks progress before each step; false once it said stop.
class Steps {
 public:
  Steps(const ProgressFn& progress, const char* phase) : progress_(progress), phase_(phase) {}
  void set_fraction(double f) { fraction_ = f; }
  bool Continue() const { return ReportProgress(progress_, fraction_, phase_); }
  std::function<bool()> KeepGoing() const {
    return [this] { return Continue(); };
  }
  absl::Status Cancelled() const {
    return absl::CancelledError(absl::StrFormat("%s: cancelled", phase_));
  }

 private:
  const ProgressFn& progress_;
  const char* phase_;
  double fraction_ = 0;
};

// Columns of an N x N operator applied per step (2 N^2 flops per column).
Index ChunkColumns(Index n, double step_flops = kLinearizedStepFlops) {
  const double per_column = 2.0 * static_cast<double>(n) * static_cast<double>(n);
  return std::max<Index>(8, static_cast<Index>(step_flops / std::max(1.0, per_column)));
}

// Columns per step of the Cholesky and inverse blocks (~N^2 b flops each).
Index BlockColumns(Index n, double step_flops = kLinearizedStepFlops) {
  const double nn = std::max(1.0, static_cast<double>(n) * static_cast<double>(n));
  return std::clamp<Index>(static_cast<Index>(step_flops / nn), 64, kCholeskyBlock);
}

// fn(begin, width) over column chunks of `cols`, asking steps first.
absl::Status ForChunks(Index cols, Index width, const Steps& steps,
                       const std::function<void(Index, Index)>& fn) {
  for (Index b = 0; b < cols; b += width) {
    if (!steps.Continue()) return steps.Cancelled();
    fn(b, std::min(width, cols - b));
  }
  return absl::OkStatus();
}

absl::Status NotPositiveDefinite(const char* what) {
  return absl::InternalError(absl::StrFormat(
      "linearized: %s is not positive definite (Theta_XX not PSD?)", what));
}

// *work = L_c, the lower factor of S_c = I + D^{1/2} Theta D^{1/2} / lambda,
// from Theta's strict lower triangle in `packed` and its diagonal.
absl::Status FactorClass(const MatrixXd& packed, const VectorXd& theta_diag,
                         const VectorXd& sqrt_p, double lambda, const Steps& steps,
                         MatrixXd* work) {
  const VectorXd s = sqrt_p / std::sqrt(lambda);
  work->noalias() = s.asDiagonal() * packed * s.asDiagonal();  // upper part unused
  work->diagonal() = (s.array().square() * theta_diag.array() + 1.0).matrix();
  const absl::Status st =
      CholeskyLowerInPlace(work, steps.KeepGoing(), BlockColumns(work->rows()));
  if (st.code() == absl::StatusCode::kCancelled) return steps.Cancelled();
  if (!st.ok()) return NotPositiveDefinite("I + D_c^1/2 Theta D_c^1/2 / lambda");
  return absl::OkStatus();
}

// Lower triangle of *m += diag(s) S^{-1} diag(s), S = L L^T with L the
// lower triangle of *l (strict upper zero), which becomes L^{-1}.
// Blocked so that each step is ~N^2 b flops: first L^{-1} column block by
// column block (dtrsm; block J uses only columns >= J of L), then
// S^{-1}[J:, J] = L^{-1}[J:, J:]^T L^{-1}[J:, J] (dtrmm). N^3/3 + N^3/3
// flops, like LAPACK dpotri.
absl::Status AddScaledInverse(MatrixXd* l, const VectorXd& s, const Steps& steps,
                              MatrixXd* m, double step_flops = kLinearizedStepFlops) {
  const Index n = l->rows();
  const Index b = BlockColumns(n, step_flops);
  for (Index j0 = 0; j0 < n; j0 += b) {
    if (!steps.Continue()) return steps.Cancelled();
    const Index bw = std::min(b, n - j0), r = n - j0;
    MatrixXd t = MatrixXd::Zero(r, bw);
    t.topRows(bw).setIdentity();
    ParallelColumnBlocks(bw, [&](Index c0, Index cw) {
      auto tc = t.middleCols(c0, cw);
      l->block(j0, j0, r, r).triangularView<Eigen::Lower>().solveInPlace(tc);
    });
    l->block(j0, j0, r, bw) = t;
  }
  for (Index j0 = 0; j0 < n; j0 += b) {
    if (!steps.Continue()) return steps.Cancelled();
    const Index bw = std::min(b, n - j0), r = n - j0;
    const MatrixXd x = l->block(j0, j0, r, bw);
    ParallelColumnBlocks(bw, [&](Index c0, Index cw) {
      MatrixXd y(r, cw);
      y.noalias() =
          l->block(j0, j0, r, r).triangularView<Eigen::Lower>().transpose() * x.middleCols(c0, cw);
      m->block(j0, j0 + c0, r, cw).noalias() +=
          s.segment(j0, r).asDiagonal() * y * s.segment(j0 + c0, cw).asDiagonal();
    });
  }
  return absl::OkStatus();
}

// x <- E_c x = D^{1/2} L^{-T} L^{-1} D^{1/2} x (two dtrsm, 2 N^2 flops per
// column), in column chunks.
absl::Status ApplyE(const MatrixXd& chol, const VectorXd& sqrt_p, const Steps& steps,
                    MatrixXd* x) {
  return ForChunks(x->cols(), ChunkColumns(chol.rows()), steps, [&](Index b, Index w) {
    ParallelColumnBlocks(w, [&](Index b2, Index w2) {
      auto blk = x->middleCols(b + b2, w2);
      blk = sqrt_p.asDiagonal() * blk;
      chol.triangularView<Eigen::Lower>().solveInPlace(blk);
      chol.triangularView<Eigen::Lower>().transpose().solveInPlace(blk);
      blk = sqrt_p.asDiagonal() * blk;
    });
  });
}

// *out = K_XX x (K's upper triangle in `packed`; dsymm), in column chunks.
absl::Status MultiplyK(const MatrixXd& packed, const MatrixXd& x, const Steps& steps,
                       MatrixXd* out) {
  out->resize(packed.rows(), x.cols());
  return ForChunks(x.cols(), ChunkColumns(packed.rows()), steps, [&](Index b, Index w) {
    ParallelColumnBlocks(w, [&](Index b2, Index w2) {
      out->middleCols(b + b2, w2).noalias() =
          packed.selfadjointView<Eigen::Upper>() * x.middleCols(b + b2, w2);
    });
  });
}

// x <- L^{-1} x (transpose: L^{-T} x) for lower L, in column chunks.
absl::Status SolveChunked(const MatrixXd& l, bool transpose, const Steps& steps, MatrixXd* x,
                          double step_flops = kLinearizedStepFlops) {
  return ForChunks(x->cols(), ChunkColumns(l.rows(), step_flops), steps, [&](Index b, Index w) {
    ParallelColumnBlocks(w, [&](Index b2, Index w2) {
      auto blk = x->middleCols(b + b2, w2);
      if (transpose) {
        l.triangularView<Eigen::Lower>().transpose().solveInPlace(blk);
      } else {
        l.triangularView<Eigen::Lower>().solveInPlace(blk);
      }
    });
  });
}

// The factor L_c of class c: the kept one, or S_c refactored into *work.
absl::StatusOr<const MatrixXd*> ClassFactor(const LinearizedFactor& f, Index c,
                                            const Steps& steps, MatrixXd* work) {
  if (f.keeps_class_factors()) return &A::chol_c(f)[static_cast<size_t>(c)];
  work->resize(f.num_train(), f.num_train());
  if (absl::Status st = FactorClass(A::packed(f), A::theta_diag(f), A::sqrt_p(f).col(c),
                                    A::lambda(f), steps, work);
      !st.ok()) {
    return st;
  }
  return work;
}

// Pass 1 of both methods: a (N x C m, column c * m + j) = E_c v.
absl::Status FormA(const LinearizedFactor& f, const MatrixXd& v, Steps& steps, int passes,
                   MatrixXd* work, MatrixXd* a) {
  const Index cc = f.num_classes(), m = v.cols();
  a->resize(f.num_train(), cc * m);
  for (Index c = 0; c < cc; ++c) {
    steps.set_fraction(static_cast<double>(c) / (passes * cc));
    absl::StatusOr<const MatrixXd*> chol = ClassFactor(f, c, steps, work);
    if (!chol.ok()) return chol.status();
    MatrixXd block = v;
    if (absl::Status st = ApplyE(**chol, A::sqrt_p(f).col(c), steps, &block); !st.ok()) {
      return st;
    }
    a->middleCols(c * m, m) = block;
  }
  return absl::OkStatus();
}

// The m query covariances (C x C zeros) after checking the queries' shapes.
absl::StatusOr<std::vector<MatrixXd>> QueryCovariances(const LinearizedFactor& f,
                                                       const MatrixXd& theta_xq,
                                                       const MatrixXd* nngp_xq, Index diag_size,
                                                       const char* diag_name) {
  const Index n = f.num_train(), m = theta_xq.cols();
  if (theta_xq.rows() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: theta_xq must have %d rows, got %d", n, theta_xq.rows()));
  }
  if (nngp_xq != nullptr && (nngp_xq->rows() != n || nngp_xq->cols() != m)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: nngp_xq must be %d x %d like theta_xq, got %d x %d", n, m,
        nngp_xq->rows(), nngp_xq->cols()));
  }
  if (diag_size != m) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: %s must have %d entries, got %d", diag_name, m, diag_size));
  }
  return std::vector<MatrixXd>(m, MatrixXd::Zero(f.num_classes(), f.num_classes()));
}

double ColDot(const MatrixXd& a, Index i, const MatrixXd& b, Index j) {
  return a.col(i).dot(b.col(j));
}

}  // namespace

int64_t LinearizedFactorBytes(int64_t n, int64_t c, bool keep_class_factors) {
  // Theta/K packed and L_M, plus C x L_c when kept; sqrt(p), diag Theta.
  const int64_t squares = keep_class_factors ? c + 2 : 2;
  return 8 * (squares * n * n + n * c + n);
}

bool KeepClassFactors(int64_t n, int64_t c, int64_t capacity_bytes) {
  return LinearizedFactorBytes(n, c, true) <= capacity_bytes;
}

int64_t LinearizedFactor::Bytes() const {
  int64_t doubles = packed_.size() + theta_diag_.size() + chol_m_.size() + sqrt_p_.size();
  for (const MatrixXd& l : chol_c_) doubles += l.size();
  return 8 * doubles;
}

namespace {

// The argument checks of PrepareLinearized and LaplaceLogDet.
absl::Status CheckFactorArgs(const MatrixXd& theta, const MatrixXd* nngp, const MatrixXd& p,
                             double lambda) {
  const Index n = theta.rows();
  if (n == 0 || theta.cols() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: theta must be square and non-empty, got %d x %d", theta.rows(),
        theta.cols()));
  }
  if (nngp != nullptr && (nngp->rows() != n || nngp->cols() != n)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: nngp must be %d x %d like theta, got %d x %d", n, n, nngp->rows(),
        nngp->cols()));
  }
  if (p.rows() != n || p.cols() < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "linearized: p must be %d x C (C >= 1), got %d x %d", n, p.rows(), p.cols()));
  }
  if (!(p.array() >= 0.0).all() || !(p.array() <= 1.0).all()) {
    return absl::InvalidArgumentError("linearized: p must hold probabilities in [0, 1]");
  }
  if (!(lambda > 0) || !std::isfinite(lambda)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("linearized: lambda must be finite and > 0, got %g", lambda));
  }
  return absl::OkStatus();
}

// Factors every S_c (appending L_c to *chol_c when it is not null) and
// M = sum_c E_c into *m (lower factor L_M); returns
// log det(I + (Theta' (x) I) W) = sum_c log det S_c + log det M
// (docs/model-contract.md "7. Model selection", "Laplace evidence").
// Theta is read from the strict lower triangle of `packed` and theta_diag.
absl::StatusOr<double> FactorClassesAndM(const MatrixXd& packed, const VectorXd& theta_diag,
                                         const MatrixXd& sqrt_p, double lambda, Steps& steps,
                                         std::vector<MatrixXd>* chol_c, MatrixXd* m) {
  const Index n = packed.rows();
  const Index c_count = sqrt_p.cols();
  double log_det = 0;
  // M's lower triangle accumulates sum_c D^{1/2} S_c^{-1} D^{1/2}.
  *m = MatrixXd::Zero(n, n);
  MatrixXd work(n, n);
  for (Index c = 0; c < c_count; ++c) {
    steps.set_fraction(static_cast<double>(c) / c_count);
    const VectorXd s = sqrt_p.col(c);
    if (absl::Status st = FactorClass(packed, theta_diag, s, lambda, steps, &work); !st.ok()) {
      return st;
    }
    log_det += 2 * work.diagonal().array().log().sum();
    if (chol_c != nullptr) chol_c->push_back(work);
    if (absl::Status st = AddScaledInverse(&work, s, steps, m); !st.ok()) return st;
  }
  work.resize(0, 0);
  steps.set_fraction(1.0);
  const absl::Status st = CholeskyLowerInPlace(m, steps.KeepGoing(), BlockColumns(n));
  if (st.code() == absl::StatusCode::kCancelled) return steps.Cancelled();
  if (!st.ok()) return NotPositiveDefinite("M = sum_c E_c");
  return log_det + 2 * m->diagonal().array().log().sum();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const LinearizedFactor>> PrepareLinearized(
    MatrixXd theta, MatrixXd nngp, const MatrixXd& p, double lambda, bool keep_class_factors,
    const ProgressFn& progress) {
  if (absl::Status st = CheckFactorArgs(theta, &nngp, p, lambda); !st.ok()) return st;
  auto f = std::make_shared<LinearizedFactor>();
  A::sqrt_p(*f) = p.array().sqrt();
  A::lambda(*f) = lambda;
  // Pack K's upper triangle and diagonal over Theta's, in place.
  A::theta_diag(*f) = theta.diagonal();
  theta.triangularView<Eigen::Upper>() = nngp.triangularView<Eigen::Upper>();
  nngp.resize(0, 0);
  MatrixXd& packed = A::packed(*f);
  packed = std::move(theta);
  Steps steps(progress, "linearized: factor");
  absl::StatusOr<double> log_det =
      FactorClassesAndM(packed, A::theta_diag(*f), A::sqrt_p(*f), lambda, steps,
                        keep_class_factors ? &A::chol_c(*f) : nullptr, &A::chol_m(*f));
  if (!log_det.ok()) return log_det.status();
  return std::shared_ptr<const LinearizedFactor>(std::move(f));
}

absl::StatusOr<double> LaplaceLogDet(const MatrixXd& theta, const MatrixXd& p, double lambda,
                                     const ProgressFn& progress) {
  if (absl::Status st = CheckFactorArgs(theta, nullptr, p, lambda); !st.ok()) return st;
  const MatrixXd sqrt_p = p.array().sqrt();
  Steps steps(progress, "laplace evidence: factor");
  MatrixXd m;
  return FactorClassesAndM(theta, theta.diagonal(), sqrt_p, lambda, steps, nullptr, &m);
}

// Two passes over the classes (see linearized_solver.h for the names):
// pass 1 forms a_c = E_c v; then g_c = M^{-1} a_c and K a_c; pass 2 forms
// y = E_c'' g_c for every c, accumulating T2x = sum_c'' y^T K y and, at
// c'' = c, the cross terms.
absl::StatusOr<std::vector<MatrixXd>> ApplyLinearized(const LinearizedFactor& f,
                                                      const MatrixXd& theta_xq,
                                                      const MatrixXd& nngp_xq,
                                                      const VectorXd& nngp_qq,
                                                      const ProgressFn& progress) {
  absl::StatusOr<std::vector<MatrixXd>> checked =
      QueryCovariances(f, theta_xq, &nngp_xq, nngp_qq.size(), "nngp_qq");
  if (!checked.ok() || checked->empty()) return checked;
  std::vector<MatrixXd>& cov = *checked;
  const Index cc = f.num_classes();
  const Index m = theta_xq.cols();
  const MatrixXd& packed = A::packed(f);
  const MatrixXd& chol_m = A::chol_m(f);
  Steps steps(progress, "linearized: apply");
  MatrixXd work, a, g, ka, y, ky;
  if (absl::Status st = FormA(f, theta_xq / A::lambda(f), steps, 2, &work, &a); !st.ok()) {
    return st;
  }
  g = a;  // M^{-1} a
  if (absl::Status st = SolveChunked(chol_m, false, steps, &g); !st.ok()) return st;
  if (absl::Status st = SolveChunked(chol_m, true, steps, &g); !st.ok()) return st;
  if (absl::Status st = MultiplyK(packed, a, steps, &ka); !st.ok()) return st;
  // Per query: t2x(c, c') = sum_c'' y_c^T K y_c', cross(c, c') =
  // (K a_c).(E_c g_c'), t1g(c, c') = (E_c' g_c).k.
  std::vector<MatrixXd> t2x(m, MatrixXd::Zero(cc, cc)), cross(m, MatrixXd(cc, cc)),
      t1g(m, MatrixXd(cc, cc));
  for (Index c2 = 0; c2 < cc; ++c2) {
    steps.set_fraction(static_cast<double>(cc + c2) / (2 * cc));
    absl::StatusOr<const MatrixXd*> chol = ClassFactor(f, c2, steps, &work);
    if (!chol.ok()) return chol.status();
    y = g;
    if (absl::Status st = ApplyE(**chol, A::sqrt_p(f).col(c2), steps, &y); !st.ok()) return st;
    if (absl::Status st = MultiplyK(packed, y, steps, &ky); !st.ok()) return st;
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
  return checked;
}

absl::StatusOr<std::vector<MatrixXd>> ApplyLaplace(const LinearizedFactor& f,
                                                   const MatrixXd& theta_xq,
                                                   const VectorXd& theta_qq,
                                                   const ProgressFn& progress) {
  absl::StatusOr<std::vector<MatrixXd>> checked =
      QueryCovariances(f, theta_xq, nullptr, theta_qq.size(), "theta_qq");
  if (!checked.ok() || checked->empty()) return checked;
  std::vector<MatrixXd>& cov = *checked;
  const Index cc = f.num_classes();
  const Index m = theta_xq.cols();
  Steps steps(progress, "linearized: apply");
  const double lambda = A::lambda(f);
  const MatrixXd v = theta_xq / lambda;
  MatrixXd work, a;
  if (absl::Status st = FormA(f, v, steps, 1, &work, &a); !st.ok()) return st;
  MatrixXd alpha = a;
  if (absl::Status st = SolveChunked(A::chol_m(f), false, steps, &alpha); !st.ok()) return st;
#pragma omp parallel for schedule(static)
  for (Index j = 0; j < m; ++j) {
    MatrixXd& s = cov[j];
    for (Index c = 0; c < cc; ++c) {
      for (Index d = 0; d <= c; ++d) {
        double x = ColDot(alpha, c * m + j, alpha, d * m + j);
        if (c == d) x += theta_qq(j) / lambda - v.col(j).dot(a.col(c * m + j));
        s(c, d) = x;
        s(d, c) = x;
      }
    }
  }
  return checked;
}

absl::Status CholeskyInSteps(MatrixXd* a, const char* what, const ProgressFn& progress,
                             const char* phase) {
  const Steps steps(progress, phase);
  const absl::Status st =
      CholeskyLowerInPlace(a, steps.KeepGoing(), BlockColumns(a->rows(), kFlopsPerStep));
  if (st.code() == absl::StatusCode::kCancelled) return steps.Cancelled();
  if (!st.ok()) {
    return absl::InternalError(absl::StrFormat("%s: %s is not positive definite", phase, what));
  }
  return absl::OkStatus();
}

absl::Status SolveCholeskyInSteps(const MatrixXd& l, const ProgressFn& progress,
                                  const char* phase, MatrixXd* x) {
  const Steps steps(progress, phase);
  if (absl::Status st = SolveChunked(l, false, steps, x, kFlopsPerStep); !st.ok()) return st;
  return SolveChunked(l, true, steps, x, kFlopsPerStep);
}

absl::Status InverseInSteps(MatrixXd* l, const ProgressFn& progress, const char* phase,
                            MatrixXd* inv) {
  const Steps steps(progress, phase);
  const Index n = l->rows();
  inv->setZero(n, n);
  if (absl::Status st = AddScaledInverse(l, VectorXd::Ones(n), steps, inv, kFlopsPerStep);
      !st.ok()) {
    return st;
  }
  // AddScaledInverse fills the lower triangle (and the diagonal blocks).
  for (Index j = 0; j + 1 < n; ++j) {
    inv->row(j).tail(n - j - 1) = inv->col(j).tail(n - j - 1).transpose();
  }
  return absl::OkStatus();
}

}  // namespace ntk
