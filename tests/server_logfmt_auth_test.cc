// Issue 11 finding 10: log values are quoted and escaped per logfmt, and
// the bearer scheme is case-insensitive (RFC 6750).
#include <string>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/log.h"
#include "tests/testing/server_fixture.h"

namespace ntk::server {
namespace {

TEST(LogfmtValueTest, PlainValuesStayAsTheyAre) {
  EXPECT_EQ(LogfmtValue("m1"), "m1");
  EXPECT_EQ(LogfmtValue("a-b_c.d"), "a-b_c.d");
}

TEST(LogfmtValueTest, SpecialCharactersAreQuotedAndEscaped) {
  EXPECT_EQ(LogfmtValue(""), "\"\"");
  EXPECT_EQ(LogfmtValue("a b"), "\"a b\"");
  EXPECT_EQ(LogfmtValue("k=v"), "\"k=v\"");
  EXPECT_EQ(LogfmtValue("model_id: no model \"c1000\""), "\"model_id: no model \\\"c1000\\\"\"");
  EXPECT_EQ(LogfmtValue("back\\slash"), "\"back\\\\slash\"");
  EXPECT_EQ(LogfmtValue("two\nlines\r\tx"), "\"two\\nlines\\r\\tx\"");
  EXPECT_EQ(LogfmtValue(std::string("nul\0x", 5)), "\"nul\\x00x\"");
  EXPECT_EQ(LogfmtValue("plain", /*always_quote=*/true), "\"plain\"");
}

// Parsing a quoted value back (the logfmt reader's rule) gives the original.
TEST(LogfmtValueTest, QuotedValuesRoundTrip) {
  const std::string original = "say \"hi\" \\ then\nk=v";
  const std::string q = LogfmtValue(original);
  ASSERT_GE(q.size(), 2u);
  ASSERT_EQ(q.front(), '"');
  ASSERT_EQ(q.back(), '"');
  std::string back;
  for (size_t i = 1; i + 1 < q.size(); ++i) {
    if (q[i] != '\\') {
      ASSERT_NE(q[i], '"') << "unescaped quote at " << i;
      ASSERT_NE(q[i], '\n');
      back += q[i];
      continue;
    }
    const char e = q[++i];
    back += e == 'n' ? '\n' : e;  // \" \\ \n
  }
  EXPECT_EQ(back, original);
}

TEST(BearerSchemeTest, SchemeIsCaseInsensitiveTokenIsNot) {
  ntk::testing::TempDir dir;
  ServerOptions o = ntk::testing::TestServerOptions(dir.path());
  o.auth_token = "s3cret";
  auto server = ntk::testing::InProcessServer::Start(o);
  ASSERT_NE(server, nullptr);
  auto stub = server->RawStub();
  auto list = [&](const std::string& header) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", header);
    v1::ListModelsResponse resp;
    return stub->ListModels(&ctx, v1::ListModelsRequest(), &resp).error_code();
  };
  EXPECT_EQ(list("Bearer s3cret"), grpc::StatusCode::OK);
  EXPECT_EQ(list("bearer s3cret"), grpc::StatusCode::OK);
  EXPECT_EQ(list("BEARER s3cret"), grpc::StatusCode::OK);
  EXPECT_EQ(list("bearer S3CRET"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list("Basic s3cret"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list("bearer"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(list("s3cret"), grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace ntk::server
