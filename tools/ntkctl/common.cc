// ntkctl: the pieces every command shares: connecting (global flags),
// reading --data, --format/--model checks, the accuracy line, the model
// lookup of predict and predict-dist. See tools/ntkctl/cli.h.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "tools/ntkctl/cli.h"
#include "tools/ntkctl/idx.h"
#include "tools/ntkctl/output.h"

// The flags only this file reads (the shared ones: tools/ntkctl/cli.h).
ABSL_FLAG(std::string, server, "127.0.0.1:50051",
          "host:port of the ntk server (default: $NTK_SERVER, else 127.0.0.1:50051)");
ABSL_FLAG(std::string, token_file, "",
          "file holding the bearer token the server requires");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM file of the CA that signed the server's certificate (implies TLS)");
ABSL_FLAG(bool, tls, false, "use TLS with the system's root certificates");
ABSL_FLAG(double, deadline_seconds, 0,
          "per-call deadline; 0: 600 for fit/predict/predict-dist, 10 otherwise");
ABSL_FLAG(bool, header, false, "skip the first line of the data file");
ABSL_FLAG(std::string, label_column, "auto", "last | first | none | auto");
ABSL_FLAG(std::string, labels, "", "IDX labels file (plain or .gz) for IDX images in --data");
ABSL_FLAG(int32_t, max_message_mb, ntk::ClientOptions().max_message_mb,
          "largest gRPC message, MiB (a larger fit is streamed in chunks with FitStream)");

namespace ntkctl {
namespace {

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

}  // namespace

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
  o.max_message_mb = absl::GetFlag(FLAGS_max_message_mb);
  if (o.max_message_mb < 1 || o.max_message_mb > 2047) {
    *exit_code = Usage(absl::StrCat("--max_message_mb: must be in [1, 2047], got ",
                                    o.max_message_mb));
    return nullptr;
  }
  o.default_deadline = std::chrono::milliseconds(
      static_cast<int64_t>(std::ceil(deadline * 1000.0)));
  absl::StatusOr<std::unique_ptr<ntk::Client>> c = ntk::Client::Connect(o);
  if (!c.ok()) {
    *exit_code = RpcError("connect to " + o.target, c.status());
    return nullptr;
  }
  return std::move(*c);
}


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
  const std::string labels = absl::GetFlag(FLAGS_labels);
  absl::StatusOr<bool> idx = ntkctl::IsIdxFile(path);
  if (!idx.ok()) {
    *exit_code = InputError(idx.status());
    return false;
  }
  if (*idx) {
    for (const char* csv_only : {"header", "label_column"}) {
      if (IsSet(csv_only)) {
        *exit_code = Usage(absl::StrCat("--", csv_only, ": applies to CSV data; '", path,
                                        "' is an IDX file (labels: --labels=FILE)"));
        return false;
      }
    }
    absl::StatusOr<ntkctl::CsvData> d =
        ntkctl::ReadDataIdx(path, labels, *rows, expected_features);
    if (!d.ok()) {
      *exit_code = InputError(d.status());
      return false;
    }
    *out = std::move(*d);
    return true;
  }
  if (!labels.empty()) {
    *exit_code = Usage(absl::StrCat("--labels: applies to IDX images; '", path,
                                    "' is CSV (its labels are a column: --label_column)"));
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

int RunOnServer(const ServerCommand& command, const std::function<int(ntk::Client&)>& run) {
  int rc = kExitOk;
  if (command.table_or_json && !CheckFormat({"table", "json"}, &rc)) return rc;
  if (command.needs_model && !RequireModel(&rc)) return rc;
  std::unique_ptr<ntk::Client> client = Connect(command.default_deadline_s, &rc);
  if (!client) return rc;
  return run(*client);
}

void ReportAccuracy(const std::vector<int>& truth,
                    const std::vector<int>& predicted, std::ostream& os) {
  if (truth.empty() || truth.size() != predicted.size()) return;
  size_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) correct += truth[i] == predicted[i];
  os << absl::StrFormat("accuracy %.4f (%d/%d)\n",
                        static_cast<double>(correct) / truth.size(), correct,
                        truth.size());
}
bool CheckRowCommandFlags(int* exit_code) {
  if (!CheckFormat({"table", "json", "csv"}, exit_code)) return false;
  if (!RequireModel(exit_code)) return false;
  if (absl::GetFlag(FLAGS_data).empty()) {
    *exit_code = Usage("--data=FILE is required");
    return false;
  }
  return true;
}

bool ParseChoice(const std::string& flag, const std::string& value,
                 const std::vector<std::pair<std::string, int>>& choices,
                 int* out, int* exit_code) {
  std::vector<std::string> names;
  for (const auto& [name, v] : choices) {
    if (value == name) {
      *out = v;
      return true;
    }
    names.push_back(name);
  }
  const std::string last = names.back();
  names.pop_back();
  *exit_code = Usage(absl::StrCat("--", flag, ": expected ",
                                  absl::StrJoin(names, ", "), " or ", last,
                                  ", got '", value, "'"));
  return false;
}

void PrintModel(const ntk::v1::ModelInfo& info) {
  if (absl::GetFlag(FLAGS_format) == "json") {
    std::cout << ModelJson(info) << "\n";
  } else {
    std::cout << ModelSummary(info);
  }
}

std::unique_ptr<ntk::Client> ConnectModelAndData(ntk::v1::ModelInfo* info,
                                                 CsvData* data, int* rc) {
  std::unique_ptr<ntk::Client> client = Connect(kLongDeadline, rc);
  if (!client) return nullptr;
  absl::StatusOr<ntk::v1::ModelInfo> got =
      client->GetModel(absl::GetFlag(FLAGS_model));
  if (!got.ok()) {
    *rc = RpcError("get model '" + absl::GetFlag(FLAGS_model) + "'",
                   got.status());
    return nullptr;
  }
  *info = *got;
  if (!LoadData(static_cast<int>(info->num_features()), LabelColumn::kAuto,
                data, rc)) {
    return nullptr;
  }
  return client;
}

}  // namespace ntkctl
