// ntk/server/log.h: line-oriented logging to stderr.
//
// Each line is "<UTC time ISO-8601 with ms> <message>\n" written with a single
// write(2), so lines from concurrent threads never interleave.
// Thread safety: all functions may be called from any thread.
#ifndef NTK_SERVER_LOG_H_
#define NTK_SERVER_LOG_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace ntk::server {

// "2026-11-28T21:59:28.123Z"
std::string UtcTimestamp();
int64_t NowUnixMs();

void LogLine(absl::string_view message);

template <typename... Args>
void Logf(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(absl::StrFormat(format, args...));
}

}  // namespace ntk::server

#endif  // NTK_SERVER_LOG_H_
