// ntkctl predict: class probabilities per data row (table, json or csv).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/client.h"
#include "tools/ntkctl/cli.h"
#include "tools/ntkctl/csv.h"
#include "tools/ntkctl/output.h"

namespace ntkctl {
namespace {

int RunPredict() {
  int rc = kExitOk;
  if (!CheckRowCommandFlags(&rc)) return rc;
  ntk::v1::ModelInfo info;
  ntkctl::CsvData data;
  std::unique_ptr<ntk::Client> client = ConnectModelAndData(&info, &data, &rc);
  if (!client) return rc;
  absl::StatusOr<ntk::Client::PredictResult> r =
      client->Predict(absl::GetFlag(FLAGS_model), data.features);
  if (!r.ok()) return RpcError("predict", r.status());
  const Eigen::MatrixXd& p = r->probabilities;
  const int c = static_cast<int>(p.cols());
  const bool has_truth = !data.labels.empty();
  const std::string format = absl::GetFlag(FLAGS_format);
  const bool verbose = absl::GetFlag(FLAGS_verbose);
  std::ostream& out = std::cout;
  if (format == "table") {
    out << absl::StrFormat("%6s %-12s %8s", "ROW", "LABEL", "P_MAX");
    if (verbose) {
      for (int k = 0; k < c; ++k) {
        out << absl::StrFormat(" %8s", "p_" + ntkctl::LabelText(info, k));
      }
    }
    if (has_truth) out << " TRUE";
    out << "\n";
  } else if (format == "csv") {
    out << "row,label";
    for (int k = 0; k < c; ++k) out << ",p_" << k;
    if (has_truth) out << ",true_label";
    out << "\n";
  }
  for (Eigen::Index i = 0; i < p.rows(); ++i) {
    const int label = r->labels[i];
    if (format == "table") {
      out << absl::StrFormat("%6d %-12s %8.4f", data.row_index[i],
                             ntkctl::LabelText(info, label), p.row(i).maxCoeff());
      if (verbose) {
        for (int k = 0; k < c; ++k) out << absl::StrFormat(" %8.4f", p(i, k));
      }
      if (has_truth) {
        out << absl::StrFormat(" %s%s",
                               ntkctl::LabelText(info, data.labels[i]),
                               data.labels[i] == label ? "" : " *");
      }
      out << "\n";
    } else if (format == "csv") {
      out << data.row_index[i] << "," << label;
      for (int k = 0; k < c; ++k) out << "," << ntkctl::JsonNumber(p(i, k));
      if (has_truth) out << "," << data.labels[i];
      out << "\n";
    } else {
      std::vector<double> pi(c, 0.0), li(c, 0.0);
      for (int k = 0; k < c; ++k) {
        pi[k] = p(i, k);
        li[k] = r->logits(i, k);
      }
      out << "{\"row\":" << data.row_index[i] << ",\"label\":" << label
          << ",\"label_name\":" << ntkctl::JsonString(ntkctl::LabelText(info, label))
          << ",\"probabilities\":" << ntkctl::JsonArray(pi)
          << ",\"logits\":" << ntkctl::JsonArray(li);
      if (has_truth) out << ",\"true_label\":" << data.labels[i];
      out << "}\n";
    }
  }
  ReportAccuracy(data.labels, r->labels, format == "table" ? std::cout : std::cerr);
  return kExitOk;
}

}  // namespace

Command PredictCommand() {
  return {"predict", "class probabilities for the rows of a CSV or IDX file",
       std::string(R"(Usage: ntkctl predict --model=ID --data=FILE [flags]

Prints the predicted label and its probability per row; when the rows have
labels (a CSV label column, auto-detected: one column more than the model's
features; IDX images: --labels=FILE), also the true label (marked * when
wrong) and the accuracy.
Example:
  ntkctl predict --model=digits --data=digits.csv.gz --rows=1500:

  --format=F             table | json (one object per line) | csv
  --verbose              table: all class probabilities

)") + kDataHelp,
       {"model", "data", "labels", "header", "rows", "label_column", "format",
        "verbose"},
       RunPredict};
}

}  // namespace ntkctl
