// Issue 11 finding 7: numerically hostile feature values (squares that
// overflow, NaN/Inf) are refused with INVALID_ARGUMENT naming row and column
// by Fit, Predict and PredictDistribution alike (core/numerics/values.h), the
// server keeps answering, and the edge check (server/finite_response.h)
// finds any non-finite number in a response.
#include <cmath>
#include <limits>
#include <string>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/matrix_convert.h"
#include "server/finite_response.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using ::testing::HasSubstr;
using testing::InProcessServer;
using testing::TempDir;

std::unique_ptr<grpc::ClientContext> Ctx() { return testing::CallContext(std::chrono::seconds(60)); }

class HostileValuesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = InProcessServer::Start(testing::TestServerOptions(dir_.path()));
    ASSERT_NE(server_, nullptr);
    stub_ = server_->RawStub();
    blobs_ = testing::MakeBlobs(30, 3, 3, 5);
    v1::FitRequest fit;
    fit.set_model_id("m");
    *fit.mutable_spec() = testing::SmallSpec(1.0);
    *fit.mutable_features() = MatrixToProto(blobs_.x);
    fit.mutable_labels()->Add(blobs_.y.begin(), blobs_.y.end());
    v1::FitResponse resp;
    ASSERT_TRUE(stub_->Fit(Ctx().get(), fit, &resp).ok());
  }

  // Four query rows from the training data with `value` at row 2, column 1.
  v1::Matrix Queries(double value) const {
    Eigen::MatrixXd q = blobs_.x.topRows(4);
    q(2, 1) = value;
    return MatrixToProto(q);
  }

  grpc::Status Predict(double value, v1::PredictResponse* out = nullptr) {
    v1::PredictRequest r;
    r.set_model_id("m");
    *r.mutable_features() = Queries(value);
    v1::PredictResponse resp;
    return stub_->Predict(Ctx().get(), r, out != nullptr ? out : &resp);
  }

  grpc::Status PredictDistribution(double value, v1::DistributionMethod method) {
    v1::PredictDistributionRequest r;
    r.set_model_id("m");
    r.set_method(method);
    r.set_num_samples(64);
    *r.mutable_features() = Queries(value);
    v1::PredictDistributionResponse resp;
    return stub_->PredictDistribution(Ctx().get(), r, &resp);
  }

  TempDir dir_;
  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<v1::NtkService::Stub> stub_;
  testing::Blobs blobs_;
};

// 1e154 is the first power of ten whose square overflows a double (1e308 is
// the largest finite order of magnitude); 1e300 far beyond; 1e151 is just
// over the documented limit 1e150 (kMaxInputMagnitude).
TEST_F(HostileValuesTest, PredictRefusesOverflowingValuesNamingRowAndColumn) {
  for (double v : {1e151, 1e154, -1e300, 1e300}) {
    SCOPED_TRACE(v);
    grpc::Status s = Predict(v);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("features: row 2 column 1"));
  }
}

TEST_F(HostileValuesTest, PredictDistributionRefusesOverflowingValuesForEveryMethod) {
  for (v1::DistributionMethod method :
       {v1::EXACT, v1::LINEARIZED, v1::LAPLACE_POSTERIOR, v1::MONTE_CARLO}) {
    for (double v : {1e154, 1e300, std::numeric_limits<double>::quiet_NaN()}) {
      SCOPED_TRACE(v1::DistributionMethod_Name(method) + " " + std::to_string(v));
      grpc::Status s = PredictDistribution(v, method);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
      EXPECT_THAT(s.error_message(), HasSubstr("features: row 2 column 1"));
    }
  }
}

TEST_F(HostileValuesTest, FitRefusesOverflowingValuesNamingRowAndColumn) {
  Eigen::MatrixXd x = blobs_.x;
  x(7, 2) = 1e154;
  v1::FitRequest fit;
  fit.set_model_id("big");
  *fit.mutable_spec() = testing::SmallSpec(1.0);
  *fit.mutable_features() = MatrixToProto(x);
  fit.mutable_labels()->Add(blobs_.y.begin(), blobs_.y.end());
  v1::FitResponse resp;
  grpc::Status s = stub_->Fit(Ctx().get(), fit, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("features: row 7 column 2"));
}

// The largest allowed magnitude is served, with finite numbers only.
TEST_F(HostileValuesTest, ValuesAtTheLimitAreServedFinite) {
  v1::PredictResponse resp;
  grpc::Status s = Predict(1e150, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(server::FirstNonFiniteField(resp), "");
}

TEST_F(HostileValuesTest, ServerKeepsAnsweringAfterHostileRequests) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Predict(1e300).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  v1::PredictResponse resp;
  grpc::Status s = Predict(0.5, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.labels_size(), 4);
}

// The edge check itself: finds a NaN or Inf wherever it sits in a response
// (values, raw data of either dtype, nested repeated messages).
TEST(FiniteResponseTest, FindsNonFiniteNumbersAnywhere) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Eigen::MatrixXd m(2, 2);
  m << 1, 2, 3, 4;
  v1::PredictResponse ok;
  *ok.mutable_probabilities() = MatrixToProto(m);
  EXPECT_EQ(server::FirstNonFiniteField(ok), "");
  EXPECT_TRUE(server::CheckResponseFinite("Predict", ok).ok());

  m(1, 0) = nan;
  v1::PredictResponse bad_values;
  *bad_values.mutable_probabilities() = MatrixToProto(m);
  EXPECT_EQ(server::FirstNonFiniteField(bad_values), "probabilities.values[2]");
  absl::Status s = server::CheckResponseFinite("Predict", bad_values);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(s.message()), HasSubstr("probabilities.values[2]"));

  m(1, 0) = 3;
  m(1, 1) = std::numeric_limits<double>::infinity();
  for (MatrixEncoding e : {MatrixEncoding::kFloat64, MatrixEncoding::kFloat32}) {
    v1::PredictResponse bad_data;
    *bad_data.mutable_logits() = MatrixToProto(m, e);
    EXPECT_EQ(server::FirstNonFiniteField(bad_data), "logits.data[3]");
  }

  v1::PredictDistributionResponse pd;
  pd.add_points();
  pd.add_points()->set_mutual_information(nan);
  EXPECT_EQ(server::FirstNonFiniteField(pd), "points[1].mutual_information");
}

}  // namespace
}  // namespace ntk
