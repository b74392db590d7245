// ntkctl: command-line client for ntk-serve (see docs/cli.md).
//
//   ntkctl [global flags] <command> [flags]
//
// Commands: fit, predict, predict-dist, list, get, delete, health, help.
// Exit codes: 0 ok, 1 the server (or the connection) returned an error,
// 2 usage or input error (bad flag, unreadable or malformed data file).
//
// Flags are Abseil flags, but ntkctl parses the command line itself so that
// every command accepts only its own flags, `--help` works per command, and
// every usage error exits with 2 (absl::ParseCommandLine exits with 1).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/client.h"
#include "tools/ntkctl/csv.h"
#include "tools/ntkctl/output.h"

// ---- Global flags ---------------------------------------------------------------
ABSL_FLAG(std::string, server, "127.0.0.1:50051",
          "host:port of the ntk server (default: $NTK_SERVER, else 127.0.0.1:50051)");
ABSL_FLAG(std::string, token_file, "",
          "file holding the bearer token the server requires");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM file of the CA that signed the server's certificate (implies TLS)");
ABSL_FLAG(bool, tls, false, "use TLS with the system's root certificates");
ABSL_FLAG(double, deadline_seconds, 0,
          "per-call deadline; 0: 600 for fit/predict/predict-dist, 10 otherwise");

// ---- Command flags --------------------------------------------------------------
ABSL_FLAG(std::string, model, "", "model id");
ABSL_FLAG(std::string, data, "", "CSV file (.csv or .csv.gz): features, then a label");
ABSL_FLAG(std::string, targets, "", "CSV of soft targets, one row of C values per data row");
ABSL_FLAG(bool, header, false, "skip the first line of the data file");
ABSL_FLAG(std::string, rows, "", "data rows A:B (0-based, B exclusive; A or B may be omitted)");
ABSL_FLAG(std::string, label_column, "auto", "last | first | none | auto");
ABSL_FLAG(std::string, activation, "relu", "relu | erf");
ABSL_FLAG(int32_t, depth, 1, "hidden layers L >= 1");
ABSL_FLAG(double, weight_variance, 2.0, "sigma_w^2 > 0");
ABSL_FLAG(double, bias_variance, 0.0, "sigma_b^2 >= 0");
ABSL_FLAG(std::string, loss, "cross_entropy", "cross_entropy | squared");
ABSL_FLAG(double, regularization, 0.0, "lambda >= 0 (unset: the server's default)");
ABSL_FLAG(double, label_smoothing, 0.0, "eps in [0, 1) (unset: the server's default)");
ABSL_FLAG(bool, standardize, false, "z-score each feature with training statistics");
ABSL_FLAG(bool, normalize_rows, false, "scale each row to L2 norm sqrt(d)");
ABSL_FLAG(int32_t, num_classes, 0, "number of classes (0: 1 + the largest label)");
ABSL_FLAG(std::string, class_names, "", "comma-separated class names");
ABSL_FLAG(bool, replace, false, "overwrite an existing model with this id");
ABSL_FLAG(std::string, format, "table", "table | json | csv");
ABSL_FLAG(bool, verbose, false, "more detail in tables");
ABSL_FLAG(std::string, method, "",
          "exact | linearized | monte_carlo | laplace_posterior (unset: the server's default)");
ABSL_FLAG(int32_t, num_samples, 0, "Monte Carlo samples (0: the server's default)");
ABSL_FLAG(uint64_t, seed, 0, "random seed (same request and seed: same answer)");
ABSL_FLAG(int32_t, top, 0, "predict-dist: show only the N points of largest mutual information");
ABSL_FLAG(std::string, service, "", "health: the service name to check (empty: the server)");

namespace {

constexpr int kExitOk = 0;
constexpr int kExitRpc = 1;
constexpr int kExitUsage = 2;

// Flags given explicitly on the command line.
std::set<std::string>& ExplicitFlags() {
  static std::set<std::string> s;
  return s;
}
bool IsSet(const std::string& name) { return ExplicitFlags().count(name) > 0; }

int Usage(const std::string& msg) {
  std::cerr << "ntkctl: " << msg
            << (absl::StrContains(msg, "--help") ? "\n" : "\n(see ntkctl --help)\n");
  return kExitUsage;
}

int InputError(const absl::Status& s) {
  std::cerr << "ntkctl: " << s.message() << "\n";
  return kExitUsage;
}

int RpcError(const std::string& what, const absl::Status& s) {
  std::cerr << "ntkctl: " << what << " failed: "
            << absl::StatusCodeToString(s.code()) << ": " << s.message()
            << "\n";
  return kExitRpc;
}

// ---- Help -----------------------------------------------------------------------

const char kGlobalHelp[] = R"(Global flags (before or after the command):
  --server=HOST:PORT     the server (default: $NTK_SERVER, else 127.0.0.1:50051)
  --token_file=FILE      bearer token for a server started with --auth_token_file
  --tls_ca=FILE          PEM CA certificate of the server (implies TLS)
  --tls                  TLS with the system's root certificates
  --deadline_seconds=S   per-call deadline (0: 600 for fit/predict*, 10 otherwise)
)";

const char kDataHelp[] = R"(Data files (--data): CSV, plain or gzip (.csv.gz), one row per line,
numeric features and an integer class label (by default the last column).
  --header               skip the first line
  --rows=A:B             use data rows A..B-1 (0-based, header not counted;
                         "1500:" = from 1500 on, ":300" = the first 300)
  --label_column=WHERE   last | first | none | auto
)";

struct Command {
  std::string name;
  std::string summary;
  std::string help;                // usage and flags
  std::vector<std::string> flags;  // accepted besides the global ones
  std::function<int()> run;
};

const std::vector<std::string> kGlobalFlags = {"server", "token_file", "tls_ca",
                                               "tls", "deadline_seconds"};

std::vector<Command>& Commands();

void PrintMainHelp(std::ostream& os) {
  os << "ntkctl: command-line client for ntk-serve (infinite-width NTK "
        "classifiers).\n\n"
        "Usage: ntkctl [global flags] <command> [flags]\n\nCommands:\n";
  for (const Command& c : Commands()) {
    os << absl::StrFormat("  %-14s %s\n", c.name, c.summary);
  }
  os << "\n" << kGlobalHelp
     << "\n`ntkctl <command> --help` shows a command's flags.\n"
        "Exit codes: 0 ok, 1 RPC error (code and message printed), 2 usage or "
        "input error.\n";
}

const Command* FindCommand(const std::string& name) {
  for (const Command& c : Commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

void PrintCommandHelp(const Command& c, std::ostream& os) {
  os << "ntkctl " << c.name << ": " << c.summary << "\n\n" << c.help << "\n"
     << kGlobalHelp;
}

// ---- Connection -----------------------------------------------------------------

absl::StatusOr<std::string> ReadWholeFile(const std::string& flag,
                                          const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": cannot read '", path, "'"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Connects; on failure prints the error and sets *exit_code.
std::unique_ptr<ntk::Client> Connect(double default_deadline_s,
                                     int* exit_code) {
  ntk::ClientOptions o;
  o.target = absl::GetFlag(FLAGS_server);
  if (!IsSet("server")) {
    if (const char* env = std::getenv("NTK_SERVER"); env != nullptr && *env) {
      o.target = env;
    }
  }
  if (!absl::GetFlag(FLAGS_tls_ca).empty()) {
    absl::StatusOr<std::string> pem =
        ReadWholeFile("tls_ca", absl::GetFlag(FLAGS_tls_ca));
    if (!pem.ok()) {
      *exit_code = InputError(pem.status());
      return nullptr;
    }
    o.use_tls = true;
    o.root_cert_pem = *pem;
  }
  if (absl::GetFlag(FLAGS_tls)) o.use_tls = true;
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    absl::StatusOr<std::string> tok =
        ReadWholeFile("token_file", absl::GetFlag(FLAGS_token_file));
    if (!tok.ok()) {
      *exit_code = InputError(tok.status());
      return nullptr;
    }
    o.auth_token = std::string(absl::StripAsciiWhitespace(*tok));
    if (o.auth_token.empty()) {
      *exit_code = Usage("--token_file: '" + absl::GetFlag(FLAGS_token_file) +
                         "' is empty");
      return nullptr;
    }
  }
  double deadline = absl::GetFlag(FLAGS_deadline_seconds);
  if (deadline < 0) {
    *exit_code = Usage("--deadline_seconds: must be >= 0");
    return nullptr;
  }
  if (deadline == 0) deadline = default_deadline_s;
  o.default_deadline = std::chrono::milliseconds(
      static_cast<int64_t>(std::ceil(deadline * 1000.0)));
  absl::StatusOr<std::unique_ptr<ntk::Client>> c = ntk::Client::Connect(o);
  if (!c.ok()) {
    *exit_code = RpcError("connect to " + o.target, c.status());
    return nullptr;
  }
  return std::move(*c);
}

constexpr double kLongDeadline = 600;
constexpr double kShortDeadline = 10;

// ---- Shared pieces --------------------------------------------------------------

// Reads --data with --header/--rows/--label_column. expected_features < 0
// when unknown. Returns false (with *exit_code set) on error.
bool LoadData(int expected_features, ntkctl::LabelColumn auto_means,
              ntkctl::CsvData* out, int* exit_code) {
  const std::string path = absl::GetFlag(FLAGS_data);
  if (path.empty()) {
    *exit_code = Usage("--data=FILE is required");
    return false;
  }
  absl::StatusOr<ntkctl::RowRange> rows =
      ntkctl::ParseRowRange(absl::GetFlag(FLAGS_rows));
  if (!rows.ok()) {
    *exit_code = Usage(absl::StrCat("--rows: ", rows.status().message()));
    return false;
  }
  absl::StatusOr<ntkctl::LabelColumn> lc =
      ntkctl::ParseLabelColumn(absl::GetFlag(FLAGS_label_column));
  if (!lc.ok()) {
    *exit_code =
        Usage(absl::StrCat("--label_column: ", lc.status().message()));
    return false;
  }
  ntkctl::CsvOptions o;
  o.header = absl::GetFlag(FLAGS_header);
  o.rows = *rows;
  o.label_column = *lc == ntkctl::LabelColumn::kAuto && expected_features < 0
                       ? auto_means
                       : *lc;
  o.expected_features = expected_features;
  absl::StatusOr<ntkctl::CsvData> d = ntkctl::ReadDataCsv(path, o);
  if (!d.ok()) {
    *exit_code = InputError(d.status());
    return false;
  }
  *out = std::move(*d);
  return true;
}

bool CheckFormat(std::initializer_list<const char*> allowed, int* exit_code) {
  const std::string f = absl::GetFlag(FLAGS_format);
  for (const char* a : allowed) {
    if (f == a) return true;
  }
  std::vector<std::string> names(allowed.begin(), allowed.end());
  *exit_code = Usage(absl::StrCat("--format: expected ",
                                  absl::StrJoin(names, " | "), ", got '", f,
                                  "'"));
  return false;
}

bool RequireModel(int* exit_code) {
  if (absl::GetFlag(FLAGS_model).empty()) {
    *exit_code = Usage("--model=ID is required");
    return false;
  }
  return true;
}

// Prints "accuracy A (k/n)" when the data had labels.
void ReportAccuracy(const std::vector<int>& truth,
                    const std::vector<int>& predicted, std::ostream& os) {
  if (truth.empty() || truth.size() != predicted.size()) return;
  size_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) correct += truth[i] == predicted[i];
  os << absl::StrFormat("accuracy %.4f (%d/%d)\n",
                        static_cast<double>(correct) / truth.size(), correct,
                        truth.size());
}

// ---- fit ------------------------------------------------------------------------

int RunFit() {
  int rc = kExitOk;
  if (!CheckFormat({"table", "json"}, &rc)) return rc;
  ntk::v1::FitRequest req;
  req.set_model_id(absl::GetFlag(FLAGS_model));
  req.set_replace(absl::GetFlag(FLAGS_replace));
  ntk::v1::ModelSpec* spec = req.mutable_spec();

  const std::string act = absl::GetFlag(FLAGS_activation);
  if (act == "relu") {
    spec->mutable_kernel()->set_activation(ntk::v1::RELU);
  } else if (act == "erf") {
    spec->mutable_kernel()->set_activation(ntk::v1::ERF);
  } else {
    return Usage("--activation: expected relu or erf, got '" + act + "'");
  }
  if (absl::GetFlag(FLAGS_depth) < 1) {
    return Usage(absl::StrCat("--depth: must be >= 1, got ",
                              absl::GetFlag(FLAGS_depth)));
  }
  spec->mutable_kernel()->set_depth(absl::GetFlag(FLAGS_depth));
  // The wire treats weight_variance 0 as "default 2.0"; a user asking for 0
  // explicitly gets the server's error rather than a silent default.
  if (absl::GetFlag(FLAGS_weight_variance) <= 0) {
    return Usage(absl::StrCat("--weight_variance: must be > 0, got ",
                              absl::GetFlag(FLAGS_weight_variance)));
  }
  spec->mutable_kernel()->set_weight_variance(
      absl::GetFlag(FLAGS_weight_variance));
  spec->mutable_kernel()->set_bias_variance(absl::GetFlag(FLAGS_bias_variance));

  const std::string loss = absl::GetFlag(FLAGS_loss);
  if (loss == "cross_entropy") {
    spec->mutable_training()->set_loss(ntk::v1::CROSS_ENTROPY);
  } else if (loss == "squared") {
    spec->mutable_training()->set_loss(ntk::v1::SQUARED);
  } else {
    return Usage("--loss: expected cross_entropy or squared, got '" + loss +
                 "'");
  }
  if (IsSet("regularization")) {
    spec->mutable_training()->set_regularization(
        absl::GetFlag(FLAGS_regularization));
  }
  if (IsSet("label_smoothing")) {
    spec->mutable_training()->set_label_smoothing(
        absl::GetFlag(FLAGS_label_smoothing));
  }
  spec->mutable_preprocessing()->set_standardize(
      absl::GetFlag(FLAGS_standardize));
  spec->mutable_preprocessing()->set_normalize_rows(
      absl::GetFlag(FLAGS_normalize_rows));
  if (absl::GetFlag(FLAGS_num_classes) < 0) {
    return Usage("--num_classes: must be >= 0");
  }
  spec->set_num_classes(absl::GetFlag(FLAGS_num_classes));
  if (!absl::GetFlag(FLAGS_class_names).empty()) {
    for (absl::string_view n :
         absl::StrSplit(absl::GetFlag(FLAGS_class_names), ',')) {
      spec->add_class_names(std::string(absl::StripAsciiWhitespace(n)));
    }
  }

  const bool soft = !absl::GetFlag(FLAGS_targets).empty();
  ntkctl::CsvData data;
  if (!LoadData(-1,
                soft ? ntkctl::LabelColumn::kNone : ntkctl::LabelColumn::kLast,
                &data, &rc)) {
    return rc;
  }
  *req.mutable_features() = ntk::Client::ToProto(data.features);
  if (soft) {
    absl::StatusOr<ntkctl::RowRange> rows =
        ntkctl::ParseRowRange(absl::GetFlag(FLAGS_rows));
    absl::StatusOr<Eigen::MatrixXd> t = ntkctl::ReadMatrixCsv(
        absl::GetFlag(FLAGS_targets), /*header=*/false, *rows);
    if (!t.ok()) return InputError(t.status());
    if (t->rows() != data.features.rows()) {
      return InputError(absl::InvalidArgumentError(absl::StrCat(
          absl::GetFlag(FLAGS_targets), ": has ", t->rows(),
          " rows in the selected range but ", absl::GetFlag(FLAGS_data),
          " has ", data.features.rows())));
    }
    *req.mutable_targets() = ntk::Client::ToProto(*t);
  } else {
    if (data.labels.empty()) {
      return Usage(
          "fit needs labels: a label column (--label_column=last|first) or "
          "--targets=FILE");
    }
    for (int l : data.labels) req.add_labels(l);
  }

  std::unique_ptr<ntk::Client> client = Connect(kLongDeadline, &rc);
  if (!client) return rc;
  absl::StatusOr<ntk::v1::ModelInfo> info = client->Fit(req);
  if (!info.ok()) return RpcError("fit", info.status());
  if (absl::GetFlag(FLAGS_format) == "json") {
    std::cout << ntkctl::ModelJson(*info) << "\n";
  } else {
    std::cout << ntkctl::ModelSummary(*info);
  }
  return kExitOk;
}

// ---- predict --------------------------------------------------------------------

// Fetches the model (for its feature count and class names) and reads --data.
bool ModelAndData(ntk::Client* client, ntk::v1::ModelInfo* info,
                  ntkctl::CsvData* data, int* rc) {
  absl::StatusOr<ntk::v1::ModelInfo> got =
      client->GetModel(absl::GetFlag(FLAGS_model));
  if (!got.ok()) {
    *rc = RpcError("get model '" + absl::GetFlag(FLAGS_model) + "'",
                   got.status());
    return false;
  }
  *info = *got;
  return LoadData(static_cast<int>(info->num_features()),
                  ntkctl::LabelColumn::kAuto, data, rc);
}

int RunPredict() {
  int rc = kExitOk;
  if (!CheckFormat({"table", "json", "csv"}, &rc)) return rc;
  if (!RequireModel(&rc)) return rc;
  if (absl::GetFlag(FLAGS_data).empty()) return Usage("--data=FILE is required");
  std::unique_ptr<ntk::Client> client = Connect(kLongDeadline, &rc);
  if (!client) return rc;
  ntk::v1::ModelInfo info;
  ntkctl::CsvData data;
  if (!ModelAndData(client.get(), &info, &data, &rc)) return rc;
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

// ---- predict-dist ---------------------------------------------------------------

bool ParseMethod(ntk::v1::DistributionMethod* m, int* rc) {
  const std::string s = absl::GetFlag(FLAGS_method);
  if (s.empty() || s == "default") {
    *m = ntk::v1::METHOD_UNSPECIFIED;
  } else if (s == "exact") {
    *m = ntk::v1::EXACT;
  } else if (s == "linearized") {
    *m = ntk::v1::LINEARIZED;
  } else if (s == "monte_carlo") {
    *m = ntk::v1::MONTE_CARLO;
  } else if (s == "laplace_posterior") {
    *m = ntk::v1::LAPLACE_POSTERIOR;
  } else {
    *rc = Usage("--method: expected exact, linearized, monte_carlo or "
                "laplace_posterior, got '" + s + "'");
    return false;
  }
  return true;
}

std::string MethodText(ntk::v1::DistributionMethod m) {
  return absl::AsciiStrToLower(ntk::v1::DistributionMethod_Name(m));
}

int RunPredictDist() {
  int rc = kExitOk;
  if (!CheckFormat({"table", "json", "csv"}, &rc)) return rc;
  if (!RequireModel(&rc)) return rc;
  if (absl::GetFlag(FLAGS_data).empty()) return Usage("--data=FILE is required");
  ntk::v1::DistributionMethod method;
  if (!ParseMethod(&method, &rc)) return rc;
  if (absl::GetFlag(FLAGS_num_samples) < 0) {
    return Usage("--num_samples: must be >= 0");
  }
  if (absl::GetFlag(FLAGS_top) < 0) return Usage("--top: must be >= 0");
  std::unique_ptr<ntk::Client> client = Connect(kLongDeadline, &rc);
  if (!client) return rc;
  ntk::v1::ModelInfo info;
  ntkctl::CsvData data;
  if (!ModelAndData(client.get(), &info, &data, &rc)) return rc;
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

// ---- list / get / delete / health ---------------------------------------------

int RunList() {
  int rc = kExitOk;
  if (!CheckFormat({"table", "json"}, &rc)) return rc;
  std::unique_ptr<ntk::Client> client = Connect(kShortDeadline, &rc);
  if (!client) return rc;
  absl::StatusOr<std::vector<ntk::v1::ModelInfo>> models = client->ListModels();
  if (!models.ok()) return RpcError("list", models.status());
  if (absl::GetFlag(FLAGS_format) == "json") {
    for (const auto& m : *models) std::cout << ntkctl::ModelJson(m) << "\n";
  } else {
    std::cout << ntkctl::ModelTableHeader();
    for (const auto& m : *models) std::cout << ntkctl::ModelTableRow(m);
  }
  return kExitOk;
}

int RunGet() {
  int rc = kExitOk;
  if (!CheckFormat({"table", "json"}, &rc)) return rc;
  if (!RequireModel(&rc)) return rc;
  std::unique_ptr<ntk::Client> client = Connect(kShortDeadline, &rc);
  if (!client) return rc;
  absl::StatusOr<ntk::v1::ModelInfo> m =
      client->GetModel(absl::GetFlag(FLAGS_model));
  if (!m.ok()) return RpcError("get", m.status());
  if (absl::GetFlag(FLAGS_format) == "json") {
    std::cout << ntkctl::ModelJson(*m) << "\n";
  } else {
    std::cout << ntkctl::ModelSummary(*m);
  }
  return kExitOk;
}

int RunDelete() {
  int rc = kExitOk;
  if (!RequireModel(&rc)) return rc;
  std::unique_ptr<ntk::Client> client = Connect(kShortDeadline, &rc);
  if (!client) return rc;
  absl::Status s = client->DeleteModel(absl::GetFlag(FLAGS_model));
  if (!s.ok()) return RpcError("delete", s);
  std::cout << "deleted " << absl::GetFlag(FLAGS_model) << "\n";
  return kExitOk;
}

int RunHealth() {
  int rc = kExitOk;
  std::unique_ptr<ntk::Client> client = Connect(kShortDeadline, &rc);
  if (!client) return rc;
  absl::Status s = client->Health(absl::GetFlag(FLAGS_service));
  if (!s.ok()) {
    std::cout << "NOT_SERVING (" << absl::StatusCodeToString(s.code()) << ": "
              << s.message() << ")\n";
    return kExitRpc;
  }
  std::cout << "SERVING\n";
  return kExitOk;
}

// ---- Command table --------------------------------------------------------------

std::vector<Command>& Commands() {
  static std::vector<Command>* commands = new std::vector<Command>{
      {"fit", "fit a model from a CSV file",
       std::string(R"(Usage: ntkctl fit --model=ID --data=FILE [flags]

Reads features and labels (or --targets) and fits a model on the server.
Example:
  ntkctl fit --model=digits --data=digits.csv.gz --rows=0:1500 --normalize_rows

Model flags:
  --model=ID             model id (1-128 of [A-Za-z0-9._-]; empty: server assigns)
  --replace              overwrite an existing model with this id
  --activation=A         relu | erf (default relu)
  --depth=L              hidden layers (default 1)
  --weight_variance=V    sigma_w^2 (default 2.0)
  --bias_variance=V      sigma_b^2 (default 0)
  --loss=L               cross_entropy | squared (default cross_entropy)
  --regularization=R     lambda >= 0 (unset: the server's default)
  --label_smoothing=E    eps in [0, 1) (unset: the server's default)
  --standardize          z-score each feature with training statistics
  --normalize_rows       scale each row to L2 norm sqrt(d)
  --num_classes=C        number of classes (0: 1 + the largest label)
  --class_names=a,b,c    class names (C of them)
  --targets=FILE         soft targets: C values per row, one row per data row
                         (same --rows selection; no header); the data file then
                         has no label column unless --label_column says so
  --format=F             table | json (the fitted model's summary)

)") + kDataHelp,
       {"model", "data", "targets", "header", "rows", "label_column",
        "activation", "depth", "weight_variance", "bias_variance", "loss",
        "regularization", "label_smoothing", "standardize", "normalize_rows",
        "num_classes", "class_names", "replace", "format"},
       RunFit},
      {"predict", "class probabilities for the rows of a CSV file",
       std::string(R"(Usage: ntkctl predict --model=ID --data=FILE [flags]

Prints the predicted label and its probability per row; when the file has a
label column (auto-detected: one column more than the model's features),
also the true label (marked * when wrong) and the accuracy.
Example:
  ntkctl predict --model=digits --data=digits.csv.gz --rows=1500:

  --format=F             table | json (one object per line) | csv
  --verbose              table: all class probabilities

)") + kDataHelp,
       {"model", "data", "header", "rows", "label_column", "format",
        "verbose"},
       RunPredict},
      {"predict-dist", "predictive distribution and uncertainty per row",
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
       {"model", "data", "header", "rows", "label_column", "format", "verbose",
        "method", "num_samples", "seed", "top"},
       RunPredictDist},
      {"list", "list the server's models",
       R"(Usage: ntkctl list [--format=table|json]

  --format=F             table | json (one model object per line)
)",
       {"format"},
       RunList},
      {"get", "show one model",
       R"(Usage: ntkctl get --model=ID [--format=table|json]
       ntkctl get ID

Shows the model's spec (with the server's defaults filled in) and fit stats.
)",
       {"model", "format"},
       RunGet},
      {"delete", "delete a model",
       R"(Usage: ntkctl delete --model=ID
       ntkctl delete ID
)",
       {"model"},
       RunDelete},
      {"health", "check that the server is serving (exit 0) or not (exit 1)",
       R"(Usage: ntkctl health [--service=NAME]

Asks grpc.health.v1 and prints SERVING (exit 0) or NOT_SERVING with the
reason (exit 1). Used by the Docker HEALTHCHECK.
  --service=NAME         service to check (default: the whole server)
)",
       {"service"},
       RunHealth},
  };
  return *commands;
}

// ---- Command line ---------------------------------------------------------------

bool IsKnownFlag(const std::string& name) {
  static const std::set<std::string> known = [] {
    std::set<std::string> s(kGlobalFlags.begin(), kGlobalFlags.end());
    for (const Command& c : Commands()) s.insert(c.flags.begin(), c.flags.end());
    return s;
  }();
  return known.count(name) > 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  bool want_help = false;
  struct Given {
    std::string name;
    std::string value;
    std::string text;  // as typed, for messages
  };
  std::vector<Given> given;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) positional.push_back(argv[i]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      positional.push_back(arg);
      continue;
    }
    std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string name = body, value;
    bool has_value = false;
    if (size_t eq = body.find('='); eq != std::string::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    if (name == "help" || name == "h") {
      want_help = true;
      continue;
    }
    bool negated = false;
    if (!IsKnownFlag(name) && absl::StartsWith(name, "no") &&
        IsKnownFlag(name.substr(2))) {
      negated = true;
      name = name.substr(2);
    }
    absl::CommandLineFlag* flag =
        IsKnownFlag(name) ? absl::FindCommandLineFlag(name) : nullptr;
    if (flag == nullptr) return Usage("unknown flag '" + arg + "'");
    const bool is_bool = flag->IsOfType<bool>();
    if (negated) {
      if (!is_bool || has_value) return Usage("unknown flag '" + arg + "'");
      value = "false";
    } else if (!has_value) {
      if (is_bool) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return Usage("flag '" + arg + "' needs a value");
      }
    }
    given.push_back({name, value, arg});
  }

  const Command* cmd = nullptr;
  if (!positional.empty()) {
    std::string name = positional[0];
    if (name == "help") {
      if (positional.size() > 1) {
        const Command* c = FindCommand(positional[1]);
        if (c == nullptr) return Usage("unknown command '" + positional[1] + "'");
        PrintCommandHelp(*c, std::cout);
      } else {
        PrintMainHelp(std::cout);
      }
      return kExitOk;
    }
    cmd = FindCommand(name);
    if (cmd == nullptr) return Usage("unknown command '" + name + "'");
  }
  if (want_help) {
    if (cmd != nullptr) {
      PrintCommandHelp(*cmd, std::cout);
    } else {
      PrintMainHelp(std::cout);
    }
    return kExitOk;
  }
  if (cmd == nullptr) {
    PrintMainHelp(std::cerr);
    return kExitUsage;
  }
  // `ntkctl get ID` is short for `ntkctl get --model=ID` (every command
  // that takes --model).
  const bool takes_model =
      std::count(cmd->flags.begin(), cmd->flags.end(), "model") > 0;
  if (positional.size() == 2 && takes_model &&
      std::none_of(given.begin(), given.end(),
                   [](const Given& g) { return g.name == "model"; })) {
    given.push_back({"model", positional[1], positional[1]});
  } else if (positional.size() > 1) {
    return Usage(absl::StrCat(cmd->name, ": unexpected argument '",
                              positional[1], "'"));
  }
  for (const Given& g : given) {
    const bool allowed =
        std::count(kGlobalFlags.begin(), kGlobalFlags.end(), g.name) > 0 ||
        std::count(cmd->flags.begin(), cmd->flags.end(), g.name) > 0;
    if (!allowed) {
      return Usage(absl::StrCat(cmd->name, " does not take --", g.name,
                                " (see ntkctl ", cmd->name, " --help)"));
    }
    std::string error;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(g.name);
    if (!flag->ParseFrom(g.value, &error)) {
      return Usage(absl::StrCat("--", g.name, ": ", error));
    }
    ExplicitFlags().insert(g.name);
  }
  return cmd->run();
}
