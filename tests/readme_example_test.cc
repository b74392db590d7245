// The README's worked example ("Fit a model on real data and ask how sure it
// is"), its indented command lines taken from README.md verbatim and run
// and the one under "A worked example with the command-line client", their
// indented command lines taken from README.md verbatim and run with bash
// twice in a row against an ntk_server subprocess (NTK_SERVER points ntkctl
// at it; ./build is a link to this build tree). Both runs must succeed
// (issue 13: the second used to get ALREADY_EXISTS, and ntkctl was not on
// PATH). Each block runs twice in a row (the quick start's first), so each
// must be re-runnable on its own.
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace {

using ::ntk::testing::ProcessResult;
using ::ntk::testing::RunProcess;

// The indented lines after the first line starting with `heading`, up to
// the first unindented text.
std::string IndentedBlockAfter(const std::string& readme, absl::string_view heading) {
  std::istringstream in(readme);
  std::string line, script;
  bool in_section = false, in_code = false;
  while (std::getline(in, line)) {
    if (!in_section) {
      in_section = absl::StartsWith(line, heading);
      continue;
    }
    if (absl::StartsWith(line, "    ")) {
      in_code = true;
      script += line.substr(4) + "\n";
    } else if (in_code && !line.empty()) {
      break;
    }
  }
  return script;
}

TEST(ReadmeExampleTest, RunsVerbatimTwiceInARow) {
  std::ifstream in(std::string(NTK_SOURCE_DIR) + "/README.md");
  std::stringstream readme;
  readme << in.rdbuf();
  // The quick start's example, then the one of "What the service computes".
  const std::string first = IndentedBlockAfter(readme.str(), "### Fit a model on real data");
  const std::string second =
      IndentedBlockAfter(readme.str(), "A worked example with the command-line client");
  ASSERT_TRUE(absl::StrContains(first, "ntkctl fit")) << first;
  ASSERT_TRUE(absl::StrContains(second, "ntkctl delete digits")) << second;

  ntk::testing::TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  absl::string_view build_dir = NTKCTL_PATH;
  ASSERT_TRUE(absl::ConsumeSuffix(&build_dir, "/tools/ntkctl/ntkctl")) << NTKCTL_PATH;
  ASSERT_EQ(symlink(std::string(build_dir).c_str(), (dir.path() + "/build").c_str()), 0);
  auto server = ntk::testing::SubprocessServer::Start({"--model_dir=" + dir.path() + "/models"});
  ASSERT_TRUE(server.ok()) << server.status();

  // Each block twice in a row: the quick start's, then the other's.
  std::string outputs[4];
  for (int i = 0; i < 4; ++i) {
    const std::string& script = i < 2 ? first : second;
    ProcessResult r = RunProcess({"/bin/bash", "-euc", "cd \"$1\"\n" + script, "readme",
                                  dir.path()},
                                 {{"NTK_SERVER", (*server)->address()}},
                                 std::chrono::seconds(300));
    ASSERT_FALSE(r.timed_out);
    ASSERT_EQ(r.exit_code, 0) << "run " << i << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err;
    outputs[i] = r.out + r.err;
  }
  // Both runs of the second block print the same held-out accuracy
  // (deterministic fit).
  const auto accuracy = [](const std::string& out) {
    const size_t at = out.find("accuracy");
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  EXPECT_NE(accuracy(outputs[2]), "") << outputs[2];
  EXPECT_EQ(accuracy(outputs[2]), accuracy(outputs[3]));
}

}  // namespace
