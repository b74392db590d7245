// ntk/tools/common/list_flags.cc: see list_flags.h.
#include "tools/common/list_flags.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ntk::tools {

bool ListHas(absl::string_view list, absl::string_view item) {
  for (absl::string_view entry : absl::StrSplit(list, ',')) {
    if (entry == item) return true;
  }
  return false;
}

absl::StatusOr<std::vector<int>> ParsePositiveIntList(absl::string_view flag,
                                                      absl::string_view text) {
  std::vector<int> values;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(entry, &v) || v < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", entry, "' is not an integer >= 1"));
    }
    values.push_back(v);
  }
  return values;
}

absl::StatusOr<std::vector<double>> ParseNumberList(absl::string_view flag,
                                                    absl::string_view text) {
  std::vector<double> values;
  if (text.empty()) return values;
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    double v = 0;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(entry), &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": expected comma-separated numbers, got '", entry, "'"));
    }
    values.push_back(v);
  }
  return values;
}

}  // namespace ntk::tools
