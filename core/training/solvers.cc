// ntk/core/training/solvers.cc: docs/model-contract.md "2. Training objective" solvers. See solvers.h.
#include "core/training/solvers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <lapacke.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/numerics/linalg.h"

namespace ntk {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

Eigen::MatrixXd RowSoftmax(const Eigen::MatrixXd& logits) {
  MatrixXd p(logits.rows(), logits.cols());
  for (Index i = 0; i < logits.rows(); ++i) {
    const double m = logits.row(i).maxCoeff();
    p.row(i) = (logits.row(i).array() - m).exp().matrix();
    p.row(i) /= p.row(i).sum();
  }
  return p;
}

double SumCrossEntropy(const Eigen::MatrixXd& y, const Eigen::MatrixXd& logits) {
  double total = 0;
  for (Index i = 0; i < logits.rows(); ++i) {
    const double m = logits.row(i).maxCoeff();
    const double lse = m + std::log((logits.row(i).array() - m).exp().sum());
    total += y.row(i).sum() * lse - y.row(i).dot(logits.row(i));
  }
  return total;
}

namespace {

bool Report(const ProgressFn& progress, double fraction, const char* phase) {
  return !progress || progress(std::clamp(fraction, 0.0, 1.0), phase);
}

double InfNorm(const MatrixXd& m) {
  return m.size() == 0 ? 0.0 : m.cwiseAbs().maxCoeff();
}

absl::Status CheckShapes(const MatrixXd& theta, const MatrixXd& y,
                         const MatrixXd& f0) {
  if (theta.rows() != theta.cols()) {
    return absl::InvalidArgumentError("theta: must be square");
  }
  if (y.rows() != theta.rows() || y.cols() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "targets: expected ", theta.rows(), " rows, got ", y.rows()));
  }
  if (f0.size() != 0 && (f0.rows() != y.rows() || f0.cols() != y.cols())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "initial_train_outputs: expected ", y.rows(), " x ", y.cols(),
        ", got ", f0.rows(), " x ", f0.cols()));
  }
  return absl::OkStatus();
}

// Per-point Hessian blocks W_i = diag(p_i) - p_i p_i^T = V_i diag(w_i) V_i^T.
// Stored as eigen-decompositions so that W^{1/2} and (I + t W)^{-1} are cheap.
struct BlockHessian {
  int c = 0;
  std::vector<MatrixXd> vecs;  // N of C x C
  MatrixXd vals;               // N x C (clamped >= 0)

  void Build(const MatrixXd& p) {
    const Index n = p.rows();
    c = static_cast<int>(p.cols());
    vecs.resize(n);
    vals.resize(n, c);
#pragma omp parallel for schedule(static) if (n > 256)
    for (Index i = 0; i < n; ++i) {
      const VectorXd pi = p.row(i).transpose();
      MatrixXd w = -pi * pi.transpose();
      w.diagonal() += pi;
      Eigen::SelfAdjointEigenSolver<MatrixXd> es(w);
      vecs[i] = es.eigenvectors();
      vals.row(i) = es.eigenvalues().cwiseMax(0.0).transpose();
    }
  }
  // out_i = V_i diag(g(w_i)) V_i^T in_i for each row i; plain loops (C is
  // small; this keeps tiny products out of the BLAS and out of the heap).
  template <typename G>
  void ApplySpectral(const MatrixXd& in, MatrixXd* out, G g) const {
    const Index n = in.rows();
    out->resize(n, c);
    // About 2 C^2 flops per row: threads only pay off for large N.
#pragma omp parallel for schedule(static) if (n > 4096)
    for (Index i = 0; i < n; ++i) {
      const MatrixXd& v = vecs[i];
      double t[64];
      std::vector<double> big;
      double* tp = t;
      if (c > 64) {
        big.resize(c);
        tp = big.data();
      }
      for (int k = 0; k < c; ++k) {
        double acc = 0;
        for (int j = 0; j < c; ++j) acc += v(j, k) * in(i, j);
        tp[k] = acc * g(i, k);
      }
      for (int j = 0; j < c; ++j) {
        double acc = 0;
        for (int k = 0; k < c; ++k) acc += v(j, k) * tp[k];
        (*out)(i, j) = acc;
      }
    }
  }
  void ApplySqrt(const MatrixXd& in, MatrixXd* out) const {
    ApplySpectral(in, out, [this](Index i, int k) { return std::sqrt(vals(i, k)); });
  }
  void ApplyW(const MatrixXd& in, MatrixXd* out) const {
    ApplySpectral(in, out, [this](Index i, int k) { return vals(i, k); });
  }
  // Block-Jacobi preconditioner: out_i = (I + scale_i W_i)^{-1} in_i.
  void ApplyBlockInverse(const VectorXd& scale, const MatrixXd& in,
                         MatrixXd* out) const {
    ApplySpectral(in, out, [this, &scale](Index i, int k) {
      return 1.0 / (1.0 + scale(i) * vals(i, k));
    });
  }
};

// out = theta * v (theta N x N symmetric, v N x C): core/numerics/linalg.h's
// unpacked kernel on OpenMP threads. Measured at N = 5000, C = 10 on 2
// cores: 1.5x faster than OpenBLAS's dgemm, and the Newton-CG loop no longer
// alternates between OpenMP's and OpenBLAS's thread pools (their spinning
// threads fought over the cores and made 2a 1.7x slower).
void ThetaTimes(const MatrixXd& theta, const MatrixXd& v, MatrixXd* out) {
  TransposeTimesNarrow(theta, v, out);
}

// Top-k eigenpairs of the symmetric PSD `theta` by randomized subspace
// iteration (Halko, Martinsson & Tropp 2011, alg. 4.4 with q = 1): three
// GEMMs of theta with an N x (k + 16) block. Seeded: deterministic.
void TopEigenpairs(const MatrixXd& theta, int k, MatrixXd* u, VectorXd* vals) {
  const Index n = theta.rows();
  const Index l = std::min<Index>(n, k + 16);
  std::mt19937_64 gen(0x6e746b);  // "ntk"
  std::normal_distribution<double> nd(0.0, 1.0);
  MatrixXd omega(n, l);
  for (Index j = 0; j < l; ++j)
    for (Index i = 0; i < n; ++i) omega(i, j) = nd(gen);
  MatrixXd y(n, l);
  y.noalias() = theta * omega;
  MatrixXd q = Eigen::HouseholderQR<MatrixXd>(y).householderQ() * MatrixXd::Identity(n, l);
  y.noalias() = theta * q;
  q = Eigen::HouseholderQR<MatrixXd>(y).householderQ() * MatrixXd::Identity(n, l);
  y.noalias() = theta * q;
  MatrixXd b = q.transpose() * y;
  b = 0.5 * (b + b.transpose()).eval();
  Eigen::SelfAdjointEigenSolver<MatrixXd> es(b);
  const Index kk = std::min<Index>(k, l);
  // Eigenvalues ascending: take the last kk.
  *vals = es.eigenvalues().tail(kk).cwiseMax(0.0);
  u->noalias() = q * es.eigenvectors().rightCols(kk);
}

// Preconditioner for A = I + S (Theta / lambda (x) I_C) S with
// Theta ~= U diag(s) U^T + diag(r) (top-k eigenpairs plus the diagonal of
// the rest): M = B + Z Z^T, B = blockdiag(I + r_i / lambda W_i),
// (Z G)_i = S_i G^T g_i, g_i = diag(s / lambda)^{1/2} U_i^T. M^{-1} by
// Woodbury with the kC x kC capacitance matrix
// H = I + sum_i (g_i g_i^T) (x) S_i B_i^{-1} S_i, rebuilt per Newton step.
// k = 0 is plain block-Jacobi.
class LowRankPreconditioner {
 public:
  LowRankPreconditioner(const MatrixXd& theta, double lambda,
                        const ThetaEigenbasis& basis) {
    const Index n = theta.rows();
    resid_scale_ = theta.diagonal() / lambda;
    if (basis.vectors.cols() > 0 && basis.vectors.rows() == n) {
      g_ = basis.vectors * (basis.values / lambda).cwiseSqrt().asDiagonal();
      resid_scale_ -= g_.rowwise().squaredNorm();
      resid_scale_ = resid_scale_.cwiseMax(0.0);
      k_ = static_cast<int>(g_.cols());
      // Only pairs a <= b: g_i g_i^T is symmetric.
      gg_.resize(n, k_ * (k_ + 1) / 2);
      for (Index i = 0; i < n; ++i) {
        Index col = 0;
        for (int a = 0; a < k_; ++a)
          for (int b = a; b < k_; ++b) gg_(i, col++) = g_(i, a) * g_(i, b);
      }
    }
  }

  // Rebuild for new Hessian blocks.
  void Update(const BlockHessian& hess) {
    hess_ = &hess;
    if (k_ == 0) return;
    const Index n = g_.rows();
    const int c = hess.c;
    // Only pairs e <= f: each Q_i is symmetric. With the a <= b symmetry of
    // gg_ this is a quarter of the flops of the full (k^2 x N) (N x C^2)
    // product, which dominated small-N solves.
    const int cp = c * (c + 1) / 2;
    MatrixXd qmat(n, cp);
#pragma omp parallel for schedule(static) if (n > 1024)
    for (Index i = 0; i < n; ++i) {
      const MatrixXd& v = hess.vecs[i];
      int col = 0;
      for (int e = 0; e < c; ++e) {
        for (int f = e; f < c; ++f) {
          double acc = 0;
          for (int j = 0; j < c; ++j) {
            const double w = hess.vals(i, j);
            acc += v(e, j) * v(f, j) * w / (1.0 + resid_scale_(i) * w);
          }
          qmat(i, col++) = acc;
        }
      }
    }
    MatrixXd hsum(gg_.cols(), cp);
    hsum.noalias() = gg_.transpose() * qmat;
    // H[(a, e), (b, f)] = delta + sum_i g_ia g_ib Q_i(e, f); index (a, e) = a * c + e.
    MatrixXd h = MatrixXd::Identity(k_ * c, k_ * c);
    int ab = 0;
    for (int a = 0; a < k_; ++a) {
      for (int b = a; b < k_; ++b, ++ab) {
        int ef = 0;
        for (int e = 0; e < c; ++e) {
          for (int f = e; f < c; ++f, ++ef) {
            const double v = hsum(ab, ef);
            h(a * c + e, b * c + f) += v;
            if (e != f) h(a * c + f, b * c + e) += v;
            if (a != b) {
              h(b * c + e, a * c + f) += v;
              if (e != f) h(b * c + f, a * c + e) += v;
            }
          }
        }
      }
    }
    llt_.compute(h);
  }

  void Apply(const MatrixXd& v, MatrixXd* out) {
    hess_->ApplyBlockInverse(resid_scale_, v, out);
    if (k_ == 0) return;
    const int c = hess_->c;
    hess_->ApplySqrt(*out, &sx_);
    MatrixXd zt;
    TransposeTimesNarrow(g_, sx_, &zt);  // k x C, no BLAS threads
    VectorXd vec(k_ * c);
    for (int a = 0; a < k_; ++a)
      for (int e = 0; e < c; ++e) vec(a * c + e) = zt(a, e);
    vec = llt_.solve(vec);
    for (int a = 0; a < k_; ++a)
      for (int e = 0; e < c; ++e) zt(a, e) = vec(a * c + e);
    gz_.noalias() = g_.lazyProduct(zt);  // N x C (coefficient-wise: no BLAS threads)
    hess_->ApplySqrt(gz_, &sx_);
    hess_->ApplyBlockInverse(resid_scale_, sx_, &gz_);
    *out -= gz_;
  }

 private:
  int k_ = 0;
  VectorXd resid_scale_;  // r_i / lambda
  MatrixXd g_;            // N x k
  MatrixXd gg_;           // N x k(k+1)/2, rows: g_ia g_ib for a <= b
  Eigen::LLT<MatrixXd> llt_;
  const BlockHessian* hess_ = nullptr;
  MatrixXd sx_, gz_;
};

double Dot(const MatrixXd& a, const MatrixXd& b) {
  return (a.array() * b.array()).sum();
}

}  // namespace

ThetaEigenbasis ComputeThetaEigenbasis(const Eigen::MatrixXd& theta, int rank) {
  ThetaEigenbasis b;
  rank = static_cast<int>(std::min<Index>(rank, theta.rows() / 2));
  if (rank > 0) TopEigenpairs(theta, rank, &b.vectors, &b.values);
  return b;
}

absl::StatusOr<SolverSolution> SolveRegularizedCE(
    const Eigen::MatrixXd& theta, const Eigen::MatrixXd& y,
    const Eigen::MatrixXd& f0_in, double lambda,
    const RegularizedCEOptions& options) {
  if (absl::Status s = CheckShapes(theta, y, f0_in); !s.ok()) return s;
  if (!(lambda > 0) || !std::isfinite(lambda)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.training.regularization: 2a needs lambda > 0, got ", lambda));
  }
  const Index n = y.rows();
  const Index c = y.cols();
  const MatrixXd f0 = f0_in.size() == 0 ? MatrixXd::Zero(n, c) : f0_in;
  const double inv_lambda = 1.0 / lambda;

  SolverSolution sol;
  SolverInfo& info = sol.info;

  // beta: the parameters (F = F0 + Theta beta); t = Theta beta.
  MatrixXd beta, t;
  if (options.warm_start_dual != nullptr && options.warm_start_dual->rows() == n &&
      options.warm_start_dual->cols() == c) {
    beta = *options.warm_start_dual;
    ThetaTimes(theta, beta, &t);
  } else {
    beta = MatrixXd::Zero(n, c);
    t = MatrixXd::Zero(n, c);
  }
  ThetaEigenbasis own_basis;
  if (options.eigenbasis == nullptr) {
    own_basis = ComputeThetaEigenbasis(theta, options.preconditioner_rank);
  }
  // From here on, the products with Theta run on OpenMP threads
  // (core/numerics/linalg.h) and the BLAS calls left (a k^2 x N x C^2 GEMM and a
  // kC x kC Cholesky per Newton step) are small: keep OpenBLAS single-
  // threaded, or its idle workers spin through every OpenMP region
  // (measured at N = 5000 on 2 cores: 7.0 s wall / 13.8 s CPU with both
  // pools active, 5.2 s on one thread).
  ScopedSingleThreadedBlas one_blas_thread;
  LowRankPreconditioner precond(
      theta, lambda, options.eigenbasis ? *options.eigenbasis : own_basis);

  MatrixXd f = f0 + t;
  MatrixXd p = RowSoftmax(f);
  MatrixXd dual = (y - p) * inv_lambda;
  MatrixXd theta_dual(n, c);
  MatrixXd residual(n, c);
  double psi = SumCrossEntropy(y, f) + 0.5 * lambda * Dot(beta, t);

  BlockHessian hess;
  MatrixXd b(n, c), rhs(n, c), z(n, c), r(n, c), zp(n, c), d(n, c),
      sd(n, c), ad(n, c), tmp(n, c), f_new(n, c), dbeta(n, c),
      dt(n, c), f_trial(n, c);
  double first_rel = -1;
  const double eps = std::numeric_limits<double>::epsilon();
  int stagnant = 0;
  double eta_cap = 1e-4;
  double best_rel = std::numeric_limits<double>::infinity();

  for (int it = 0;; ++it) {
    // Fixed-point residual at the current iterate (one GEMM).
    ThetaTimes(theta, dual, &theta_dual);
    residual = t - theta_dual;  // = F - F0 - Theta (Y - p) / lambda
    info.fixed_point_residual = InfNorm(residual);
    info.relative_residual =
        info.fixed_point_residual / std::max(1.0, InfNorm(f));
    const double rel = info.relative_residual;
    if (first_rel < 0) first_rel = std::max(rel, options.tolerance * 10);
    if (rel <= options.tolerance) break;
    if (rel < best_rel * 0.5) {
      best_rel = rel;
      stagnant = 0;
    } else if (rel < 1e2 * options.tolerance) {
      // Within 100x of the target and not improving (Newton would at least
      // square the error): the rounding floor of the GEMMs, about
      // sqrt(N) eps max_i sum_j |Theta_ij| |dual_j|, has been reached.
      break;
    } else if (rel < 1e-8 && ++stagnant >= 3) {
      break;
    }
    if (it >= options.max_newton_iterations) {
      if (rel <= 1e3 * options.tolerance) break;
      return absl::InternalError(absl::StrFormat(
          "2a Newton solver did not converge in %d iterations (relative "
          "fixed-point residual %.3g, target %.3g)",
          options.max_newton_iterations, rel, options.tolerance));
    }
    {
      // Progress: fraction of the way (on a log scale) from the first
      // residual to the target.
      const double frac = std::log(first_rel / std::max(rel, 1e-300)) /
                          std::log(first_rel / options.tolerance);
      if (!Report(options.progress, frac, "newton")) {
        return absl::CancelledError("fit cancelled during the 2a Newton solve");
      }
    }

    // ---- Newton step ----
    // Hessian of Psi in beta: Theta (W Theta + lambda I); gradient
    // Theta (lambda beta + p - Y). So the step solves
    //   (lambda I + W Theta) dbeta = r,  r = Y - p - lambda beta = lambda (dual - beta).
    // With W = S^2 and dbeta = (r - S z) / lambda this is the SPD system
    //   (I + S Theta S / lambda) z = S Theta r / lambda = -S residual
    // (R&W alg. 3.1's matrix B = I + S K S with K = Theta / lambda). Its
    // right-hand side vanishes at the solution, so a relative CG tolerance
    // is an inexact-Newton forcing term.
    hess.Build(p);
    precond.Update(hess);
    b = -residual;
    hess.ApplySqrt(b, &rhs);
    // PCG on A z = rhs, A v = v + S Theta S v / lambda.
    // Forcing term: CG relative tolerance min(eta_cap, rel), so the
    // tolerance tightens as the iteration converges (superlinear
    // convergence); eta_cap starts at 1e-4 (measured: 1e-2 gives poor
    // directions for small lambda, where the step amplifies CG error by
    // 1 / lambda) and drops 100x after every step the line search had to
    // shorten.
    // Never tighter than needed to land below `tolerance` in this step:
    // the next residual is about eta * rel + O(rel^2), so near the solution
    // eta = 0.1 * tolerance / rel suffices (measured at N = 5000: the last
    // Newton step went from 29 to 14 CG iterations, same final residual).
    const double eta = std::clamp(
        std::max(std::min(rel, std::sqrt(rel)), 0.1 * options.tolerance / rel), 1e-14,
        eta_cap);
    const double rhs_norm = rhs.norm();
    z.setZero();
    r = rhs;
    precond.Apply(r, &zp);
    d = zp;
    double rz = Dot(r, zp);
    int cg = 0;
    if (rhs_norm > 0) {
      while (cg < options.max_cg_iterations) {
        if (r.norm() <= eta * rhs_norm) break;
        hess.ApplySqrt(d, &sd);
        ThetaTimes(theta, sd, &tmp);
        hess.ApplySqrt(tmp, &ad);
        ad = d + ad * inv_lambda;
        const double dad = Dot(d, ad);
        if (!(dad > 0)) break;
        const double alpha = rz / dad;
        z += alpha * d;
        r -= alpha * ad;
        ++cg;
        precond.Apply(r, &zp);
        const double rz_new = Dot(r, zp);
        d = zp + (rz_new / rz) * d;
        rz = rz_new;
      }
    }
    info.cg_iterations += cg;

    // dbeta = (r - S z) / lambda; dt = Theta dbeta = (-lambda residual - Theta S z) / lambda.
    hess.ApplySqrt(z, &tmp);
    dbeta = ((dual - beta) * lambda - tmp) * inv_lambda;
    ThetaTimes(theta, tmp, &f_new);
    dt = -residual - f_new * inv_lambda;

    // Directional derivative of Psi along dbeta: grad_beta Psi =
    // Theta (p - Y + lambda beta) = lambda * residual.
    double slope = lambda * Dot(residual, dbeta);
    if (!(slope < 0)) {
      // Not a descent direction (CG stopped very early on a nearly singular
      // system): fall back to steepest descent in the Theta metric,
      // dbeta = -(beta - dual), dt = -residual.
      dbeta = dual - beta;
      dt = -residual;
      slope = lambda * Dot(residual, dbeta);
      if (!(slope < 0)) break;  // gradient is zero to rounding
    }
    // Backtracking line search (Armijo, c = 1e-4). When the predicted
    // decrease is below the rounding level of Psi, take the full step
    // (local quadratic convergence of Newton's method).
    double step = 1.0;
    double psi_new = 0;
    const double noise = 1e3 * eps * (std::abs(psi) + 1.0);
    for (int ls = 0; ls < 60; ++ls) {
      f_trial = f0 + t + step * dt;
      const MatrixXd beta_trial = beta + step * dbeta;
      const MatrixXd t_trial = t + step * dt;
      psi_new = SumCrossEntropy(y, f_trial) + 0.5 * lambda * Dot(beta_trial, t_trial);
      if (psi_new <= psi + 1e-4 * step * slope || -slope * step < noise) break;
      step *= 0.5;
    }
    beta += step * dbeta;
    t += step * dt;
    f = f0 + t;
    p = RowSoftmax(f);
    dual = (y - p) * inv_lambda;
    psi = psi_new;
    if (step < 1.0) eta_cap = std::max(eta_cap * 1e-2, 1e-10);
    info.newton_iterations = it + 1;
  }

  sol.logits = std::move(f);
  sol.dual = std::move(dual);
  return sol;
}

namespace {

// Solves (Theta + shift I) dual = rhs by Cholesky with the jitter policy of
// solvers.h. `base_shift` is lambda (2c) or 0 (2b).
absl::StatusOr<SolverSolution> SolveShifted(const MatrixXd& theta,
                                            const MatrixXd& rhs,
                                            const MatrixXd& f0,
                                            double base_shift,
                                            const ProgressFn& progress) {
  const Index n = theta.rows();
  const double mean_diag = n > 0 ? theta.diagonal().mean() : 1.0;
  const double scale = mean_diag > 0 ? mean_diag : 1.0;
  double jitter = base_shift >= kRelativeJitter * scale ? 0.0 : kRelativeJitter * scale;
  if (!Report(progress, 0.0, "cholesky")) {
    return absl::CancelledError("fit cancelled before the Cholesky factorization");
  }
  MatrixXd factor(n, n);
  bool ok = false;
  double anorm = 0;  // ||Theta + shift I||_1, for the condition estimate
  for (;;) {
    factor = theta;
    factor.diagonal().array() += base_shift + jitter;
    anorm = n > 0 ? factor.cwiseAbs().colwise().sum().maxCoeff() : 0.0;
    Eigen::LLT<Eigen::Ref<MatrixXd>> llt(factor);
    if (llt.info() == Eigen::Success) {
      ok = true;
      break;
    }
    const double next = jitter == 0 ? kRelativeJitter * scale : jitter * 10;
    if (next > kMaxRelativeJitter * scale * (1 + 1e-12)) break;
    jitter = next;
  }
  if (!ok) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "features: the training NTK is not positive definite even with jitter "
        "%.3g (%.0e x mean diagonal); the kernel has non-finite or "
        "inconsistent entries",
        jitter, kMaxRelativeJitter));
  }
  if (!Report(progress, 0.8, "solve")) {
    return absl::CancelledError("fit cancelled after the Cholesky factorization");
  }
  // `factor` now holds L in its lower triangle (in-place LLT).
  SolverSolution sol;
  sol.info.jitter = jitter;
  auto lower = factor.triangularView<Eigen::Lower>();
  sol.dual = lower.solve(rhs);
  lower.transpose().solveInPlace(sol.dual);
  // Residual of the linear system with the matrix actually factored.
  MatrixXd theta_dual(n, rhs.cols());
  theta_dual.noalias() = theta * sol.dual;
  const double shift = base_shift + jitter;
  sol.info.fixed_point_residual = InfNorm(theta_dual + shift * sol.dual - rhs);
  sol.info.relative_residual =
      sol.info.fixed_point_residual / std::max(1.0, InfNorm(rhs));
  sol.logits = theta_dual;
  if (f0.size() != 0) sol.logits += f0;
  // Condition estimate (see solvers.h): LAPACK dpocon from the factor,
  // O(N^2) (a few triangular solves), not another pass of O(N^3) work.
  if (n > 0) {
    double rcond = 0;
    const lapack_int info = LAPACKE_dpocon(
        LAPACK_COL_MAJOR, 'L', static_cast<lapack_int>(n), factor.data(),
        static_cast<lapack_int>(factor.outerStride()), anorm, &rcond);
    sol.info.condition_estimate =
        info == 0 && rcond > 0 ? 1.0 / rcond : std::numeric_limits<double>::infinity();
  }
  return sol;
}

}  // namespace

absl::StatusOr<SolverSolution> SolveUnregularizedCE(const Eigen::MatrixXd& theta,
                                                    const Eigen::MatrixXd& y,
                                                    const Eigen::MatrixXd& f0,
                                                    const ProgressFn& progress) {
  if (absl::Status s = CheckShapes(theta, y, f0); !s.ok()) return s;
  if (!(y.array() > 0).all()) {
    return absl::InvalidArgumentError(
        "targets: 2b (lambda = 0) needs every target > 0 (docs/model-contract.md \"2b. Unregularized\")");
  }
  MatrixXd rhs = y.array().log().matrix();
  if (f0.size() != 0) rhs -= f0;
  return SolveShifted(theta, rhs, f0, 0.0, progress);
}

absl::StatusOr<SolverSolution> SolveSquared(const Eigen::MatrixXd& theta,
                                            const Eigen::MatrixXd& y,
                                            const Eigen::MatrixXd& f0,
                                            double lambda,
                                            const ProgressFn& progress) {
  if (absl::Status s = CheckShapes(theta, y, f0); !s.ok()) return s;
  if (!(lambda >= 0) || !std::isfinite(lambda)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.training.regularization: must be a finite number >= 0, got ", lambda));
  }
  MatrixXd rhs = y;
  if (f0.size() != 0) rhs -= f0;
  return SolveShifted(theta, rhs, f0, lambda, progress);
}

}  // namespace ntk
