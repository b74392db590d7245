// ntk/tools/common/list_flags.h: comma-separated list flags of the command-line
// tools and benchmarks (ntk_validate --experiments/--widths, ntk_evaluate
// --phases/--sizes/--select_*, ntk_loadgen --targets/--concurrency), parsed one way.
//
// Thread safety: pure functions. Ownership: results are returned by value.
#ifndef NTK_TOOLS_COMMON_LIST_FLAGS_H_
#define NTK_TOOLS_COMMON_LIST_FLAGS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ntk::tools {

// Whether `item` is one of the comma-separated entries of `list` (whole
// entries: "e1" is not in "e12").
bool ListHas(absl::string_view list, absl::string_view item);

// The comma-separated integers >= 1 of `text` in order, empty entries
// skipped; INVALID_ARGUMENT naming --`flag` and the entry otherwise.
absl::StatusOr<std::vector<int>> ParsePositiveIntList(absl::string_view flag,
                                                      absl::string_view text);

// The comma-separated numbers of `text` in order (surrounding blanks
// allowed, empty text: none); INVALID_ARGUMENT naming --`flag` and the
// entry otherwise. Range checks are the caller's (or the server's).
absl::StatusOr<std::vector<double>> ParseNumberList(absl::string_view flag,
                                                    absl::string_view text);

}  // namespace ntk::tools

#endif  // NTK_TOOLS_COMMON_LIST_FLAGS_H_
