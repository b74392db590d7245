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
// The steps are methods of NewtonCGSolver (newton_cg_solver.h), split where
// they need a product with Theta: Begin / AfterStart (Start),
// AfterResidual (CheckProgress), StartNewtonSystem / NextCGIteration /
// AfterCGProduct (SolveNewtonSystem), AfterDirection (NewtonDirection,
// LineSearch, TakeStep). The preconditioner and the Hessian blocks are in
// newton_cg_preconditioner.h.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/numerics/linalg.h"
#include "core/training/newton_cg_preconditioner.h"
#include "core/training/newton_cg_solver.h"
#include "core/training/solver_util.h"
#include "core/training/solvers.h"

namespace ntk {
namespace solver_internal {

NewtonCGSolver::NewtonCGSolver(const MatrixXd& theta, const MatrixXd& y, const MatrixXd& f0,
                               double lambda, const RegularizedCEOptions& options,
                               const PreconditionerBasis& basis)
    : theta_(theta), y_(y), f0_(f0), lambda_(lambda), inv_lambda_(1.0 / lambda),
      options_(options), n_(y.rows()), c_(y.cols()), precond_(basis) {}

void NewtonCGSolver::Ask(Phase phase, const MatrixXd* in, MatrixXd* out) {
  phase_ = phase;
  in_ = in;
  out_ = out;
}

void NewtonCGSolver::End(absl::Status status) {
  status_ = std::move(status);
  phase_ = Phase::kDone;
  in_ = nullptr;
  out_ = nullptr;
}

// Start: beta from the warm start (or 0), t = Theta beta.
void NewtonCGSolver::Begin() {
  if (options_.warm_start_dual != nullptr && options_.warm_start_dual->rows() == n_ &&
      options_.warm_start_dual->cols() == c_) {
    beta_ = *options_.warm_start_dual;
    Ask(Phase::kStart, &beta_, &t_);
    return;
  }
  beta_ = MatrixXd::Zero(n_, c_);
  t_ = MatrixXd::Zero(n_, c_);
  AfterStart();
}

void NewtonCGSolver::AfterStart() {
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
  it_ = 0;
  Ask(Phase::kResidual, &dual_, &theta_dual_);
}

void NewtonCGSolver::Advance() {
  switch (phase_) {
    case Phase::kStart:
      return AfterStart();
    case Phase::kResidual:
      return AfterResidual();
    case Phase::kCG:
      return AfterCGProduct();
    case Phase::kDirection:
      return AfterDirection();
    case Phase::kDone:
      return;
  }
}

absl::StatusOr<SolverSolution> NewtonCGSolver::TakeResult() {
  if (!status_.ok()) return status_;
  SolverSolution sol;
  sol.info = info_;
  sol.logits = std::move(f_);
  sol.dual = std::move(dual_);
  return sol;
}

// CheckProgress: the fixed-point residual at the current iterate (its
// product with Theta is theta_dual_) and the stopping rules of solvers.h.
void NewtonCGSolver::AfterResidual() {
  residual_ = t_ - theta_dual_;  // = F - F0 - Theta (Y - p) / lambda
  info_.fixed_point_residual = InfNorm(residual_);
  info_.relative_residual = info_.fixed_point_residual / std::max(1.0, InfNorm(f_));
  const double rel = info_.relative_residual;
  rel_ = rel;
  if (first_rel_ < 0) first_rel_ = std::max(rel, options_.tolerance * 10);
  if (rel <= options_.tolerance) return End(absl::OkStatus());
  if (rel < best_rel_ * 0.5) {
    best_rel_ = rel;
    stagnant_ = 0;
  } else if (rel < 1e2 * options_.tolerance) {
    // Within 100x of the target and not improving (Newton would at least
    // square the error): the rounding floor of the GEMMs, about
    // sqrt(N) eps max_i sum_j |Theta_ij| |dual_j|, has been reached.
    return End(absl::OkStatus());
  } else if (rel < 1e-8 && ++stagnant_ >= 3) {
    return End(absl::OkStatus());
  }
  if (it_ >= options_.max_newton_iterations) {
    if (rel <= 1e3 * options_.tolerance) return End(absl::OkStatus());
    // Not a server fault: seen only for data and lambda whose fit float64
    // cannot represent (fuzz finding F1, docs/testing.md: a row with a huge
    // norm, or a tiny lambda, needs probabilities within rounding of 0 or 1).
    // The client gets a precise code and what to change.
    Index row = 0;
    const double theta_max = theta_.diagonal().maxCoeff(&row);
    return End(absl::InvalidArgumentError(absl::StrFormat(
        "spec.training.regularization: the 2a Newton solve did not converge in %d "
        "iterations for these data (relative fixed-point residual %.3g, target %.3g; "
        "lambda = %g, largest Theta_ii = %g at training row %d): float64 cannot "
        "represent this fit; raise spec.training.regularization or rescale the "
        "features (spec.preprocessing.standardize / normalize_rows)",
        options_.max_newton_iterations, rel, options_.tolerance, lambda_, theta_max, row)));
  }
  // Progress: fraction of the way (on a log scale) from the first
  // residual to the target.
  const double frac = std::log(first_rel_ / std::max(rel, 1e-300)) /
                      std::log(first_rel_ / options_.tolerance);
  frac_ = frac;
  if (!ReportProgress(options_.progress, frac, "newton")) return End(Cancelled());
  StartNewtonSystem();
}

// SolveNewtonSystem. Hessian of Psi in beta: Theta (W Theta + lambda I);
// gradient Theta (lambda beta + p - Y). So the step solves
//   (lambda I + W Theta) dbeta = r,  r = Y - p - lambda beta = lambda (dual - beta).
// With W = S^2 and dbeta = (r - S z) / lambda this is the SPD system
//   (I + S Theta S / lambda) z = S Theta r / lambda = -S residual
// (R&W alg. 3.1's matrix B = I + S K S with K = Theta / lambda). Its
// right-hand side vanishes at the solution, so a relative CG tolerance
// is an inexact-Newton forcing term. Leaves z in z_. Progress is asked
// before every CG iteration (one product with Theta each), so a cancel
// stops within one product.
void NewtonCGSolver::StartNewtonSystem() {
  hess_.Build(p_);
  precond_.Update(hess_);
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
  eta_ = std::clamp(
      std::max(std::min(rel, std::sqrt(rel)), 0.1 * options_.tolerance / rel), 1e-14,
      eta_cap_);
  rhs_norm_ = rhs_.norm();
  z_.setZero();
  r_ = rhs_;
  precond_.Apply(r_, &zp_);
  d_ = zp_;
  rz_ = Dot(r_, zp_);
  cg_ = 0;
  // CG on this (N C)-dimensional SPD system ends in at most N C steps in
  // exact arithmetic; far beyond that it only cycles on rounding error
  // (fuzz finding F2, docs/testing.md: 2000 steps per Newton step on a
  // 6-row fit with a 4.5e43 feature). So small systems stop at 10 N C.
  cg_cap_ = std::min<int64_t>(options_.max_cg_iterations,
                              std::max<int64_t>(50, 10 * n_ * c_));
  NextCGIteration();
}

// The head of the CG loop: stop (then the Newton direction's product), or
// ask for the next iteration's product Theta S d.
void NewtonCGSolver::NextCGIteration() {
  if (rhs_norm_ > 0 && cg_ < cg_cap_ && !(r_.norm() <= eta_ * rhs_norm_)) {
    if (!ReportProgress(options_.progress, frac_, "newton")) return End(Cancelled());
    hess_.ApplySqrt(d_, &sd_);
    return Ask(Phase::kCG, &sd_, &tmp_);
  }
  info_.cg_iterations += cg_;
  // NewtonDirection: dbeta = (r - S z) / lambda; dt = Theta dbeta =
  // (-lambda residual - Theta S z) / lambda.
  hess_.ApplySqrt(z_, &tmp_);
  dbeta_ = ((dual_ - beta_) * lambda_ - tmp_) * inv_lambda_;
  Ask(Phase::kDirection, &tmp_, &f_new_);
}

void NewtonCGSolver::AfterCGProduct() {
  hess_.ApplySqrt(tmp_, &ad_);
  ad_ = d_ + ad_ * inv_lambda_;
  const double dad = Dot(d_, ad_);
  if (!(dad > 0)) {
    cg_cap_ = cg_;  // the loop ends here
    return NextCGIteration();
  }
  const double alpha = rz_ / dad;
  z_ += alpha * d_;
  r_ -= alpha * ad_;
  ++cg_;
  precond_.Apply(r_, &zp_);
  const double rz_new = Dot(r_, zp_);
  d_ = zp_ + (rz_new / rz_) * d_;
  rz_ = rz_new;
  NextCGIteration();
}

// NewtonDirection (its product Theta S z is f_new_), then LineSearch and
// TakeStep, then the next CheckProgress.
void NewtonCGSolver::AfterDirection() {
  dt_ = -residual_ - f_new_ * inv_lambda_;

  // grad_beta Psi = Theta (p - Y + lambda beta) = lambda * residual.
  double slope = lambda_ * Dot(residual_, dbeta_);
  if (!(slope < 0)) {
    // Not a descent direction (CG stopped very early on a nearly singular
    // system): fall back to steepest descent in the Theta metric,
    // dbeta = -(beta - dual), dt = -residual.
    dbeta_ = dual_ - beta_;
    dt_ = -residual_;
    slope = lambda_ * Dot(residual_, dbeta_);
    // Not even steepest descent decreases Psi (the gradient is zero to
    // rounding): done.
    if (!(slope < 0)) return End(absl::OkStatus());
  }
  double psi_new = 0;
  const double step = LineSearch(slope, &psi_new);
  TakeStep(step, psi_new);
  ++it_;
  Ask(Phase::kResidual, &dual_, &theta_dual_);
}

// Backtracking line search (Armijo, c = 1e-4). When the predicted
// decrease is below the rounding level of Psi, take the full step
// (local quadratic convergence of Newton's method). Returns the step.
double NewtonCGSolver::LineSearch(double slope, double* psi_new) {
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

void NewtonCGSolver::TakeStep(double step, double psi_new) {
  beta_ += step * dbeta_;
  t_ += step * dt_;
  f_ = f0_ + t_;
  p_ = RowSoftmax(f_);
  dual_ = (y_ - p_) * inv_lambda_;
  psi_ = psi_new;
  if (step < 1.0) eta_cap_ = std::max(eta_cap_ * 1e-2, 1e-10);
  info_.newton_iterations = it_ + 1;
}

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
  using solver_internal::ThetaTimes;
  ThetaEigenbasis own_basis;
  if (options.eigenbasis == nullptr) {
    own_basis = ComputeThetaEigenbasis(theta, options.preconditioner_rank);
  }
  const solver_internal::PreconditionerBasis basis(
      theta, lambda, options.eigenbasis ? *options.eigenbasis : own_basis);
  solver_internal::NewtonCGSolver solve(theta, y, f0, lambda, options, basis);
  solve.Begin();
  if (solve.AtWarmStart()) {  // before the scope below, as it always was
    ThetaTimes(theta, solve.ProductInput(), solve.ProductOutput());
    solve.Advance();
  }
  // From here on, the products with Theta run on OpenMP threads
  // (core/numerics/linalg.h) and the BLAS calls left (a k^2 x N x C^2 GEMM and a
  // kC x kC Cholesky per Newton step) are small: keep OpenBLAS single-
  // threaded, or its idle workers spin through every OpenMP region
  // (measured at N = 5000 on 2 cores: 7.0 s wall / 13.8 s CPU with both
  // pools active, 5.2 s on one thread).
  ScopedSingleThreadedBlas one_blas_thread;
  for (; solve.WantsProduct(); solve.Advance()) {
    ThetaTimes(theta, solve.ProductInput(), solve.ProductOutput());
  }
  return solve.TakeResult();
}

}  // namespace ntk
