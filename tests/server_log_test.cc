// server/log.h: the line format, on the stack path (messages up to
// kLogLineBytes) and the heap path (longer ones), and the timestamp.
#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/log.h"
#include "tests/testing/server_fixture.h"

namespace ntk::server {
namespace {

using ::testing::MatchesRegex;

// Runs fn with stderr redirected to a file; returns what it wrote.
template <typename Fn>
std::string CaptureStderr(Fn fn) {
  testing::TempDir dir;
  const std::string path = dir.File("stderr");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  EXPECT_GE(fd, 0);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(fd, STDERR_FILENO);
  ::close(fd);
  fn();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

constexpr char kTimestamp[] = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z";

TEST(ServerLogTest, LinesShortAndLong) {
  const std::string long_message(3 * kLogLineBytes + 7, 'x');  // the heap path
  const std::string boundary(kLogLineBytes - 1, 'y');         // largest on the stack
  const std::string text = CaptureStderr([&] {
    Logf("rpc=%s model=%s rows=%d code=OK ms=%.3f", "Predict", "m", 3, 0.0456);
    Logf("%s", long_message);
    Logf("%s", boundary);
    Logf("%s", boundary + "z");
    LogLine("");
    LogLine(long_message);
  });
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  ASSERT_EQ(lines.size(), 7u) << text;  // six lines and the empty rest after the last '\n'
  EXPECT_EQ(lines.back(), "");
  const std::string ts = kTimestamp;
  EXPECT_THAT(lines[0], MatchesRegex(ts + " rpc=Predict model=m rows=3 code=OK ms=0\\.046"));
  EXPECT_THAT(lines[1], MatchesRegex(ts + " x+"));
  EXPECT_EQ(lines[1].size(), 25 + long_message.size());
  EXPECT_EQ(lines[2].substr(25), boundary);
  EXPECT_EQ(lines[3].substr(25), boundary + "z");
  EXPECT_THAT(lines[4], MatchesRegex(ts + " "));
  EXPECT_EQ(lines[5].substr(25), long_message);
}

TEST(ServerLogTest, TimestampIsTheCurrentUtcTime) {
  // The cached date part must follow the clock: compare with a timestamp
  // formatted from scratch by gmtime_r at the same second (retried if the
  // second turns over in between).
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int64_t before = NowUnixMs() / 1000;
    const std::string ts = UtcTimestamp();
    const int64_t after = NowUnixMs() / 1000;
    if (before != after) continue;
    const time_t secs = static_cast<time_t>(before);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char want[96];
    std::snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    EXPECT_EQ(ts.substr(0, 20), want);
    EXPECT_THAT(ts, MatchesRegex(kTimestamp));
    return;
  }
  FAIL() << "the clock's second kept turning over";
}

}  // namespace
}  // namespace ntk::server
