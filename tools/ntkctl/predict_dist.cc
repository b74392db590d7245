// ntkctl predict-dist: the predictive distribution and uncertainty per row.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/client.h"
#include "tools/ntkctl/cli.h"
#include "tools/ntkctl/csv.h"
#include "tools/ntkctl/output.h"

// The flags only this file reads (the shared ones: tools/ntkctl/cli.h).
ABSL_FLAG(std::string, method, "",
          "exact | linearized | monte_carlo | laplace_posterior (unset: the server's default)");
ABSL_FLAG(int32_t, num_samples, 0, "Monte Carlo samples (0: the server's default)");
ABSL_FLAG(uint64_t, seed, 0, "random seed (same request and seed: same answer)");
ABSL_FLAG(int32_t, top, 0, "predict-dist: show only the N points of largest mutual information");

namespace ntkctl {
namespace {

bool ParseMethod(ntk::v1::DistributionMethod* m, int* rc) {
  const std::string s = absl::GetFlag(FLAGS_method);
  if (s.empty() || s == "default") {
    *m = ntk::v1::METHOD_UNSPECIFIED;
    return true;
  }
  int v = 0;
  if (!ParseChoice("method", s,
                   {{"exact", ntk::v1::EXACT},
                    {"linearized", ntk::v1::LINEARIZED},
                    {"monte_carlo", ntk::v1::MONTE_CARLO},
                    {"laplace_posterior", ntk::v1::LAPLACE_POSTERIOR}},
                   &v, rc)) {
    return false;
  }
  *m = static_cast<ntk::v1::DistributionMethod>(v);
  return true;
}

std::string MethodText(ntk::v1::DistributionMethod m) {
  return absl::AsciiStrToLower(ntk::v1::DistributionMethod_Name(m));
}

int RunPredictDist() {
  int rc = kExitOk;
  if (!CheckRowCommandFlags(&rc)) return rc;
  ntk::v1::DistributionMethod method;
  if (!ParseMethod(&method, &rc)) return rc;
  if (absl::GetFlag(FLAGS_num_samples) < 0) {
    return Usage("--num_samples: must be >= 0");
  }
  if (absl::GetFlag(FLAGS_top) < 0) return Usage("--top: must be >= 0");
  ntk::v1::ModelInfo info;
  ntkctl::CsvData data;
  std::unique_ptr<ntk::Client> client = ConnectModelAndData(&info, &data, &rc);
  if (!client) return rc;
  absl::StatusOr<ntk::v1::PredictDistributionResponse> r =
      client->PredictDistribution(absl::GetFlag(FLAGS_model), data.features,
                                  method, absl::GetFlag(FLAGS_num_samples),
                                  absl::GetFlag(FLAGS_seed));
  if (!r.ok()) return RpcError("predict-dist", r.status());
  if (r->points_size() != data.features.rows()) {
    return RpcError("predict-dist",
                    absl::InternalError(absl::StrCat(
                        "the server returned ", r->points_size(),
                        " points for ", data.features.rows(), " rows")));
  }
  const bool has_truth = !data.labels.empty();
  const std::string format = absl::GetFlag(FLAGS_format);
  const bool verbose = absl::GetFlag(FLAGS_verbose);
  const std::string used = MethodText(r->method());

  // Order: file order, or the --top N points by mutual information.
  std::vector<int> order(r->points_size());
  std::iota(order.begin(), order.end(), 0);
  const int top = absl::GetFlag(FLAGS_top);
  if (top > 0) {
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return r->points(a).mutual_information() >
             r->points(b).mutual_information();
    });
    if (static_cast<int>(order.size()) > top) order.resize(top);
  }

  std::ostream& out = std::cout;
  std::vector<int> predicted;
  for (const auto& pt : r->points()) predicted.push_back(pt.label());
  auto prob_std = [](const ntk::v1::PointDistribution& pt) {
    const int c = pt.probability_mean_size();
    std::vector<double> s(c, 0.0);
    if (pt.probability_covariance_size() == c * c) {
      for (int k = 0; k < c; ++k) {
        s[k] = std::sqrt(std::max(0.0, pt.probability_covariance(k * c + k)));
      }
    }
    return s;
  };
  auto max_prob = [](const ntk::v1::PointDistribution& pt) {
    double m = 0;
    for (double v : pt.probability_mean()) m = std::max(m, v);
    return m;
  };
  if (format == "table") {
    out << "# method " << used << ", " << r->points_size()
        << (r->points_size() == 1 ? " point" : " points")
        << (top > 0 ? absl::StrCat(", the ", order.size(),
                                   " of largest mutual information")
                    : "")
        << "\n";
    out << absl::StrFormat("%6s %-12s %8s %9s %9s %9s", "ROW", "LABEL",
                           "P_MAX", "H[E p]", "E[H p]", "MI");
    if (has_truth) out << " TRUE";
    out << "\n";
  } else if (format == "csv") {
    out << "row,label,max_probability,predictive_entropy,expected_entropy,"
           "mutual_information";
    const int c = r->points(0).probability_mean_size();
    for (int k = 0; k < c; ++k) out << ",p_" << k;
    for (int k = 0; k < c; ++k) out << ",std_" << k;
    if (has_truth) out << ",true_label";
    out << "\n";
  }
  for (int i : order) {
    const ntk::v1::PointDistribution& pt = r->points(i);
    const std::vector<double> sd = prob_std(pt);
    if (format == "table") {
      out << absl::StrFormat("%6d %-12s %8.4f %9.4f %9.4f %9.4f",
                             data.row_index[i],
                             ntkctl::LabelText(info, pt.label()), max_prob(pt),
                             pt.predictive_entropy(), pt.expected_entropy(),
                             pt.mutual_information());
      if (has_truth) {
        out << absl::StrFormat(" %s%s",
                               ntkctl::LabelText(info, data.labels[i]),
                               data.labels[i] == pt.label() ? "" : " *");
      }
      out << "\n";
      if (verbose) {
        std::vector<std::string> parts;
        for (int k = 0; k < pt.probability_mean_size(); ++k) {
          parts.push_back(absl::StrFormat("%s: %.4f+-%.4f",
                                          ntkctl::LabelText(info, k),
                                          pt.probability_mean(k), sd[k]));
        }
        out << "         p = " << absl::StrJoin(parts, "  ") << "\n";
      }
    } else if (format == "csv") {
      out << data.row_index[i] << "," << pt.label() << ","
          << ntkctl::JsonNumber(max_prob(pt)) << ","
          << ntkctl::JsonNumber(pt.predictive_entropy()) << ","
          << ntkctl::JsonNumber(pt.expected_entropy()) << ","
          << ntkctl::JsonNumber(pt.mutual_information());
      for (double v : pt.probability_mean()) out << "," << ntkctl::JsonNumber(v);
      for (double v : sd) out << "," << ntkctl::JsonNumber(v);
      if (has_truth) out << "," << data.labels[i];
      out << "\n";
    } else {
      out << "{\"row\":" << data.row_index[i] << ",\"label\":" << pt.label()
          << ",\"label_name\":"
          << ntkctl::JsonString(ntkctl::LabelText(info, pt.label()))
          << ",\"max_probability\":" << ntkctl::JsonNumber(max_prob(pt))
          << ",\"predictive_entropy\":"
          << ntkctl::JsonNumber(pt.predictive_entropy())
          << ",\"expected_entropy\":"
          << ntkctl::JsonNumber(pt.expected_entropy())
          << ",\"mutual_information\":"
          << ntkctl::JsonNumber(pt.mutual_information())
          << ",\"probability_mean\":" << ntkctl::JsonArray(pt.probability_mean())
          << ",\"probability_std\":" << ntkctl::JsonArray(sd)
          << ",\"probability_covariance\":"
          << ntkctl::JsonArray(pt.probability_covariance())
          << ",\"logit_mean\":" << ntkctl::JsonArray(pt.logit_mean())
          << ",\"logit_covariance\":"
          << ntkctl::JsonArray(pt.logit_covariance())
          << ",\"method\":" << ntkctl::JsonString(used);
      if (has_truth) out << ",\"true_label\":" << data.labels[i];
      out << "}\n";
    }
  }
  if (format != "table") {
    std::cerr << "# method " << used << ", " << r->points_size()
              << " points\n";
  }
  ReportAccuracy(data.labels, predicted,
                 format == "table" ? std::cout : std::cerr);
  return kExitOk;
}

}  // namespace

Command PredictDistCommand() {
  return {"predict-dist", "predictive distribution and uncertainty per row",
       std::string(R"(Usage: ntkctl predict-dist --model=ID --data=FILE [flags]

The distribution of the infinite ensemble's prediction per row: the label,
the largest mean probability, the predictive entropy H[E p], the expected
entropy E[H p] and their difference, the mutual information (MI, the
epistemic part of the uncertainty).
Example:
  ntkctl predict-dist --model=digits --data=digits.csv.gz --rows=1500: --top=5

  --method=M             exact | linearized | monte_carlo | laplace_posterior
                         (unset: exact where it exists, else linearized)
  --num_samples=N        Monte Carlo samples (0: the server's default)
  --seed=S               random seed (same request and seed: same answer)
  --top=N                only the N points of largest MI, largest first
  --format=F             table | json (one object per line, all fields:
                         row, label, label_name, max_probability,
                         predictive_entropy, expected_entropy,
                         mutual_information, probability_mean, probability_std,
                         probability_covariance, logit_mean, logit_covariance,
                         method, true_label when known) | csv
  --verbose              table: per-class probability mean +- std

)") + kDataHelp,
       {"model", "data", "labels", "header", "rows", "label_column", "format", "verbose",
        "method", "num_samples", "seed", "top"},
       RunPredictDist};
}

}  // namespace ntkctl
