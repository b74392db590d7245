// ntkctl watch, and the fit progress display `ntkctl fit` shares: a
// WatchModel stream (docs/api.md "Long fits") shown on stderr as a progress
// bar with the ETA when stderr is a terminal, else as plain lines (one per
// phase change or 10% of progress).
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "client/client.h"
#include "tools/ntkctl/cli.h"

namespace ntkctl {
namespace {

std::string Seconds(double s) {
  if (s < 0) return "?";
  if (s < 60) return absl::StrFormat("%.1fs", s);
  return absl::StrFormat("%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
}

// Draws one ModelInfo: a bar redrawn in place on a terminal, plain lines
// otherwise (only when the phase changes or 10% more is done).
class ProgressDisplay {
 public:
  ProgressDisplay() : tty_(isatty(STDERR_FILENO) == 1) {}
  ~ProgressDisplay() {
    if (tty_ && drawn_) std::cerr << "\n";
  }
  void Show(const ntk::v1::ModelInfo& info) {
    if (info.state() != ntk::v1::FITTING) return;
    const ntk::v1::FitProgress& p = info.progress();
    const double f = p.fraction();
    if (tty_) {
      constexpr int kWidth = 30;
      const int done = static_cast<int>(f * kWidth + 0.5);
      std::cerr << absl::StrFormat("\r%s [%s%s] %3.0f%% %-10s elapsed %s eta %s   ",
                                   info.model_id(), std::string(done, '#'),
                                   std::string(kWidth - done, '.'), 100 * f, p.phase(),
                                   Seconds(p.elapsed_seconds()), Seconds(p.eta_seconds()))
                << std::flush;
      drawn_ = true;
      return;
    }
    if (p.phase() == last_phase_ && f < last_fraction_ + 0.1) return;
    last_phase_ = p.phase();
    last_fraction_ = f;
    std::cerr << absl::StrFormat("fit %s: %.0f%% %s elapsed %s eta %s\n", info.model_id(),
                                 100 * f, p.phase(), Seconds(p.elapsed_seconds()),
                                 Seconds(p.eta_seconds()));
  }

 private:
  const bool tty_;
  bool drawn_ = false;
  std::string last_phase_;
  double last_fraction_ = -1;
};

int RunWatch() {
  int rc = kExitOk;
  if (!CheckFormat({"table", "json"}, &rc)) return rc;
  std::unique_ptr<ntk::Client> client = ConnectForModel(kLongDeadline, &rc);
  if (!client) return rc;
  return WatchFit(client.get(), absl::GetFlag(FLAGS_model));
}

}  // namespace

int WatchFit(ntk::Client* client, const std::string& model_id) {
  absl::StatusOr<ntk::v1::ModelInfo> last;
  {
    ProgressDisplay display;
    last = client->WatchModel(model_id, [&display](const ntk::v1::ModelInfo& info) {
      display.Show(info);
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
