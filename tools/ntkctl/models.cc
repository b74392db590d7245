// ntkctl list / get / delete / health: the model store and the server health.
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

// The flags only this file reads (the shared ones: tools/ntkctl/cli.h).
ABSL_FLAG(std::string, service, "", "health: the service name to check (empty: the server)");

namespace ntkctl {
namespace {

int RunList() {
  const ServerCommand command{/*table_or_json=*/true, /*needs_model=*/false, kShortDeadline};
  return RunOnServer(command, [](ntk::Client& client) {
    absl::StatusOr<std::vector<ntk::v1::ModelInfo>> models = client.ListModels();
    if (!models.ok()) return RpcError("list", models.status());
    if (absl::GetFlag(FLAGS_format) == "json") {
      for (const auto& m : *models) std::cout << ntkctl::ModelJson(m) << "\n";
    } else {
      std::cout << ntkctl::ModelTableHeader();
      for (const auto& m : *models) std::cout << ntkctl::ModelTableRow(m);
    }
    return kExitOk;
  });
}

int RunGet() {
  const ServerCommand command{/*table_or_json=*/true, /*needs_model=*/true, kShortDeadline};
  return RunOnServer(command, [](ntk::Client& client) {
    absl::StatusOr<ntk::v1::ModelInfo> m = client.GetModel(absl::GetFlag(FLAGS_model));
    if (!m.ok()) return RpcError("get", m.status());
    PrintModel(*m);
    return kExitOk;
  });
}

int RunDelete() {
  const ServerCommand command{/*table_or_json=*/false, /*needs_model=*/true, kShortDeadline};
  return RunOnServer(command, [](ntk::Client& client) {
    absl::Status s = client.DeleteModel(absl::GetFlag(FLAGS_model));
    if (!s.ok()) return RpcError("delete", s);
    std::cout << "deleted " << absl::GetFlag(FLAGS_model) << "\n";
    return kExitOk;
  });
}

int RunHealth() {
  const ServerCommand command{/*table_or_json=*/false, /*needs_model=*/false, kShortDeadline};
  return RunOnServer(command, [](ntk::Client& client) {
    absl::Status s = client.Health(absl::GetFlag(FLAGS_service));
    if (!s.ok()) {
      std::cout << "NOT_SERVING (" << absl::StatusCodeToString(s.code()) << ": "
                << s.message() << ")\n";
      return kExitRpc;
    }
    std::cout << "SERVING\n";
    return kExitOk;
  });
}

}  // namespace

std::vector<Command> ModelCommands() {
  return {
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
       RunHealth}
  };
}

}  // namespace ntkctl
