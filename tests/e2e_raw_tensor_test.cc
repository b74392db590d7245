// Raw-tensor matrices end to end (docs/api.md "Additions (round 2)":
// Matrix.data + dtype): a request may carry its features as FLOAT64 or
// FLOAT32 bytes; the server computes exactly what it computes for the same
// numbers sent as values, and answers in data (FLOAT64) when the features
// came as data. Reference answers come from the same server fed the same
// numbers as `values` (for FLOAT32, the doubles rounded to float by the test
// itself), so every comparison is exact: identical inputs to deterministic
// code.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/matrix_convert.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using testing::InProcessServer;
using testing::TempDir;

std::unique_ptr<grpc::ClientContext> Ctx() { return testing::CallContext(std::chrono::seconds(60)); }

// Every element rounded to float, so that FLOAT32 data carries the same numbers.
Eigen::MatrixXd RoundedToFloat(const Eigen::MatrixXd& m) {
  return m.cast<float>().cast<double>();
}

v1::FitRequest FitRequestFor(const std::string& id, const testing::Blobs& b,
                             MatrixEncoding encoding) {
  v1::FitRequest r;
  r.set_model_id(id);
  *r.mutable_spec() = testing::SmallSpec(1.0);
  *r.mutable_features() = MatrixToProto(b.x, encoding);
  r.mutable_labels()->Add(b.y.begin(), b.y.end());
  return r;
}

v1::PredictResponse PredictOrDie(v1::NtkService::Stub* stub, const std::string& id,
                                 const v1::Matrix& features) {
  v1::PredictRequest r;
  r.set_model_id(id);
  *r.mutable_features() = features;
  v1::PredictResponse resp;
  grpc::Status s = stub->Predict(Ctx().get(), r, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp;
}

class RawTensorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = InProcessServer::Start(testing::TestServerOptions(dir_.path()));
    ASSERT_NE(server_, nullptr);
    stub_ = server_->RawStub();
    blobs_ = testing::MakeBlobs(40, 5, 3, 21);
    blobs_.x = RoundedToFloat(blobs_.x);  // representable in every encoding
    queries_ = RoundedToFloat(testing::MakeBlobs(7, 5, 3, 22).x);
    v1::FitResponse resp;
    grpc::Status s =
        stub_->Fit(Ctx().get(), FitRequestFor("ref", blobs_, MatrixEncoding::kValues), &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    reference_ = PredictOrDie(stub_.get(), "ref", MatrixToProto(queries_));
    ASSERT_EQ(reference_.probabilities().rows(), 7u);
  }

  TempDir dir_;
  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<v1::NtkService::Stub> stub_;
  testing::Blobs blobs_;
  Eigen::MatrixXd queries_;
  v1::PredictResponse reference_;  // values in, values out
};

TEST_F(RawTensorTest, Float64DataIsAnsweredInFloat64DataWithTheSameNumbers) {
  v1::PredictResponse r =
      PredictOrDie(stub_.get(), "ref", MatrixToProto(queries_, MatrixEncoding::kFloat64));
  for (const v1::Matrix* m : {&r.probabilities(), &r.logits()}) {
    EXPECT_EQ(m->dtype(), v1::FLOAT64);
    EXPECT_EQ(m->values_size(), 0);
    EXPECT_EQ(m->data().size(), 7u * 3u * 8u);
  }
  EXPECT_EQ(*MatrixFromProto(r.probabilities(), "p"),
            *MatrixFromProto(reference_.probabilities(), "p"));
  EXPECT_EQ(*MatrixFromProto(r.logits(), "l"), *MatrixFromProto(reference_.logits(), "l"));
  EXPECT_EQ(std::vector<int>(r.labels().begin(), r.labels().end()),
            std::vector<int>(reference_.labels().begin(), reference_.labels().end()));
  // Values in: values out.
  EXPECT_EQ(reference_.probabilities().values_size(), 21);
  EXPECT_TRUE(reference_.probabilities().data().empty());
}

TEST_F(RawTensorTest, Float32DataIsReadAsTheFloatNumbers) {
  v1::PredictResponse r =
      PredictOrDie(stub_.get(), "ref", MatrixToProto(queries_, MatrixEncoding::kFloat32));
  EXPECT_EQ(r.probabilities().dtype(), v1::FLOAT64);  // answered in FLOAT64 data
  EXPECT_EQ(*MatrixFromProto(r.probabilities(), "p"),
            *MatrixFromProto(reference_.probabilities(), "p"));
  EXPECT_EQ(*MatrixFromProto(r.logits(), "l"), *MatrixFromProto(reference_.logits(), "l"));
}

TEST_F(RawTensorTest, FitFromDataGivesTheModelFitFromValues) {
  for (MatrixEncoding e : {MatrixEncoding::kFloat64, MatrixEncoding::kFloat32}) {
    const std::string id = e == MatrixEncoding::kFloat64 ? "f64" : "f32";
    v1::FitResponse resp;
    grpc::Status s = stub_->Fit(Ctx().get(), FitRequestFor(id, blobs_, e), &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    v1::PredictResponse r = PredictOrDie(stub_.get(), id, MatrixToProto(queries_));
    EXPECT_EQ(r.SerializeAsString(), reference_.SerializeAsString()) << id;
  }
}

TEST_F(RawTensorTest, FitStreamChunksMayMixEncodings) {
  const v1::FitRequest whole = FitRequestFor("stream", blobs_, MatrixEncoding::kValues);
  std::vector<v1::FitRequest> msgs;
  const MatrixEncoding encodings[] = {MatrixEncoding::kValues, MatrixEncoding::kFloat64,
                                      MatrixEncoding::kFloat32, MatrixEncoding::kFloat64};
  for (int k = 0; k < 4; ++k) {  // 4 chunks of 10 rows
    v1::FitRequest m;
    if (k == 0) {
      m.set_model_id("stream");
      *m.mutable_spec() = whole.spec();
    }
    *m.mutable_features() = MatrixToProto(blobs_.x.middleRows(10 * k, 10), encodings[k]);
    m.mutable_labels()->Add(blobs_.y.begin() + 10 * k, blobs_.y.begin() + 10 * (k + 1));
    msgs.push_back(m);
  }
  v1::FitResponse resp;
  auto ctx = Ctx();
  auto writer = stub_->FitStream(ctx.get(), &resp);
  for (const auto& m : msgs) ASSERT_TRUE(writer->Write(m));
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.model().num_train(), 40u);
  v1::PredictResponse r = PredictOrDie(stub_.get(), "stream", MatrixToProto(queries_));
  EXPECT_EQ(r.SerializeAsString(), reference_.SerializeAsString());
}

TEST_F(RawTensorTest, ClientSendsDataWhenAskedAndReadsEitherAnswer) {
  ClientOptions options;
  options.encoding = MatrixEncoding::kFloat64;
  std::unique_ptr<Client> client = server_->Connect(options);
  absl::StatusOr<v1::ModelInfo> info =
      client->Fit("client", testing::SmallSpec(1.0), blobs_.x, blobs_.y);
  ASSERT_TRUE(info.ok()) << info.status();
  absl::StatusOr<Client::PredictResult> p = client->Predict("client", queries_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->probabilities, *MatrixFromProto(reference_.probabilities(), "p"));
  EXPECT_EQ(p->logits, *MatrixFromProto(reference_.logits(), "l"));
}

}  // namespace
}  // namespace ntk
