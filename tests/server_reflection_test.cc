// Server reflection (grpc.reflection.v1alpha.ServerReflection, served by
// server/reflection.h) and the bearer token: with --auth_token_file every
// RPC but grpc.health.v1 needs "authorization: Bearer <token>", reflection
// included, over plaintext and TLS alike. Also what reflection answers.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

namespace rpb = ::grpc::reflection::v1alpha;
using ::testing::Contains;
using ::testing::HasSubstr;
using testing::InProcessServer;
using testing::TempDir;

constexpr char kToken[] = "reflection-token";

// One reflection request on a fresh stream (token: "" sends none).
struct ReflectionResult {
  grpc::Status status;           // of the stream
  bool got_response = false;
  rpb::ServerReflectionResponse response;
};

ReflectionResult Reflect(const std::shared_ptr<grpc::Channel>& channel,
                         const rpb::ServerReflectionRequest& request, const std::string& token) {
  auto stub = rpb::ServerReflection::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  auto stream = stub->ServerReflectionInfo(&ctx);
  ReflectionResult r;
  if (stream->Write(request)) {
    stream->WritesDone();
    r.got_response = stream->Read(&r.response);
    rpb::ServerReflectionResponse extra;
    while (stream->Read(&extra)) {
    }
  }
  r.status = stream->Finish();
  return r;
}

rpb::ServerReflectionRequest ListServices() {
  rpb::ServerReflectionRequest r;
  r.set_list_services("");
  return r;
}

std::vector<std::string> ServiceNames(const rpb::ServerReflectionResponse& response) {
  std::vector<std::string> names;
  for (const auto& s : response.list_services_response().service()) names.push_back(s.name());
  return names;
}

grpc::Status HealthCheck(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  return stub->Check(&ctx, request, &response);
}

std::shared_ptr<grpc::Channel> Plaintext(const InProcessServer& s) {
  return grpc::CreateChannel(s.address(), grpc::InsecureChannelCredentials());
}

TEST(ReflectionAuthTest, TokenRequiredWhenAuthIsOn) {
  TempDir dir;
  server::ServerOptions o = testing::TestServerOptions(dir.path());
  o.auth_token = kToken;
  auto server = InProcessServer::Start(o);
  ASSERT_NE(server, nullptr);
  auto channel = Plaintext(*server);

  ReflectionResult none = Reflect(channel, ListServices(), "");
  EXPECT_EQ(none.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(none.status.error_message(), HasSubstr("authorization"));
  EXPECT_FALSE(none.got_response);  // nothing about the services leaks

  ReflectionResult wrong = Reflect(channel, ListServices(), "reflection-tokeN");
  EXPECT_EQ(wrong.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_FALSE(wrong.got_response);

  ReflectionResult right = Reflect(channel, ListServices(), kToken);
  ASSERT_TRUE(right.status.ok()) << right.status.error_message();
  ASSERT_TRUE(right.got_response);
  EXPECT_THAT(ServiceNames(right.response), Contains("ntk.v1.NtkService"));

  // Health stays open.
  EXPECT_TRUE(HealthCheck(channel).ok());
}

TEST(ReflectionAuthTest, OpenWhenAuthIsOff) {
  TempDir dir;
  auto server = InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(server, nullptr);
  ReflectionResult r = Reflect(Plaintext(*server), ListServices(), "");
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_TRUE(r.got_response);
  EXPECT_THAT(ServiceNames(r.response),
              ::testing::UnorderedElementsAre("ntk.v1.NtkService", "inference.GRPCInferenceService",
                                              "grpc.health.v1.Health",
                                              "grpc.reflection.v1alpha.ServerReflection"));
}

// The real binary with --auth_token_file: what a reflection client such as
// grpcurl or buf curl does first (list the services, then fetch the file of
// each) needs the token and then works for every listed service.
TEST(ReflectionAuthTest, SubprocessEveryListedServiceIsDescribed) {
  TempDir dir, secrets;
  {
    std::ofstream token(secrets.File("token"));
    token << kToken << "\n";
  }
  auto p = testing::SubprocessServer::Start(
      {"--model_dir=" + dir.path(), "--auth_token_file=" + secrets.File("token")});
  ASSERT_TRUE(p.ok()) << p.status();
  auto channel = grpc::CreateChannel((*p)->address(), grpc::InsecureChannelCredentials());
  EXPECT_EQ(Reflect(channel, ListServices(), "").status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(HealthCheck(channel).ok());

  ReflectionResult list = Reflect(channel, ListServices(), kToken);
  ASSERT_TRUE(list.status.ok()) << list.status.error_message();
  const std::vector<std::string> names = ServiceNames(list.response);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre(
                         "ntk.v1.NtkService", "inference.GRPCInferenceService",
                         "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"));
  for (const std::string& name : names) {
    rpb::ServerReflectionRequest request;
    request.set_file_containing_symbol(name);
    ReflectionResult r = Reflect(channel, request, kToken);
    ASSERT_TRUE(r.got_response) << name;
    ASSERT_TRUE(r.response.has_file_descriptor_response())
        << name << ": " << r.response.error_response().error_message();
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(r.response.file_descriptor_response().file_descriptor_proto(0)));
    bool found = false;
    for (const auto& service : file.service()) found |= file.package() + "." + service.name() == name;
    EXPECT_TRUE(found) << name << " is not in " << file.name();
  }
}

TEST(ReflectionAuthTest, TokenRequiredOverTlsToo) {
  TempDir dir, certs;
  absl::StatusOr<server::ServerOptions> tls_options = testing::TlsTestServerOptions(dir, certs);
  ASSERT_TRUE(tls_options.ok()) << tls_options.status();
  server::ServerOptions o = *tls_options;
  o.auth_token = kToken;
  auto server = InProcessServer::Start(o);
  ASSERT_NE(server, nullptr);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = o.tls_cert_pem;
  auto channel = grpc::CreateChannel(server->address(), grpc::SslCredentials(ssl));

  EXPECT_EQ(Reflect(channel, ListServices(), "").status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ReflectionResult right = Reflect(channel, ListServices(), kToken);
  ASSERT_TRUE(right.status.ok()) << right.status.error_message();
  EXPECT_THAT(ServiceNames(right.response), Contains("ntk.v1.NtkService"));
  EXPECT_TRUE(HealthCheck(channel).ok());
}

// The answers a reflection client (grpcurl, buf curl) builds on.
TEST(ReflectionTest, FileContainingSymbolCarriesTheFileAndItsImports) {
  TempDir dir;
  auto server = InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(server, nullptr);
  auto channel = Plaintext(*server);

  rpb::ServerReflectionRequest request;
  request.set_host("example");
  request.set_file_containing_symbol("ntk.v1.NtkService");
  ReflectionResult r = Reflect(channel, request, "");
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_TRUE(r.got_response);
  EXPECT_EQ(r.response.valid_host(), "example");
  EXPECT_EQ(r.response.original_request().file_containing_symbol(), "ntk.v1.NtkService");
  ASSERT_TRUE(r.response.has_file_descriptor_response());
  std::vector<std::string> files;
  bool found_service = false;
  for (const std::string& bytes : r.response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    files.push_back(file.name());
    for (const auto& service : file.service()) {
      if (file.package() == "ntk.v1" && service.name() == "NtkService") {
        found_service = true;
        EXPECT_GE(service.method_size(), 7);  // Fit ... DeleteModel
      }
    }
  }
  ASSERT_FALSE(files.empty());
  EXPECT_EQ(files[0], "proto/ntk/v1/ntk.proto");
  EXPECT_TRUE(found_service);
  // Every file is sent once, and every import of a sent file is sent too.
  std::vector<std::string> sorted = files;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
  for (const std::string& bytes : r.response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    for (const std::string& dep : file.dependency()) EXPECT_THAT(files, Contains(dep));
  }

  // A file by name, and the same for the health service.
  rpb::ServerReflectionRequest by_name;
  by_name.set_file_by_filename("proto/ntk/v1/ntk.proto");
  ReflectionResult named = Reflect(channel, by_name, "");
  ASSERT_TRUE(named.got_response);
  ASSERT_TRUE(named.response.has_file_descriptor_response());
  EXPECT_EQ(named.response.file_descriptor_response().file_descriptor_proto(0),
            r.response.file_descriptor_response().file_descriptor_proto(0));
  rpb::ServerReflectionRequest health;
  health.set_file_containing_symbol("grpc.health.v1.Health");
  ReflectionResult h = Reflect(channel, health, "");
  ASSERT_TRUE(h.got_response);
  EXPECT_TRUE(h.response.has_file_descriptor_response());
}

TEST(ReflectionTest, UnknownNamesAreNotFoundInTheStream) {
  TempDir dir;
  auto server = InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(server, nullptr);
  auto channel = Plaintext(*server);
  rpb::ServerReflectionRequest symbol;
  symbol.set_file_containing_symbol("ntk.v1.NoSuchService");
  rpb::ServerReflectionRequest file;
  file.set_file_by_filename("no/such.proto");
  rpb::ServerReflectionRequest ext;
  ext.mutable_file_containing_extension()->set_containing_type("ntk.v1.NoSuchMessage");
  ext.mutable_file_containing_extension()->set_extension_number(5);
  for (const rpb::ServerReflectionRequest& request : {symbol, file, ext}) {
    ReflectionResult r = Reflect(channel, request, "");
    EXPECT_TRUE(r.status.ok()) << r.status.error_message();  // errors travel in the stream
    ASSERT_TRUE(r.got_response);
    ASSERT_TRUE(r.response.has_error_response()) << request.DebugString();
    EXPECT_EQ(r.response.error_response().error_code(),
              static_cast<int>(grpc::StatusCode::NOT_FOUND));
  }
  // A message type without extensions: its name and no numbers.
  rpb::ServerReflectionRequest numbers;
  numbers.set_all_extension_numbers_of_type("ntk.v1.PredictRequest");
  ReflectionResult n = Reflect(channel, numbers, "");
  ASSERT_TRUE(n.got_response);
  ASSERT_TRUE(n.response.has_all_extension_numbers_response());
  EXPECT_EQ(n.response.all_extension_numbers_response().base_type_name(),
            "ntk.v1.PredictRequest");
  EXPECT_EQ(n.response.all_extension_numbers_response().extension_number_size(), 0);
}

}  // namespace
}  // namespace ntk
