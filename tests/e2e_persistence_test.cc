// Persistence end to end: restart (bit-for-bit answers), damaged files,
// leftover temporary files, kill -9 in the middle of a Fit, SIGTERM, and the
// NTK_* environment flags of the ntk_server binary.
#include <signal.h>

#include <atomic>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model_store.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::InProcessServer;
using testing::SubprocessServer;
using testing::TempDir;
using testing::WriteFile;

struct Answers {
  std::string predict;                    // serialized PredictResponse-equivalent
  std::vector<std::string> distributions;  // serialized responses, one per method
};

std::string Bytes(const Eigen::MatrixXd& m) {
  return std::string(reinterpret_cast<const char*>(m.data()), m.size() * sizeof(double));
}

Answers Ask(Client* c, const std::string& id, const Eigen::MatrixXd& q,
            const std::vector<v1::DistributionMethod>& methods) {
  Answers a;
  auto p = c->Predict(id, q);
  EXPECT_TRUE(p.ok()) << id << ": " << p.status();
  if (p.ok()) a.predict = Bytes(p->probabilities) + Bytes(p->logits);
  for (v1::DistributionMethod m : methods) {
    auto d = c->PredictDistribution(id, q, m, 100, 42);
    EXPECT_TRUE(d.ok()) << id << " method " << m << ": " << d.status();
    a.distributions.push_back(d.ok() ? d->SerializeAsString() : "");
  }
  return a;
}

std::string ReadFile(const std::string& path) { return testing::ReadFileOrEmpty(path); }

TEST(PersistenceTest, RestartAnswersBitForBit) {
  TempDir dir;
  const testing::Blobs data = testing::MakeBlobs(80, 5, 3, 2);
  const Eigen::MatrixXd q = testing::MakeBlobs(7, 5, 3, 99).x;
  std::vector<v1::ModelInfo> infos;
  Answers ce, sq, soft;
  {
    auto s = InProcessServer::Start(testing::TestServerOptions(dir.path()));
    ASSERT_NE(s, nullptr);
    auto c = s->Connect();
    v1::ModelSpec spec_sq = testing::SmallSpec(0.1);
    spec_sq.mutable_training()->set_loss(v1::SQUARED);
    ASSERT_TRUE(c->Fit("ce", testing::SmallSpec(1.0), data.x, data.y).ok());
    ASSERT_TRUE(c->Fit("sq", spec_sq, data.x, data.y).ok());
    ASSERT_TRUE(
        c->Fit("soft", testing::SmallSpec(), data.x, {}, testing::SoftTargets(data.y, 3, 0.3))
            .ok());
    ce = Ask(c.get(), "ce", q, {v1::LINEARIZED, v1::MONTE_CARLO, v1::LAPLACE_POSTERIOR});
    sq = Ask(c.get(), "sq", q, {v1::EXACT, v1::MONTE_CARLO});
    soft = Ask(c.get(), "soft", q, {v1::EXACT, v1::LINEARIZED});
    infos = *c->ListModels();
  }
  // Exactly the three model files, nothing temporary.
  EXPECT_THAT(dir.List(), ElementsAre("ce.ntkm", "soft.ntkm", "sq.ntkm"));

  auto s = InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(s, nullptr);
  auto c = s->Connect();
  auto list = c->ListModels();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), infos.size());
  for (size_t i = 0; i < infos.size(); ++i) {
    EXPECT_EQ((*list)[i].SerializeAsString(), infos[i].SerializeAsString())
        << infos[i].model_id();
  }
  Answers ce2 = Ask(c.get(), "ce", q, {v1::LINEARIZED, v1::MONTE_CARLO, v1::LAPLACE_POSTERIOR});
  Answers sq2 = Ask(c.get(), "sq", q, {v1::EXACT, v1::MONTE_CARLO});
  Answers soft2 = Ask(c.get(), "soft", q, {v1::EXACT, v1::LINEARIZED});
  EXPECT_EQ(ce2.predict, ce.predict);
  EXPECT_EQ(ce2.distributions, ce.distributions);
  EXPECT_EQ(sq2.predict, sq.predict);
  EXPECT_EQ(sq2.distributions, sq.distributions);
  EXPECT_EQ(soft2.predict, soft.predict);
  EXPECT_EQ(soft2.distributions, soft.distributions);

  // Delete removes the file.
  ASSERT_TRUE(c->DeleteModel("sq").ok());
  EXPECT_THAT(dir.List(), ElementsAre("ce.ntkm", "soft.ntkm"));
}

TEST(PersistenceTest, DamagedFilesAreSkippedAndTemporariesRemoved) {
  TempDir dir;
  const testing::Blobs data = testing::MakeBlobs(40, 3, 2, 4);
  Answers good;
  {
    auto s = InProcessServer::Start(testing::TestServerOptions(dir.path()));
    ASSERT_NE(s, nullptr);
    auto c = s->Connect();
    ASSERT_TRUE(c->Fit("good", testing::SmallSpec(1.0), data.x, data.y).ok());
    good = Ask(c.get(), "good", data.x, {});
  }
  const std::string good_bytes = ReadFile(dir.File("good.ntkm"));
  absl::StatusOr<server::StoredModel> stored = server::ModelStore::Decode(good_bytes);
  ASSERT_TRUE(stored.ok()) << stored.status();
  // 1. Not a model file at all.
  WriteFile(dir.File("garbage.ntkm"), "this is not a model");
  // 2. A valid file under another name (id mismatch).
  WriteFile(dir.File("renamed.ntkm"), good_bytes);
  // 3. Truncated.
  WriteFile(dir.File("cut.ntkm"), good_bytes.substr(0, good_bytes.size() / 2));
  // 4. One flipped bit inside the payload (our CRC catches it).
  std::string flipped = good_bytes;
  flipped[flipped.size() / 2] ^= 0x10;
  WriteFile(dir.File("flipped.ntkm"), flipped);
  // 5. A well-framed file whose core payload is damaged (core's checksum).
  server::StoredModel bad_payload = *stored;
  bad_payload.id = "badcore";
  bad_payload.payload[bad_payload.payload.size() / 2] ^= 0x10;
  WriteFile(dir.File("badcore.ntkm"), server::ModelStore::Encode(bad_payload));
  // 6. A truncated core payload in a well-framed file.
  server::StoredModel short_payload = *stored;
  short_payload.id = "shortcore";
  short_payload.payload.resize(short_payload.payload.size() / 3);
  WriteFile(dir.File("shortcore.ntkm"), server::ModelStore::Encode(short_payload));
  // 7. Leftover temporaries of an interrupted Save.
  WriteFile(dir.File(".good.ntkm.tmp-0123456789abcdef"), good_bytes.substr(0, 100));
  WriteFile(dir.File(".new.ntkm.tmp-00000000deadbeef"), "");
  // 8. Unrelated files are left alone.
  WriteFile(dir.File("README"), "not ours");

  auto s = InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(s, nullptr);
  auto c = s->Connect();
  auto list = c->ListModels();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].model_id(), "good");
  EXPECT_EQ(Ask(c.get(), "good", data.x, {}).predict, good.predict);
  for (const std::string& name : dir.List()) {
    EXPECT_FALSE(server::ModelStore::IsTemporaryName(name)) << name;
  }
  EXPECT_THAT(dir.List(), ::testing::Contains("README"));
  // The damaged files' ids are free again for new fits.
  EXPECT_TRUE(c->Fit("badcore", testing::SmallSpec(1.0), data.x, data.y, {}, true).ok());
}

TEST(PersistenceTest, SubprocessKill9DuringFitKeepsEarlierModels) {
  TempDir dir;
  const testing::Blobs small = testing::MakeBlobs(50, 4, 3, 6);
  Answers early;
  std::string early_file;
  {
    auto p = SubprocessServer::Start({"--model_dir=" + dir.path(), "--threads=2"});
    ASSERT_TRUE(p.ok()) << p.status();
    auto c = (*p)->Connect();
    ASSERT_TRUE(c->Fit("early", testing::SmallSpec(1.0), small.x, small.y).ok());
    early = Ask(c.get(), "early", small.x, {v1::LINEARIZED});
    early_file = ReadFile(dir.File("early.ntkm"));

    // A fit large enough to be running when the SIGKILL arrives.
    const testing::Blobs big = testing::MakeBlobs(3000, 40, 5, 7);
    std::atomic<bool> returned{false};
    absl::Status big_status;
    std::thread fitter([&] {
      auto r = c->Fit("big", testing::SmallSpec(1.0), big.x, big.y);
      big_status = r.status();
      returned = true;
    });
    // Wait until the server (an external process) logged that the fit
    // started: polls its log, bounded by count (4000 x 5 ms).
    for (int poll = 0; poll < 4000 && !returned &&
                       (*p)->ReadStderr().find("fit model=big") == std::string::npos;
         ++poll) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    (*p)->Signal(SIGKILL);
    auto code = (*p)->Wait(std::chrono::seconds(20));
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(*code, 128 + SIGKILL);
    fitter.join();
    if (big_status.ok()) {
      std::printf("note: the big fit finished before the kill\n");
    } else {
      EXPECT_EQ(big_status.code(), absl::StatusCode::kUnavailable) << big_status;
    }
  }
  // The earlier model's file is untouched.
  EXPECT_EQ(ReadFile(dir.File("early.ntkm")), early_file);

  auto p = SubprocessServer::Start({"--model_dir=" + dir.path()});
  ASSERT_TRUE(p.ok()) << p.status();
  auto c = (*p)->Connect();
  Answers again = Ask(c.get(), "early", small.x, {v1::LINEARIZED});
  EXPECT_EQ(again.predict, early.predict);
  EXPECT_EQ(again.distributions, early.distributions);
  // No temporary file after start, and "big" is either absent or complete.
  for (const std::string& name : dir.List()) {
    EXPECT_FALSE(server::ModelStore::IsTemporaryName(name)) << name;
  }
  auto list = c->ListModels();
  ASSERT_TRUE(list.ok());
  for (const auto& m : *list) {
    if (m.model_id() == "big") {
      EXPECT_EQ(m.num_train(), 3000u);
      EXPECT_TRUE(c->Predict("big", Eigen::MatrixXd::Zero(1, 40)).ok());
    } else {
      EXPECT_EQ(m.model_id(), "early");
    }
  }
  EXPECT_THAT((*p)->ReadStderr(), ::testing::Not(HasSubstr("skipping damaged")));
}

TEST(PersistenceTest, SubprocessSigtermExitsZeroAndLogsEveryRpc) {
  TempDir dir;
  auto p = SubprocessServer::Start({"--model_dir=" + dir.path(), "--max_features=3"},
                                   {"NTK_MAX_TRAIN_ROWS=20", "NTK_MAX_FEATURES=100"});
  ASSERT_TRUE(p.ok()) << p.status();
  auto c = (*p)->Connect();
  ASSERT_TRUE(c->Health().ok());
  const testing::Blobs data = testing::MakeBlobs(21, 3, 2, 8);
  // From the environment: --max_train_rows = 20.
  absl::Status rows = c->Fit("m", testing::SmallSpec(1.0), data.x, data.y).status();
  EXPECT_EQ(rows.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(rows.message(), HasSubstr("--max_train_rows = 20"));
  // The command line overrides the environment: --max_features = 3.
  const testing::Blobs wide = testing::MakeBlobs(10, 4, 2, 8);
  absl::Status cols = c->Fit("m", testing::SmallSpec(1.0), wide.x, wide.y).status();
  EXPECT_EQ(cols.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(cols.message(), HasSubstr("--max_features = 3"));
  const testing::Blobs ok = testing::MakeBlobs(20, 3, 2, 8);
  ASSERT_TRUE(c->Fit("m", testing::SmallSpec(1.0), ok.x, ok.y).ok());
  ASSERT_TRUE(c->Predict("m", ok.x).ok());

  (*p)->Signal(SIGTERM);
  auto code = (*p)->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  const std::string log = (*p)->ReadStderr();
  EXPECT_THAT(log, HasSubstr("rpc=Fit model=m rows=21 code=RESOURCE_EXHAUSTED"));
  EXPECT_THAT(log, HasSubstr("rpc=Fit model=m rows=20 code=OK"));
  EXPECT_THAT(log, HasSubstr("rpc=Predict model=m rows=20 code=OK ms="));
  EXPECT_THAT(log, HasSubstr("shutting down"));
  EXPECT_THAT(dir.List(), ElementsAre("m.ntkm"));
}

TEST(PersistenceTest, SubprocessRejectsBadEnvironmentValue) {
  TempDir dir;
  auto p = SubprocessServer::Start({"--model_dir=" + dir.path()}, {"NTK_MAX_MODELS=lots"},
                                   std::chrono::seconds(10));
  EXPECT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("NTK_MAX_MODELS"));
}

}  // namespace
}  // namespace ntk
