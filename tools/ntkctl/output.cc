#include "tools/ntkctl/output.h"

#include <cmath>
#include <cstdio>

#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace ntkctl {

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.17g", v);
}

std::string JsonString(absl::string_view s) {
  // nlohmann's escaping (RFC 8259); invalid UTF-8 becomes U+FFFD, never a throw.
  return nlohmann::json(std::string(s)).dump(-1, ' ', false,
                                              nlohmann::json::error_handler_t::replace);
}

std::string JsonArray(const double* v, int n) {
  std::string out = "[";
  for (int i = 0; i < n; ++i) {
    if (i > 0) out += ",";
    out += JsonNumber(v[i]);
  }
  out += "]";
  return out;
}

std::string LabelText(const ntk::v1::ModelInfo& info, int label) {
  const auto& names = info.spec().class_names();
  if (label >= 0 && label < names.size()) return names[label];
  return absl::StrCat(label);
}

namespace {

const char* ActivationText(ntk::v1::Activation a) {
  switch (a) {
    case ntk::v1::RELU: return "relu";
    case ntk::v1::ERF: return "erf";
    default: return "relu (default)";
  }
}

const char* LossText(ntk::v1::Loss l) {
  switch (l) {
    case ntk::v1::CROSS_ENTROPY: return "cross_entropy";
    case ntk::v1::SQUARED: return "squared";
    default: return "cross_entropy (default)";
  }
}

std::string TimeText(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(unix_ms),
                          absl::UTCTimeZone());
}

}  // namespace

std::string ModelSummary(const ntk::v1::ModelInfo& info) {
  const auto& spec = info.spec();
  const auto& st = info.stats();
  std::string out;
  auto line = [&out](absl::string_view k, const std::string& v) {
    absl::StrAppend(&out, absl::StrFormat("%-22s %s\n", k, v));
  };
  line("model_id", info.model_id());
  line("state", ntk::v1::ModelState_Name(info.state()));
  if (info.state() == ntk::v1::FITTING) {
    line("progress", absl::StrFormat("%.0f%% %s", 100 * info.progress().fraction(),
                                     info.progress().phase()));
  }
  if (info.state() == ntk::v1::FAILED) line("error", info.error());
  line("created", TimeText(info.created_unix_ms()));
  line("num_train", absl::StrCat(info.num_train()));
  line("num_features", absl::StrCat(info.num_features()));
  line("num_classes", absl::StrCat(spec.num_classes()));
  if (spec.class_names_size() > 0) {
    line("class_names", absl::StrJoin(spec.class_names(), ","));
  }
  line("activation", ActivationText(spec.kernel().activation()));
  line("depth", absl::StrCat(spec.kernel().depth()));
  line("weight_variance", absl::StrCat(spec.kernel().weight_variance()));
  line("bias_variance", absl::StrCat(spec.kernel().bias_variance()));
  line("loss", LossText(spec.training().loss()));
  line("regularization", spec.training().has_regularization()
                             ? absl::StrCat(spec.training().regularization())
                             : "-");
  line("label_smoothing", spec.training().has_label_smoothing()
                              ? absl::StrCat(spec.training().label_smoothing())
                              : "-");
  line("standardize", spec.preprocessing().standardize() ? "true" : "false");
  line("normalize_rows",
       spec.preprocessing().normalize_rows() ? "true" : "false");
  if (spec.approximation().kind() == ntk::v1::Approximation::NYSTROM) {
    line("approximation", absl::StrFormat("nystrom m=%d seed=%d",
                                          spec.approximation().num_centers(),
                                          spec.approximation().seed()));
  }
  line("regime", st.regime().empty() ? "-" : st.regime());
  line("fit_seconds", absl::StrFormat("%.3f", st.fit_seconds()));
  line("solver_iterations", absl::StrCat(st.solver_iterations()));
  line("fixed_point_residual", absl::StrFormat("%.3g", st.fixed_point_residual()));
  line("jitter", absl::StrFormat("%.3g", st.jitter()));
  line("condition_estimate", absl::StrFormat("%.3g", st.condition_estimate()));
  line("train_accuracy", absl::StrFormat("%.4f", st.train_accuracy()));
  line("train_nll", absl::StrFormat("%.4f", st.train_nll()));
  if (info.selection().rows_size() > 0) absl::StrAppend(&out, SelectionTable(info.selection()));
  return out;
}

std::string SelectionTable(const ntk::v1::SelectionReport& r) {
  const bool evidence = r.criterion() == ntk::v1::LAPLACE_EVIDENCE;
  const std::string how =
      evidence ? absl::StrCat("Laplace evidence on all rows (greatest chosen)",
                              r.folds() >= 2 ? absl::StrFormat("; %d-fold CV beside it", r.folds())
                                             : std::string())
               : absl::StrFormat("%d-fold cross-validation (held-out NLL of the mean predictor)",
                                 r.folds());
  std::string out = absl::StrFormat(
      "\nselection: %d candidates, %s, %.3f s; * = chosen\n%4s %5s %9s %9s %9s %21s %8s %8s%s\n",
      r.rows_size(), how, r.seconds(), "#", "depth", "bias_var", "lambda", "eps",
      "nll mean +- std", "accuracy", "ece", evidence ? absl::StrFormat(" %13s", "log_evidence") : "");
  for (int i = 0; i < r.rows_size(); ++i) {
    const ntk::v1::SelectionRow& row = r.rows(i);
    // Without folds the CV columns were not computed: "-".
    const std::string cv =
        r.folds() >= 2 ? absl::StrFormat("%10.5f +- %7.5f %8.4f %8.4f", row.mean_nll(),
                                         row.std_nll(), row.mean_accuracy(), row.mean_ece())
                       : absl::StrFormat("%21s %8s %8s", "-", "-", "-");
    absl::StrAppend(
        &out, absl::StrFormat("%3d%s %5d %9.4g %9.4g %9.4g %s", i,
                              static_cast<uint32_t>(i) == r.chosen() ? "*" : " ",
                              row.kernel().depth(), row.kernel().bias_variance(),
                              row.training().regularization(), row.training().label_smoothing(),
                              cv),
        evidence ? absl::StrFormat(" %13.6g", row.log_evidence()) : "", "\n");
  }
  return out;
}

std::string ModelTableHeader() {
  return absl::StrFormat("%-24s %9s %8s %7s %6s %9s %9s  %s\n", "MODEL_ID",
                         "NUM_TRAIN", "FEATURES", "CLASSES", "REGIME",
                         "TRAIN_ACC", "FIT_SEC", "CREATED");
}

std::string ModelTableRow(const ntk::v1::ModelInfo& info) {
  return absl::StrFormat(
      "%-24s %9d %8d %7d %6s %9.4f %9.3f  %s\n", info.model_id(),
      info.num_train(), info.num_features(), info.spec().num_classes(),
      info.stats().regime().empty() ? "-" : info.stats().regime(),
      info.stats().train_accuracy(), info.stats().fit_seconds(),
      TimeText(info.created_unix_ms()));
}

std::string ModelJson(const ntk::v1::ModelInfo& info) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = false;
  opts.always_print_primitive_fields = true;
  opts.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(info, &out, opts).ok()) {
    return "{}";
  }
  return out;
}

}  // namespace ntkctl
