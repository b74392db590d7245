// Nystrom models end to end through the server (docs/model-contract.md
// "6. Nystrom models"): Fit and FitStream with spec.approximation, the
// resolved m in ModelInfo, Predict equal to core's own fit, persistence
// across a restart, the separate row limits, PredictDistribution EXACT
// and MONTE_CARLO (2c) and LINEARIZED / LAPLACE_POSTERIOR (2a) equal to
// core's own model, and the refusal of MONTE_CARLO for 2a.
#include <algorithm>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "core/model/model.h"
#include "server/convert.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/temp_dir.h"

namespace ntk {
namespace {

using ::testing::HasSubstr;
using testing::InProcessServer;
using testing::TempDir;

v1::ModelSpec NystromSpec(uint32_t m, uint64_t seed) {
  v1::ModelSpec spec = testing::SmallSpec(0.1);
  spec.mutable_approximation()->set_kind(v1::Approximation::NYSTROM);
  spec.mutable_approximation()->set_num_centers(m);
  spec.mutable_approximation()->set_seed(seed);
  return spec;
}

// The server's PredictDistribution of model `id` (200 samples, seed 9)
// against core's own `model` with the same method: the method answered,
// each logit covariance and mean entry within tol times the largest of its
// field, the mutual information within tol * max(1, predictive entropy).
void ExpectServerMatchesCore(Client& c, const std::string& id, const Eigen::MatrixXd& q,
                             v1::DistributionMethod method, DistributionMethod core_method,
                             const FittedModel& model, double tol) {
  absl::StatusOr<v1::PredictDistributionResponse> got =
      c.PredictDistribution(id, q, method, 200, 9);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->points_size(), q.rows());
  EXPECT_EQ(got->method(), method);
  DistributionOptions opt;
  opt.method = core_method;
  opt.num_samples = 200;
  opt.seed = 9;
  absl::StatusOr<DistributionResult> want = model.PredictDistribution(q, opt);
  ASSERT_TRUE(want.ok()) << want.status();
  for (int i = 0; i < q.rows(); ++i) {
    const v1::PointDistribution& g = got->points(i);
    const PointDistribution& w = want->points[static_cast<size_t>(i)];
    const double scale = w.logit_covariance.cwiseAbs().maxCoeff();
    const Eigen::Index C = w.logit_mean.size();
    ASSERT_EQ(g.logit_covariance_size(), w.logit_covariance.size());
    for (int k = 0; k < g.logit_covariance_size(); ++k) {
      EXPECT_NEAR(g.logit_covariance(k), w.logit_covariance(k / C, k % C), tol * scale);
    }
    for (int k = 0; k < g.logit_mean_size(); ++k) {
      EXPECT_NEAR(g.logit_mean(k), w.logit_mean[k], tol * w.logit_mean.cwiseAbs().maxCoeff());
    }
    EXPECT_NEAR(g.mutual_information(), w.mutual_information,
                tol * std::max(1.0, w.predictive_entropy));
  }
}

TEST(NystromE2eTest, FitPredictRestartAndLimits) {
  TempDir dir;
  server::ServerOptions o = testing::TestServerOptions(dir.path());
  o.max_train_rows = 100;
  o.max_nystrom_train_rows = 400;
  o.max_message_mb = 1;  // a 400 x 300 Fit goes by FitStream
  const testing::Blobs data = testing::MakeBlobs(150, 5, 3, 7);
  const Eigen::MatrixXd q = testing::MakeBlobs(9, 5, 3, 8).x;
  Eigen::MatrixXd before;
  {
    auto s = InProcessServer::Start(o);
    ASSERT_NE(s, nullptr);
    ClientOptions co;
    co.max_message_mb = 1;
    auto c = s->Connect(co);

    // An exact Fit over --max_train_rows is told about NYSTROM.
    absl::StatusOr<v1::ModelInfo> exact = c->Fit("exact", testing::SmallSpec(0.1), data.x, data.y);
    ASSERT_EQ(exact.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(exact.status().message(), HasSubstr("--max_train_rows = 100"));
    EXPECT_THAT(exact.status().message(), HasSubstr("NYSTROM"));

    const v1::ModelSpec spec = NystromSpec(20, 3);
    absl::StatusOr<v1::ModelInfo> info = c->Fit("ny", spec, data.x, data.y);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->spec().approximation().kind(), v1::Approximation::NYSTROM);
    EXPECT_EQ(info->spec().approximation().num_centers(), 20u);
    EXPECT_EQ(info->spec().approximation().seed(), 3u);
    EXPECT_EQ(info->num_train(), 150u);

    // The same model fitted by core directly. Tolerance 1e-10 relative: the
    // server's BLAS/OpenMP thread counts may change summation orders
    // (~1e-15 relative per product), amplified by the conditioning of the
    // 2a Newton solve; the solver itself stops at 1e-12.
    absl::StatusOr<ModelSpec> core_spec = server::ModelSpecFromProto(spec, o);
    ASSERT_TRUE(core_spec.ok());
    TrainingData td;
    td.features = data.x;
    td.labels = data.y;
    absl::StatusOr<std::unique_ptr<FittedModel>> local = FittedModel::Fit(*core_spec, td);
    ASSERT_TRUE(local.ok()) << local.status();
    absl::StatusOr<Client::PredictResult> p = c->Predict("ny", q);
    ASSERT_TRUE(p.ok()) << p.status();
    const Eigen::MatrixXd want = (*local)->Predict(q)->logits;
    EXPECT_LE((p->logits - want).cwiseAbs().maxCoeff(), 1e-10 * want.cwiseAbs().maxCoeff());
    before = p->logits;

    // m > N is clipped to N and reported.
    absl::StatusOr<v1::ModelInfo> clipped = c->Fit("clipped", NystromSpec(1000, 1), data.x, data.y);
    ASSERT_TRUE(clipped.ok()) << clipped.status();
    EXPECT_EQ(clipped->spec().approximation().num_centers(), 150u);

    // FitStream (the request exceeds one message) under --max_nystrom_train_rows.
    const testing::Blobs wide = testing::MakeBlobs(400, 300, 3, 9);
    absl::StatusOr<v1::ModelInfo> streamed = c->Fit("wide", NystromSpec(30, 2), wide.x, wide.y);
    ASSERT_TRUE(streamed.ok()) << streamed.status();
    EXPECT_EQ(streamed->num_train(), 400u);
    const testing::Blobs too_many = testing::MakeBlobs(401, 5, 3, 10);
    absl::StatusOr<v1::ModelInfo> over = c->Fit("over", NystromSpec(30, 2), too_many.x, too_many.y);
    ASSERT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(over.status().message(), HasSubstr("--max_nystrom_train_rows = 400"));

    // 2a (cross-entropy, lambda > 0): LINEARIZED and LAPLACE_POSTERIOR from
    // the fit's Newton summaries equal core's own model (logit moments;
    // tolerance 1e-8 relative: the server's thread counts change summation
    // orders, amplified by the conditioning of the (m C) x (m C) Newton
    // Hessian, which squares Theta_mm's); MONTE_CARLO is not built for them.
    ExpectServerMatchesCore(*c, "ny", q, v1::LINEARIZED, DistributionMethod::kLinearized,
                            **local, 1e-8);
    ExpectServerMatchesCore(*c, "ny", q, v1::LAPLACE_POSTERIOR,
                            DistributionMethod::kLaplacePosterior, **local, 1e-8);
    absl::StatusOr<v1::PredictDistributionResponse> d =
        c->PredictDistribution("ny", q, v1::MONTE_CARLO);
    ASSERT_EQ(d.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_THAT(d.status().message(), HasSubstr("method: MONTE_CARLO"));

    // 2c: EXACT and MONTE_CARLO over gRPC equal core's own model
    // (docs/model-contract.md "6. Nystrom models"). Tolerance 1e-10 relative
    // as for Predict above (thread counts change summation orders; the
    // probability moments reuse the same seeded draws).
    v1::ModelSpec sq = NystromSpec(25, 4);
    sq.mutable_training()->set_loss(v1::SQUARED);
    ASSERT_TRUE(c->Fit("sq", sq, data.x, data.y).ok());
    absl::StatusOr<ModelSpec> sq_spec = server::ModelSpecFromProto(sq, o);
    ASSERT_TRUE(sq_spec.ok());
    absl::StatusOr<std::unique_ptr<FittedModel>> sq_local = FittedModel::Fit(*sq_spec, td);
    ASSERT_TRUE(sq_local.ok()) << sq_local.status();
    ExpectServerMatchesCore(*c, "sq", q, v1::EXACT, DistributionMethod::kExact, **sq_local,
                            1e-10);
    ExpectServerMatchesCore(*c, "sq", q, v1::MONTE_CARLO, DistributionMethod::kMonteCarlo,
                            **sq_local, 1e-10);

    // An unknown kind names the field (with rows under both limits: the
    // row limits are checked first).
    v1::ModelSpec bad = spec;
    bad.mutable_approximation()->set_kind(static_cast<v1::Approximation::Kind>(9));
    const testing::Blobs few = testing::MakeBlobs(50, 5, 3, 11);
    absl::StatusOr<v1::ModelInfo> b = c->Fit("bad", bad, few.x, few.y);
    ASSERT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(b.status().message(), HasSubstr("spec.approximation.kind"));
  }
  // Restart on the same directory: the model file is loaded and answers
  // the same bits.
  auto s = InProcessServer::Start(o);
  ASSERT_NE(s, nullptr);
  auto c = s->Connect();
  absl::StatusOr<v1::ModelInfo> info = c->GetModel("ny");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->spec().approximation().num_centers(), 20u);
  absl::StatusOr<Client::PredictResult> p = c->Predict("ny", q);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->logits, before);
}

}  // namespace
}  // namespace ntk
