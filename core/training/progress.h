// ntk/core/training/progress.h: the progress callback of long core work
// (Fit, the solvers, PredictDistribution's factor builds).
//
// Thread safety: a ProgressFn may be called from whichever thread runs the
// work (one at a time); it must not block for long.
#ifndef NTK_CORE_TRAINING_PROGRESS_H_
#define NTK_CORE_TRAINING_PROGRESS_H_

#include <algorithm>
#include <functional>

namespace ntk {

// Called during long work with a fraction in [0, 1] and a short phase name.
// Returning false asks the work to stop; it then returns CANCELLED.
using ProgressFn = std::function<bool(double fraction, const char* phase)>;

// progress(clamp(fraction)) or true when progress is empty.
inline bool ReportProgress(const ProgressFn& progress, double fraction, const char* phase) {
  return !progress || progress(std::clamp(fraction, 0.0, 1.0), phase);
}

}  // namespace ntk

#endif  // NTK_CORE_TRAINING_PROGRESS_H_
