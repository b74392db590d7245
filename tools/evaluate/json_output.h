// ntk/tools/evaluate/json_output.h: the JSON that ntk_evaluate writes
// (DIR/ntk.json, read by tools/evaluate/report.py): settings, metrics,
// cross-validation tables and selection reports, one object per function.
//
// Thread safety: pure functions. Non-finite numbers are written as null.
#ifndef NTK_TOOLS_EVALUATE_JSON_OUTPUT_H_
#define NTK_TOOLS_EVALUATE_JSON_OUTPUT_H_

#include <optional>
#include <string>
#include <vector>

#include "core/numerics/metrics.h"
#include "proto/ntk/v1/ntk.pb.h"
#include "tools/evaluate/evaluation.h"

namespace ntk::eval {

// A JSON string literal of `s` (quotes, backslashes and control characters escaped).
std::string JsonString(const std::string& s);
// `v` with 17 significant digits, or null when not finite.
std::string JsonNumber(double v);

std::string ConfigJson(const NtkConfig& c);
std::string MetricsJson(const ClassificationMetrics& m);
// The client-side CV (--selection=client): every config's scores.
std::string CvJson(const std::vector<CvScore>& scores, const NtkConfig& chosen,
                   const std::optional<NtkConfig>& best_lambda0, int n, int folds);
// FitRequest.selection's report (ModelInfo.selection) of a run.
std::string SelectionJson(const v1::SelectionReport& r);
// One evaluated model: config, metrics, distribution, OOD AUROCs, selection.
std::string EvaluationJson(const std::string& dataset, const std::string& variant,
                           const Evaluation& e);

}  // namespace ntk::eval

#endif  // NTK_TOOLS_EVALUATE_JSON_OUTPUT_H_
