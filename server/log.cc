#include "server/log.h"

#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace ntk::server {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string UtcTimestamp() {
  const int64_t ms = NowUnixMs();
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

void LogLine(absl::string_view message) {
  std::string line = UtcTimestamp();
  line.reserve(line.size() + message.size() + 2);
  line.push_back(' ');
  line.append(message.data(), message.size());
  line.push_back('\n');
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) return;  // nothing sensible to do when stderr is gone
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace ntk::server
