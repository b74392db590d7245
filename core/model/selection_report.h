// ntk/core/model/selection_report.h: what model selection inside Fit found
// (docs/model-contract.md "7. Model selection"): every candidate with its
// held-out scores (and, under LAPLACE_EVIDENCE, its evidence) and the index
// of the one fitted. Computed by
// core/selection/selection.h, kept by the FittedModel (FittedModelInfo::selection)
// and persisted with it (core/model/serialize.h, format version 4; 5 for
// Nystrom 2a models).
//
// Thread safety: plain values.
#ifndef NTK_CORE_MODEL_SELECTION_REPORT_H_
#define NTK_CORE_MODEL_SELECTION_REPORT_H_

#include <limits>
#include <vector>

#include "core/kernels/kernel.h"
#include "core/training/spec.h"

namespace ntk {

// How the candidate is chosen (docs/model-contract.md "7. Model selection").
enum class SelectionCriterion {
  kCrossValidation = 0,  // least mean held-out NLL over the folds
  kLaplaceEvidence = 1,  // greatest Laplace evidence on all rows (2a, hard labels, eps 0)
};
const char* SelectionCriterionName(SelectionCriterion c);  // "cross_validation", "laplace_evidence"

struct SelectionRow {
  KernelSpec kernel;      // the candidate's kernel (depth, bias variance varied)
  // The candidate's resolved training values: loss, lambda and eps as
  // DecideTrainingProblem resolved them on all rows (both set).
  TrainingSpec training;
  double mean_nll = 0;       // held-out NLL of the mean predictor, mean over folds
  double std_nll = 0;        // its standard deviation over folds (divisor folds)
  double mean_accuracy = 0;  // held-out accuracy, mean over folds
  double mean_ece = 0;       // held-out ECE (15 bins), mean over folds
  // The four above are NaN when no folds ran (LAPLACE_EVIDENCE with folds 0).
  // log q(y | X) of core/selection/evidence.h on all rows, nats; NaN unless
  // the criterion is kLaplaceEvidence.
  double log_evidence = std::numeric_limits<double>::quiet_NaN();
};

struct SelectionReport {
  std::vector<SelectionRow> rows;  // every candidate, in grid order
  // Index into rows: least mean_nll (cross-validation) or greatest
  // log_evidence (Laplace evidence), the first on ties.
  int chosen = 0;
  int folds = 0;                   // 0: no cross-validation ran (evidence only)
  SelectionCriterion criterion = SelectionCriterion::kCrossValidation;
  double seconds = 0;              // the selection's wall time (folds and evidence)
};

}  // namespace ntk

#endif  // NTK_CORE_MODEL_SELECTION_REPORT_H_
