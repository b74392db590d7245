// ntk/core/model/selection_report.h: what model selection inside Fit found
// (docs/model-contract.md "7. Model selection"): every candidate with its
// held-out scores and the index of the one fitted. Computed by
// core/selection/selection.h, kept by the FittedModel (FittedModelInfo::selection)
// and persisted with it (core/model/serialize.h, format version 4; 5 for
// Nystrom 2a models).
//
// Thread safety: plain values.
#ifndef NTK_CORE_MODEL_SELECTION_REPORT_H_
#define NTK_CORE_MODEL_SELECTION_REPORT_H_

#include <vector>

#include "core/kernels/kernel.h"
#include "core/training/spec.h"

namespace ntk {

struct SelectionRow {
  KernelSpec kernel;      // the candidate's kernel (depth, bias variance varied)
  // The candidate's resolved training values: loss, lambda and eps as
  // DecideTrainingProblem resolved them on all rows (both set).
  TrainingSpec training;
  double mean_nll = 0;       // held-out NLL of the mean predictor, mean over folds
  double std_nll = 0;        // its standard deviation over folds (divisor folds)
  double mean_accuracy = 0;  // held-out accuracy, mean over folds
  double mean_ece = 0;       // held-out ECE (15 bins), mean over folds
};

struct SelectionReport {
  std::vector<SelectionRow> rows;  // every candidate, in grid order
  int chosen = 0;                  // index into rows: least mean_nll (first on ties)
  int folds = 0;
  double seconds = 0;              // the cross-validation's wall time
};

}  // namespace ntk

#endif  // NTK_CORE_MODEL_SELECTION_REPORT_H_
