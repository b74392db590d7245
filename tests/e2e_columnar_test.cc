// PredictDistributionRequest.columnar end to end (docs/api.md "Columnar
// answers"): the DistributionBatch carries the same numbers as `points`
// (M x C, M x C*C row-major per point, M x 3 entropies, labels), in the
// encoding of the request's features (values, or FLOAT64 data). Reference:
// the same server answering the same request with columnar unset, so every
// comparison is exact (identical inputs to deterministic code, seeded).
#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/matrix_convert.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using testing::InProcessServer;
using testing::TempDir;

std::unique_ptr<grpc::ClientContext> Ctx() { return testing::CallContext(std::chrono::seconds(60)); }

class ColumnarTest : public ::testing::TestWithParam<v1::DistributionMethod> {
 protected:
  void SetUp() override {
    server_ = InProcessServer::Start(testing::TestServerOptions(dir_.path()));
    ASSERT_NE(server_, nullptr);
    stub_ = server_->RawStub();
    const testing::Blobs b = testing::MakeBlobs(40, 5, 3, 31);
    v1::FitRequest r;
    r.set_model_id("m");
    *r.mutable_spec() = testing::SmallSpec(1.0);
    *r.mutable_features() = MatrixToProto(b.x);
    r.mutable_labels()->Add(b.y.begin(), b.y.end());
    v1::FitResponse resp;
    grpc::Status s = stub_->Fit(Ctx().get(), r, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    queries_ = testing::MakeBlobs(6, 5, 3, 32).x;
  }

  v1::PredictDistributionResponse Ask(MatrixEncoding encoding, bool columnar) {
    v1::PredictDistributionRequest r;
    r.set_model_id("m");
    *r.mutable_features() = MatrixToProto(queries_, encoding);
    r.set_method(GetParam());
    r.set_num_samples(200);
    r.set_seed(7);
    r.set_columnar(columnar);
    v1::PredictDistributionResponse resp;
    grpc::Status s = stub_->PredictDistribution(Ctx().get(), r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  TempDir dir_;
  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<v1::NtkService::Stub> stub_;
  Eigen::MatrixXd queries_;
};

void ExpectSameNumbers(const v1::PredictDistributionResponse& points,
                       const v1::PredictDistributionResponse& columnar) {
  ASSERT_EQ(points.points_size(), 6);
  EXPECT_EQ(columnar.points_size(), 0);
  EXPECT_EQ(columnar.method(), points.method());
  const v1::DistributionBatch& b = columnar.batch();
  const int m = 6, c = 3;
  auto matrix = [](const v1::Matrix& p, int rows, int cols) {
    EXPECT_EQ(p.rows(), static_cast<uint32_t>(rows));
    EXPECT_EQ(p.cols(), static_cast<uint32_t>(cols));
    absl::StatusOr<Eigen::MatrixXd> x = MatrixFromProto(p, "batch");
    EXPECT_TRUE(x.ok()) << x.status();
    return x.ok() ? *x : Eigen::MatrixXd();
  };
  const Eigen::MatrixXd logit_mean = matrix(b.logit_mean(), m, c);
  const Eigen::MatrixXd logit_cov = matrix(b.logit_covariance(), m, c * c);
  const Eigen::MatrixXd prob_mean = matrix(b.probability_mean(), m, c);
  const Eigen::MatrixXd prob_cov = matrix(b.probability_covariance(), m, c * c);
  const Eigen::MatrixXd entropies = matrix(b.entropies(), m, 3);
  ASSERT_EQ(b.labels_size(), m);
  ASSERT_EQ(logit_cov.rows(), m);
  for (int i = 0; i < m; ++i) {
    const v1::PointDistribution& p = points.points(i);
    for (int k = 0; k < c; ++k) {
      EXPECT_EQ(logit_mean(i, k), p.logit_mean(k));
      EXPECT_EQ(prob_mean(i, k), p.probability_mean(k));
    }
    for (int k = 0; k < c * c; ++k) {  // both row-major C x C
      EXPECT_EQ(logit_cov(i, k), p.logit_covariance(k));
      EXPECT_EQ(prob_cov(i, k), p.probability_covariance(k));
    }
    EXPECT_EQ(entropies(i, 0), p.predictive_entropy());
    EXPECT_EQ(entropies(i, 1), p.expected_entropy());
    EXPECT_EQ(entropies(i, 2), p.mutual_information());
    EXPECT_EQ(b.labels(i), p.label());
  }
}

TEST_P(ColumnarTest, ValuesRequestGetsValuesMatricesWithThePointsNumbers) {
  const v1::PredictDistributionResponse points = Ask(MatrixEncoding::kValues, false);
  const v1::PredictDistributionResponse columnar = Ask(MatrixEncoding::kValues, true);
  EXPECT_EQ(EncodingOf(columnar.batch().probability_mean()), MatrixEncoding::kValues);
  EXPECT_EQ(EncodingOf(columnar.batch().entropies()), MatrixEncoding::kValues);
  ExpectSameNumbers(points, columnar);
}

TEST_P(ColumnarTest, DataRequestGetsFloat64DataMatricesWithThePointsNumbers) {
  const v1::PredictDistributionResponse points = Ask(MatrixEncoding::kFloat64, false);
  const v1::PredictDistributionResponse columnar = Ask(MatrixEncoding::kFloat64, true);
  for (const v1::Matrix* m :
       {&columnar.batch().logit_mean(), &columnar.batch().logit_covariance(),
        &columnar.batch().probability_mean(), &columnar.batch().probability_covariance(),
        &columnar.batch().entropies()}) {
    EXPECT_EQ(EncodingOf(*m), MatrixEncoding::kFloat64);
    EXPECT_EQ(m->values_size(), 0);
  }
  ExpectSameNumbers(points, columnar);
}

INSTANTIATE_TEST_SUITE_P(Methods, ColumnarTest,
                         ::testing::Values(v1::METHOD_UNSPECIFIED, v1::MONTE_CARLO));

}  // namespace
}  // namespace ntk
