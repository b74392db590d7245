// Crash consistency end to end (issue 11 item 7): ntk_server is killed with
// SIGKILL at random points of sequences of Fit / replace / Delete calls,
// then restarted on the same model_dir. After each restart every
// acknowledged model is there and predicts bit-identically, every
// acknowledged Delete stayed deleted, the one call in flight at the kill
// left either the old or the new model (nothing half-written), no temporary
// file remains, and model files damaged on purpose between runs are
// reported and skipped, never loaded.
//
// NTK_CRASH_SEQUENCES (default 12) sets the number of kill -9 sequences;
// `./ntk.sh crash [sequences]` runs more (docs/testing.md).
#include <signal.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model_store.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using testing::SubprocessServer;
using testing::TempDir;

// What the test knows about one model id.
struct Known {
  bool present = false;
  uint64_t num_train = 0;                // when present
  std::optional<Eigen::MatrixXd> logits;  // when present and observed
};

// An id whose last call did not return (the kill came first): after the
// restart it holds `before` or `after`, nothing else.
struct Uncertain {
  Known before, after;
};

std::string Describe(const Known& k) {
  return k.present ? "present, " + std::to_string(k.num_train) + " rows" : "absent";
}

// True when the restarted server's view of an id (listed with `info`, or
// not listed) matches `k` (logits compared bit for bit when known).
bool Matches(const Known& k, const v1::ModelInfo* info, const Eigen::MatrixXd* logits) {
  if (!k.present) return info == nullptr;
  if (info == nullptr || info->num_train() != k.num_train) return false;
  return !k.logits || (logits != nullptr && *logits == *k.logits);
}

TEST(CrashTest, Kill9AtRandomPointsKeepsEveryAcknowledgedModel) {
  const int sequences = testing::EnvInt("NTK_CRASH_SEQUENCES", 12);
  constexpr int kOpsPerSequence = 6;
  constexpr int kDim = 8, kClasses = 3;
  const std::vector<std::string> ids = {"m0", "m1", "m2"};
  // Sizes from tiny to large enough that fitting and writing the file take
  // a while, so kills land inside a fit and inside a save.
  const std::vector<testing::Blobs> data = {testing::MakeBlobs(20, kDim, kClasses, 1),
                                            testing::MakeBlobs(150, kDim, kClasses, 2),
                                            testing::MakeBlobs(700, kDim, kClasses, 3)};
  const Eigen::MatrixXd q = testing::MakeBlobs(3, kDim, kClasses, 4).x;
  TempDir dir;
  std::map<std::string, Known> known;  // ids not present here are absent
  std::map<std::string, Uncertain> uncertain;
  // Ids whose file this test cut in half and no Fit has rewritten since:
  // each start must report and skip every one of them.
  std::set<std::string> damaged;
  int kills_in_flight = 0, damaged_reported = 0;

  for (int s = 0; s <= sequences; ++s) {
    SCOPED_TRACE("sequence " + std::to_string(s));
    std::mt19937_64 rng(77 + s);
    auto p = SubprocessServer::Start({"--model_dir=" + dir.path(), "--threads=1"});
    ASSERT_TRUE(p.ok()) << p.status();
    auto c = (*p)->Connect();

    // 1. The restarted server against what was acknowledged.
    for (const std::string& name : dir.List()) {
      EXPECT_FALSE(server::ModelStore::IsTemporaryName(name)) << name;
    }
    auto list = c->ListModels();
    ASSERT_TRUE(list.ok()) << list.status();
    std::map<std::string, v1::ModelInfo> listed;
    for (const v1::ModelInfo& m : *list) listed[m.model_id()] = m;
    // Damaged files: reported and skipped, exactly those. A damaged id whose
    // Fit was in flight at the kill may have been rewritten (then listed).
    const std::string log = (*p)->ReadStderr();
    int reports = 0;
    for (size_t at = log.find("skipping damaged model file"); at != std::string::npos;
         at = log.find("skipping damaged model file", at + 1)) {
      ++reports;
    }
    std::set<std::string> still_damaged;
    for (const std::string& id : damaged) {
      if (listed.count(id) && uncertain.count(id)) continue;  // rewritten by the Fit
      EXPECT_EQ(listed.count(id), 0u) << id << ": a damaged file was loaded";
      EXPECT_THAT(log, ::testing::HasSubstr("skipping damaged model file"));
      EXPECT_THAT(log, ::testing::HasSubstr("/" + id + ".ntkm: DATA_LOSS"));
      still_damaged.insert(id);
      known[id] = Known{};  // skipped: absent
      uncertain.erase(id);
    }
    EXPECT_EQ(reports, static_cast<int>(still_damaged.size())) << log;
    damaged_reported += reports;
    damaged = still_damaged;
    for (const std::string& id : ids) {
      const v1::ModelInfo* info = listed.count(id) ? &listed[id] : nullptr;
      std::optional<Eigen::MatrixXd> logits;
      if (info != nullptr) {
        auto pr = c->Predict(id, q);
        ASSERT_TRUE(pr.ok()) << id << ": " << pr.status();
        logits = pr->logits;
      }
      const Eigen::MatrixXd* seen = logits ? &*logits : nullptr;
      if (uncertain.count(id)) {
        const Uncertain& u = uncertain[id];
        EXPECT_TRUE(Matches(u.before, info, seen) || Matches(u.after, info, seen))
            << id << ": neither " << Describe(u.before) << " nor " << Describe(u.after);
      } else {
        EXPECT_TRUE(Matches(known[id], info, seen)) << id << ": expected " << Describe(known[id]);
      }
      // From now on the observed state is the known one.
      known[id] = info ? Known{true, info->num_train(), logits} : Known{};
    }
    uncertain.clear();
    if (s == sequences) break;

    // 2. A sequence of calls on one thread; the kill comes after a random
    // number of acknowledged calls plus a random delay.
    std::mutex mu;
    std::condition_variable acked_cv;
    int acked = 0;
    std::optional<std::pair<std::string, Uncertain>> in_flight;
    std::thread caller([&] {
      std::mt19937_64 op_rng(1000 + s);  // the caller's own: rng is the main thread's
      for (int k = 0; k < kOpsPerSequence; ++k) {
        const std::string id = ids[op_rng() % ids.size()];
        const testing::Blobs& d = data[op_rng() % data.size()];
        Known before, after;
        {
          std::lock_guard<std::mutex> lock(mu);
          before = known[id];
        }
        absl::Status status;
        // Present: replace it or delete it; absent: fit it.
        if (before.present && op_rng() % 3 == 0) {
          after = Known{};
          status = c->DeleteModel(id);
        } else {
          after = Known{true, static_cast<uint64_t>(d.x.rows()), std::nullopt};
          status = c->Fit(id, testing::SmallSpec(0.5 + k), d.x, d.y, {}, before.present)
                       .status();
          if (status.ok()) {
            auto pr = c->Predict(id, q);
            if (pr.ok()) after.logits = pr->logits;
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        if (!status.ok()) {  // the server is gone: outcome unknown
          EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
          in_flight.emplace(id, Uncertain{before, after});
          break;
        }
        known[id] = after;
        if (after.present) damaged.erase(id);  // the Fit rewrote the file
        ++acked;
        acked_cv.notify_all();
      }
    });
    const int kill_after = static_cast<int>(rng() % kOpsPerSequence);
    {
      std::unique_lock<std::mutex> lock(mu);
      acked_cv.wait(lock, [&] { return acked >= kill_after; });
    }
    // The random part of the kill point (not synchronization).
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 40000));
    (*p)->Signal(SIGKILL);
    auto code = (*p)->Wait(std::chrono::seconds(30));
    caller.join();  // before any ASSERT: a joinable thread must not be destroyed
    ASSERT_TRUE(code.ok()) << code.status();
    if (*code != 128 + SIGKILL) {
      ADD_FAILURE() << "server exit " << *code << "\n" << (*p)->ReadStderr();
    }
    if (in_flight) {
      uncertain.insert(*in_flight);
      ++kills_in_flight;
    }

    // 3. Every third sequence: damage one acknowledged model file (cut in
    // half) the way a torn copy or a bad disk would.
    if (s % 3 == 2) {
      for (const std::string& id : ids) {
        if (known[id].present && !uncertain.count(id) && !damaged.count(id)) {
          const std::string path = dir.File(id + ".ntkm");
          const std::string bytes = testing::ReadFileOrEmpty(path);
          ASSERT_FALSE(bytes.empty()) << path;
          ASSERT_TRUE(testing::WriteFile(path, bytes.substr(0, bytes.size() / 2)));
          damaged.insert(id);
          break;
        }
      }
    }
  }
  std::printf("crash: %d kill -9 sequences, %d with a call in flight, %d damaged files skipped\n",
              sequences, kills_in_flight, damaged_reported);
}

}  // namespace
}  // namespace ntk
