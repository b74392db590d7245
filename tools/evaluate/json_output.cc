// ntk/tools/evaluate/json_output.cc: see json_output.h.
#include "tools/evaluate/json_output.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace ntk::eval {

std::string JsonString(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (c == '\n') {
      o += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      o += absl::StrFormat("\\u%04x", c);
    } else {
      o += c;
    }
  }
  return o + "\"";
}
std::string JsonNumber(double v) { return std::isfinite(v) ? absl::StrFormat("%.17g", v) : "null"; }

std::string ConfigJson(const NtkConfig& c) {
  return absl::StrCat(
      "{\"activation\":", JsonString(c.activation == v1::ERF ? "erf" : "relu"),
      ",\"depth\":", c.depth, ",\"weight_variance\":", JsonNumber(c.weight_variance),
      ",\"bias_variance\":", JsonNumber(c.bias_variance), ",\"lambda\":", JsonNumber(c.lambda),
      ",\"label_smoothing\":", JsonNumber(c.label_smoothing), ",\"name\":", JsonString(c.Name()),
      "}");
}

std::string MetricsJson(const ClassificationMetrics& m) {
  std::vector<std::string> bins;
  for (const ReliabilityBin& b : m.reliability) {
    bins.push_back(absl::StrCat("{\"count\":", b.count,
                                ",\"confidence\":", JsonNumber(b.mean_confidence),
                                ",\"accuracy\":", JsonNumber(b.accuracy), "}"));
  }
  return absl::StrCat("{\"n\":", m.n, ",\"accuracy\":", JsonNumber(m.accuracy),
                      ",\"nll\":", JsonNumber(m.nll), ",\"brier\":", JsonNumber(m.brier),
                      ",\"ece\":", JsonNumber(m.ece), ",\"reliability\":[",
                      absl::StrJoin(bins, ","), "]}");
}

std::string CvJson(const std::vector<CvScore>& scores, const NtkConfig& chosen,
                   const std::optional<NtkConfig>& best_lambda0, int n, int folds) {
  std::vector<std::string> rows;
  for (const CvScore& s : scores) {
    rows.push_back(absl::StrCat(
        "{\"config\":", ConfigJson(s.config),
        ",\"val_nll\":", JsonNumber(s.error.empty() ? s.val_nll : NAN),
        ",\"val_accuracy\":", JsonNumber(s.error.empty() ? s.val_accuracy : NAN),
        ",\"seconds\":", JsonNumber(s.seconds), ",\"error\":", JsonString(s.error), "}"));
  }
  return absl::StrCat("{\"n\":", n, ",\"folds\":", folds, ",\"chosen\":", ConfigJson(chosen),
                      ",\"best_lambda0\":", best_lambda0 ? ConfigJson(*best_lambda0) : "null",
                      ",\"grid\":[", absl::StrJoin(rows, ",\n"), "]}");
}

std::string SelectionJson(const v1::SelectionReport& r) {
  std::vector<std::string> rows;
  for (const v1::SelectionRow& row : r.rows()) {
    rows.push_back(absl::StrCat("{\"config\":", ConfigJson(NtkConfig::FromSpec([&] {
                                  v1::ModelSpec s;
                                  *s.mutable_kernel() = row.kernel();
                                  *s.mutable_training() = row.training();
                                  return s;
                                }())),
                                ",\"mean_nll\":", JsonNumber(row.mean_nll()),
                                ",\"std_nll\":", JsonNumber(row.std_nll()),
                                ",\"mean_accuracy\":", JsonNumber(row.mean_accuracy()),
                                ",\"mean_ece\":", JsonNumber(row.mean_ece()), "}"));
  }
  return absl::StrCat("{\"folds\":", r.folds(), ",\"chosen\":", r.chosen(),
                      ",\"seconds\":", JsonNumber(r.seconds()), ",\"rows\":[",
                      absl::StrJoin(rows, ",\n"), "]}");
}

std::string EvaluationJson(const std::string& dataset, const std::string& variant,
                           const Evaluation& e) {
  std::string s = absl::StrCat(
      "{\"dataset\":", JsonString(dataset), ",\"method\":\"ntk\",\"variant\":", JsonString(variant),
      ",\"config\":", ConfigJson(e.config), ",\"n_train\":", e.n_train, ",\"n_test\":", e.n_test,
      ",\"num_classes\":", e.num_classes, ",\"fit_seconds\":", JsonNumber(e.fit_wall_seconds),
      ",\"fit_server_seconds\":", JsonNumber(e.fit_server_seconds),
      ",\"predict_seconds\":", JsonNumber(e.predict_wall_seconds),
      ",\"distribution_seconds\":", JsonNumber(e.distribution_wall_seconds),
      ",\"regime\":", JsonString(e.regime), ",\"jitter\":", JsonNumber(e.jitter),
      ",\"condition_estimate\":", JsonNumber(e.condition_estimate),
      ",\"train_accuracy\":", JsonNumber(e.train_accuracy),
      ",\"train_nll\":", JsonNumber(e.train_nll),
      ",\"fixed_point_residual\":", JsonNumber(e.fixed_point_residual),
      ",\"predict\":", MetricsJson(e.predict));
  if (e.selection.rows_size() > 0) {
    absl::StrAppend(&s, ",\"selection\":", SelectionJson(e.selection));
  }
  if (e.has_distribution) {
    absl::StrAppend(
        &s, ",\"distribution_method\":", JsonString(e.distribution_method),
        ",\"distribution_rows\":", e.distribution_rows,
        ",\"distribution\":", MetricsJson(e.distribution),
        ",\"predict_on_distribution_rows\":", MetricsJson(e.predict_on_distribution_rows));
  } else {
    absl::StrAppend(&s, ",\"distribution_error\":", JsonString(e.distribution_error));
  }
  if (!e.ood.empty()) {
    std::vector<std::string> a;
    for (const Evaluation::OodScore& o : e.ood)
      a.push_back(absl::StrCat(JsonString(o.name), ":", JsonNumber(o.auroc)));
    absl::StrAppend(&s, ",\"ood_auroc\":{", absl::StrJoin(a, ","), "}");
  }
  return s + "}";
}

}  // namespace ntk::eval
