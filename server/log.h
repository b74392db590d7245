// ntk/server/log.h: line-oriented logging to stderr.
//
// Each line is "<UTC time ISO-8601 with ms> <message>\n" written with a single
// write(2), so lines from concurrent threads never interleave.
// Thread safety: all functions may be called from any thread.
//
// The server writes one line per RPC, so the common case allocates nothing:
// lines up to kLogLineBytes are formatted on the stack, and the date part
// of the timestamp is cached per thread and second.
#ifndef NTK_SERVER_LOG_H_
#define NTK_SERVER_LOG_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace ntk::server {

// "2026-11-28T21:59:28.123Z"
std::string UtcTimestamp();
int64_t NowUnixMs();

void LogLine(absl::string_view message);

// A logfmt value: as is when it is non-empty and has no space, '"', a backslash,
// '=' or control character; otherwise in double quotes with '"' and the backslash
// escaped by a backslash and newline, carriage return and tab as \n, \r, \t
// (other control characters as \xHH). E.g. `a b` -> `"a b"`,
// `no model "c"` -> `"no model \"c\""`. `always_quote`: quoted in every case
// (free text such as messages, so that its form does not vary).
std::string LogfmtValue(absl::string_view value, bool always_quote = false);

// Messages up to this size are formatted without allocating.
inline constexpr size_t kLogLineBytes = 512;

template <typename... Args>
void Logf(const absl::FormatSpec<Args...>& format, const Args&... args) {
  char buf[kLogLineBytes];
  const int n = absl::SNPrintF(buf, sizeof(buf), format, args...);
  if (n >= 0 && static_cast<size_t>(n) < sizeof(buf)) {
    LogLine(absl::string_view(buf, static_cast<size_t>(n)));
  } else {
    LogLine(absl::StrFormat(format, args...));  // longer (or failed): on the heap
  }
}

}  // namespace ntk::server

#endif  // NTK_SERVER_LOG_H_
