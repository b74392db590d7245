// tests/testing/distribution_fixtures.h: small fitted States for the
// PredictDistribution tests, built directly from the solvers (core/training/solvers.h)
// so the tests do not depend on FittedModel::Fit.
#ifndef NTK_TESTS_TESTING_DISTRIBUTION_FIXTURES_H_
#define NTK_TESTS_TESTING_DISTRIBUTION_FIXTURES_H_

#include <cstdint>
#include <memory>

#include <Eigen/Dense>

#include "core/model/model.h"
#include "core/model/model_state.h"
#include "core/training/spec.h"

namespace ntk::testing {

// The kernel of the PredictDistribution tests: ReLU, depth 2,
// weight variance 2, bias variance 0.1.
KernelSpec Relu2();

// Checks an estimated (mean, cov) of S draws against a Gaussian truth
// (mu, sigma) within k standard errors: SE(mean_a) = sqrt(sigma_aa / S),
// SE(cov_ab) = sqrt((sigma_aa sigma_bb + sigma_ab^2) / S) (Gaussian fourth
// moments), plus `abs` for deterministic differences (rounding).
void ExpectWithinSE(const Eigen::VectorXd& mean, const Eigen::MatrixXd& cov,
                    const Eigen::VectorXd& mu, const Eigen::MatrixXd& sigma, int S,
                    double k, double abs);

// Standard normal N x d features from `seed` (core NormalStream).
Eigen::MatrixXd RandomFeatures(int n, int d, uint64_t seed);

// Smoothed one-hot targets (eps) of labels argmax(x w) for a random w.
Eigen::MatrixXd RandomTargets(const Eigen::MatrixXd& x, int num_classes,
                              double eps, uint64_t seed);

// Reference 2a solver for tiny N * C, independent of core/training/solvers.h:
// Newton's method on G(F) = F - F0 - Theta (Y - softmax(F)) / lambda with
// the dense NC x NC Jacobian I + (Theta (x) I) W / lambda and backtracking
// on ||G||. Returns the dual (Y - softmax(F*)) / lambda; *logits = F*.
// Fails the test if ||G||_inf does not reach 1e-13 * max(1, ||F||_inf).
Eigen::MatrixXd DenseSolve2a(const Eigen::MatrixXd& theta, const Eigen::MatrixXd& y,
                             const Eigen::MatrixXd& f0, double lambda,
                             Eigen::MatrixXd* logits = nullptr);

// A State fitted on (x, y) in `regime` with `lambda`, kernel `kernel`
// (preprocessing off: x is taken as preprocessed). f0 may be empty.
// 2a uses DenseSolve2a when N * C <= 600, else SolveRegularizedCE.
// Aborts the test (ADD_FAILURE + nullptr) if the solver fails.
std::unique_ptr<FittedModel::State> MakeState(const KernelSpec& kernel,
                                              Regime regime, double lambda,
                                              const Eigen::MatrixXd& x,
                                              const Eigen::MatrixXd& y,
                                              const Eigen::MatrixXd& f0 = {});

// The centering projection P = I - 11^T / C (reported logits are P f).
inline Eigen::MatrixXd Centering(int C) {
  return Eigen::MatrixXd::Identity(C, C) - Eigen::MatrixXd::Constant(C, C, 1.0 / C);
}

}  // namespace ntk::testing

#endif  // NTK_TESTS_TESTING_DISTRIBUTION_FIXTURES_H_
