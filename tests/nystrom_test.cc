// Tests of Nystrom models (core/nystrom/, docs/model-contract.md
// "6. Nystrom models") through FittedModel: with m = N centers (every
// training point) the model equals the exact one in every regime; with
// m < N it solves the documented equations (checked against kernels and
// solves computed independently here); seeds, clipping, bad input,
// persistence, and the PredictDistribution refusal of 2a models.
#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/kernels/kernel.h"
#include "core/model/cost.h"
#include "core/model/model.h"
#include "core/model/model_state.h"
#include "core/nystrom/centers.h"
#include "core/training/solvers.h"
#include "tests/testing/nystrom_fixtures.h"
#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using ::testing::HasSubstr;

using testing::MustFit;

ModelSpec Spec(Regime regime) { return testing::RegimeSpec(regime); }
ModelSpec Nystrom(const ModelSpec& s, int m, uint64_t seed = 1) {
  return testing::WithNystrom(s, m, seed);
}

double RelDiff(const MatrixXd& a, const MatrixXd& b) {
  return (a - b).cwiseAbs().maxCoeff() / b.cwiseAbs().maxCoeff();
}

class NystromEqualsExact : public ::testing::TestWithParam<Regime> {};

// m = N (the default for N <= 256 and an explicit m = N alike): centers are
// every row in order, Theta_nm = Theta_mm = Theta_XX bit for bit, and the
// Nystrom equations reduce to the exact ones (nystrom_solve.h).
// Tolerance 1e-8 relative (the brief's): 2b/2c solve
// Theta (Theta + delta I) beta = Theta r by Cholesky, whose relative error
// is about cond(H) * eps; the test asserts cond(H) * eps <= 1e-10 so that
// 1e-8 is a real check, not luck. 2a: both Newton solvers stop at relative
// fixed-point residual <= 1e-12 (100x of that at their rounding floor).
TEST_P(NystromEqualsExact, PredictionsMatchWithAllPointsAsCenters) {
  const Regime regime = GetParam();
  const TrainingData data = testing::NystromBlobs(40, 11);
  const MatrixXd queries = testing::StdNormalMatrix(15, 5, 12, 1.5);
  const ModelSpec exact_spec = Spec(regime);
  const auto exact = MustFit(exact_spec, data);
  ASSERT_NE(exact, nullptr);
  ASSERT_EQ(exact->Info().regime, regime);
  for (const int m : {0, 40}) {
    SCOPED_TRACE(m);
    const auto ny = MustFit(Nystrom(exact_spec, m), data);
    ASSERT_NE(ny, nullptr);
    EXPECT_EQ(ny->Info().regime, regime);
    EXPECT_EQ(ny->Info().spec.approximation.num_centers, 40);
    if (regime != Regime::kRegularizedCE) {
      EXPECT_LE(ny->Info().stats.condition_estimate * testing::kEps, 1e-10);
    }
    const absl::StatusOr<Prediction> a = ny->Predict(queries);
    const absl::StatusOr<Prediction> b = exact->Predict(queries);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_LE(RelDiff(a->logits, b->logits), 1e-8);
    EXPECT_LE(RelDiff(a->probabilities, b->probabilities), 1e-8);
    EXPECT_EQ(a->labels, b->labels);
    EXPECT_NEAR(ny->Info().stats.train_nll, exact->Info().stats.train_nll,
                1e-8 * exact->Info().stats.train_nll);
  }
}

INSTANTIATE_TEST_SUITE_P(AllRegimes, NystromEqualsExact,
                         ::testing::Values(Regime::kRegularizedCE, Regime::kUnregularizedCE,
                                           Regime::kSquared),
                         [](const auto& info) {
                           return std::string("Regime") + RegimeName(info.param);
                         });

// The kernels of a Nystrom model of `data` recomputed here from the
// N x N training NTK (TrainKernels: exact diagonal) and the centers'
// rows: Theta(X, Z) = Theta_XX(:, rows), Theta(Z, Z) = Theta_XX(rows, rows),
// and Theta(q, Z) for the preprocessed queries (CrossKernels(Z, q), as
// Predict orients them). Checks that Z is X(rows).
struct Independent {
  MatrixXd knm, kmm, kqm;
};
Independent IndependentKernels(const FittedModel& model, const TrainingData& data,
                               const MatrixXd& queries) {
  const FittedModel::State& s = ModelInternals::Of(model);
  const MatrixXd x = s.preprocessor.Apply(data.features);
  const MatrixXd q = s.preprocessor.Apply(queries);
  const MatrixXd& z = s.nystrom.centers;
  const KernelSpec& k = s.problem.spec.kernel;
  const std::vector<Index> rows =
      SelectCenters(x.rows(), z.rows(), s.problem.spec.approximation.seed);
  const MatrixXd theta = TrainKernels(k, x).ntk;
  Independent out;
  out.knm.resize(x.rows(), z.rows());
  out.kmm.resize(z.rows(), z.rows());
  for (Index j = 0; j < z.rows(); ++j) {
    EXPECT_EQ(z.row(j), x.row(rows[j]));
    out.knm.col(j) = theta.col(rows[j]);
    for (Index i = 0; i < z.rows(); ++i) out.kmm(i, j) = theta(rows[i], rows[j]);
  }
  out.kqm = CrossKernels(k, z, q).ntk.transpose();
  return out;
}

// 2c with m < N against an independent solve of the documented problem,
// min ||Theta_nm beta - Y||^2 + lambda beta^T Theta_mm beta, as the least
// squares problem [Theta_nm; sqrt(lambda) U] beta ~ [Y; 0] with
// Theta_mm = U^T U (QR, never the normal equations). Tolerance: both
// solutions carry about cond(H) * eps relative error; 1e-7 leaves 10x
// headroom over the asserted cond(H) * eps <= 1e-8.
TEST(NystromTest, SquaredLossSolvesTheRidgeProblemInTheSpanOfTheCenters) {
  const TrainingData data = testing::NystromBlobs(120, 21);
  const MatrixXd queries = testing::StdNormalMatrix(10, 5, 22, 1.0);
  const auto model = MustFit(Nystrom(Spec(Regime::kSquared), 30, 5), data);
  ASSERT_NE(model, nullptr);
  ASSERT_LE(model->Info().stats.condition_estimate * testing::kEps, 1e-8);
  const Independent k = IndependentKernels(*model, data, queries);
  const double lambda = 0.1;
  MatrixXd y = MatrixXd::Zero(120, 3);
  for (int i = 0; i < 120; ++i) y(i, data.labels[i]) = 1;
  const MatrixXd u = k.kmm.llt().matrixU();
  MatrixXd a(120 + 30, 30);
  a << k.knm, std::sqrt(lambda) * u;
  MatrixXd rhs = MatrixXd::Zero(150, 3);
  rhs.topRows(120) = y;
  const MatrixXd beta = a.colPivHouseholderQr().solve(rhs);
  const MatrixXd want = k.kqm * beta;
  const absl::StatusOr<MatrixXd> got = model->PredictLogits(queries);
  ASSERT_TRUE(got.ok());
  EXPECT_LE(RelDiff(*got, want), 1e-7);
}

// 2a with m < N satisfies the Nystrom stationarity condition
// Theta_mn (Y - softmax(F)) = lambda Theta_mm beta with kernels computed
// here. Tolerance: the solver's loosest stopping rule, residual
// ||g|| / lambda <= 1e-8 max(1, ||F||_inf) (nystrom_solve.h, solvers.h);
// the rounding of this recomputation (~N eps ||Theta||) is far below it.
TEST(NystromTest, RegularizedSolutionIsStationary) {
  const TrainingData data = testing::NystromBlobs(150, 31);
  const auto model = MustFit(Nystrom(Spec(Regime::kRegularizedCE), 25, 9), data);
  ASSERT_NE(model, nullptr);
  const Independent k = IndependentKernels(*model, data, MatrixXd(1, 5));
  const MatrixXd& beta = ModelInternals::Of(*model).nystrom.beta;
  MatrixXd y = MatrixXd::Zero(150, 3);
  for (int i = 0; i < 150; ++i) y(i, data.labels[i]) = 1;
  const MatrixXd p = RowSoftmax(k.knm * beta);
  const MatrixXd lhs = k.knm.transpose() * (y - p);
  const MatrixXd rhs = 0.5 * k.kmm * beta;
  const double f_inf = std::max(1.0, (k.knm * beta).cwiseAbs().maxCoeff());
  EXPECT_LE((lhs - rhs).cwiseAbs().maxCoeff(), 1e-8 * 0.5 * f_inf);
  EXPECT_GT(model->Info().stats.solver_iterations, 0);
}

TEST(NystromTest, SameSeedSameModelOtherSeedOtherCenters) {
  const TrainingData data = testing::NystromBlobs(300, 41);
  const MatrixXd queries = testing::StdNormalMatrix(8, 5, 42, 1.0);
  const auto a = MustFit(Nystrom(Spec(Regime::kSquared), 50, 7), data);
  const auto b = MustFit(Nystrom(Spec(Regime::kSquared), 50, 7), data);
  const auto c = MustFit(Nystrom(Spec(Regime::kSquared), 50, 8), data);
  ASSERT_TRUE(a && b && c);
  const MatrixXd& za = ModelInternals::Of(*a).nystrom.centers;
  EXPECT_EQ(za, ModelInternals::Of(*b).nystrom.centers);
  EXPECT_NE(za, ModelInternals::Of(*c).nystrom.centers);
  EXPECT_EQ(a->Predict(queries)->logits, b->Predict(queries)->logits);
  // Centers: m distinct rows, ascending.
  const std::vector<Index> rows = SelectCenters(300, 50, 7);
  EXPECT_EQ(rows.size(), 50u);
  EXPECT_EQ(std::set<Index>(rows.begin(), rows.end()).size(), 50u);
  EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
  EXPECT_EQ(rows, SelectCenters(300, 50, 7));
}

TEST(NystromTest, NumCentersAboveNIsClippedAndSaid) {
  const TrainingData data = testing::NystromBlobs(40, 51);
  const auto model = MustFit(Nystrom(Spec(Regime::kSquared), 1000), data);
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->Info().spec.approximation.num_centers, 40);
  EXPECT_THAT(model->Info().regime_reason, HasSubstr("clipped"));
}

TEST(NystromTest, DefaultNumCentersGrowsWithN) {
  EXPECT_EQ(DefaultNumCenters(100), 100);
  EXPECT_EQ(DefaultNumCenters(256), 256);
  EXPECT_EQ(DefaultNumCenters(60000), 3920);  // ceil(16 sqrt(60000))
  EXPECT_EQ(DefaultNumCenters(int64_t{1} << 40), kMaxDefaultCenters);
  EXPECT_EQ(ResolveNumCenters(500, 300), 300);
}

// The admission estimate (core/model/cost.h) of a Nystrom fit holds
// Theta_nm (8 N m bytes) but never an N x N matrix: the full
// Fashion-MNIST fit (N = 60000, d = 784, C = 10, default m) must be
// estimated under its 12 GiB target, while the exact fit needs > 2 N^2
// doubles (57 GB).
TEST(NystromTest, FitCostCountsNTimesMNotNSquared) {
  const int64_t n = 60000, d = 784, c = 10, m = DefaultNumCenters(n);
  for (const bool squared : {false, true}) {
    const Cost ny = FitCostUpperBound(n, d, c, squared, m);
    const Cost exact = FitCostUpperBound(n, d, c, squared);
    EXPECT_GE(ny.bytes, 8 * n * m);
    EXPECT_LT(ny.bytes, int64_t{12} << 30);
    EXPECT_GT(exact.bytes, 16 * n * n);
  }
}

TEST(NystromTest, BadApproximationIsInvalidArgumentNamingTheField) {
  const TrainingData data = testing::NystromBlobs(20, 61);
  ModelSpec s = Spec(Regime::kSquared);
  s.approximation.kind = static_cast<ApproximationKind>(7);
  absl::StatusOr<std::unique_ptr<FittedModel>> m = FittedModel::Fit(s, data);
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("spec.approximation.kind"));
  s = Nystrom(Spec(Regime::kSquared), -1);
  m = FittedModel::Fit(s, data);
  ASSERT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("spec.approximation.num_centers"));
}

// Persistence keeps Z, beta and what Predict and PredictDistribution need,
// not the training set: the file is O(m d + m C + m^2) doubles (Z and beta:
// 8 * 30 * (5 + 3) = 1920 bytes; 2b/2c add two m x m summaries, 14400
// bytes, below the 8 * 500 * 5 = 20000 bytes of X; 2a two (m C) x (m C)
// Newton summaries, 129600 bytes, independent of N; plus the header, spec
// and the 2a block's 10 bytes).
TEST(NystromTest, SerializeRoundTripPredictsTheSameBits) {
  const TrainingData data = testing::NystromBlobs(500, 71);
  const MatrixXd queries = testing::StdNormalMatrix(9, 5, 72, 1.0);
  for (const Regime r : {Regime::kRegularizedCE, Regime::kSquared}) {
    const auto model = MustFit(Nystrom(Spec(r), 30, 3), data);
    ASSERT_NE(model, nullptr);
    const std::string bytes = model->Serialize();
    const size_t summaries =
        r == Regime::kRegularizedCE ? NystromSummaryBytes(30, 3) : 8u * 2 * 30 * 30;
    EXPECT_LT(bytes.size(), 8u * 30 * 8 + summaries + 1024);
    absl::StatusOr<std::unique_ptr<FittedModel>> loaded = FittedModel::Deserialize(bytes);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ((*loaded)->Predict(queries)->logits, model->Predict(queries)->logits);
    const FittedModelInfo info = (*loaded)->Info();
    EXPECT_TRUE(info.spec.nystrom());
    EXPECT_EQ(info.spec.approximation.num_centers, 30);
    EXPECT_EQ(info.spec.approximation.seed, 3u);
    EXPECT_EQ(info.num_train, 500);
    EXPECT_EQ(info.num_features, 5);
    EXPECT_EQ((*loaded)->Serialize(), bytes);
  }
}

// 2a Nystrom models have no MONTE_CARLO (it needs the training rows);
// tests/nystrom_distribution_test.cc covers the methods that are built.
TEST(NystromTest, PredictDistributionRefusesNamingTheMethod) {
  const auto model =
      MustFit(Nystrom(Spec(Regime::kRegularizedCE), 10), testing::NystromBlobs(30, 81));
  ASSERT_NE(model, nullptr);
  DistributionOptions o;
  o.method = DistributionMethod::kMonteCarlo;
  const absl::StatusOr<DistributionResult> d =
      model->PredictDistribution(testing::StdNormalMatrix(2, 5, 82, 1.0), o);
  ASSERT_EQ(d.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(d.status().message(), HasSubstr("method: MONTE_CARLO"));
}

}  // namespace
}  // namespace ntk
