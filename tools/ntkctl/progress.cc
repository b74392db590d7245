// ntkctl's fit progress display. See tools/ntkctl/progress.h.
#include "tools/ntkctl/progress.h"

#include <unistd.h>

#include <iostream>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"

namespace ntkctl {
namespace {

std::string Seconds(double s) {
  if (s < 0) return "?";
  if (s < 60) return absl::StrFormat("%.1fs", s);
  return absl::StrFormat("%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
}

}  // namespace

ProgressDisplay::ProgressDisplay(std::string name)
    : name_(std::move(name)), tty_(isatty(STDERR_FILENO) == 1) {}

ProgressDisplay::~ProgressDisplay() {
  if (tty_ && drawn_) std::cerr << "\n";
}

void ProgressDisplay::Show(const ProgressUpdate& u) {
  const double f = u.fraction;
  const std::string detail = u.detail.empty() ? "" : u.detail + " ";
  if (tty_) {
    constexpr int kWidth = 30;
    const int done = static_cast<int>(f * kWidth + 0.5);
    std::cerr << absl::StrFormat("\r%s [%s%s] %3.0f%% %-10s %selapsed %s eta %s   ", name_,
                                 std::string(done, '#'), std::string(kWidth - done, '.'),
                                 100 * f, u.phase, detail, Seconds(u.elapsed_seconds),
                                 Seconds(u.eta_seconds))
              << std::flush;
    drawn_ = true;
    return;
  }
  const bool finished = f >= 1 && last_fraction_ < 1;
  if (u.phase == last_phase_ && f < last_fraction_ + 0.1 && !finished) return;
  last_phase_ = u.phase;
  last_fraction_ = f;
  std::cerr << absl::StrFormat("fit %s: %.0f%% %s %selapsed %s eta %s\n", name_, 100 * f,
                               u.phase, detail, Seconds(u.elapsed_seconds),
                               Seconds(u.eta_seconds));
}

}  // namespace ntkctl
