// tests/testing/ntkctl_fixture.h: what the ntkctl end-to-end tests share
// (tests/ntkctl_test.cc: help, usage and file errors, health, the model
// store, watch, TLS and token; tests/ntkctl_predict_test.cc: fit, predict,
// predict-dist; tests/ntkctl_idx_test.cc: IDX data files and the streamed
// upload): one ntk_server subprocess per test executable on
// 127.0.0.1 (ephemeral port, temporary --model_dir) and ntkctl runners.
//
// REQUIRES: NTKCTL_PATH defined (tests/CMakeLists.txt does for every test)
// and the digits CSV of Debian's python3-sklearn at kDigits.
// Thread safety: used from the test thread only. The fixture owns its
// server and temporary directory for the whole suite.
#ifndef NTK_TESTS_TESTING_NTKCTL_FIXTURE_H_
#define NTK_TESTS_TESTING_NTKCTL_FIXTURE_H_

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testing/server_fixture.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace ntk::testing {

inline constexpr char kDigits[] =
    "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";

// The non-empty lines of `text`.
inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// One server for the whole suite; Ctl runs ntkctl against it.
class NtkctlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto s = SubprocessServer::Start({"--model_dir=" + dir_->path() + "/models"});
    if (s.ok()) {
      server_ = s->release();
    } else {
      start_error_ = new std::string(s.status().ToString());
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete dir_;
    dir_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "ntk_server did not start: " << *start_error_;
  }

  // ntkctl --server=<ours> args...
  static ProcessResult Ctl(std::vector<std::string> args,
                           const std::map<std::string, std::string>& env = {}) {
    std::vector<std::string> argv = {NTKCTL_PATH,
                                     "--server=" + server_->address()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::map<std::string, std::string> e = {{"NTK_SERVER", ""}};
    for (const auto& [k, v] : env) e[k] = v;
    return RunProcess(argv, e);
  }
  // ntkctl without --server (for usage tests that must not need a server).
  static ProcessResult Bare(std::vector<std::string> args) {
    std::vector<std::string> argv = {NTKCTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, {{"NTK_SERVER", ""}});
  }

  // Fits `id` on digits rows 0:400 (rows scaled to norm sqrt(d)).
  static ProcessResult FitDigits(const std::string& id, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"fit",       "--model=" + id,
                                     std::string("--data=") + kDigits,
                                     "--rows=0:400", "--normalize_rows"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Ctl(args);
  }

  // The plain-text digits CSV (decompressed with gzip -dc) in the temp dir.
  static std::string PlainDigits() {
    const std::string path = dir_->path() + "/digits.csv";
    if (ReadFileOrEmpty(path).empty()) {
      ProcessResult r = RunProcess(
          {"/bin/sh", "-c", std::string("gzip -dc ") + kDigits + " > " + path});
      EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    return path;
  }

  inline static TempDir* dir_ = nullptr;
  inline static SubprocessServer* server_ = nullptr;
  inline static std::string* start_error_ = nullptr;
};

}  // namespace ntk::testing

#endif  // NTK_TESTS_TESTING_NTKCTL_FIXTURE_H_
