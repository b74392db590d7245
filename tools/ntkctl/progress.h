// ntk/tools/ntkctl/progress.h: the progress display of a fit on stderr, for
// its upload (fit.cc, while FitStream sends the chunks) and for the fit on
// the server (watch.cc, from WatchModel): a bar with the ETA redrawn in
// place when stderr is a terminal, else plain lines
// "fit <name>: 43% newton elapsed 1.9s eta 2.5s", one when the phase
// changes, 10% more is done, or a phase reaches 100%.
//
//   ntkctl::ProgressDisplay display("digits");
//   display.Show({/*fraction=*/0.4, "upload", "400/1000 rows", /*elapsed=*/1.2, /*eta=*/1.8});
//
// Thread safety: not thread-safe; one display per activity, used from one
// thread. It writes to std::cerr only.
#ifndef NTK_TOOLS_NTKCTL_PROGRESS_H_
#define NTK_TOOLS_NTKCTL_PROGRESS_H_

#include <string>

namespace ntkctl {

struct ProgressUpdate {
  double fraction = 0;        // done, in [0, 1]
  std::string phase;          // e.g. "upload", "kernel", "newton"
  std::string detail;         // shown after the phase, e.g. "400/1000 rows"; may be empty
  double elapsed_seconds = 0;
  double eta_seconds = -1;    // < 0: unknown ("?")
};

class ProgressDisplay {
 public:
  // `name` (the model id) starts the bar and follows "fit" in plain lines.
  explicit ProgressDisplay(std::string name);
  // Ends the bar's line on a terminal.
  ~ProgressDisplay();
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

  void Show(const ProgressUpdate& update);

 private:
  const std::string name_;
  const bool tty_;
  bool drawn_ = false;
  std::string last_phase_;
  double last_fraction_ = -1;
};

}  // namespace ntkctl

#endif  // NTK_TOOLS_NTKCTL_PROGRESS_H_
