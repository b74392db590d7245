// Churn end to end (issue 11 item 7): many client threads doing Fit /
// replace / Predict / PredictDistribution / Delete / List on a handful of
// model ids at once. Every call ends with a code its RPC may answer under
// contention (never UNKNOWN or INTERNAL), no call runs into its deadline,
// and afterwards a restarted server loads every listed model, each
// predicts, and no temporary file is left in model_dir.
//
// Bounded by count and time: NTK_CHURN_SECONDS (default 3) and
// NTK_CHURN_THREADS (default 32) scale it; `./ntk.sh churn [seconds]` runs
// it longer (docs/testing.md). The suite name contains "Concurrency" so the
// TSan run (tests/sanitizers/run.sh) includes it.
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
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

using testing::InProcessServer;
using testing::TempDir;
using Code = absl::StatusCode;

// The codes each kind of call may legitimately end with while other
// threads fit, replace and delete the same ids (docs/api.md):
//   NOT_FOUND: the model was deleted (or not yet fitted);
//   ALREADY_EXISTS: Fit without replace of an id that exists;
//   ABORTED: a Fit of the same id is in progress;
//   RESOURCE_EXHAUSTED: every --max_concurrent_fits slot is taken, or the
//     memory budget's admission refused;
//   CANCELLED (Fit, Replace): a Delete of the id cancelled the fit while it
//     was FITTING (docs/api.md "Long fits");
//   FAILED_PRECONDITION (Predict, PredictDistribution): the id has only a
//     fit in progress (FITTING, no older READY model), docs/api.md "Long fits".
// Anything else (UNKNOWN, INTERNAL, DEADLINE_EXCEEDED: a call stuck until
// its deadline, ...) fails the test.
const std::map<std::string, std::set<Code>>& AllowedCodes() {
  static const auto* allowed = new std::map<std::string, std::set<Code>>{
      {"Fit",
       {Code::kOk, Code::kAlreadyExists, Code::kAborted, Code::kResourceExhausted,
        Code::kCancelled}},
      {"Replace", {Code::kOk, Code::kAborted, Code::kResourceExhausted, Code::kCancelled}},
      {"Predict", {Code::kOk, Code::kNotFound, Code::kFailedPrecondition}},
      {"PredictDistribution",
       {Code::kOk, Code::kNotFound, Code::kResourceExhausted, Code::kFailedPrecondition}},
      {"Delete", {Code::kOk, Code::kNotFound, Code::kAborted}},
      {"List", {Code::kOk}},
  };
  return *allowed;
}

struct Tally {
  std::mutex mu;
  std::map<std::string, std::map<Code, int64_t>> counts;  // rpc -> code -> calls
  std::vector<std::string> unexpected;                    // first few, for the report
  void Add(const std::string& rpc, const absl::Status& s) {
    std::lock_guard<std::mutex> lock(mu);
    ++counts[rpc][s.code()];
    if (!AllowedCodes().at(rpc).count(s.code()) && unexpected.size() < 20) {
      unexpected.push_back(rpc + ": " + s.ToString());
    }
  }
};

TEST(ConcurrencyChurnTest, ManyClientsOnFewIdsThenRestartLoadsEveryModel) {
  const int seconds = testing::EnvInt("NTK_CHURN_SECONDS", 3);
  const int threads = testing::EnvInt("NTK_CHURN_THREADS", 32);
  // Bounded by count too: at most this many calls per thread.
  constexpr int kMaxCallsPerThread = 100000;
  const std::vector<std::string> ids = {"a", "b", "c", "d", "e"};
  constexpr int kDim = 4, kClasses = 3;
  // Two data sets of different sizes, so replaced models differ.
  const std::vector<testing::Blobs> data = {testing::MakeBlobs(30, kDim, kClasses, 1),
                                            testing::MakeBlobs(45, kDim, kClasses, 2)};
  const Eigen::MatrixXd q = testing::MakeBlobs(4, kDim, kClasses, 3).x;
  // Generous for calls this small: reaching it means a call was stuck.
  ClientOptions client_options;
  client_options.default_deadline = std::chrono::seconds(60);

  TempDir dir;
  server::ServerOptions options = testing::TestServerOptions(dir.path());
  options.threads = 1;  // 32+ concurrent calls on 2 cores: no OpenMP teams
  auto server = InProcessServer::Start(options);
  ASSERT_NE(server, nullptr);

  Tally tally;
  std::atomic<int64_t> total_calls{0};
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      auto c = server->Connect(client_options);
      for (int k = 0; k < kMaxCallsPerThread && std::chrono::steady_clock::now() < end; ++k) {
        const std::string& id = ids[rng() % ids.size()];
        const testing::Blobs& d = data[rng() % data.size()];
        switch (rng() % 8) {
          case 0:
            tally.Add("Fit", c->Fit(id, testing::SmallSpec(1.0), d.x, d.y).status());
            break;
          case 1:
            tally.Add("Replace",
                      c->Fit(id, testing::SmallSpec(0.5), d.x, d.y, {}, true).status());
            break;
          case 2:
          case 3:
            tally.Add("Predict", c->Predict(id, q).status());
            break;
          case 4: {
            const v1::DistributionMethod m =
                rng() % 2 ? v1::LINEARIZED : v1::MONTE_CARLO;
            tally.Add("PredictDistribution",
                      c->PredictDistribution(id, q, m, 50, rng()).status());
            break;
          }
          case 5:
            tally.Add("Delete", c->DeleteModel(id));
            break;
          default:
            tally.Add("List", c->ListModels().status());
            break;
        }
        ++total_calls;
      }
    });
  }
  for (auto& t : clients) t.join();

  std::string summary;
  for (const auto& [rpc, by_code] : tally.counts) {
    summary += rpc + ":";
    for (const auto& [code, n] : by_code) {
      summary += " " + absl::StatusCodeToString(code) + "=" + std::to_string(n);
    }
    summary += "\n";
  }
  std::printf("churn: %d threads, %d s, %lld calls\n%s", threads, seconds,
              static_cast<long long>(total_calls.load()), summary.c_str());
  EXPECT_TRUE(tally.unexpected.empty())
      << ::testing::PrintToString(tally.unexpected) << "\n" << summary;
  // Every RPC ran, and some Fits and Predicts succeeded: the churn was real.
  EXPECT_GT(tally.counts["Fit"][Code::kOk] + tally.counts["Replace"][Code::kOk], 0) << summary;
  EXPECT_GT(tally.counts["Predict"][Code::kOk], 0) << summary;

  // The final state, as the running server lists it. Ids the churn left
  // deleted are fitted again, so the restart below has every id to load.
  auto c = server->Connect(client_options);
  auto listed = c->ListModels();
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::set<std::string> present;
  for (const v1::ModelInfo& m : *listed) present.insert(m.model_id());
  for (const std::string& id : ids) {
    if (!present.count(id)) {
      ASSERT_TRUE(c->Fit(id, testing::SmallSpec(1.0), data[0].x, data[0].y).ok()) << id;
    }
  }
  auto before = c->ListModels();
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_EQ(before->size(), ids.size());
  std::map<std::string, Eigen::MatrixXd> logits;
  for (const v1::ModelInfo& m : *before) {
    auto p = c->Predict(m.model_id(), q);
    ASSERT_TRUE(p.ok()) << m.model_id() << ": " << p.status();
    logits[m.model_id()] = p->logits;
  }
  server.reset();  // stopped, and its model_dir lock released
  // Exactly one file per listed model (nothing temporary, nothing orphaned).
  std::vector<std::string> expected_files;
  for (const std::string& id : ids) expected_files.push_back(id + ".ntkm");
  std::vector<std::string> files;
  for (const std::string& name : dir.List()) {
    if (name != ".lock") files.push_back(name);
  }
  EXPECT_EQ(files, expected_files);

  // Restart: the same models load and answer bit for bit.
  auto again = InProcessServer::Start(options);
  ASSERT_NE(again, nullptr);
  auto c2 = again->Connect(client_options);
  auto after = c2->ListModels();
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->size(), before->size());
  for (size_t i = 0; i < after->size(); ++i) {
    EXPECT_EQ((*after)[i].SerializeAsString(), (*before)[i].SerializeAsString());
    auto p = c2->Predict((*after)[i].model_id(), q);
    ASSERT_TRUE(p.ok()) << (*after)[i].model_id() << ": " << p.status();
    EXPECT_EQ(p->logits, logits[(*after)[i].model_id()]) << (*after)[i].model_id();
  }
}

}  // namespace
}  // namespace ntk
