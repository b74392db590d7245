// PredictDistribution on Nystrom models (docs/model-contract.md
// "6. Nystrom models", "PredictDistribution of a Nystrom model"): with
// m = N centers (every training point) each built method equals the exact
// model's (2b / 2c; 2a: tests/nystrom_2a_distribution_test.cc); with
// m < N, EXACT equals the contract's formulas evaluated by brute force on
// dense N x N Nystrom kernels, and MONTE_CARLO agrees with EXACT within its
// standard error; persistence, budget, cancellation and the refusals of
// what does not apply or is not built (2a EXACT, MONTE_CARLO).
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/distribution/factors.h"
#include "core/kernels/kernel.h"
#include "core/model/cost.h"
#include "core/model/model.h"
#include "core/model/model_state.h"
#include "core/model/serialize.h"
#include "core/nystrom/centers.h"
#include "tests/testing/distribution_fixtures.h"
#include "tests/testing/nystrom_fixtures.h"
#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;
using ::testing::HasSubstr;

using testing::MustFit;

// m > 0: Nystrom with m centers from `seed`.
ModelSpec Spec(Regime regime, int m = 0, uint64_t seed = 1) {
  const ModelSpec s = testing::RegimeSpec(regime);
  return m > 0 ? testing::WithNystrom(s, m, seed) : s;
}

using testing::ExpectAllWithin;
using testing::MustPredict;
using testing::RelativeDiffs;

class NystromDistributionEqualsExact : public ::testing::TestWithParam<Regime> {};

// m = N: Z = X, Theta_nm = Theta_mm = Theta_XX and K~ = K_XX K_XX^{-1} K_XX
// = K_XX (no jitter: K_XX is positive definite here), so every formula of
// the contract reduces to the exact model's. Tolerance 1e-8 relative (the
// brief's): the Nystrom path solves with H = Theta (Theta + delta I) and
// K_XX, whose rounding is about (cond(H) + cond(K_XX)) eps; both are
// asserted <= 1e-10 so that 1e-8 is a real check. The probability moments
// use the same seeded logit draws on both sides (same preprocessed rows),
// so they differ only through the logit moments.
// MONTE_CARLO draws the same normals z_s on both sides; the exact model's
// prior factor carries a jitter j = 1e-10 mean(diag K_XX) (its F0 = L_j z
// against the Nystrom Psi z = L_0 z): that difference of the factors is
// measured here (7.5e-10 relative) and asserted <= 1e-9; it enters the
// samples linearly through the training map (measured field differences
// <= 9.3e-10), so 1e-8 keeps 10x headroom. (EXACT and LINEARIZED: <= 2e-13.)
TEST_P(NystromDistributionEqualsExact, EveryBuiltMethodWithAllPointsAsCenters) {
  const Regime regime = GetParam();
  const TrainingData data = testing::NystromBlobs(40, 11);
  const MatrixXd queries = testing::StdNormalMatrix(12, 5, 12, 1.5);
  const auto exact = MustFit(Spec(regime), data);
  const auto ny = MustFit(Spec(regime, 40), data);
  ASSERT_TRUE(exact && ny);
  ASSERT_EQ(ny->Info().regime, regime);
  EXPECT_LE(ny->Info().stats.condition_estimate * testing::kEps, 1e-10);
  const FittedModel::State& s = ModelInternals::Of(*exact);
  const MatrixXd k_xx = TrainKernels(s.problem.spec.kernel, s.x_train).nngp;
  Eigen::LLT<MatrixXd> llt0(k_xx);
  ASSERT_EQ(llt0.info(), Eigen::Success);
  const Eigen::SelfAdjointEigenSolver<MatrixXd> eig(k_xx);
  EXPECT_LE(eig.eigenvalues().maxCoeff() / eig.eigenvalues().minCoeff() * testing::kEps, 1e-10);
  MatrixXd jittered = k_xx;
  jittered.diagonal().array() += 1e-10 * k_xx.diagonal().mean();
  const MatrixXd l0 = llt0.matrixL(), lj = Eigen::LLT<MatrixXd>(jittered).matrixL();
  EXPECT_LE((l0 - lj).cwiseAbs().maxCoeff() / l0.cwiseAbs().maxCoeff(), 1e-9);

  for (const DistributionMethod method :
       {DistributionMethod::kExact, DistributionMethod::kLinearized,
        DistributionMethod::kMonteCarlo, DistributionMethod::kUnspecified}) {
    SCOPED_TRACE(static_cast<int>(method));
    const DistributionResult a = MustPredict(*ny, queries, method, 400);
    const DistributionResult b = MustPredict(*exact, queries, method, 400);
    EXPECT_EQ(a.method, b.method);
    ExpectAllWithin(RelativeDiffs(a, b), 1e-8);
  }
}

INSTANTIATE_TEST_SUITE_P(LinearRegimes, NystromDistributionEqualsExact,
                         ::testing::Values(Regime::kUnregularizedCE, Regime::kSquared),
                         [](const auto& info) {
                           return std::string("Regime") + RegimeName(info.param);
                         });

// m < N, EXACT against the contract's formulas evaluated independently on
// dense N x N kernels: K~ = K_nm K_mm^{-1} K_mn (LLT of K_mm), the
// trained logits f(x) = f0(x) + a(x) (T - F0) with a(x) = Theta_xZ beta(.)
// the Nystrom least-squares / ridge map computed by QR on
// [Theta_nm; sqrt(delta) U] (Theta_mm = U^T U; never the normal
// equations), and s(x) = K_xx - 2 a K~_Xx + a K~_XX a^T (the exact NNGP at
// the query, K~ on the training points). Tolerance 1e-7: both sides carry
// about cond(H) eps relative error (H the normal-equations matrix, asserted
// cond(H) eps <= 1e-8), and s(x) is a difference of O(K_xx) terms.
TEST(NystromDistributionTest, ExactMatchesDenseNystromKernelsByBruteForce) {
  for (const Regime regime : {Regime::kSquared, Regime::kUnregularizedCE}) {
    SCOPED_TRACE(RegimeName(regime));
    const int n = 80, m = 25, C = 3;
    const TrainingData data = testing::NystromBlobs(n, 21);
    const MatrixXd queries = testing::StdNormalMatrix(10, 5, 22, 1.2);
    const auto model = MustFit(Spec(regime, m, 4), data);
    ASSERT_NE(model, nullptr);
    ASSERT_LE(model->Info().stats.condition_estimate * testing::kEps, 1e-8);
    const FittedModel::State& st = ModelInternals::Of(*model);
    const testing::DenseNystromKernels dk = testing::DenseKernelsOf(*model, data, queries, m, 4);
    const MatrixXd &knm = dk.knm, &tnm = dk.tnm, &kmm = dk.kmm, &tmm = dk.tmm;
    const KernelMatrices& qz = dk.qz;                                  // m x M
    const MatrixXd k_tilde = knm * kmm.llt().solve(knm.transpose());   // N x N
    const MatrixXd k_tilde_xq = knm * kmm.llt().solve(qz.nngp);         // N x M
    const KernelDiagonal& qd = dk.qd;
    // beta(r) = argmin ||Theta_nm beta - r||^2 + delta beta^T Theta_mm beta
    // for r = I_N: the m x N map.
    const double delta = st.stats.jitter + (regime == Regime::kSquared ? 0.1 : 0.0);
    const MatrixXd u = tmm.llt().matrixU();
    MatrixXd a_ls(n + m, m);
    a_ls << tnm, std::sqrt(delta) * u;
    MatrixXd rhs = MatrixXd::Zero(n + m, n);
    rhs.topRows(n).setIdentity();
    const MatrixXd map = a_ls.colPivHouseholderQr().solve(rhs);  // m x N
    const MatrixXd a = qz.ntk.transpose() * map;                  // M x N
    // T: one-hot Y (2c), or log of Y smoothed by eps = 0.1 (2b).
    const double eps = regime == Regime::kSquared ? 0.0 : 0.1;
    MatrixXd t = MatrixXd::Constant(n, C, eps / C);
    for (int i = 0; i < n; ++i) t(i, data.labels[i]) += 1 - eps;
    if (regime == Regime::kUnregularizedCE) t = t.array().log().matrix();
    const MatrixXd mean = a * t;
    const DistributionResult got = MustPredict(*model, queries, DistributionMethod::kExact);
    ASSERT_EQ(got.points.size(), 10u);
    double mean_err = 0, mean_scale = 0, var_err = 0, var_scale = 0;
    for (Index j = 0; j < 10; ++j) {
      const VectorXd ar = a.row(j).transpose();
      const double s = qd.nngp[j] - 2 * ar.dot(k_tilde_xq.col(j)) + ar.dot(k_tilde * ar);
      const VectorXd mu = mean.row(j).transpose().array() - mean.row(j).mean();
      const MatrixXd cov = s * testing::Centering(C);
      mean_err = std::max(mean_err, (got.points[j].logit_mean - mu).cwiseAbs().maxCoeff());
      mean_scale = std::max(mean_scale, mu.cwiseAbs().maxCoeff());
      var_err = std::max(var_err, (got.points[j].logit_covariance - cov).cwiseAbs().maxCoeff());
      var_scale = std::max(var_scale, cov.cwiseAbs().maxCoeff());
      // The Nystrom prior keeps the query's own variance: s(x) is not the
      // (smaller) SoR value K~_xx - ..., which vanishes far from the centers.
      EXPECT_GT(s, 0);
    }
    EXPECT_LE(mean_err / mean_scale, 1e-7);
    EXPECT_LE(var_err / var_scale, 1e-7);
  }
}

// MONTE_CARLO on an m < N model against EXACT on the same model: S = 20000
// samples; within 5 standard errors (ExpectWithinSE: Gaussian fourth
// moments) plus 1e-12 for rounding. Each of 6 points x (3 + 9) comparisons
// fails by chance with probability < 6e-7.
TEST(NystromDistributionTest, MonteCarloAgreesWithExactWithinStandardError) {
  const auto model = MustFit(Spec(Regime::kSquared, 20, 2), testing::NystromBlobs(60, 31));
  ASSERT_NE(model, nullptr);
  const MatrixXd queries = testing::StdNormalMatrix(6, 5, 32, 1.5);
  const int S = 20000;
  const DistributionResult mc = MustPredict(*model, queries, DistributionMethod::kMonteCarlo, S);
  const DistributionResult ex = MustPredict(*model, queries, DistributionMethod::kExact);
  ASSERT_EQ(mc.points.size(), 6u);
  for (size_t j = 0; j < 6; ++j) {
    SCOPED_TRACE(j);
    testing::ExpectWithinSE(mc.points[j].logit_mean, mc.points[j].logit_covariance,
                            ex.points[j].logit_mean, ex.points[j].logit_covariance, S, 5.0,
                            1e-12);
  }
}

// A loaded model answers the same bits (the summaries are persisted; the
// factors are rebuilt from them by the same code).
TEST(NystromDistributionTest, SerializedModelGivesTheSameBits) {
  const auto model = MustFit(Spec(Regime::kUnregularizedCE, 15, 3), testing::NystromBlobs(50, 41));
  ASSERT_NE(model, nullptr);
  absl::StatusOr<std::unique_ptr<FittedModel>> loaded =
      FittedModel::Deserialize(model->Serialize());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const MatrixXd q = testing::StdNormalMatrix(4, 5, 42, 1.0);
  for (const DistributionMethod method :
       {DistributionMethod::kExact, DistributionMethod::kMonteCarlo}) {
    testing::ExpectSameBits(*model, **loaded, q, method);
  }
}

// The mean is the F0 = 0 prediction even when the fit used F0 != 0
// (docs/model-contract.md "3. Predict"): equal to a model fitted without
// F0. Tolerance 1e-10 relative: the two solve different right-hand sides
// with the same factor (rounding ~cond(H) eps, asserted <= 1e-10 above).
TEST(NystromDistributionTest, MeanIgnoresTheFitsInitialOutputs) {
  const TrainingData data = testing::NystromBlobs(45, 51);
  FitOptions with_f0;
  with_f0.initial_train_outputs = testing::StdNormalMatrix(45, 3, 52, 0.5);
  const auto a = MustFit(Spec(Regime::kSquared, 12, 5), data, with_f0);
  const auto b = MustFit(Spec(Regime::kSquared, 12, 5), data);
  ASSERT_TRUE(a && b);
  const MatrixXd q = testing::StdNormalMatrix(5, 5, 53, 1.0);
  const DistributionResult da = MustPredict(*a, q, DistributionMethod::kExact);
  const DistributionResult db = MustPredict(*b, q, DistributionMethod::kExact);
  EXPECT_LE(RelativeDiffs(da, db).logit_mean, 1e-10);
  EXPECT_LE(RelativeDiffs(da, db).logit_cov, 1e-10);
}

// A file of format version 2 (written before the summaries existed) still
// loads and predicts; its distribution methods are refused naming `method`
// and saying to refit. Made here from a version-3 file: the three trailing
// summaries dropped (two m x m and one 0 x 0 matrix), version, length and
// CRC-32C rewritten (core/model/serialize.h layout).
TEST(NystromDistributionTest, VersionTwoFileLoadsButRefusesDistribution) {
  const int m = 8;
  const auto model = MustFit(Spec(Regime::kSquared, m), testing::NystromBlobs(30, 71));
  ASSERT_NE(model, nullptr);
  const size_t summaries = 2 * (16 + 8 * m * m) + 16;
  const std::string bytes = testing::AsOlderVersion(model->Serialize(), summaries, 2);
  absl::StatusOr<std::unique_ptr<FittedModel>> loaded = FittedModel::Deserialize(bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const MatrixXd q = testing::StdNormalMatrix(2, 5, 72, 1.0);
  EXPECT_EQ((*loaded)->Predict(q)->logits, model->Predict(q)->logits);
  DistributionOptions o;
  o.method = DistributionMethod::kExact;
  const absl::StatusOr<DistributionResult> d = (*loaded)->PredictDistribution(q, o);
  ASSERT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(d.status().message(), HasSubstr("method: EXACT"));
  EXPECT_THAT(d.status().message(), HasSubstr("refit"));
}

TEST(NystromDistributionTest, BudgetCancellationAndRefusals) {
  const TrainingData data = testing::NystromBlobs(40, 61);
  const MatrixXd q = testing::StdNormalMatrix(3, 5, 62, 1.0);
  const auto linear = MustFit(Spec(Regime::kSquared, 10), data);
  const auto reg = MustFit(Spec(Regime::kRegularizedCE, 10), data);
  ASSERT_TRUE(linear && reg);
  DistributionOptions o;
  o.method = DistributionMethod::kExact;
  o.max_cache_bytes = NystromFactorBytes(10, 3) - 1;
  absl::StatusOr<DistributionResult> d = linear->PredictDistribution(q, o);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(d.status().message(), HasSubstr("method: EXACT"));
  o = DistributionOptions{};
  o.progress = [](double, const char*) { return false; };
  d = linear->PredictDistribution(q, o);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kCancelled);
  o = DistributionOptions{};
  o.method = DistributionMethod::kLaplacePosterior;
  d = linear->PredictDistribution(q, o);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  // 2a: EXACT does not apply (as for exact models); MONTE_CARLO is not
  // built (tests/nystrom_2a_distribution_test.cc covers the 2a methods).
  o.method = DistributionMethod::kExact;
  d = reg->PredictDistribution(q, o);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  o.method = DistributionMethod::kMonteCarlo;
  d = reg->PredictDistribution(q, o);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(d.status().message(), HasSubstr("method: MONTE_CARLO"));
}

// The admission estimate of a Nystrom model's PredictDistribution is
// O(m^2), not O(N^2): the model (N = 60000, default m = 3920,
// C = 10) and 1000 queries, under 1 GiB for EXACT, while the exact model's
// estimate holds 2 N^2 doubles.
TEST(NystromDistributionTest, CostCountsCentersNotTrainingRows) {
  const int64_t n = 60000, d = 784, c = 10, m = DefaultNumCenters(n);
  const Cost ny = DistributionCost(DistributionMethod::kExact, Regime::kSquared, 1000, n, d, c,
                                   0, int64_t{1} << 40, m);
  EXPECT_GE(ny.bytes, NystromFactorBytes(m, c));
  EXPECT_LT(ny.bytes, int64_t{1} << 30);
  const Cost exact = DistributionCost(DistributionMethod::kExact, Regime::kSquared, 1000, n, d,
                                      c, 0, int64_t{1} << 40);
  EXPECT_GT(exact.bytes, 16 * n * n);
  // MONTE_CARLO adds its sample set, 2 m S C doubles (S = 1000 by default).
  const Cost mc = DistributionCost(DistributionMethod::kMonteCarlo, Regime::kSquared, 1000, n,
                                   d, c, 0, int64_t{1} << 40, m);
  EXPECT_GE(mc.bytes, 8 * 2 * m * int64_t{kDefaultNumSamples} * c);
}

}  // namespace
}  // namespace ntk
