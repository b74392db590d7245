// ntk/core/training/newton_cg_solver.h (internal to core/training/): one 2a
// Newton-CG solve (SolveRegularizedCE, solvers.h; docs/model-contract.md
// "2a. Regularized") as a resumable sequence of products with Theta, so
// that a caller can run many solves in lockstep and compute their products
// together (newton_cg_block.h). SolveRegularizedCE is this loop:
//
//   NewtonCGSolver solve(theta, y, f0, lambda, options, basis);
//   for (solve.Begin(); solve.WantsProduct(); solve.Advance()) {
//     ThetaTimes(theta, solve.ProductInput(), solve.ProductOutput());
//   }
//   absl::StatusOr<SolverSolution> s = solve.TakeResult();
//
// Everything between two products is the solve's own arithmetic, so the
// iterates depend on who computes the products only through the products'
// bits (ThetaTimesBatch gives ThetaTimes's bits).
//
// Thread safety: one thread at a time per solver; distinct solvers may run
// concurrently (theta, y, f0, options and the PreconditionerBasis are only
// read). Ownership: theta, y, f0, options and basis are not owned and must
// outlive the solver. Memory: about 24 N C + N C^2 doubles.
#ifndef NTK_CORE_TRAINING_NEWTON_CG_SOLVER_H_
#define NTK_CORE_TRAINING_NEWTON_CG_SOLVER_H_

#include <cstdint>
#include <limits>

#include <Eigen/Dense>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/training/newton_cg_preconditioner.h"
#include "core/training/solvers.h"

namespace ntk::solver_internal {

class NewtonCGSolver {
 public:
  // REQUIRES: shapes checked (CheckShapes), f0 N x C (not empty), lambda > 0.
  NewtonCGSolver(const MatrixXd& theta, const MatrixXd& y, const MatrixXd& f0, double lambda,
                 const RegularizedCEOptions& options, const PreconditionerBasis& basis);
  NewtonCGSolver(const NewtonCGSolver&) = delete;
  NewtonCGSolver& operator=(const NewtonCGSolver&) = delete;

  // Starts the solve and runs it to its first product.
  void Begin();
  // True while the solve waits for *ProductOutput() = Theta * ProductInput()
  // (N x C); false once it has ended (TakeResult).
  bool WantsProduct() const { return phase_ != Phase::kDone; }
  // True while the product asked for is the warm start's Theta beta.
  bool AtWarmStart() const { return phase_ == Phase::kStart; }
  const MatrixXd& ProductInput() const { return *in_; }
  MatrixXd* ProductOutput() { return out_; }
  // REQUIRES: WantsProduct() and the product written. Runs the solve to its
  // next product or to its end.
  void Advance();
  // The solution, or the error (INVALID_ARGUMENT naming
  // spec.training.regularization when it did not converge; CANCELLED when
  // options.progress said stop). REQUIRES: !WantsProduct(); once.
  absl::StatusOr<SolverSolution> TakeResult();

 private:
  // The product the solve waits for (each phase ends with one).
  enum class Phase {
    kStart,      // Theta beta of the warm start
    kResidual,   // Theta dual: the fixed-point residual (CheckProgress)
    kCG,         // Theta S d: one CG iteration
    kDirection,  // Theta S z: the Newton direction
    kDone,
  };

  void Ask(Phase phase, const MatrixXd* in, MatrixXd* out);
  void End(absl::Status status);
  static absl::Status Cancelled() {
    return absl::CancelledError("fit cancelled during the 2a Newton solve");
  }
  // The named steps of newton_cg.cc, split at their products.
  void AfterStart();
  void AfterResidual();
  void StartNewtonSystem();
  void NextCGIteration();
  void AfterCGProduct();
  void AfterDirection();
  double LineSearch(double slope, double* psi_new);
  void TakeStep(double step, double psi_new);

  const MatrixXd& theta_;
  const MatrixXd& y_;
  const MatrixXd& f0_;
  const double lambda_;
  const double inv_lambda_;
  const RegularizedCEOptions& options_;
  const Index n_, c_;
  LowRankPreconditioner precond_;

  Phase phase_ = Phase::kDone;
  const MatrixXd* in_ = nullptr;
  MatrixXd* out_ = nullptr;
  absl::Status status_;
  int it_ = 0;  // Newton iteration

  SolverInfo info_;
  // beta: the parameters (F = F0 + Theta beta); t = Theta beta.
  MatrixXd beta_, t_, f_, p_, dual_;
  MatrixXd theta_dual_, residual_;
  double psi_ = 0;
  double rel_ = 0;   // relative fixed-point residual of the current iterate
  double frac_ = 0;  // progress fraction last reported
  BlockHessian hess_;
  MatrixXd b_, rhs_, z_, r_, zp_, d_, sd_, ad_, tmp_, f_new_, dbeta_, dt_, f_trial_;
  // The CG iteration of the current Newton step.
  double eta_ = 0, rhs_norm_ = 0, rz_ = 0;
  int cg_ = 0;
  int64_t cg_cap_ = 0;
  // Convergence bookkeeping (AfterResidual, TakeStep).
  double first_rel_ = -1;
  int stagnant_ = 0;
  double eta_cap_ = 1e-4;
  double best_rel_ = std::numeric_limits<double>::infinity();
};

}  // namespace ntk::solver_internal

#endif  // NTK_CORE_TRAINING_NEWTON_CG_SOLVER_H_
