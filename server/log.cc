#include "server/log.h"

#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

namespace ntk::server {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

constexpr size_t kTimestampBytes = 24;  // "2026-11-28T21:59:28.123Z"

// Writes the timestamp of `ms` (unix milliseconds) to out[0, 24). The
// "YYYY-MM-DDTHH:MM:SS" part is formatted once per thread and second.
void FormatTimestamp(int64_t ms, char* out) {
  thread_local int64_t cached_secs = -1;
  thread_local char cached[64];  // 19 characters used (room for any int)
  const int64_t secs = ms / 1000;
  if (secs != cached_secs) {
    const time_t t = static_cast<time_t>(secs);
    struct tm tm;
    gmtime_r(&t, &tm);
    std::snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_secs = secs;
  }
  std::memcpy(out, cached, 19);
  const int milli = static_cast<int>(ms % 1000);
  out[19] = '.';
  out[20] = static_cast<char>('0' + milli / 100);
  out[21] = static_cast<char>('0' + milli / 10 % 10);
  out[22] = static_cast<char>('0' + milli % 10);
  out[23] = 'Z';
}

void WriteAll(const char* p, size_t left) {
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) return;  // nothing sensible to do when stderr is gone
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace

std::string UtcTimestamp() {
  char buf[kTimestampBytes];
  FormatTimestamp(NowUnixMs(), buf);
  return std::string(buf, sizeof(buf));
}

std::string LogfmtValue(absl::string_view value, bool always_quote) {
  bool plain = !value.empty() && !always_quote;
  for (const char c : plain ? value : absl::string_view()) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '"' || c == '\\' || c == '=' || u < 0x20 || u == 0x7f) {
      plain = false;
      break;
    }
  }
  if (plain) return std::string(value);
  std::string out = "\"";
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20 || u == 0x7f) {
          out += absl::StrFormat("\\x%02x", u);
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

void LogLine(absl::string_view message) {
  const size_t size = kTimestampBytes + 1 + message.size() + 1;
  char stack[kTimestampBytes + kLogLineBytes + 2];
  std::string heap;
  char* line = stack;
  if (size > sizeof(stack)) {
    heap.resize(size);
    line = heap.data();
  }
  FormatTimestamp(NowUnixMs(), line);
  line[kTimestampBytes] = ' ';
  if (!message.empty()) std::memcpy(line + kTimestampBytes + 1, message.data(), message.size());
  line[size - 1] = '\n';
  WriteAll(line, size);
}

}  // namespace ntk::server
