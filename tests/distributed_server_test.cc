// tests/distributed_server_test.cc: `mpirun -np 2 ntk_server --distributed`
// (server/distributed/session.h, docs/distributed.md) against a
// single-process ntk_server: the same exact 2b fit, the same Predict, and
// SIGTERM to rank 0 stops every rank (mpirun exits 0).
//
// Runs as one ordinary test process (not under mpirun itself); built with
// NTK_MPI only (tests/CMakeLists.txt).
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <dirent.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "tests/testing/server_fixture.h"
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

TEST(DistributedServerTest, ExactFitPredictsAsOneProcessAndSigtermStopsEveryRank) {
  TempDir single_dir, dist_dir;
  absl::StatusOr<std::unique_ptr<SubprocessServer>> single =
      SubprocessServer::Start({"--model_dir=" + single_dir.path(), "--log_rpcs=false"});
  ASSERT_TRUE(single.ok()) << single.status();
  absl::StatusOr<std::unique_ptr<SubprocessServer>> dist = SubprocessServer::StartBinary(
      NTK_MPIRUN,
      {"--oversubscribe", "--allow-run-as-root", "--mca", "btl", "self,tcp", "--mca",
       "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo", "-np", "2",
       NTK_SERVER_PATH, "--distributed", "--listen=127.0.0.1:0",
       "--model_dir=" + dist_dir.path(), "--log_rpcs=false"},
      {"OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1"}, std::chrono::seconds(60));
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

}  // namespace
}  // namespace ntk
