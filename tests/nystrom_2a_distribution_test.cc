// PredictDistribution on Nystrom models of regime 2a (docs/model-contract.md
// "6. Nystrom models", "PredictDistribution of a Nystrom model", 2a):
// LINEARIZED and LAPLACE_POSTERIOR from the fit's Newton summaries. With
// m = N centers (every training point) both equal the exact model's; with
// m < N they equal section 4's formulas evaluated by brute force on the
// dense N x N Nystrom kernels; persistence (round trip, older files), the
// size cap, fits with initial outputs, cancellation and the cost model.
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
#include "core/training/solvers.h"
#include "tests/testing/distribution_fixtures.h"
#include "tests/testing/nystrom_fixtures.h"
#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;
using ::testing::HasSubstr;

using testing::ExpectAllWithin;
using testing::MustFit;
using testing::MustPredict;
using testing::RelativeDiffs;

constexpr DistributionMethod kLin = DistributionMethod::kLinearized;
constexpr DistributionMethod kLap = DistributionMethod::kLaplacePosterior;

ModelSpec Spec2a(int m = 0, uint64_t seed = 1) {
  const ModelSpec s = testing::RegimeSpec(Regime::kRegularizedCE);
  return m > 0 ? testing::WithNystrom(s, m, seed) : s;
}

absl::Status Refusal(const FittedModel& model, const MatrixXd& q, DistributionMethod method) {
  DistributionOptions o;
  o.method = method;
  return model.PredictDistribution(q, o).status();
}

// m = N: Z = X, so Theta_nm = Theta_mm = Theta_XX, K~ = K_XX, and both
// formulas reduce to section 4's (the contract's "with m = N both reduce").
// Tolerance 1e-8 relative (the brief's): both Newton solvers stop at
// relative residual 1e-12, so the curvature W differs by ~1e-12 times the
// conditioning of the 2a solve, and the Nystrom side solves with the beta-
// space Hessian Theta W Theta + lambda Theta, whose rounding is about
// cond(Theta_XX)^2 eps: cond(Theta_XX) eps <= 1e-12 is asserted so that
// 1e-8 is a real check (cond^2 eps <= 1e-8 / 2e-4). Measured: logit
// covariance 1.6e-14, logit mean 1.5e-13 (the mean compares two Newton
// solutions). The probability moments use the same seeded draws on both
// sides, so they differ only through the logit moments.
TEST(Nystrom2aDistributionTest, EqualsExactWithAllPointsAsCenters) {
  const TrainingData data = testing::NystromBlobs(40, 11);
  const MatrixXd queries = testing::StdNormalMatrix(12, 5, 12, 1.5);
  const auto exact = MustFit(Spec2a(), data);
  const auto ny = MustFit(Spec2a(40), data);
  ASSERT_TRUE(exact && ny);
  ASSERT_EQ(ny->Info().regime, Regime::kRegularizedCE);
  const FittedModel::State& s = ModelInternals::Of(*exact);
  const Eigen::SelfAdjointEigenSolver<MatrixXd> eig(
      TrainKernels(s.problem.spec.kernel, s.x_train).ntk);
  EXPECT_LE(eig.eigenvalues().maxCoeff() / eig.eigenvalues().minCoeff() * testing::kEps, 1e-12);
  for (const DistributionMethod method : {kLin, kLap, DistributionMethod::kUnspecified}) {
    SCOPED_TRACE(static_cast<int>(method));
    const DistributionResult a = MustPredict(*ny, queries, method, 400);
    const DistributionResult b = MustPredict(*exact, queries, method, 400);
    EXPECT_EQ(a.method, b.method);
    const testing::FieldDiffs d = RelativeDiffs(a, b);
    RecordProperty(method == kLap ? "laplace_logit_cov" : "linearized_logit_cov",
                   std::to_string(d.logit_cov));
    std::printf("m = N vs exact, method %d: logit mean %.2g, logit cov %.2g\n",
                static_cast<int>(method), d.logit_mean, d.logit_cov);
    ExpectAllWithin(d, 1e-8);
  }
}

// m < N against the contract's formulas evaluated independently, by
// brute force, on dense N x N Nystrom kernels: Theta~ = Theta_nm
// Theta_mm^{-1} Theta_mn, K~ = K_nm K_mm^{-1} K_mn (LLT solves), the exact
// query variances K_xx and Theta_xx (the prior of the contract), p the
// softmax of the fit's training logits Theta_nm beta, W = blockdiag_i(diag
// p_i - p_i p_i^T) in point-major order (i C + c), and section 4's
//   B = W (I + (Theta~ / lambda (x) I) W)^{-1} (NC x NC, LU),
//   LINEARIZED  K_xx I - T1 - T1^T + T2, T1 = (v (x) I)^T B (k~ (x) I),
//               T2 = (v (x) I)^T B (K~ (x) I) B^T (v (x) I),
//   LAPLACE     Theta_xx / lambda I - (v (x) I)^T B (v (x) I),
// v = Theta~_Xx / lambda, k~ = K~_Xx; centered as reported. The mean is
// checked against section 2a's fixed point with Theta~, Theta~_xX (Y - p) /
// lambda. Nothing of this shares code with the m-feature path (no
// summaries, no beta-space Hessian, no factor cache). Tolerances: the
// covariances 1e-9 relative: the m-feature path solves with the beta-space
// Hessian, rounding ~cond(Theta_mm)^2 eps, and with L_K, ~cond(K_mm) eps;
// cond * eps <= 1e-13 is asserted for both (cond <= 450, so cond^2 eps <=
// 5e-11, 20x below; measured cond 204 and 30, errors 4e-15 and 8e-16).
// The mean 1e-9 relative: the fit's Newton solve stops at relative residual
// 1e-12, amplified by the 2a system's conditioning (measured 3e-14).
TEST(Nystrom2aDistributionTest, MatchesDenseNystromKernelsByBruteForce) {
  const int n = 40, m = 12, C = 3;
  const TrainingData data = testing::NystromBlobs(n, 21);
  const MatrixXd queries = testing::StdNormalMatrix(10, 5, 22, 1.2);
  const auto model = MustFit(Spec2a(m, 4), data);
  ASSERT_NE(model, nullptr);
  const FittedModel::State& st = ModelInternals::Of(*model);
  const double lambda = st.problem.lambda;
  const testing::DenseNystromKernels dk = testing::DenseKernelsOf(*model, data, queries, m, 4);
  const MatrixXd &knm = dk.knm, &tnm = dk.tnm, &kmm = dk.kmm, &tmm = dk.tmm;
  for (const MatrixXd* a : {&kmm, &tmm}) {
    const Eigen::SelfAdjointEigenSolver<MatrixXd> e(*a);
    const double cond = e.eigenvalues().maxCoeff() / e.eigenvalues().minCoeff();
    EXPECT_LE(cond * testing::kEps, 1e-13);
  }
  const KernelMatrices& qz = dk.qz;  // m x M
  const KernelDiagonal& qd = dk.qd;
  const Eigen::LLT<MatrixXd> kllt(kmm), tllt(tmm);
  const MatrixXd k_tilde = knm * kllt.solve(knm.transpose());
  const MatrixXd t_tilde = tnm * tllt.solve(tnm.transpose());
  const MatrixXd k_xq = knm * kllt.solve(qz.nngp);  // N x M
  const MatrixXd t_xq = tnm * tllt.solve(qz.ntk);   // N x M
  const MatrixXd p = RowSoftmax(tnm * st.nystrom.beta);
  // The mean by the fixed point of section 2a with Theta~: f(x) =
  // Theta~_xX (Y - p) / lambda (Y the smoothed one-hot targets).
  const double eps = st.problem.label_smoothing;
  MatrixXd y = MatrixXd::Constant(n, C, eps / C);
  for (int i = 0; i < n; ++i) y(i, data.labels[i]) += 1 - eps;
  MatrixXd mean = t_xq.transpose() * (y - p) / lambda;  // M x C
  mean.colwise() -= mean.rowwise().mean();
  const Index nc = n * C;
  MatrixXd w = MatrixXd::Zero(nc, nc), tk = MatrixXd::Zero(nc, nc), kk = MatrixXd::Zero(nc, nc);
  for (Index i = 0; i < n; ++i) {
    const VectorXd pi = p.row(i).transpose();
    w.block(i * C, i * C, C, C) = MatrixXd(pi.asDiagonal()) - pi * pi.transpose();
    for (Index j = 0; j < n; ++j) {
      tk.block(i * C, j * C, C, C) = t_tilde(i, j) / lambda * MatrixXd::Identity(C, C);
      kk.block(i * C, j * C, C, C) = k_tilde(i, j) * MatrixXd::Identity(C, C);
    }
  }
  const MatrixXd b =
      w * (MatrixXd::Identity(nc, nc) + tk * w).lu().solve(MatrixXd::Identity(nc, nc));
  const DistributionResult lin = MustPredict(*model, queries, kLin);
  const DistributionResult lap = MustPredict(*model, queries, kLap);
  ASSERT_EQ(lin.points.size(), 10u);
  ASSERT_EQ(lap.points.size(), 10u);
  double lin_err = 0, lin_scale = 0, lap_err = 0, lap_scale = 0, mean_err = 0;
  for (Index j = 0; j < 10; ++j) {
    MatrixXd v(nc, C), k(nc, C);
    for (Index i = 0; i < n; ++i) {
      v.middleRows(i * C, C) = t_xq(i, j) / lambda * MatrixXd::Identity(C, C);
      k.middleRows(i * C, C) = k_xq(i, j) * MatrixXd::Identity(C, C);
    }
    const MatrixXd t1 = v.transpose() * b * k;
    const MatrixXd t2 = v.transpose() * b * kk * b.transpose() * v;
    const MatrixXd p_c = testing::Centering(C);
    const MatrixXd want_lin =
        p_c * (qd.nngp[j] * MatrixXd::Identity(C, C) - t1 - t1.transpose() + t2) * p_c;
    const MatrixXd want_lap =
        p_c * (qd.ntk[j] / lambda * MatrixXd::Identity(C, C) - v.transpose() * b * v) * p_c;
    lin_err = std::max(lin_err, (lin.points[j].logit_covariance - want_lin).cwiseAbs().maxCoeff());
    lin_scale = std::max(lin_scale, want_lin.cwiseAbs().maxCoeff());
    lap_err = std::max(lap_err, (lap.points[j].logit_covariance - want_lap).cwiseAbs().maxCoeff());
    lap_scale = std::max(lap_scale, want_lap.cwiseAbs().maxCoeff());
    mean_err = std::max(mean_err, (lin.points[j].logit_mean - mean.row(j).transpose())
                                      .cwiseAbs()
                                      .maxCoeff());
    mean_err = std::max(mean_err, (lap.points[j].logit_mean - mean.row(j).transpose())
                                      .cwiseAbs()
                                      .maxCoeff());
  }
  std::printf("m < N vs dense: LINEARIZED %.2g, LAPLACE %.2g, mean %.2g\n", lin_err / lin_scale,
              lap_err / lap_scale, mean_err / mean.cwiseAbs().maxCoeff());
  EXPECT_LE(lin_err / lin_scale, 1e-9);
  EXPECT_LE(lap_err / lap_scale, 1e-9);
  EXPECT_LE(mean_err, 1e-9 * mean.cwiseAbs().maxCoeff());
}

// A loaded model answers the same bits (the summaries are persisted, the
// factors rebuilt from them by the same code).
TEST(Nystrom2aDistributionTest, SerializedModelGivesTheSameBits) {
  const auto model = MustFit(Spec2a(15, 3), testing::NystromBlobs(50, 41));
  ASSERT_NE(model, nullptr);
  const std::string bytes = model->Serialize();
  uint32_t version = 0;
  std::memcpy(&version, &bytes[8], 4);
  EXPECT_EQ(version, 5u);
  absl::StatusOr<std::unique_ptr<FittedModel>> loaded = FittedModel::Deserialize(bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->Serialize(), bytes);
  const MatrixXd q = testing::StdNormalMatrix(4, 5, 42, 1.0);
  for (const DistributionMethod method : {kLin, kLap}) {
    testing::ExpectSameBits(*model, **loaded, q, method);
  }
}

// A 2a Nystrom file of format version 3 (written before the summaries
// existed) still loads and predicts; LINEARIZED and LAPLACE_POSTERIOR are
// refused with FAILED_PRECONDITION saying to refit. Made here from a
// version-5 file: the trailing 2a block (u8 has_selection, u8 state, i64
// cap, two (m C) x (m C) matrices) dropped, version, length and CRC-32C
// rewritten (core/model/serialize.h layout).
TEST(Nystrom2aDistributionTest, OlderFileLoadsButRefusesDistribution) {
  const int m = 8, C = 3;
  const auto model = MustFit(Spec2a(m), testing::NystromBlobs(30, 71));
  ASSERT_NE(model, nullptr);
  const size_t block = 1 + 1 + 8 + 2 * (16 + 8 * (m * C) * (m * C));
  const std::string bytes = testing::AsOlderVersion(model->Serialize(), block, 3);
  absl::StatusOr<std::unique_ptr<FittedModel>> loaded = FittedModel::Deserialize(bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  // Saved again (as version 5), it still says why it has no summaries.
  absl::StatusOr<std::unique_ptr<FittedModel>> resaved =
      FittedModel::Deserialize((*loaded)->Serialize());
  ASSERT_TRUE(resaved.ok()) << resaved.status();
  const MatrixXd q = testing::StdNormalMatrix(2, 5, 72, 1.0);
  EXPECT_EQ((*loaded)->Predict(q)->logits, model->Predict(q)->logits);
  for (const FittedModel* old : {loaded->get(), resaved->get()}) {
    for (const auto& [method, name] : std::vector<std::pair<DistributionMethod, std::string>>{
             {kLin, "LINEARIZED"}, {kLap, "LAPLACE_POSTERIOR"}}) {
      const absl::Status s = Refusal(*old, q, method);
      ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_THAT(s.message(), HasSubstr("method: " + name));
      EXPECT_THAT(s.message(), HasSubstr("refit"));
    }
  }
}

// Over the cap the fit succeeds without the summaries (and predicts the
// same), and both methods are refused naming spec.approximation.num_centers,
// the size needed and the cap, also after a round trip through the file.
TEST(Nystrom2aDistributionTest, OverTheCapFitsButRefusesNamingNumCenters) {
  const int m = 10, C = 3;
  const TrainingData data = testing::NystromBlobs(40, 61);
  FitOptions small;
  small.max_nystrom_summary_bytes = NystromSummaryBytes(m, C) - 1;
  const auto over = MustFit(Spec2a(m), data, small);
  const auto kept = MustFit(Spec2a(m), data);
  ASSERT_TRUE(over && kept);
  EXPECT_LT(over->Info().memory_bytes + NystromSummaryBytes(m, C) / 2, kept->Info().memory_bytes);
  const MatrixXd q = testing::StdNormalMatrix(3, 5, 62, 1.0);
  EXPECT_EQ(over->Predict(q)->logits, kept->Predict(q)->logits);
  absl::StatusOr<std::unique_ptr<FittedModel>> loaded = FittedModel::Deserialize(over->Serialize());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  for (const FittedModel* model : {over.get(), loaded->get()}) {
    for (const DistributionMethod method : {kLin, kLap}) {
      const absl::Status s = Refusal(*model, q, method);
      ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_THAT(s.message(), HasSubstr("spec.approximation.num_centers = 10"));
      EXPECT_THAT(s.message(), HasSubstr(std::to_string(NystromSummaryBytes(m, C))));
      EXPECT_THAT(s.message(), HasSubstr(std::to_string(small.max_nystrom_summary_bytes)));
      EXPECT_THAT(s.message(), HasSubstr("num_centers <= 9"));
    }
  }
  // At the cap exactly they are kept.
  small.max_nystrom_summary_bytes = NystromSummaryBytes(m, C);
  const auto at_cap = MustFit(Spec2a(m), data, small);
  ASSERT_NE(at_cap, nullptr);
  EXPECT_TRUE(Refusal(*at_cap, q, kLin).ok());
}

// A fit with initial outputs keeps no summaries (they are taken at the
// F0 = 0 solution): refused, saying why; MONTE_CARLO is not built for 2a
// Nystrom models; EXACT does not apply to 2a.
TEST(Nystrom2aDistributionTest, RefusalsOfWhatIsNotBuilt) {
  const TrainingData data = testing::NystromBlobs(30, 81);
  const MatrixXd q = testing::StdNormalMatrix(2, 5, 82, 1.0);
  FitOptions with_f0;
  with_f0.initial_train_outputs = testing::StdNormalMatrix(30, 3, 83, 0.5);
  const auto f0 = MustFit(Spec2a(10), data, with_f0);
  const auto plain = MustFit(Spec2a(10), data);
  ASSERT_TRUE(f0 && plain);
  absl::Status s = Refusal(*f0, q, kLin);
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("initial_train_outputs"));
  s = Refusal(*plain, q, DistributionMethod::kMonteCarlo);
  ASSERT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("method: MONTE_CARLO"));
  EXPECT_THAT(s.message(), HasSubstr("training rows"));
  EXPECT_EQ(Refusal(*plain, q, DistributionMethod::kExact).code(),
            absl::StatusCode::kFailedPrecondition);
}

// Cancellation: a fit stopped while accumulating the summaries, and a
// PredictDistribution stopped while building its factor, end CANCELLED;
// a budget below the factor is RESOURCE_EXHAUSTED naming the method.
TEST(Nystrom2aDistributionTest, CancellationAndBudget) {
  const TrainingData data = testing::NystromBlobs(40, 91);
  FitOptions stop;
  stop.progress = [](double, const char* phase) { return std::string(phase) != "summaries"; };
  absl::StatusOr<std::unique_ptr<FittedModel>> cancelled =
      FittedModel::Fit(Spec2a(10), data, stop);
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
  const auto model = MustFit(Spec2a(10), data);
  ASSERT_NE(model, nullptr);
  const MatrixXd q = testing::StdNormalMatrix(3, 5, 92, 1.0);
  for (const char* at : {"distribution: factor", "distribution: points"}) {
    DistributionOptions o;
    o.method = kLin;
    o.progress = [at](double, const char* phase) { return std::string(phase) != at; };
    EXPECT_EQ(model->PredictDistribution(q, o).status().code(), absl::StatusCode::kCancelled)
        << at;
  }
  DistributionOptions o;
  o.method = kLap;
  o.max_cache_bytes = Nystrom2aFactorBytes(10, 3) - 1;
  const absl::Status s = model->PredictDistribution(q, o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("method: LAPLACE_POSTERIOR"));
}

// The admission estimates count the summaries: a 2a Nystrom fit under the
// cap holds 2 (m C)^2 more doubles (and N m for K_nm), one over it does
// not; PredictDistribution counts the (m C)^2 factor.
TEST(Nystrom2aDistributionTest, CostCountsTheSummaries) {
  const int64_t n = 5000, d = 784, c = 10;
  const Cost under = FitCost(n, d, c, Regime::kRegularizedCE, 500);
  const Cost over = FitCost(n, d, c, Regime::kRegularizedCE, 2000);
  const Cost plain = FitCost(n, d, c, Regime::kSquared, 500);
  EXPECT_GE(under.bytes, plain.bytes + NystromSummaryBytes(500, c));
  EXPECT_LT(over.bytes, NystromSummaryBytes(2000, c));
  const Cost pd = DistributionCost(kLin, Regime::kRegularizedCE, 100, n, d, c, 0,
                                   int64_t{1} << 40, 500);
  EXPECT_GE(pd.bytes, Nystrom2aFactorBytes(500, c));
  EXPECT_GE(pd.flops, (500.0 * 10) * (500.0 * 10) * (500.0 * 10));
}

}  // namespace
}  // namespace ntk
