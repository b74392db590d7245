// Unit tests of the model directory (server/model_store.h), model id
// validation, wire conversion (server/convert.h) and the status mapping
// (server/status.h). Matrix encodings: tests/matrix_convert_test.cc.
#include <cstring>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "core/numerics/crc32c.h"
#include "server/convert.h"
#include "server/model_store.h"
#include "server/status.h"
#include "tests/testing/server_fixture.h"

namespace ntk::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ntk::testing::TempDir;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

StoredModel Sample(const std::string& id) {
  StoredModel m;
  m.id = id;
  m.created_unix_ms = 1764370000123;
  m.payload = std::string("payload\0with\0zeros", 18) + std::string(1000, 'x');
  return m;
}

TEST(ModelStoreTest, EncodeDecodeRoundTrip) {
  StoredModel m = Sample("abc");
  absl::StatusOr<StoredModel> back = ModelStore::Decode(ModelStore::Encode(m));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->id, m.id);
  EXPECT_EQ(back->created_unix_ms, m.created_unix_ms);
  EXPECT_EQ(back->payload, m.payload);
}

TEST(ModelStoreTest, EveryTruncationAndEveryByteFlipIsDetected) {
  const std::string bytes = ModelStore::Encode(Sample("abc"));
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(ModelStore::Decode(bytes.substr(0, n)).ok()) << "truncated to " << n;
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string b = bytes;
    b[i] ^= 0x01;
    EXPECT_FALSE(ModelStore::Decode(b).ok()) << "flipped byte " << i;
  }
  EXPECT_FALSE(ModelStore::Decode(bytes + "x").ok());
}

// New files are container format version 2, whose trailer is core's
// CRC-32C of everything before it (Crc32c is checked against the bitwise
// definition in tests/serialize_format_test.cc).
TEST(ModelStoreTest, WritesVersion2WithCrc32c) {
  const std::string bytes = ModelStore::Encode(Sample("abc"));
  ASSERT_GT(bytes.size(), 16u);
  uint32_t version = 0, crc = 0;
  std::memcpy(&version, bytes.data() + 8, 4);  // little-endian, as this machine
  std::memcpy(&crc, bytes.data() + bytes.size() - 4, 4);
  EXPECT_EQ(version, 2u);
  EXPECT_EQ(crc, Crc32c(bytes.data(), bytes.size() - 4));
}

// A file of container format version 1 (checksum CRC-32, before the
// container moved to core's CRC-32C), checked in as written then, still
// loads, and its checksum is still checked.
TEST(ModelStoreTest, ReadsVersion1Files) {
  const std::string bytes = ReadFile(NTK_SOURCE_DIR "/tests/data/model_store_v1.ntkm");
  ASSERT_EQ(bytes.size(), 1063u) << "tests/data/model_store_v1.ntkm is missing or changed";
  absl::StatusOr<StoredModel> m = ModelStore::Decode(bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->id, "legacy-v1");
  EXPECT_EQ(m->created_unix_ms, 1764370000123);
  EXPECT_EQ(m->payload, Sample("legacy-v1").payload);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string b = bytes;
    b[i] ^= 0x01;
    EXPECT_FALSE(ModelStore::Decode(b).ok()) << "flipped byte " << i;
  }
  TempDir dir;
  ModelStore store(dir.path());
  ASSERT_TRUE(store.Open().ok());
  {
    std::ofstream out(store.PathFor("legacy-v1"), std::ios::binary);
    out << bytes;
  }
  std::vector<std::string> errors;
  std::vector<StoredModel> all = store.LoadAll(&errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].payload, m->payload);
}

TEST(ModelStoreTest, SaveLoadRemove) {
  TempDir dir;
  ModelStore store(dir.path() + "/models");  // created by Open
  ASSERT_TRUE(store.Open().ok());
  ASSERT_TRUE(store.Save(Sample("a")).ok());
  ASSERT_TRUE(store.Save(Sample("b")).ok());
  StoredModel a2 = Sample("a");
  a2.payload = "replaced";
  ASSERT_TRUE(store.Save(a2).ok());
  std::vector<std::string> errors;
  std::vector<StoredModel> all = store.LoadAll(&errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, "a");
  EXPECT_EQ(all[0].payload, "replaced");
  EXPECT_EQ(all[1].id, "b");
  ASSERT_TRUE(store.Remove("b").ok());
  ASSERT_TRUE(store.Remove("b").ok());  // absent: OK
  EXPECT_EQ(store.LoadAll(nullptr).size(), 1u);
}

TEST(ModelStoreTest, OpenRemovesTemporariesAndLoadSkipsDamagedFiles) {
  TempDir dir;
  ModelStore store(dir.path());
  ASSERT_TRUE(store.Open().ok());
  ASSERT_TRUE(store.Save(Sample("good")).ok());
  const std::string good = ReadFile(dir.File("good.ntkm"));
  std::ofstream(dir.File(".good.ntkm.tmp-1234")) << "half";
  std::ofstream(dir.File("bad.ntkm")) << "garbage";
  std::ofstream(dir.File("other.ntkm"), std::ios::binary) << good;  // id mismatch
  std::ofstream(dir.File("cut.ntkm"), std::ios::binary) << good.substr(0, good.size() - 1);
  ASSERT_TRUE(store.Open().ok());
  EXPECT_THAT(dir.List(), ElementsAre("bad.ntkm", "cut.ntkm", "good.ntkm", "other.ntkm"));
  std::vector<std::string> errors;
  std::vector<StoredModel> all = store.LoadAll(&errors);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].id, "good");
  EXPECT_EQ(errors.size(), 3u);
}

TEST(ModelIdTest, Validation) {
  for (const char* ok : {"a", "model-1", "A.b_c-9", "x..y"}) {
    EXPECT_TRUE(ValidateModelId(ok).ok()) << ok;
  }
  EXPECT_TRUE(ValidateModelId(std::string(128, 'z')).ok());
  for (const std::string& bad : {std::string(""), std::string("../x"), std::string("a/b"),
                                std::string("."), std::string(".."), std::string(".hidden"),
                                std::string("a b"), std::string("a\\b"), std::string("é"),
                                std::string(129, 'z'), std::string("a\0b", 3)}) {
    absl::Status s = ValidateModelId(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), ::testing::StartsWith("model_id: "));
  }
  for (int i = 0; i < 100; ++i) {
    const std::string id = GenerateModelId();
    EXPECT_TRUE(ValidateModelId(id).ok()) << id;
  }
  EXPECT_NE(GenerateModelId(), GenerateModelId());
}

TEST(ConvertTest, SpecDefaultsAndUnknownEnums) {
  ServerOptions limits;
  v1::ModelSpec p;
  absl::StatusOr<ModelSpec> s = ModelSpecFromProto(p, limits);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->kernel.activation, Activation::kRelu);
  EXPECT_EQ(s->kernel.depth, 1);
  EXPECT_EQ(s->kernel.weight_variance, 2.0);
  EXPECT_EQ(s->training.loss, Loss::kCrossEntropy);
  EXPECT_FALSE(s->training.regularization.has_value());
  EXPECT_FALSE(s->training.label_smoothing.has_value());
  p.mutable_training()->set_regularization(0.0);  // explicit 0 stays set
  EXPECT_TRUE(ModelSpecFromProto(p, limits)->training.regularization.has_value());

  p.mutable_kernel()->set_activation(static_cast<v1::Activation>(3));
  EXPECT_EQ(ModelSpecFromProto(p, limits).status().message(),
            "spec.kernel.activation: unknown value 3");
  p.mutable_kernel()->set_activation(v1::ERF);
  p.mutable_training()->set_loss(static_cast<v1::Loss>(-1));
  EXPECT_EQ(ModelSpecFromProto(p, limits).status().message(),
            "spec.training.loss: unknown value -1");
  p.mutable_training()->set_loss(v1::SQUARED);
  p.set_num_classes(limits.max_classes + 1);
  EXPECT_EQ(ModelSpecFromProto(p, limits).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(ConvertTest, StatusCodesTranslateOneToOne) {
  for (int code = 1; code <= 16; ++code) {
    absl::Status s(static_cast<absl::StatusCode>(code), "m");
    grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), code);
    EXPECT_EQ(g.error_message(), "m");
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace ntk::server
