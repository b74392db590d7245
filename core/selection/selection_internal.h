// ntk/core/selection/selection_internal.h (internal to core/selection/): the
// cross-validation loop (cross_validation.cc) behind SelectModel
// (selection.h), docs/model-contract.md "7. Model selection".
//
// Thread safety: pure functions.
#ifndef NTK_CORE_SELECTION_SELECTION_INTERNAL_H_
#define NTK_CORE_SELECTION_SELECTION_INTERNAL_H_

#include <string>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/selection/selection.h"
#include "core/training/problem.h"

namespace ntk::selection_internal {

// One candidate's held-out scores on one fold.
struct FoldScores {
  double nll = 0;       // mean NLL of Predict's probabilities on the held-out rows
  double accuracy = 0;  // against the strata (labels, or the targets' argmax)
  double ece = 0;       // 15 bins (core/numerics/metrics.h)
};

// "candidate i (depth D, bias_variance B, regularization L, label_smoothing E)"
// with the values `problem` resolved.
std::string DescribeCandidate(int index, const TrainingProblem& problem);

struct Evaluation {
  // scores[candidate][fold]: rows with fold[i] == f held out, the others
  // train. Empty inner vectors when options.folds == 0.
  std::vector<std::vector<FoldScores>> scores;
  // log_evidence[candidate] on all rows (evidence.h); empty unless
  // options.criterion is kLaplaceEvidence.
  std::vector<double> log_evidence;
};

// Every candidate on every fold, and on all rows for the evidence. x: the
// preprocessed features of all rows; strata: StratificationLabels(data).
// REQUIRES: ValidateSelection(candidates' base, data, options).ok(),
// fold[i] in [0, options.folds) (fold may be empty when folds == 0).
absl::StatusOr<Evaluation> EvaluateCandidates(
    const std::vector<ModelSpec>& candidates, const TrainingData& data,
    const Eigen::MatrixXd& x, const std::vector<int>& strata, const std::vector<int>& fold,
    const SelectionOptions& options);

}  // namespace ntk::selection_internal

#endif  // NTK_CORE_SELECTION_SELECTION_INTERNAL_H_
