// ntk/tools/ntkctl/output.h: small formatting helpers for ntkctl (JSON values,
// model summaries, class labels).
//
// Thread safety: plain functions without shared state.
#ifndef NTK_TOOLS_NTKCTL_OUTPUT_H_
#define NTK_TOOLS_NTKCTL_OUTPUT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "proto/ntk/v1/ntk.pb.h"

namespace ntkctl {

// JSON number with round-trip precision (%.17g); "null" when not finite.
std::string JsonNumber(double v);
// JSON string literal with escapes, quotes included.
std::string JsonString(absl::string_view s);
// "[a,b,...]" of JsonNumber values.
std::string JsonArray(const double* v, int n);
template <typename Container>
std::string JsonArray(const Container& c) {
  return JsonArray(c.data(), static_cast<int>(c.size()));
}

// The class name of `label` when the model has names, else the number.
std::string LabelText(const ntk::v1::ModelInfo& info, int label);

// A multi-line human-readable summary ("key  value" lines).
std::string ModelSummary(const ntk::v1::ModelInfo& info);
// Model selection's table (ModelInfo.selection): one line per candidate
// with mean +- std held-out NLL, accuracy and ECE; the chosen one marked *.
// ModelSummary appends it when the model has a report.
std::string SelectionTable(const ntk::v1::SelectionReport& report);
// One line per model for `ntkctl list`, with a header line first.
std::string ModelTableHeader();
std::string ModelTableRow(const ntk::v1::ModelInfo& info);
// The model as one JSON object (proto field names, all fields).
std::string ModelJson(const ntk::v1::ModelInfo& info);

}  // namespace ntkctl

#endif  // NTK_TOOLS_NTKCTL_OUTPUT_H_
