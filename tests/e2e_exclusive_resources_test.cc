// Issue 11 findings 3, 4 and 8: a server refuses to start on a port or a
// model_dir another server holds (clear message, non-zero exit), and a
// model_dir that vanishes under a running server answers FAILED_PRECONDITION
// without revealing the server's paths.
#include <stdio.h>
#include <sys/wait.h>

#include <array>
#include <filesystem>
#include <string>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/matrix_convert.h"
#include "server/model_store.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::InProcessServer;
using testing::SubprocessServer;
using testing::TempDir;

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs ntk_server with `args` to completion. `timeout 120` bounds a server
// that wrongly starts (it would then be killed: exit 124).
RunResult RunServer(const std::string& args) {
  RunResult r;
  const std::string cmd = std::string("timeout 120 ") + NTK_SERVER_PATH + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

TEST(ExclusiveResourcesTest, SecondServerOnTheSamePortRefusesToStart) {
  TempDir dir1, dir2;
  auto first = SubprocessServer::Start({"--model_dir=" + dir1.path()});
  ASSERT_TRUE(first.ok()) << first.status();
  const RunResult second =
      RunServer("--listen=" + (*first)->address() + " --model_dir=" + dir2.path());
  EXPECT_NE(second.exit_code, 0) << second.output;
  EXPECT_NE(second.exit_code, 124) << "the second server started: " << second.output;
  EXPECT_THAT(second.output, HasSubstr("cannot listen on " + (*first)->address()));
  // The first still serves.
  std::unique_ptr<Client> c = (*first)->Connect();
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->ListModels().ok());
}

TEST(ExclusiveResourcesTest, SecondServerOnTheSameModelDirRefusesToStart) {
  TempDir dir;
  auto first = InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(first, nullptr);
  const RunResult second = RunServer("--listen=127.0.0.1:0 --model_dir=" + dir.path());
  EXPECT_NE(second.exit_code, 0) << second.output;
  EXPECT_NE(second.exit_code, 124) << "the second server started: " << second.output;
  EXPECT_THAT(second.output,
              HasSubstr("model_dir " + dir.path() + " is in use by another ntk_server"));
}

TEST(ExclusiveResourcesTest, ModelDirLockIsReleasedWithItsStore) {
  TempDir dir;
  {
    server::ModelStore a(dir.path());
    ASSERT_TRUE(a.Open().ok());
    server::ModelStore b(dir.path());
    absl::Status s = b.Open();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("is in use by another ntk_server"));
  }
  server::ModelStore c(dir.path());
  EXPECT_TRUE(c.Open().ok());
}

// Finding 8: the directory disappears under a running server (as a
// read-only or unmounted volume would refuse writes; the test runs as any
// user, so removal stands in for permissions). Fit and Delete answer
// FAILED_PRECONDITION; no message carries the server's path.
TEST(ExclusiveResourcesTest, MissingModelDirIsFailedPreconditionWithoutPaths) {
  TempDir parent;
  const std::string model_dir = parent.File("models");
  auto server = InProcessServer::Start(testing::TestServerOptions(model_dir));
  ASSERT_NE(server, nullptr);
  auto stub = server->RawStub();
  testing::Blobs b = testing::MakeBlobs(20, 3, 2, 3);
  v1::FitRequest fit;
  fit.set_model_id("kept");
  *fit.mutable_spec() = testing::SmallSpec(1.0);
  *fit.mutable_features() = MatrixToProto(b.x);
  fit.mutable_labels()->Add(b.y.begin(), b.y.end());
  {
    grpc::ClientContext ctx;
    v1::FitResponse resp;
    ASSERT_TRUE(stub->Fit(&ctx, fit, &resp).ok());
  }
  std::filesystem::remove_all(model_dir);

  fit.set_model_id("lost");
  grpc::ClientContext fit_ctx;
  v1::FitResponse fit_resp;
  grpc::Status s = stub->Fit(&fit_ctx, fit, &fit_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("model_dir"));
  EXPECT_THAT(s.error_message(), Not(HasSubstr(parent.path())));

  grpc::ClientContext del_ctx;
  v1::DeleteModelRequest del;
  del.set_model_id("kept");
  v1::DeleteModelResponse del_resp;
  s = stub->DeleteModel(&del_ctx, del, &del_resp);
  // unlink of a file in a missing directory: ENOENT is "already gone" (OK);
  // either way no path.
  EXPECT_THAT(s.error_message(), Not(HasSubstr(parent.path())));

  // The server keeps answering.
  grpc::ClientContext list_ctx;
  v1::ListModelsResponse list;
  EXPECT_TRUE(stub->ListModels(&list_ctx, v1::ListModelsRequest(), &list).ok());
}

}  // namespace
}  // namespace ntk
