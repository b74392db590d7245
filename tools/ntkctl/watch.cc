// ntkctl watch, and the fit progress `ntkctl fit` shares: a WatchModel
// stream (docs/api.md "Long fits") shown on stderr by ProgressDisplay
// (tools/ntkctl/progress.h).
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "client/client.h"
#include "tools/ntkctl/cli.h"
#include "tools/ntkctl/progress.h"

namespace ntkctl {
namespace {

int RunWatch() {
  const ServerCommand command{/*table_or_json=*/true, /*needs_model=*/true, kLongDeadline};
  return RunOnServer(command, [](ntk::Client& client) {
    return WatchFit(&client, absl::GetFlag(FLAGS_model));
  });
}

}  // namespace

int WatchFit(ntk::Client* client, const std::string& model_id) {
  absl::StatusOr<ntk::v1::ModelInfo> last;
  {
    ProgressDisplay display(model_id);
    last = client->WatchModel(model_id, [&display](const ntk::v1::ModelInfo& info) {
      if (info.state() == ntk::v1::FITTING) {
        const ntk::v1::FitProgress& p = info.progress();
        display.Show({p.fraction(), p.phase(), "", p.elapsed_seconds(), p.eta_seconds()});
      }
      return true;
    });
  }
  if (!last.ok()) return RpcError("watch", last.status());
  if (last->state() == ntk::v1::FAILED) {
    return RpcError("fit", absl::FailedPreconditionError(absl::StrFormat(
                               "model \"%s\" FAILED: %s", model_id, last->error())));
  }
  PrintModel(*last);
  return kExitOk;
}

Command WatchCommand() {
  return {"watch", "follow a fit's progress until the model is READY or FAILED",
          R"(Usage: ntkctl watch --model=ID [--format=table|json]

Streams the model's progress (WatchModel): a progress bar with the ETA on a
terminal (stderr), plain lines otherwise; then prints the model as `get`
does. Exit 1 when the fit FAILED (its error is printed), was deleted, or the
id is unknown.
)",
          {"model", "format"},
          RunWatch};
}

}  // namespace ntkctl
