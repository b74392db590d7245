// ntk/core/selection/evidence.h: the Laplace approximation of the log
// marginal likelihood of the 2a model's Bayesian counterpart (GP
// classification with prior GP(0, Theta / lambda (x) I_C) and the
// categorical likelihood, docs/model-contract.md "4. PredictDistribution",
// laplace_posterior), the LAPLACE_EVIDENCE criterion of "7. Model
// selection" (Rasmussen & Williams eq. 3.32 and 3.44):
//
//   log q(y | X) = sum_i log p_{i, y_i} - (lambda / 2) sum_c a_c^T Theta a_c
//                  - 1/2 log det(I + (Theta / lambda (x) I_C) W)
//
// at the fitted F* = Theta a (F0 = 0; a = (Y - softmax F*) / lambda, the
// dual of core/training/solvers.h), p = softmax(F*), W =
// blockdiag_i(diag p_i - p_i p_i^T). The first two terms are minus the 2a
// training objective ("2. Training objective": (lambda/2) ||theta -
// theta0||^2 = (lambda/2) ||F||^2 in Theta's RKHS); the log det is
// LaplaceLogDet (core/distribution/linearized_solver.h).
//
// Thread safety: a pure function (it uses the BLAS's threads).
// Cost: (C + 1/3) N^3 flops and 2 N^2 doubles beyond Theta.
#ifndef NTK_CORE_SELECTION_EVIDENCE_H_
#define NTK_CORE_SELECTION_EVIDENCE_H_

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/model/model.h"  // ProgressFn
#include "core/training/problem.h"

namespace ntk {

struct LaplaceEvidence {
  double log_evidence = 0;  // log q(y | X), nats
  double log_likelihood = 0;  // sum_i log p_{i, y_i} at F*
  double log_prior = 0;       // -(lambda / 2) sum_c a_c^T Theta a_c
  double log_det = 0;         // log det(I + (Theta / lambda (x) I) W)
};

// theta: the training Theta_XX of problem's rows; dual: the 2a solution's
// dual (N x C) for F0 = 0. Errors: INVALID_ARGUMENT when the problem is not
// 2a on hard labels with eps = 0 (the categorical likelihood needs them)
// or shapes disagree; INTERNAL / CANCELLED from LaplaceLogDet.
absl::StatusOr<LaplaceEvidence> ComputeLaplaceEvidence(const TrainingProblem& problem,
                                                       const Eigen::MatrixXd& theta,
                                                       const Eigen::MatrixXd& dual,
                                                       const ProgressFn& progress = {});

}  // namespace ntk

#endif  // NTK_CORE_SELECTION_EVIDENCE_H_
