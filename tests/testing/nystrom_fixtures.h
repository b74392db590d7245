// tests/testing/nystrom_fixtures.h: the data and specs of the Nystrom model
// tests (tests/nystrom_test.cc, tests/nystrom_distribution_test.cc),
// written once.
//
// Thread safety: pure functions (MustFit records a test failure).
#ifndef NTK_TESTS_TESTING_NYSTROM_FIXTURES_H_
#define NTK_TESTS_TESTING_NYSTROM_FIXTURES_H_

#include <cstdint>
#include <limits>
#include <memory>

#include <gtest/gtest.h>

#include "core/model/model.h"
#include "tests/testing/test_data.h"

namespace ntk::testing {

// Double's machine epsilon (2^-52): cond * kEps bounds a solve's relative
// error, the tests' check that a tolerance is a real one.
inline constexpr double kEps = std::numeric_limits<double>::epsilon();

// Three Gaussian blobs in d = 5 with hard labels (class i % 3, shifted by
// +2 along axis i % 3).
inline TrainingData NystromBlobs(int n, uint64_t seed) {
  TrainingData t;
  t.features = StdNormalMatrix(n, 5, seed, 1.0);
  for (int i = 0; i < n; ++i) {
    t.features(i, i % 3) += 2.0;
    t.labels.push_back(i % 3);
  }
  return t;
}

// ReLU depth 2, bias variance 0.1, standardized and normalized rows, in
// `regime`: 2a lambda = 0.5; 2b label smoothing 0.1 (lambda = 0); 2c the
// squared loss with lambda = 0.1.
inline ModelSpec RegimeSpec(Regime regime) {
  ModelSpec s;
  s.kernel.depth = 2;
  s.kernel.bias_variance = 0.1;
  s.preprocessing.standardize = true;
  s.preprocessing.normalize_rows = true;
  if (regime == Regime::kRegularizedCE) s.training.regularization = 0.5;
  if (regime == Regime::kUnregularizedCE) s.training.label_smoothing = 0.1;  // lambda = 0
  if (regime == Regime::kSquared) {
    s.training.loss = Loss::kSquared;
    s.training.regularization = 0.1;
  }
  return s;
}

// `s` with the Nystrom approximation on m centers chosen by `seed`.
inline ModelSpec WithNystrom(ModelSpec s, int m, uint64_t seed = 1) {
  s.approximation.kind = ApproximationKind::kNystrom;
  s.approximation.num_centers = m;
  s.approximation.seed = seed;
  return s;
}

// FittedModel::Fit, failing the test (and returning nullptr) on error.
inline std::unique_ptr<FittedModel> MustFit(const ModelSpec& spec, const TrainingData& data,
                                            const FitOptions& options = {}) {
  absl::StatusOr<std::unique_ptr<FittedModel>> m = FittedModel::Fit(spec, data, options);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

}  // namespace ntk::testing

#endif  // NTK_TESTS_TESTING_NYSTROM_FIXTURES_H_
