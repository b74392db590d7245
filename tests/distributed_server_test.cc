// tests/distributed_server_test.cc: `mpirun -np 2 ntk_server --distributed`
// (server/distributed/session.h, docs/distributed.md) against a
// single-process ntk_server: the same exact 2b fit, the same Predict, and
// SIGTERM to rank 0 stops every rank (mpirun exits 0). Faults
// (docs/distributed.md "Faults"): a worker rank killed while idle or during
// a fit, or stopped so that it never acknowledges the fit, makes the fit
// fail UNAVAILABLE and the job exit non-zero, with no model file written.
//
// Runs as one ordinary test process (not under mpirun itself); built with
// NTK_MPI only (tests/CMakeLists.txt).
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace ntk {
namespace {

using testing::SubprocessServer;
using testing::TempDir;

// The child of `parent` whose environment says OMPI_COMM_WORLD_RANK=`rank`
// (mpirun starts the local ranks itself), or -1.
pid_t RankPid(pid_t parent, int rank) {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return -1;
  pid_t found = -1;
  while (dirent* e = ::readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    std::ifstream stat("/proc/" + std::string(e->d_name) + "/stat");
    std::string line;
    std::getline(stat, line);
    // pid (comm) state ppid ...: comm may hold spaces, so parse after ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    std::string state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid != parent) continue;
    std::ifstream env_file("/proc/" + std::string(e->d_name) + "/environ");
    std::stringstream env;
    env << env_file.rdbuf();
    const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
    for (absl::string_view v : absl::StrSplit(env.str(), '\0')) {
      if (v == want) found = pid;
    }
  }
  ::closedir(proc);
  return found;
}

// `mpirun -np 2 ntk_server --distributed` on loopback with `model_dir`.
absl::StatusOr<std::unique_ptr<SubprocessServer>> StartTwoRanks(
    const std::string& model_dir, const std::vector<std::string>& extra_args = {}) {
  std::vector<std::string> args = {
      "--oversubscribe", "--allow-run-as-root", "--mca", "btl", "self,tcp", "--mca",
      "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo", "-np", "2",
      NTK_SERVER_PATH, "--distributed", "--listen=127.0.0.1:0", "--model_dir=" + model_dir,
      "--log_rpcs=false"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  return SubprocessServer::StartBinary(NTK_MPIRUN, args,
                                       {"OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1"},
                                       std::chrono::seconds(60));
}

TEST(DistributedServerTest, ExactFitPredictsAsOneProcessAndSigtermStopsEveryRank) {
  TempDir single_dir, dist_dir;
  absl::StatusOr<std::unique_ptr<SubprocessServer>> single =
      SubprocessServer::Start({"--model_dir=" + single_dir.path(), "--log_rpcs=false"});
  ASSERT_TRUE(single.ok()) << single.status();
  absl::StatusOr<std::unique_ptr<SubprocessServer>> dist = StartTwoRanks(dist_dir.path());
  ASSERT_TRUE(dist.ok()) << dist.status();

  // 2b: cross-entropy with lambda = 0 and the default label smoothing.
  const testing::Blobs train = testing::MakeBlobs(300, 5, 3, 21);
  const testing::Blobs queries = testing::MakeBlobs(40, 5, 3, 22);
  const v1::ModelSpec spec = testing::SmallSpec(0);
  std::unique_ptr<Client> a = (*single)->Connect();
  std::unique_ptr<Client> b = (*dist)->Connect();
  absl::StatusOr<v1::ModelInfo> fit_a = a->Fit("m", spec, train.x, train.y);
  absl::StatusOr<v1::ModelInfo> fit_b = b->Fit("m", spec, train.x, train.y);
  ASSERT_TRUE(fit_a.ok()) << fit_a.status();
  ASSERT_TRUE(fit_b.ok()) << fit_b.status() << (*dist)->ReadStderr();
  absl::StatusOr<Client::PredictResult> pa = a->Predict("m", queries.x);
  absl::StatusOr<Client::PredictResult> pb = b->Predict("m", queries.x);
  ASSERT_TRUE(pa.ok()) << pa.status();
  ASSERT_TRUE(pb.ok()) << pb.status();
  // The acceptance bound of issue 15 (1e-9 relative); the derivation for
  // the dual (3 N eps kappa_1, ~1e-11 here) is in distributed_solve_test.
  const double scale = pa->logits.cwiseAbs().maxCoeff();
  const double diff = (pa->logits - pb->logits).cwiseAbs().maxCoeff();
  EXPECT_LE(diff, 1e-9 * scale);
  std::printf("Predict logits: max |single - distributed| = %.3g (max |logit| %.3g)\n", diff,
              scale);
  EXPECT_EQ(pa->labels, pb->labels);
  // The fit went through the ranks, not rank 0 alone.
  EXPECT_TRUE(absl::StrContains((*dist)->ReadStderr(),
                                "distributed: exact 2b solve of 300 rows on 2 ranks"))
      << (*dist)->ReadStderr();

  // SIGTERM to rank 0 (not to mpirun): rank 0 shuts down, tells the
  // worker, and every rank exits 0, so mpirun does.
  const pid_t rank0 = RankPid((*dist)->pid(), 0);
  ASSERT_GT(rank0, 0) << "rank 0 of mpirun " << (*dist)->pid() << " not found";
  ASSERT_EQ(::kill(rank0, SIGTERM), 0);
  absl::StatusOr<int> code = (*dist)->Wait(std::chrono::seconds(60));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << (*dist)->ReadStderr();
}

TEST(DistributedServerTest, TimeoutNotPositiveIsRefusedNamingTheFlag) {
  for (const char* value : {"0", "-1", "nan"}) {
    testing::ProcessResult r = testing::RunProcess(
        {NTK_SERVER_PATH, "--distributed", std::string("--distributed_timeout_seconds=") + value});
    ASSERT_FALSE(r.timed_out) << value;
    EXPECT_EQ(r.exit_code, 2) << value;
    EXPECT_THAT(r.err, ::testing::HasSubstr("--distributed_timeout_seconds: must be > 0"))
        << value << ": " << r.err;
  }
}

// docs/distributed.md "Faults": what a client and the orchestrator see.
// Bounds: the client's deadline and the wait for mpirun only turn a hang
// into a failure (mpirun ends the job within about a second of a rank's
// death, rank 0 within --distributed_timeout_seconds of a silent rank).
constexpr auto kFaultBound = std::chrono::seconds(60);

class DistributedFaultTest : public ::testing::Test {
 protected:
  void Start(const std::vector<std::string>& extra_args = {}) {
    absl::StatusOr<std::unique_ptr<SubprocessServer>> s = StartTwoRanks(dir_.path(), extra_args);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    worker_ = RankPid(server_->pid(), 1);
    ASSERT_GT(worker_, 0) << "rank 1 of mpirun " << server_->pid() << " not found";
  }

  // The 2b fit of the first test (N = 300), bounded by kFaultBound.
  absl::StatusOr<v1::ModelInfo> Fit(const std::string& model) {
    ClientOptions options;
    options.target = server_->address();
    options.default_deadline = kFaultBound;
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
    if (!client.ok()) return client.status();
    const testing::Blobs train = testing::MakeBlobs(300, 5, 3, 21);
    return (*client)->Fit(model, testing::SmallSpec(0), train.x, train.y);
  }

  // mpirun's exit code (128 + signal when a signal ended it), after the
  // job ended by itself.
  int JobExitCode() {
    absl::StatusOr<int> code = server_->Wait(kFaultBound);
    EXPECT_TRUE(code.ok()) << code.status() << "\n" << server_->ReadStderr();
    std::printf("mpirun exit code: %d\n", code.ok() ? *code : -1);
    return code.ok() ? *code : -1;
  }

  // What the client saw, for the record (docs/distributed.md "Faults").
  static void Report(const char* what, const absl::Status& status) {
    std::printf("%s: %s\n", what, status.ToString().c_str());
  }

  // Every fault: the fit failed UNAVAILABLE, the job ended by itself and
  // left no model file. mpirun's exit code.
  int ExpectFitUnavailableAndJobEnded(const absl::Status& fit) {
    Report("fit", fit);
    EXPECT_EQ(fit.code(), absl::StatusCode::kUnavailable) << fit;
    const int code = JobExitCode();
    EXPECT_THAT(ModelFiles(), ::testing::IsEmpty());
    return code;
  }

  // Names in the model directory that are (or would become) model files:
  // "<id>.ntkm" and ModelStore's ".<id>.ntkm.tmp-*" (server/model_store.h).
  std::vector<std::string> ModelFiles() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
      const std::string name = e.path().filename().string();
      if (absl::StrContains(name, ".ntkm")) names.push_back(name);
    }
    return names;
  }

  // Polls rank 0's log for `text` (bounded count; 10 ms apart).
  bool LogShows(const std::string& text) const {
    for (int i = 0; i < 6000; ++i) {
      if (absl::StrContains(server_->ReadStderr(), text)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  TempDir dir_;
  std::unique_ptr<SubprocessServer> server_;
  pid_t worker_ = -1;
};

TEST_F(DistributedFaultTest, WorkerKilledWhileIdleEndsTheJobAndFitsFailUnavailable) {
  Start();
  ASSERT_EQ(::kill(worker_, SIGKILL), 0);
  // Whether rank 0 is still up (mpirun is tearing the job down) or already
  // gone (the connection is refused), the fit fails UNAVAILABLE.
  EXPECT_NE(ExpectFitUnavailableAndJobEnded(Fit("m").status()), 0) << server_->ReadStderr();
}

TEST_F(DistributedFaultTest, WorkerKilledDuringAFitEndsTheJobAndTheFitFailsUnavailable) {
  // A stopped worker cannot acknowledge the fit, which therefore is in
  // flight on rank 0 (its log line comes before the command) when the
  // worker is killed; the timeout is far beyond the test's bound, so it is
  // mpirun's teardown that ends the fit.
  Start({"--distributed_timeout_seconds=600"});
  ASSERT_EQ(::kill(worker_, SIGSTOP), 0);
  std::future<absl::StatusOr<v1::ModelInfo>> fit =
      std::async(std::launch::async, [this] { return Fit("m"); });
  ASSERT_TRUE(LogShows("distributed: exact 2b solve of 300 rows on 2 ranks"))
      << server_->ReadStderr();
  ASSERT_EQ(::kill(worker_, SIGKILL), 0);
  EXPECT_NE(ExpectFitUnavailableAndJobEnded(fit.get().status()), 0) << server_->ReadStderr();
}

TEST_F(DistributedFaultTest, SilentWorkerFailsTheFitUnavailableAndTheJobExitsNonZero) {
  // mpirun does not notice a stopped rank: rank 0's bounded wait does.
  Start({"--distributed_timeout_seconds=1"});
  ASSERT_EQ(::kill(worker_, SIGSTOP), 0);
  absl::StatusOr<v1::ModelInfo> fit = Fit("m");
  EXPECT_THAT(std::string(fit.status().message()),
              ::testing::HasSubstr("rank 1 of 2 did not acknowledge FIT_EXACT within 1s"));
  // A later fit: refused by the failed session, by the shutting-down
  // server, or by the closed port; UNAVAILABLE in each case.
  absl::StatusOr<v1::ModelInfo> later = Fit("m2");
  Report("later fit", later.status());
  EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable) << later.status();
  // MPI_Abort(MPI_COMM_WORLD, 1) on rank 0: mpirun exits 1.
  EXPECT_EQ(ExpectFitUnavailableAndJobEnded(fit.status()), 1) << server_->ReadStderr();
  EXPECT_TRUE(absl::StrContains(server_->ReadStderr(), "aborting the MPI job"))
      << server_->ReadStderr();
}

}  // namespace
}  // namespace ntk
