// ntk/core/selection/selection.h: model selection inside Fit
// (docs/model-contract.md "7. Model selection"): stratified k-fold
// cross-validation over a grid of (depth, lambda, eps, bias variance),
// choosing the candidate with the least mean held-out NLL of the mean
// predictor (Predict's probabilities, "3. Predict"), or (criterion
// LAPLACE_EVIDENCE, 2a candidates) the greatest Laplace evidence on all
// rows (evidence.h), then the ordinary Fit of that candidate on all rows.
//
//   SelectionOptions sel;
//   sel.folds = 5;
//   sel.depths = {1, 2, 3};
//   sel.regularizations = {0.01, 0.1};
//   absl::StatusOr<std::unique_ptr<FittedModel>> m =
//       FitWithSelection(spec, data, sel, fit_options);
//   // (*m)->Info().selection: every candidate's scores and the chosen index
//
// Candidates are the cartesian product of the lists in the order depths,
// bias_variances, regularizations, label_smoothings (the last varies
// fastest); an empty list means the base spec's own value only. One
// combination is left out: lambda = 0 with eps = 0 (both from the lists)
// under cross-entropy on hard labels, which has no minimizer
// (docs/model-contract.md "2b. Unregularized"), so that one grid can hold
// 2a candidates with eps = 0 and 2b candidates with eps > 0.
//
// Shared work (the result equals plain Fits of each candidate on each
// fold's training rows, up to rounding; tests/selection_test.cc):
//   - one kernel recursion per bias variance yields every depth, in
//     increasing order (ExtendTrainKernels, core/kernels/kernel.h);
//   - Theta of all rows is computed once per (depth, bias variance); each
//     fold takes its training block and held-out cross block from it;
//   - 2b / 2c: one Cholesky per (depth, bias variance, fold, shift) serves
//     every label smoothing (the jitter depends on Theta only; each eps is
//     two triangular solves);
//   - 2a: per (depth, bias variance, fold, eps) the lambdas are solved in
//     decreasing order, each Newton solve warm-started from the previous
//     lambda's dual, all with one preconditioner eigenbasis per fold.
//
// Thread safety: pure functions of their arguments (they use all cores
// through the BLAS and OpenMP, as Fit does).
// Memory: Theta and K of all N rows (2 N^2 doubles) plus one fold's block
// and factor (SelectionCost, core/model/cost.h); then the final Fit's.
#ifndef NTK_CORE_SELECTION_SELECTION_H_
#define NTK_CORE_SELECTION_SELECTION_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/cost.h"
#include "core/model/model.h"
#include "core/model/selection_report.h"
#include "core/training/progress.h"
#include "core/training/spec.h"

namespace ntk {

struct SelectionOptions {
  // >= 2: cross-validate with this many folds; 0: no folds (no selection
  // at all under kCrossValidation: FitWithSelection = Fit).
  int folds = 0;
  // kCrossValidation: choose the least mean held-out NLL (needs folds >= 2).
  // kLaplaceEvidence: choose the greatest Laplace evidence of each candidate
  // fitted on all rows (core/selection/evidence.h; every candidate 2a on
  // hard labels with eps 0); with folds >= 2 the cross-validation scores
  // are computed too and reported beside it.
  SelectionCriterion criterion = SelectionCriterion::kCrossValidation;
  std::vector<int> depths;               // each list empty: the spec's value
  std::vector<double> regularizations;
  std::vector<double> label_smoothings;
  std::vector<double> bias_variances;
  uint64_t seed = 0;  // fold assignment (folds.h)
  // Called with the fraction of (candidate, fold) evaluations done and
  // phase "selection"; false -> CANCELLED. May be empty.
  ProgressFn progress;
  // Refuse up front (RESOURCE_EXHAUSTED with the estimate) when
  // SelectionCost(...).bytes exceeds this; <= 0: no limit.
  int64_t max_bytes = 0;
  // 2a solves, as FitOptions::tolerance / max_iterations.
  double tolerance = 1e-12;
  int max_iterations = 100;
};

// Whether `options` asks for a selection at all: folds != 0, or a criterion
// other than cross-validation (an unknown one included, which
// ValidateSelection refuses).
bool SelectionRequested(const SelectionOptions& options);

// The candidates' specs in report order: the base spec with the list
// values set (depth, bias_variance, regularization, label_smoothing), the
// combination above left out (which needs `data`: hard labels or targets).
std::vector<ModelSpec> SelectionCandidates(const ModelSpec& base, const TrainingData& data,
                                           const SelectionOptions& options);

// What the cross-validation of these candidates will do (for SelectionCost).
// REQUIRES: ValidateSelection(base, data, options).ok().
SelectionShape SelectionShapeOf(const ModelSpec& base, const TrainingData& data,
                                const SelectionOptions& options);

// The checks SelectModel makes before any work, all INVALID_ARGUMENT
// naming the field unless said otherwise:
//   - the base spec and data (DecideTrainingProblem's errors, unchanged);
//   - "selection.folds: ..." for folds == 1 or < 0, and for folds greater
//     than the smallest class count (among classes with rows; soft targets
//     count by argmax), naming both numbers;
//   - "selection.depths[i]", "selection.regularizations[i]",
//     "selection.label_smoothings[i]", "selection.bias_variances[i]" for a
//     value out of range (depth in [1, kMaxDepth], lambda finite >= 0,
//     eps in [0, 1), bias variance finite >= 0);
//   - "selection: candidate i (...): <reason>" for a candidate Fit would
//     refuse on these rows;
//   - "selection: every combination ... is left out" when the lists hold
//     only lambda = 0 with eps = 0 on hard labels;
//   - "selection.criterion: unknown value N" for a value not in the enum;
//   - "selection.criterion: ..." under kLaplaceEvidence for soft targets or
//     a candidate that is not 2a with eps 0, naming it;
//   - UNIMPLEMENTED "selection: ..." for a Nystrom base spec.
absl::Status ValidateSelection(const ModelSpec& base, const TrainingData& data,
                               const SelectionOptions& options);

// The cross-validation alone: ValidateSelection, the budget check
// (RESOURCE_EXHAUSTED "selection: needs an estimated ... bytes ..."), then
// every candidate on every fold. CANCELLED when progress says stop; the
// solvers' errors otherwise (a candidate that fails on a fold fails the
// selection, naming the candidate).
// REQUIRES: options.folds >= 2 or criterion kLaplaceEvidence (else
// INVALID_ARGUMENT).
absl::StatusOr<SelectionReport> SelectModel(const ModelSpec& base, const TrainingData& data,
                                            const SelectionOptions& options);

// SelectModel, then FittedModel::Fit of the chosen candidate on all rows
// with fit_options (its progress gets phase "selection" over [0, s) and the
// Fit's own phases over [s, 1], s = U / (U + 1) with U = candidates x
// (folds + 1 under kLaplaceEvidence) solves), the report kept in the model
// (FittedModelInfo::selection).
// options.folds == 0 under kCrossValidation: FittedModel::Fit as is (no report).
absl::StatusOr<std::unique_ptr<FittedModel>> FitWithSelection(
    const ModelSpec& base, const TrainingData& data, const SelectionOptions& options,
    const FitOptions& fit_options = {}, FitOutputs* outputs = nullptr);

}  // namespace ntk

#endif  // NTK_CORE_SELECTION_SELECTION_H_
