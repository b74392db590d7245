// ntkctl's flags that several files read, the usage/error exits and the
// help text shared by several commands. See tools/ntkctl/cli.h.
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "tools/ntkctl/cli.h"

// The flags several files read (declared in cli.h); a flag one file reads is
// defined in that file.
ABSL_FLAG(std::string, model, "", "model id");
ABSL_FLAG(std::string, data, "",
          "CSV file (.csv or .csv.gz: features, then a label) or IDX images (plain or .gz)");
ABSL_FLAG(std::string, rows, "", "data rows A:B (0-based, B exclusive; A or B may be omitted)");
ABSL_FLAG(std::string, format, "table", "table | json | csv");
ABSL_FLAG(bool, verbose, false, "more detail in tables");

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
  --max_message_mb=M     largest gRPC message, MiB (default 64, as the server's);
                         a fit larger than 3/4 of it is streamed in chunks
)";

const char kDataHelp[] = R"(Data files (--data): CSV, plain or gzip (.csv.gz), one row per line,
numeric features and an integer class label (by default the last column);
or IDX images (the MNIST / Fashion-MNIST format, plain or gzip), one row of
pixel values 0..255 per image, with labels from an IDX labels file.
  --header               CSV: skip the first line
  --rows=A:B             use data rows A..B-1 (0-based, header not counted;
                         "1500:" = from 1500 on, ":300" = the first 300)
  --label_column=WHERE   CSV: last | first | none | auto
  --labels=FILE          IDX: the labels file (e.g. train-labels-idx1-ubyte.gz)
)";

const std::vector<std::string> kGlobalFlags = {"server", "token_file", "tls_ca",
                                               "tls", "deadline_seconds",
                                               "max_message_mb"};

}  // namespace ntkctl
