// tests/testing/test_data.h: random test data and kernel specs for the core
// tests, written once.
//
// StdNormalMatrix uses the standard library's generator (mt19937_64 +
// std::normal_distribution), independent of core's NormalStream, so a
// fault in the core sampler cannot cancel out of a comparison.
//
// Thread safety: pure functions.
#ifndef NTK_TESTS_TESTING_TEST_DATA_H_
#define NTK_TESTS_TESTING_TEST_DATA_H_

#include <cstdint>
#include <random>

#include <Eigen/Dense>

#include "core/kernels/kernel.h"

namespace ntk::testing {

// rows x cols of N(0, scale^2), filled in column-major order from `seed`.
inline Eigen::MatrixXd StdNormalMatrix(Eigen::Index rows, Eigen::Index cols, uint64_t seed,
                                       double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, scale);
  Eigen::MatrixXd m(rows, cols);
  for (Eigen::Index j = 0; j < cols; ++j) {
    for (Eigen::Index i = 0; i < rows; ++i) m(i, j) = normal(gen);
  }
  return m;
}

inline KernelSpec Spec(Activation activation, int depth, double weight_variance,
                       double bias_variance) {
  KernelSpec s;
  s.activation = activation;
  s.depth = depth;
  s.weight_variance = weight_variance;
  s.bias_variance = bias_variance;
  return s;
}

}  // namespace ntk::testing

#endif  // NTK_TESTS_TESTING_TEST_DATA_H_
