// Issue 11 finding 8, the disk-full half: a Fit whose model file cannot be
// written because the file system is full answers RESOURCE_EXHAUSTED
// naming model_dir (never the server's path), leaves no temporary file,
// keeps the previous model with its predictions, and the server goes on
// serving; once space is back the same Fit succeeds. The full disk is real
// ENOSPC from write(2) as the server sees it, made by the LD_PRELOAD
// library tests/preload/enospc_preload.c (no mount needed), switched on by
// creating a file.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::SubprocessServer;
using testing::TempDir;

TEST(DiskFullTest, FitOnAFullDiskIsResourceExhaustedAndKeepsTheOldModel) {
  TempDir model_dir, scratch;
  const std::string switch_file = scratch.File("disk-full");
  // Under ASan (tests/sanitizers/run.sh) the preload library comes before
  // the sanitizer runtime on purpose: keep the run's options, allow that.
  const char* asan = std::getenv("ASAN_OPTIONS");
  const std::string asan_options =
      std::string(asan != nullptr && *asan != '\0' ? std::string(asan) + ":" : "") +
      "verify_asan_link_order=0";
  auto server = SubprocessServer::Start(
      {"--model_dir=" + model_dir.path()},
      {std::string("LD_PRELOAD=") + NTK_ENOSPC_PRELOAD_PATH, "NTK_ENOSPC_MATCH=.ntkm.tmp-",
       "NTK_ENOSPC_SWITCH=" + switch_file, "ASAN_OPTIONS=" + asan_options});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> c = (*server)->Connect();
  ASSERT_NE(c, nullptr);

  const testing::Blobs a = testing::MakeBlobs(30, 3, 2, 81);
  const testing::Blobs b = testing::MakeBlobs(30, 3, 2, 82);
  ASSERT_TRUE(c->Fit("kept", testing::SmallSpec(1.0), a.x, a.y).ok());
  absl::StatusOr<Client::PredictResult> before = c->Predict("kept", a.x);
  ASSERT_TRUE(before.ok()) << before.status();

  ASSERT_TRUE(testing::WriteFile(switch_file, "on"));
  for (const char* id : {"kept", "new"}) {
    absl::Status s =
        c->Fit(id, testing::SmallSpec(1.0), b.x, b.y, {}, /*replace=*/true).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << id << ": " << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("model_dir"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("No space left on device"));
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr(model_dir.path())));
  }
  // Nothing half-written, the old model answers as before, "new" is absent.
  EXPECT_THAT(model_dir.List(), ElementsAre("kept.ntkm"));
  absl::StatusOr<Client::PredictResult> during = c->Predict("kept", a.x);
  ASSERT_TRUE(during.ok()) << during.status();
  EXPECT_EQ(during->probabilities, before->probabilities);
  EXPECT_EQ(c->GetModel("new").status().code(), absl::StatusCode::kNotFound);

  // Space is back: the same Fit succeeds and is kept.
  ASSERT_EQ(std::remove(switch_file.c_str()), 0);
  EXPECT_TRUE(c->Fit("new", testing::SmallSpec(1.0), b.x, b.y).ok());
  EXPECT_THAT(model_dir.List(), ElementsAre("kept.ntkm", "new.ntkm"));
}

}  // namespace
}  // namespace ntk
