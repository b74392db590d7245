// ntk/core/nystrom/nystrom_solve.h: training a Nystrom model
// (docs/model-contract.md "6. Nystrom models"): the kernels between the
// training rows and the centers, and the one entry point SolveNystrom that
// dispatches on the regime DecideTrainingProblem decided (problem.h).
//
//   absl::StatusOr<NystromKernels> k = ComputeNystromKernels(spec, x, rows, progress);
//   absl::StatusOr<NystromSolution> s = SolveNystrom(problem, *k, options);
//   // f(x) = f0(x) + Theta(x, Z) * s->beta;  s->logits = F at the training points
//
// The model lives in the span of the centers Z: f = f0 + Theta(., Z) beta,
// beta m x C, with the RKHS norm beta^T Theta_mm beta. Fitted by
//   2a  Newton's method on
//       Psi(beta) = sum_i CE(y_i, softmax(F0_i + (Theta_nm beta)_i))
//                   + (lambda / 2) tr(beta^T Theta_mm beta),
//       each step by conjugate gradients on the m C-dimensional Hessian
//       Theta_mn W Theta_nm + lambda Theta_mm, matrix-free (two products with
//       Theta_nm per iteration), preconditioned as in FALKON (Rudi, Carratino,
//       Rosasco 2017, "FALKON: An Optimal Large Scale Kernel Method"; Meanti
//       et al. 2020, "Kernel methods through the roof"): Theta_mm = L L^T,
//       Theta_mn W Theta_nm ~= (N w / m) Theta_mm^2 (w the mean curvature),
//       so M = L (s L^T L + lambda I) L^T, s = N w / m, inverted by four
//       triangular solves after one m x m Cholesky per Newton step.
//   2b  (Theta_mn Theta_nm + delta Theta_mm) beta = Theta_mn (log Y - F0)
//   2c  (Theta_mn Theta_nm + delta Theta_mm) beta = Theta_mn (Y - F0)
//       delta = lambda + jitter (2b: lambda = 0), the exact model's jitter
//       policy (problem.h JitterPolicy) with the scale mean(diag Theta_XX).
// With m = N and Z = X every regime gives the exact model's dual
// (Theta_mm = Theta_nm = Theta_XX: 2b/2c factor Theta (Theta + delta I),
// 2a has the exact model's objective in beta).
//
// Thread safety: pure functions of their arguments, safe to call
// concurrently; they use all cores through the BLAS and OpenMP.
// Memory: Theta_nm (N m) held once, Theta_mm and one or two m x m factors,
// O(N C^2) Hessian blocks (2a); never N x N (core/model/cost.h FitCost).
#ifndef NTK_CORE_NYSTROM_NYSTROM_SOLVE_H_
#define NTK_CORE_NYSTROM_NYSTROM_SOLVE_H_

#include <vector>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/kernels/kernel.h"
#include "core/training/problem.h"
#include "core/training/progress.h"
#include "core/training/solvers.h"

namespace ntk {

struct NystromKernels {
  Eigen::MatrixXd theta_nm;  // Theta(X, Z), N x m
  Eigen::MatrixXd theta_mm;  // Theta(Z, Z), m x m (TrainKernels: exact diagonal)
  double mean_diag = 1;      // mean_i Theta(x_i, x_i): the jitter scale
  // K_mn Theta_nm (m x m; K = NNGP), only when ComputeNystromKernels was
  // asked for it: the 2b/2c PredictDistribution summary
  // (docs/model-contract.md "6. Nystrom models").
  Eigen::MatrixXd nngp_theta;
  // K(X, Z) (N x m), only when ComputeNystromKernels was asked to keep it:
  // what the 2a PredictDistribution summaries need (NewtonSummaries).
  Eigen::MatrixXd nngp_nm;
};

// Theta_nm in blocks of rows (progress between them; CANCELLED when it
// returns false) and Theta_mm, for the preprocessed training rows x
// (N x d) and the centers Z = x(center_rows). The rows of Theta_nm that are
// centers are copied from Theta_mm, so that with m = N, Theta_nm ==
// Theta_mm == TrainKernels(x) bit for bit (cross kernels lose ~1e-9 on
// the diagonal, core/kernels/kernel.cc). INVALID_ARGUMENT "features: ..."
// for non-finite kernel values. with_nngp_theta: also accumulate
// K_mn Theta_nm over the same blocks (2 N m^2 flops, m^2 doubles; the
// centers' rows of both factors are the TrainKernels values, as above).
// keep_nngp_nm: also keep K_nm (N m doubles; its centers' rows are the
// TrainKernels values, as Theta_nm's).
// REQUIRES: center_rows ascending, distinct, in [0, N), non-empty.
absl::StatusOr<NystromKernels> ComputeNystromKernels(const KernelSpec& spec,
                                                     const Eigen::MatrixXd& x,
                                                     const std::vector<Eigen::Index>& center_rows,
                                                     const ProgressFn& progress,
                                                     bool with_nngp_theta = false,
                                                     bool keep_nngp_nm = false);

// The 2a PredictDistribution summaries (docs/model-contract.md
// "6. Nystrom models", "PredictDistribution of a Nystrom model") at the
// probabilities p = softmax(F) (N x C) of a 2a solution: with W_i =
// diag(p_i) - p_i p_i^T, t_i, k_i the rows of Theta_nm, K_nm, and index
// c m + a (class c, center a), block (c, c') of
//   *hessian = sum_i W_i[c, c'] t_i t_i^T,  *cross = sum_i W_i[c, c'] t_i k_i^T
// ((m C) x (m C) each; the Newton Hessian is *hessian + lambda (I_C (x)
// Theta_mm)). Accumulated over row blocks, the C (C + 1) / 2 distinct
// blocks each (2 C (C + 1) N m^2 flops), asking progress between steps of
// at most ~2e9 flops: CANCELLED when it says stop.
// REQUIRES: k.nngp_nm kept (N x m); p N x C.
absl::Status NewtonSummaries(const NystromKernels& k, const Eigen::MatrixXd& p,
                             const ProgressFn& progress, Eigen::MatrixXd* hessian,
                             Eigen::MatrixXd* cross);

struct NystromSolveOptions {
  // F0 at the training points (N x C); nullptr or empty: zero. Not owned.
  const Eigen::MatrixXd* initial_outputs = nullptr;
  // 2a: stop when ||Theta_mm beta - Theta_mn (Y - softmax(F)) / lambda||_inf
  // <= tolerance * max(1, ||F||_inf) (the exact model's fixed-point residual
  // when m = N), or at the rounding floor (the exact solver's rules, solvers.h).
  double tolerance = 1e-12;
  int max_newton_iterations = 100;
  int max_cg_iterations = 1000;  // per Newton step
  ProgressFn progress;           // may be empty; false -> CANCELLED
};

struct NystromSolution {
  Eigen::MatrixXd logits;  // N x C: F0 + Theta_nm beta
  Eigen::MatrixXd beta;    // m x C
  // As SolverInfo documents, with the Nystrom systems: 2a the residual of
  // NystromSolveOptions::tolerance; 2b/2c ||H beta - Theta_mn rhs||_inf,
  // H = Theta_mn Theta_nm + delta Theta_mm, and the condition estimate of H.
  SolverInfo info;
  // 2b/2c: Theta_mn Theta_nm (m x m), kept for PredictDistribution (H is
  // gram + (lambda_2c + info.jitter) Theta_mm); empty for 2a.
  Eigen::MatrixXd gram;
};

// Errors: INVALID_ARGUMENT for shapes, CANCELLED, FAILED_PRECONDITION (2b/2c:
// H not positive definite with the largest jitter), INTERNAL (2a did not
// converge).
absl::StatusOr<NystromSolution> SolveNystrom(const TrainingProblem& problem,
                                             const NystromKernels& kernels,
                                             const NystromSolveOptions& options = {});

namespace nystrom_internal {
// 2a (nystrom_newton.cc). f0: N x C (zeros when there is none).
absl::StatusOr<NystromSolution> SolveNystromNewton(const NystromKernels& k,
                                                   const Eigen::MatrixXd& y,
                                                   const Eigen::MatrixXd& f0, double lambda,
                                                   const NystromSolveOptions& options);
}  // namespace nystrom_internal

}  // namespace ntk

#endif  // NTK_CORE_NYSTROM_NYSTROM_SOLVE_H_
