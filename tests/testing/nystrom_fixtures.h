// tests/testing/nystrom_fixtures.h: the data and specs of the Nystrom model
// tests (tests/nystrom_test.cc, tests/nystrom_distribution_test.cc,
// tests/nystrom_2a_distribution_test.cc) and their comparisons of
// PredictDistribution results, written once.
//
// Thread safety: pure functions (MustFit records a test failure).
#ifndef NTK_TESTS_TESTING_NYSTROM_FIXTURES_H_
#define NTK_TESTS_TESTING_NYSTROM_FIXTURES_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/kernels/kernel.h"
#include "core/model/model.h"
#include "core/model/model_state.h"
#include "core/model/serialize.h"
#include "core/nystrom/centers.h"
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

// PredictDistribution with `method`, num_samples and seed 5, failing the
// test (and returning an empty result) on error.
inline DistributionResult MustPredict(const FittedModel& model, const Eigen::MatrixXd& q,
                                      DistributionMethod method, int num_samples = 0) {
  DistributionOptions o;
  o.method = method;
  o.num_samples = num_samples;
  o.seed = 5;
  absl::StatusOr<DistributionResult> d = model.PredictDistribution(q, o);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *std::move(d) : DistributionResult{};
}

// max |a - b| over every field of every point, relative to the largest
// |b| of that field over the points.
struct FieldDiffs {
  double logit_mean = 0, logit_cov = 0, prob_mean = 0, prob_cov = 0, pred_entropy = 0,
         exp_entropy = 0, mutual_information = 0;
};
inline FieldDiffs RelativeDiffs(const DistributionResult& a, const DistributionResult& b) {
  EXPECT_EQ(a.points.size(), b.points.size());
  double scale[7] = {0}, diff[7] = {0};
  auto add = [&](int k, const Eigen::MatrixXd& x, const Eigen::MatrixXd& y) {
    scale[k] = std::max(scale[k], y.cwiseAbs().maxCoeff());
    diff[k] = std::max(diff[k], (x - y).cwiseAbs().maxCoeff());
  };
  auto add1 = [&](int k, double x, double y) {
    add(k, Eigen::MatrixXd::Constant(1, 1, x), Eigen::MatrixXd::Constant(1, 1, y));
  };
  for (size_t i = 0; i < a.points.size() && i < b.points.size(); ++i) {
    const PointDistribution &p = a.points[i], &r = b.points[i];
    add(0, p.logit_mean, r.logit_mean);
    add(1, p.logit_covariance, r.logit_covariance);
    add(2, p.probability_mean, r.probability_mean);
    add(3, p.probability_covariance, r.probability_covariance);
    add1(4, p.predictive_entropy, r.predictive_entropy);
    add1(5, p.expected_entropy, r.expected_entropy);
    // MI = H[E p] - E H[p]: a difference of the entropies, so its error is
    // relative to their scale.
    add1(6, p.mutual_information, r.mutual_information);
    scale[6] = std::max(scale[6], r.predictive_entropy);
  }
  FieldDiffs d;
  double* out[7] = {&d.logit_mean, &d.logit_cov, &d.prob_mean, &d.prob_cov,
                    &d.pred_entropy, &d.exp_entropy, &d.mutual_information};
  for (int k = 0; k < 7; ++k) *out[k] = diff[k] / std::max(scale[k], 1e-300);
  return d;
}

// Every field of RelativeDiffs within tol.
inline void ExpectAllWithin(const FieldDiffs& d, double tol) {
  EXPECT_LE(d.logit_mean, tol);
  EXPECT_LE(d.logit_cov, tol);
  EXPECT_LE(d.prob_mean, tol);
  EXPECT_LE(d.prob_cov, tol);
  EXPECT_LE(d.pred_entropy, tol);
  EXPECT_LE(d.exp_entropy, tol);
  EXPECT_LE(d.mutual_information, tol);
}

// Expects `a` and `b` to answer `method` on q with the same bits (logit
// moments and probability covariance; 300 samples, seed 5).
inline void ExpectSameBits(const FittedModel& a, const FittedModel& b, const Eigen::MatrixXd& q,
                           DistributionMethod method) {
  const DistributionResult ra = MustPredict(a, q, method, 300);
  const DistributionResult rb = MustPredict(b, q, method, 300);
  ASSERT_EQ(ra.points.size(), rb.points.size());
  for (size_t j = 0; j < ra.points.size(); ++j) {
    EXPECT_EQ(ra.points[j].logit_mean, rb.points[j].logit_mean);
    EXPECT_EQ(ra.points[j].logit_covariance, rb.points[j].logit_covariance);
    EXPECT_EQ(ra.points[j].probability_covariance, rb.points[j].probability_covariance);
  }
}

// A model file of an older format `version` made from `bytes` (a file
// Serialize wrote) by dropping the last `drop` payload bytes, with version,
// length and CRC-32C rewritten (core/model/serialize.h layout).
inline std::string AsOlderVersion(std::string bytes, size_t drop, uint32_t version) {
  bytes.resize(bytes.size() - 4 - drop);
  std::memcpy(&bytes[8], &version, 4);
  const uint64_t payload = bytes.size() - kModelHeaderBytes;
  std::memcpy(&bytes[12], &payload, 8);
  const uint32_t crc = Crc32c(bytes.data(), bytes.size());
  bytes.append(reinterpret_cast<const char*>(&crc), 4);
  return bytes;
}

// The dense kernels of the brute-force checks of a Nystrom model fitted on
// `data` with m centers from `seed`: K and Theta between the preprocessed
// training rows and the centers (SelectCenters(N, m, seed)) and among the
// centers, taken from TrainKernels of all rows (never the model's own
// summaries), and K, Theta between the centers and the preprocessed queries.
struct DenseNystromKernels {
  Eigen::MatrixXd knm, tnm, kmm, tmm;  // N x m, N x m, m x m, m x m
  KernelMatrices qz;                   // m x M
  KernelDiagonal qd;                   // M
};
inline DenseNystromKernels DenseKernelsOf(const FittedModel& model, const TrainingData& data,
                                          const Eigen::MatrixXd& queries, int m,
                                          uint64_t seed) {
  const FittedModel::State& st = ModelInternals::Of(model);
  const KernelSpec& ks = st.problem.spec.kernel;
  const Eigen::Index n = data.features.rows();
  const Eigen::MatrixXd q = st.preprocessor.Apply(queries);
  const std::vector<Eigen::Index> rows = SelectCenters(n, m, seed);
  const KernelMatrices train = TrainKernels(ks, st.preprocessor.Apply(data.features));
  DenseNystromKernels d;
  d.knm.resize(n, m);
  d.tnm.resize(n, m);
  d.kmm.resize(m, m);
  d.tmm.resize(m, m);
  for (Eigen::Index j = 0; j < m; ++j) {
    d.knm.col(j) = train.nngp.col(rows[j]);
    d.tnm.col(j) = train.ntk.col(rows[j]);
    for (Eigen::Index i = 0; i < m; ++i) {
      d.kmm(i, j) = train.nngp(rows[i], rows[j]);
      d.tmm(i, j) = train.ntk(rows[i], rows[j]);
    }
  }
  d.qz = CrossKernels(ks, st.nystrom.centers, q);
  d.qd = DiagonalKernels(ks, q);
  return d;
}

}  // namespace ntk::testing

#endif  // NTK_TESTS_TESTING_NYSTROM_FIXTURES_H_
