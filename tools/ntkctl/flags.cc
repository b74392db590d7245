// ntkctl's flags (each defined once, here), the usage/error exits and the
// help text shared by several commands. See tools/ntkctl/cli.h.
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "tools/ntkctl/cli.h"

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
ABSL_FLAG(std::string, approximation, "exact",
          "exact | nystrom (docs/model-contract.md \"6. Nystrom models\")");
ABSL_FLAG(int32_t, num_centers, 0, "Nystrom centers m (0: the server's default, growing with N)");
ABSL_FLAG(uint64_t, approx_seed, 0, "Nystrom center selection seed (same seed: same model)");
ABSL_FLAG(int32_t, select_folds, 0,
          "model selection: k-fold cross-validation over the --select_* grid (0: none, >= 2)");
ABSL_FLAG(std::string, select_depths, "", "model selection: depths, e.g. 1,2,3 (empty: --depth)");
ABSL_FLAG(std::string, select_regularizations, "",
          "model selection: lambdas, e.g. 0,0.01,0.1 (empty: --regularization)");
ABSL_FLAG(std::string, select_label_smoothings, "",
          "model selection: eps values (empty: --label_smoothing)");
ABSL_FLAG(std::string, select_bias_variances, "",
          "model selection: bias variances (empty: --bias_variance)");
ABSL_FLAG(uint64_t, select_seed, 0, "model selection: fold assignment seed");
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

namespace ntkctl {

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

const std::vector<std::string> kGlobalFlags = {"server", "token_file", "tls_ca",
                                               "tls", "deadline_seconds"};

}  // namespace ntkctl
