// ntk/core/training/newton_cg.cc: the 2a solver of docs/model-contract.md
// "2a. Regularized", Newton's method with preconditioned conjugate
// gradients (SolveRegularizedCE, solvers.h), as named steps:
//
//   Start             beta from the warm start (or 0), F = F0 + Theta beta
//   CheckProgress     fixed-point residual; converged, stalled, or go on
//   SolveNewtonSystem PCG on (I + S Theta S / lambda) z = -S residual
//   NewtonDirection   dbeta, dt = Theta dbeta (steepest descent fallback)
//   LineSearch        backtracking (Armijo) on Psi
//   TakeStep          beta += step dbeta, new softmax and dual
//
// The preconditioner and the Hessian blocks are in newton_cg_preconditioner.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/numerics/linalg.h"
#include "core/training/newton_cg_preconditioner.h"
#include "core/training/solver_util.h"
#include "core/training/solvers.h"

namespace ntk {
namespace solver_internal {
namespace {

// One 2a solve: the iterate, its workspaces and the convergence bookkeeping.
class NewtonCG {
 public:
  NewtonCG(const MatrixXd& theta, const MatrixXd& y, const MatrixXd& f0,
           double lambda, const RegularizedCEOptions& options)
      : theta_(theta), y_(y), f0_(f0), lambda_(lambda),
        inv_lambda_(1.0 / lambda), options_(options),
        n_(y.rows()), c_(y.cols()) {}

  absl::StatusOr<SolverSolution> Run();

 private:
  enum class Next { kIterate, kStop };

  void Start();
  absl::StatusOr<Next> CheckProgress(int it);
  // False when progress asked to stop during the CG iterations.
  bool SolveNewtonSystem(LowRankPreconditioner& precond);
  static absl::Status Cancelled() {
    return absl::CancelledError("fit cancelled during the 2a Newton solve");
  }
  bool NewtonDirection(double* slope);
  double LineSearch(double slope, double* psi_new);
  void TakeStep(double step, double psi_new, int it);

  const MatrixXd& theta_;
  const MatrixXd& y_;
  const MatrixXd& f0_;
  const double lambda_;
  const double inv_lambda_;
  const RegularizedCEOptions& options_;
  const Index n_, c_;

  SolverInfo info_;
  // beta: the parameters (F = F0 + Theta beta); t = Theta beta.
  MatrixXd beta_, t_, f_, p_, dual_;
  MatrixXd theta_dual_, residual_;
  double psi_ = 0;
  double rel_ = 0;  // relative fixed-point residual of the current iterate
  double frac_ = 0;  // progress fraction last reported
  BlockHessian hess_;
  MatrixXd b_, rhs_, z_, r_, zp_, d_, sd_, ad_, tmp_, f_new_, dbeta_, dt_, f_trial_;
  // Convergence bookkeeping (CheckProgress, TakeStep).
  double first_rel_ = -1;
  int stagnant_ = 0;
  double eta_cap_ = 1e-4;
  double best_rel_ = std::numeric_limits<double>::infinity();
};

void NewtonCG::Start() {
  if (options_.warm_start_dual != nullptr && options_.warm_start_dual->rows() == n_ &&
      options_.warm_start_dual->cols() == c_) {
    beta_ = *options_.warm_start_dual;
    ThetaTimes(theta_, beta_, &t_);
  } else {
    beta_ = MatrixXd::Zero(n_, c_);
    t_ = MatrixXd::Zero(n_, c_);
  }
}

// Fixed-point residual at the current iterate (one product with Theta) and
// the stopping rules of solvers.h.
absl::StatusOr<NewtonCG::Next> NewtonCG::CheckProgress(int it) {
  ThetaTimes(theta_, dual_, &theta_dual_);
  residual_ = t_ - theta_dual_;  // = F - F0 - Theta (Y - p) / lambda
  info_.fixed_point_residual = InfNorm(residual_);
  info_.relative_residual = info_.fixed_point_residual / std::max(1.0, InfNorm(f_));
  const double rel = info_.relative_residual;
  rel_ = rel;
  if (first_rel_ < 0) first_rel_ = std::max(rel, options_.tolerance * 10);
  if (rel <= options_.tolerance) return Next::kStop;
  if (rel < best_rel_ * 0.5) {
    best_rel_ = rel;
    stagnant_ = 0;
  } else if (rel < 1e2 * options_.tolerance) {
    // Within 100x of the target and not improving (Newton would at least
    // square the error): the rounding floor of the GEMMs, about
    // sqrt(N) eps max_i sum_j |Theta_ij| |dual_j|, has been reached.
    return Next::kStop;
  } else if (rel < 1e-8 && ++stagnant_ >= 3) {
    return Next::kStop;
  }
  if (it >= options_.max_newton_iterations) {
    if (rel <= 1e3 * options_.tolerance) return Next::kStop;
    // Not a server fault: seen only for data and lambda whose fit float64
    // cannot represent (fuzz finding F1, docs/testing.md: a row with a huge
    // norm, or a tiny lambda, needs probabilities within rounding of 0 or 1).
    // The client gets a precise code and what to change.
    Index row = 0;
    const double theta_max = theta_.diagonal().maxCoeff(&row);
    return absl::InvalidArgumentError(absl::StrFormat(
        "spec.training.regularization: the 2a Newton solve did not converge in %d "
        "iterations for these data (relative fixed-point residual %.3g, target %.3g; "
        "lambda = %g, largest Theta_ii = %g at training row %d): float64 cannot "
        "represent this fit; raise spec.training.regularization or rescale the "
        "features (spec.preprocessing.standardize / normalize_rows)",
        options_.max_newton_iterations, rel, options_.tolerance, lambda_, theta_max, row));
  }
  // Progress: fraction of the way (on a log scale) from the first
  // residual to the target.
  const double frac = std::log(first_rel_ / std::max(rel, 1e-300)) /
                      std::log(first_rel_ / options_.tolerance);
  frac_ = frac;
  if (!ReportProgress(options_.progress, frac, "newton")) return Cancelled();
  return Next::kIterate;
}

// Hessian of Psi in beta: Theta (W Theta + lambda I); gradient
// Theta (lambda beta + p - Y). So the step solves
//   (lambda I + W Theta) dbeta = r,  r = Y - p - lambda beta = lambda (dual - beta).
// With W = S^2 and dbeta = (r - S z) / lambda this is the SPD system
//   (I + S Theta S / lambda) z = S Theta r / lambda = -S residual
// (R&W alg. 3.1's matrix B = I + S K S with K = Theta / lambda). Its
// right-hand side vanishes at the solution, so a relative CG tolerance
// is an inexact-Newton forcing term. Leaves z in z_. Progress is asked
// before every CG iteration (one product with Theta each), so a cancel
// stops within one product.
bool NewtonCG::SolveNewtonSystem(LowRankPreconditioner& precond) {
  hess_.Build(p_);
  precond.Update(hess_);
  b_ = -residual_;
  hess_.ApplySqrt(b_, &rhs_);
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
  const double rel = rel_;
  const double eta = std::clamp(
      std::max(std::min(rel, std::sqrt(rel)), 0.1 * options_.tolerance / rel), 1e-14,
      eta_cap_);
  const double rhs_norm = rhs_.norm();
  z_.setZero();
  r_ = rhs_;
  precond.Apply(r_, &zp_);
  d_ = zp_;
  double rz = Dot(r_, zp_);
  int cg = 0;
  // CG on this (N C)-dimensional SPD system ends in at most N C steps in
  // exact arithmetic; far beyond that it only cycles on rounding error
  // (fuzz finding F2, docs/testing.md: 2000 steps per Newton step on a
  // 6-row fit with a 4.5e43 feature). So small systems stop at 10 N C.
  const int64_t cg_cap = std::min<int64_t>(options_.max_cg_iterations,
                                           std::max<int64_t>(50, 10 * n_ * c_));
  if (rhs_norm > 0) {
    while (cg < cg_cap) {
      if (r_.norm() <= eta * rhs_norm) break;
      if (!ReportProgress(options_.progress, frac_, "newton")) return false;
      hess_.ApplySqrt(d_, &sd_);
      ThetaTimes(theta_, sd_, &tmp_);
      hess_.ApplySqrt(tmp_, &ad_);
      ad_ = d_ + ad_ * inv_lambda_;
      const double dad = Dot(d_, ad_);
      if (!(dad > 0)) break;
      const double alpha = rz / dad;
      z_ += alpha * d_;
      r_ -= alpha * ad_;
      ++cg;
      precond.Apply(r_, &zp_);
      const double rz_new = Dot(r_, zp_);
      d_ = zp_ + (rz_new / rz) * d_;
      rz = rz_new;
    }
  }
  info_.cg_iterations += cg;
  return true;
}

// dbeta = (r - S z) / lambda; dt = Theta dbeta = (-lambda residual - Theta S z) / lambda.
// *slope: the directional derivative of Psi along dbeta. False when not
// even steepest descent decreases Psi (the gradient is zero to rounding).
bool NewtonCG::NewtonDirection(double* slope) {
  hess_.ApplySqrt(z_, &tmp_);
  dbeta_ = ((dual_ - beta_) * lambda_ - tmp_) * inv_lambda_;
  ThetaTimes(theta_, tmp_, &f_new_);
  dt_ = -residual_ - f_new_ * inv_lambda_;

  // grad_beta Psi = Theta (p - Y + lambda beta) = lambda * residual.
  *slope = lambda_ * Dot(residual_, dbeta_);
  if (!(*slope < 0)) {
    // Not a descent direction (CG stopped very early on a nearly singular
    // system): fall back to steepest descent in the Theta metric,
    // dbeta = -(beta - dual), dt = -residual.
    dbeta_ = dual_ - beta_;
    dt_ = -residual_;
    *slope = lambda_ * Dot(residual_, dbeta_);
    if (!(*slope < 0)) return false;
  }
  return true;
}

// Backtracking line search (Armijo, c = 1e-4). When the predicted
// decrease is below the rounding level of Psi, take the full step
// (local quadratic convergence of Newton's method). Returns the step.
double NewtonCG::LineSearch(double slope, double* psi_new) {
  const double eps = std::numeric_limits<double>::epsilon();
  double step = 1.0;
  *psi_new = 0;
  const double noise = 1e3 * eps * (std::abs(psi_) + 1.0);
  for (int ls = 0; ls < 60; ++ls) {
    f_trial_ = f0_ + t_ + step * dt_;
    const MatrixXd beta_trial = beta_ + step * dbeta_;
    const MatrixXd t_trial = t_ + step * dt_;
    *psi_new = SumCrossEntropy(y_, f_trial_) + 0.5 * lambda_ * Dot(beta_trial, t_trial);
    if (*psi_new <= psi_ + 1e-4 * step * slope || -slope * step < noise) break;
    step *= 0.5;
  }
  return step;
}

void NewtonCG::TakeStep(double step, double psi_new, int it) {
  beta_ += step * dbeta_;
  t_ += step * dt_;
  f_ = f0_ + t_;
  p_ = RowSoftmax(f_);
  dual_ = (y_ - p_) * inv_lambda_;
  psi_ = psi_new;
  if (step < 1.0) eta_cap_ = std::max(eta_cap_ * 1e-2, 1e-10);
  info_.newton_iterations = it + 1;
}

absl::StatusOr<SolverSolution> NewtonCG::Run() {
  Start();
  ThetaEigenbasis own_basis;
  if (options_.eigenbasis == nullptr) {
    own_basis = ComputeThetaEigenbasis(theta_, options_.preconditioner_rank);
  }
  // From here on, the products with Theta run on OpenMP threads
  // (core/numerics/linalg.h) and the BLAS calls left (a k^2 x N x C^2 GEMM and a
  // kC x kC Cholesky per Newton step) are small: keep OpenBLAS single-
  // threaded, or its idle workers spin through every OpenMP region
  // (measured at N = 5000 on 2 cores: 7.0 s wall / 13.8 s CPU with both
  // pools active, 5.2 s on one thread).
  ScopedSingleThreadedBlas one_blas_thread;
  LowRankPreconditioner precond(
      theta_, lambda_, options_.eigenbasis ? *options_.eigenbasis : own_basis);

  f_ = f0_ + t_;
  p_ = RowSoftmax(f_);
  dual_ = (y_ - p_) * inv_lambda_;
  theta_dual_.resize(n_, c_);
  residual_.resize(n_, c_);
  psi_ = SumCrossEntropy(y_, f_) + 0.5 * lambda_ * Dot(beta_, t_);
  for (MatrixXd* m : {&b_, &rhs_, &z_, &r_, &zp_, &d_, &sd_, &ad_, &tmp_, &f_new_,
                      &dbeta_, &dt_, &f_trial_}) {
    m->resize(n_, c_);
  }

  for (int it = 0;; ++it) {
    absl::StatusOr<Next> next = CheckProgress(it);
    if (!next.ok()) return next.status();
    if (*next == Next::kStop) break;
    if (!SolveNewtonSystem(precond)) return Cancelled();
    double slope = 0;
    if (!NewtonDirection(&slope)) break;
    double psi_new = 0;
    const double step = LineSearch(slope, &psi_new);
    TakeStep(step, psi_new, it);
  }

  SolverSolution sol;
  sol.info = info_;
  sol.logits = std::move(f_);
  sol.dual = std::move(dual_);
  return sol;
}

}  // namespace
}  // namespace solver_internal

absl::StatusOr<SolverSolution> SolveRegularizedCE(
    const Eigen::MatrixXd& theta, const Eigen::MatrixXd& y,
    const Eigen::MatrixXd& f0_in, double lambda,
    const RegularizedCEOptions& options) {
  if (absl::Status s = solver_internal::CheckShapes(theta, y, f0_in); !s.ok()) return s;
  if (!(lambda > 0) || !std::isfinite(lambda)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.training.regularization: 2a needs lambda > 0, got ", lambda));
  }
  const Eigen::MatrixXd f0 =
      f0_in.size() == 0 ? Eigen::MatrixXd::Zero(y.rows(), y.cols()) : f0_in;
  solver_internal::NewtonCG solver(theta, y, f0, lambda, options);
  return solver.Run();
}

}  // namespace ntk
