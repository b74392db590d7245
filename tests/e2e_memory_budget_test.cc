// Issue 11 findings 1 and 6: requests are admitted against one memory budget
// before they allocate (server/memory_budget.h, core/model/cost.h), answers
// over --max_message_mb are refused before the work, and the budget follows
// RLIMIT_AS (a server under `prlimit --as`).
#include <chrono>
#include <string>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/matrix_convert.h"
#include "server/memory_budget.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using ::testing::HasSubstr;
using testing::InProcessServer;
using testing::SubprocessServer;
using testing::TempDir;

std::unique_ptr<grpc::ClientContext> Ctx() { return testing::CallContext(std::chrono::seconds(120)); }

// n rows of one feature, labels i % classes.
v1::FitRequest ManyClassesFit(const std::string& id, int n, int classes, bool squared) {
  Eigen::MatrixXd x(n, 1);
  v1::FitRequest r;
  for (int i = 0; i < n; ++i) {
    x(i, 0) = static_cast<double>(i) / n;
    r.add_labels(i % classes);
  }
  r.set_model_id(id);
  *r.mutable_spec() = testing::SmallSpec(1.0);
  if (squared) r.mutable_spec()->mutable_training()->set_loss(v1::SQUARED);
  *r.mutable_features() = MatrixToProto(x);
  return r;
}

grpc::Status FitSmall(v1::NtkService::Stub* stub, const std::string& id) {
  testing::Blobs b = testing::MakeBlobs(30, 3, 3, 2);
  v1::FitRequest r;
  r.set_model_id(id);
  *r.mutable_spec() = testing::SmallSpec(1.0);
  *r.mutable_features() = MatrixToProto(b.x);
  r.mutable_labels()->Add(b.y.begin(), b.y.end());
  v1::FitResponse resp;
  return stub->Fit(Ctx().get(), r, &resp);
}

grpc::Status PredictSmall(v1::NtkService::Stub* stub, const std::string& id, int rows = 5) {
  testing::Blobs b = testing::MakeBlobs(rows, 3, 3, 4);
  v1::PredictRequest r;
  r.set_model_id(id);
  *r.mutable_features() = MatrixToProto(b.x);
  v1::PredictResponse resp;
  return stub->Predict(Ctx().get(), r, &resp);
}

TEST(MemoryBudgetTest, ReservationsAddUpAndAreReleased) {
  server::MemoryBudget budget(100);
  absl::StatusOr<server::MemoryBudget::Reservation> a = budget.Reserve(60, "Fit");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(budget.used(), 60);
  // Fits alone, not together with the first.
  absl::StatusOr<server::MemoryBudget::Reservation> b = budget.Reserve(60, "Predict");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("Predict: needs an estimated 60 bytes"));
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("60 of 100 bytes"));
  *a = server::MemoryBudget::Reservation();  // released
  EXPECT_EQ(budget.used(), 0);
  EXPECT_TRUE(budget.Reserve(100, "Fit").ok());
  EXPECT_EQ(budget.used(), 0);  // the temporary reservation is gone again
}

// Finding 1: N = 10000, d = 1, C = 1000, lambda = 1 (a ~130 KB request)
// used to end in std::bad_alloc -> abort. Its 2a Hessian blocks alone are
// N C^2 doubles = 80 GB: refused before any work; the server keeps serving.
TEST(MemoryBudgetTest, FindingOneFitIsRefusedAndServerKeepsAnswering) {
  TempDir dir;
  server::ServerOptions o = testing::TestServerOptions(dir.path());
  o.max_train_rows = 10000;
  o.max_classes = 1000;
  auto server = InProcessServer::Start(o);
  ASSERT_NE(server, nullptr);
  auto stub = server->RawStub();
  ASSERT_TRUE(FitSmall(stub.get(), "small").ok());

  v1::FitResponse resp;
  grpc::Status s = stub->Fit(Ctx().get(), ManyClassesFit("c1000", 10000, 1000, false), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("needs an estimated"));
  EXPECT_THAT(s.error_message(), HasSubstr("--memory_budget_mb"));
  EXPECT_TRUE(PredictSmall(stub.get(), "small").ok());
}

TEST(MemoryBudgetTest, AnswersOverTheMessageLimitAreRefusedUpFront) {
  TempDir dir;
  server::ServerOptions o = testing::TestServerOptions(dir.path());
  o.max_message_mb = 1;
  auto server = InProcessServer::Start(o);
  ASSERT_NE(server, nullptr);
  auto stub = server->RawStub();
  ASSERT_TRUE(FitSmall(stub.get(), "m").ok());
  // 30000 rows x 3 classes: probabilities and logits are 2 x 30000 x 3
  // doubles = 1.44 MB > 1 MiB; the request (30000 x 3 doubles) is 0.72 MB.
  grpc::Status s = PredictSmall(stub.get(), "m", 30000);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("--max_message_mb = 1"));
  EXPECT_THAT(s.error_message(), HasSubstr("Predict would answer with"));
  EXPECT_TRUE(PredictSmall(stub.get(), "m", 100).ok());
}

// Finding 6 / 5: PredictDistribution with C = 1000 answers two C x C
// covariances per point (16 MB a point): 10 rows are 160 MB, over the
// default --max_message_mb = 64; refused before any work (a squared-loss
// model, cheap to fit at C = 1000).
TEST(MemoryBudgetTest, DistributionWithThousandClassesOverTheMessageLimitIsRefusedUpFront) {
  TempDir dir;
  server::ServerOptions o = testing::TestServerOptions(dir.path());
  o.max_classes = 1000;
  auto server = InProcessServer::Start(o);
  ASSERT_NE(server, nullptr);
  auto stub = server->RawStub();
  v1::FitResponse fit;
  grpc::Status s = stub->Fit(Ctx().get(), ManyClassesFit("c1000", 1000, 1000, true), &fit);
  ASSERT_TRUE(s.ok()) << s.error_message();

  v1::PredictDistributionRequest r;
  r.set_model_id("c1000");
  Eigen::MatrixXd x = Eigen::MatrixXd::Constant(10, 1, 0.5);
  *r.mutable_features() = MatrixToProto(x);
  v1::PredictDistributionResponse resp;
  s = stub->PredictDistribution(Ctx().get(), r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("PredictDistribution would answer with"));
  EXPECT_THAT(s.error_message(), HasSubstr("--max_message_mb = 64"));
}

// The budget follows RLIMIT_AS: under `prlimit --as=4 GiB` a squared-loss
// fit of N = 10000 (Theta, its Cholesky factor and the NNGP: ~2.4 GB) is
// over half the address space left and refused, where the default budget
// of this machine (3/4 of physical memory) would admit it; the server stays
// up and the other model answers.
TEST(MemoryBudgetTest, ServerUnderAddressSpaceLimitRefusesAndStaysUp) {
  if (access("/usr/bin/prlimit", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/prlimit";
  TempDir dir;
  auto server = SubprocessServer::StartBinary(
      "/usr/bin/prlimit",
      {"--as=" + std::to_string(int64_t{4} << 30), NTK_SERVER_PATH, "--listen=127.0.0.1:0",
       "--model_dir=" + dir.path(), "--threads=1", "--worker_threads=2"},
      {}, std::chrono::seconds(60));
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::NtkService::NewStub(channel);
  ASSERT_TRUE(FitSmall(stub.get(), "small").ok());

  v1::FitResponse resp;
  grpc::Status s = stub->Fit(Ctx().get(), ManyClassesFit("big", 10000, 2, true), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("over the memory budget"));
  EXPECT_TRUE(PredictSmall(stub.get(), "small").ok());
  grpc::ClientContext ctx;
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub->ListModels(&ctx, v1::ListModelsRequest(), &list).ok());
  EXPECT_EQ(list.models_size(), 1);
}

}  // namespace
}  // namespace ntk
