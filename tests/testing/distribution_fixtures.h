// tests/testing/distribution_fixtures.h: small fitted States for the
// PredictDistribution tests, built directly from the solvers (core/solvers.h)
// so the tests do not depend on FittedModel::Fit.
#ifndef NTK_TESTS_TESTING_DISTRIBUTION_FIXTURES_H_
#define NTK_TESTS_TESTING_DISTRIBUTION_FIXTURES_H_

#include <cstdint>
#include <memory>

#include <Eigen/Dense>

#include "core/model.h"
#include "core/model_state.h"
#include "core/spec.h"

namespace ntk::testing {

// Standard normal N x d features from `seed` (core NormalStream).
Eigen::MatrixXd RandomFeatures(int n, int d, uint64_t seed);

// Smoothed one-hot targets (eps) of labels argmax(x w) for a random w.
Eigen::MatrixXd RandomTargets(const Eigen::MatrixXd& x, int num_classes,
                              double eps, uint64_t seed);

// A State fitted on (x, y) in `regime` with `lambda`, kernel `kernel`
// (preprocessing off: x is taken as preprocessed). f0 may be empty.
// Aborts the test (ADD_FAILURE + nullptr) if the solver fails.
std::unique_ptr<FittedModel::State> MakeState(const KernelSpec& kernel,
                                              Regime regime, double lambda,
                                              const Eigen::MatrixXd& x,
                                              const Eigen::MatrixXd& y,
                                              const Eigen::MatrixXd& f0 = {});

}  // namespace ntk::testing

#endif  // NTK_TESTS_TESTING_DISTRIBUTION_FIXTURES_H_
