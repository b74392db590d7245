// Authentication (bearer token) and TLS end to end.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using testing::InProcessServer;
using testing::SubprocessServer;
using testing::TempDir;

TEST(AuthTest, TokenRequiredForEveryRpcButHealth) {
  TempDir dir;
  server::ServerOptions o = testing::TestServerOptions(dir.path());
  o.auth_token = "s3cret-token";
  auto server = InProcessServer::Start(o);
  ASSERT_NE(server, nullptr);
  const testing::Blobs data = testing::MakeBlobs(20, 3, 2, 51);

  auto anonymous = server->Connect();
  EXPECT_TRUE(anonymous->Health().ok());  // health needs no token
  EXPECT_EQ(anonymous->ListModels().status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(anonymous->Fit("m", testing::SmallSpec(1.0), data.x, data.y).status().code(),
            absl::StatusCode::kUnauthenticated);
  ClientOptions wrong;
  wrong.auth_token = "s3cret-tokeN";
  auto intruder = server->Connect(wrong);
  EXPECT_EQ(intruder->ListModels().status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(intruder->GetModel("m").status().code(), absl::StatusCode::kUnauthenticated);

  ClientOptions right;
  right.auth_token = "s3cret-token";
  auto owner = server->Connect(right);
  ASSERT_TRUE(owner->Fit("m", testing::SmallSpec(1.0), data.x, data.y).ok());
  EXPECT_TRUE(owner->Predict("m", data.x).ok());
  EXPECT_TRUE(owner->PredictDistribution("m", data.x).ok());
  EXPECT_TRUE(owner->GetModel("m").ok());

  EXPECT_EQ(anonymous->Predict("m", data.x).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(intruder->PredictDistribution("m", data.x).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(intruder->DeleteModel("m").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(owner->DeleteModel("m").ok());
}

TEST(AuthTest, NoTokenConfiguredMeansNoCheck) {
  TempDir dir;
  auto server = InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(server, nullptr);
  ClientOptions any;
  any.auth_token = "whatever";
  EXPECT_TRUE(server->Connect(any)->ListModels().ok());
  EXPECT_TRUE(server->Connect()->ListModels().ok());
}

TEST(TlsTest, InProcessTlsServer) {
  TempDir dir, certs;
  absl::StatusOr<server::ServerOptions> tls_options = testing::TlsTestServerOptions(dir, certs);
  ASSERT_TRUE(tls_options.ok()) << tls_options.status();
  const server::ServerOptions& o = *tls_options;
  auto server = InProcessServer::Start(o);
  ASSERT_NE(server, nullptr);
  ClientOptions tls;
  tls.root_cert_pem = o.tls_cert_pem;
  auto c = server->Connect(tls);
  EXPECT_TRUE(c->Health().ok());
  const testing::Blobs data = testing::MakeBlobs(20, 3, 2, 52);
  ASSERT_TRUE(c->Fit("m", testing::SmallSpec(1.0), data.x, data.y).ok());
  EXPECT_TRUE(c->Predict("m", data.x).ok());
  // A plaintext client cannot talk to it.
  ClientOptions plain;
  plain.max_retries = 0;
  plain.default_deadline = std::chrono::seconds(5);
  EXPECT_FALSE(server->Connect(plain)->ListModels().ok());
}

TEST(TlsTest, SubprocessWithCertificateAndTokenFiles) {
  TempDir dir, certs;
  const absl::Status made = testing::MakeSelfSignedCertificate(certs);
  ASSERT_TRUE(made.ok()) << made;
  {
    std::ofstream token(certs.File("token"));
    token << "file-token\n";  // trailing newline is stripped
  }
  auto p = SubprocessServer::Start({"--model_dir=" + dir.path(),
                                    "--tls_cert=" + certs.File("cert.pem"),
                                    "--tls_key=" + certs.File("key.pem")},
                                   {"NTK_AUTH_TOKEN_FILE=" + certs.File("token")});
  ASSERT_TRUE(p.ok()) << p.status();
  ClientOptions o;
  o.root_cert_pem = testing::ReadFileOrEmpty(certs.File("cert.pem"));
  auto anonymous = (*p)->Connect(o);
  EXPECT_TRUE(anonymous->Health().ok());
  EXPECT_EQ(anonymous->ListModels().status().code(), absl::StatusCode::kUnauthenticated);
  o.auth_token = "file-token";
  auto c = (*p)->Connect(o);
  EXPECT_TRUE(c->ListModels().ok());
}

}  // namespace
}  // namespace ntk
