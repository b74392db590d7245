// ntk/core/selection/cross_validation.cc: every candidate on every fold
// (and on all rows for the Laplace evidence), sharing the work selection.h
// lists (docs/model-contract.md "7. Model selection"). Each (candidate, fold) computes what a plain
// FittedModel::Fit of the candidate on the fold's training rows followed by
// Predict on its held-out rows computes: the same training problem
// (DecideTrainingProblem on the fold's rows), the same jitter policy and
// factorization routine (2b/2c), the same Newton solver (2a); only the
// kernels come from blocks of the all-rows matrices, which differ from the
// fold's own TrainKernels / CrossKernels by rounding.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/kernels/kernel.h"
#include "core/numerics/metrics.h"
#include "core/selection/evidence.h"
#include "core/selection/selection_internal.h"
#include "core/training/solve.h"
#include "core/training/solver_util.h"
#include "core/training/solvers.h"

namespace ntk::selection_internal {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;

// Progress over candidates x folds; every long step asks keep_going().
class Progress {
 public:
  Progress(const ProgressFn& fn, int total) : fn_(fn), total_(std::max(total, 1)) {}
  bool KeepGoing() const {
    return ReportProgress(fn_, static_cast<double>(done_) / total_, "selection");
  }
  // A ProgressFn for the solvers: asks KeepGoing whatever they report.
  ProgressFn AsSolverProgress() const {
    return [this](double, const char*) { return KeepGoing(); };
  }
  void Done() { ++done_; }

 private:
  const ProgressFn& fn_;
  const int total_;
  int done_ = 0;
};

absl::Status Cancelled() { return absl::CancelledError("selection: cancelled"); }

// Rows of `m` (or entries of `v`) at `rows`.
std::vector<int> Pick(const std::vector<int>& v, const std::vector<int>& rows) {
  std::vector<int> out;
  out.reserve(rows.size());
  for (const int r : rows) out.push_back(v[static_cast<size_t>(r)]);
  return out;
}

// The held-out rows of one fold and what they are scored against.
struct HeldOut {
  MatrixXd theta_cross;   // Theta(train rows, held-out rows), Predict's orientation
  std::vector<int> labels;  // strata of the held-out rows
  MatrixXd targets;       // soft targets of the held-out rows, or 0 x 0 (hard labels)
};

// docs/model-contract.md "3. Predict": centered logits, their softmax;
// then the held-out NLL (hard labels: Classify's -log p_y; soft targets:
// -sum_c y_c log p_c with the same floor), accuracy and ECE.
FoldScores Score(const HeldOut& h, const MatrixXd& dual) {
  MatrixXd logits = h.theta_cross.transpose() * dual;
  logits.colwise() -= logits.rowwise().mean();
  const MatrixXd p = RowSoftmax(logits);
  const eval::ClassificationMetrics m = eval::Classify(p, h.labels);
  FoldScores s{m.nll, m.accuracy, m.ece};
  if (h.targets.size() != 0) {
    double nll = 0;
    for (Index i = 0; i < p.rows(); ++i) {
      for (Index c = 0; c < p.cols(); ++c) {
        if (h.targets(i, c) > 0) nll -= h.targets(i, c) * std::log(std::max(p(i, c), DBL_MIN));
      }
    }
    s.nll = nll / static_cast<double>(p.rows());
  }
  return s;
}

// 2a ("2a. Regularized") for candidates sharing Theta and targets: lambdas
// in decreasing order, each Newton solve warm-started from the previous
// lambda's dual, all with one preconditioner eigenbasis; on_solved(i,
// problem, dual) after each. Errors of the solves and of on_solved pass
// through annotate(i, problem, status).
using Annotator =
    std::function<absl::Status(int, const TrainingProblem&, const absl::Status&)>;
absl::Status SolveByDecreasingLambda(
    const MatrixXd& theta, const ThetaEigenbasis& basis, const SelectionOptions& options,
    const Progress& progress, std::vector<std::pair<int, TrainingProblem>>* group,
    const Annotator& annotate,
    const std::function<absl::Status(int, const TrainingProblem&, const MatrixXd&)>& on_solved) {
  std::stable_sort(group->begin(), group->end(), [](const auto& a, const auto& b) {
    return a.second.lambda > b.second.lambda;
  });
  MatrixXd warm;
  for (const auto& [i, p] : *group) {
    SolveOptions so;
    so.warm_start_dual = warm.size() != 0 ? &warm : nullptr;
    so.eigenbasis = &basis;
    so.tolerance = options.tolerance;
    so.max_newton_iterations = options.max_iterations;
    so.progress = progress.AsSolverProgress();
    absl::StatusOr<SolverSolution> sol = Solve(p, theta, so);
    if (!sol.ok()) return annotate(i, p, sol.status());
    if (absl::Status s = on_solved(i, p, sol->dual); !s.ok()) return annotate(i, p, s);
    warm = std::move(sol->dual);
  }
  return absl::OkStatus();
}

// The candidates `which` (one depth and bias variance) on fold f of theta.
class FoldEvaluator {
 public:
  FoldEvaluator(const std::vector<ModelSpec>& candidates, const SelectionOptions& options,
                Progress* progress, std::vector<std::vector<FoldScores>>* scores)
      : candidates_(candidates), options_(options), progress_(progress), scores_(scores) {}

  absl::Status Run(const MatrixXd& theta, const std::vector<int>& which, const TrainingData& data,
                   const MatrixXd& x, const std::vector<int>& strata,
                   const std::vector<int>& fold, int f) {
    std::vector<int> train, test;
    for (size_t i = 0; i < fold.size(); ++i) {
      (fold[i] == f ? test : train).push_back(static_cast<int>(i));
    }
    f_ = f;
    TrainingData fold_data;
    fold_data.features = x(train, Eigen::all);
    if (!data.labels.empty()) {
      fold_data.labels = Pick(data.labels, train);
    } else {
      fold_data.targets = data.targets(train, Eigen::all);
      held_.targets = data.targets(test, Eigen::all);
    }
    held_.labels = Pick(strata, test);
    held_.theta_cross = theta(train, test);
    const MatrixXd theta_tr = theta(train, train);
    // The fold's training problem per candidate, grouped by what can share
    // a factorization (2b/2c: the shift) or a warm start (2a: the targets).
    std::map<double, std::vector<std::pair<int, TrainingProblem>>> direct, newton;
    for (const int i : which) {
      absl::StatusOr<TrainingProblem> p = DecideTrainingProblem(candidates_[i], fold_data);
      if (!p.ok()) return Annotate(i, nullptr, p.status());
      if (p->regime == Regime::kRegularizedCE) {
        newton[p->label_smoothing].emplace_back(i, *std::move(p));
      } else {
        const double shift = p->regime == Regime::kSquared ? p->lambda : 0.0;
        direct[shift].emplace_back(i, *std::move(p));
      }
    }
    for (auto& [shift, group] : direct) {
      if (absl::Status s = Direct(theta_tr, shift, group); !s.ok()) return s;
    }
    if (!newton.empty()) {
      const ThetaEigenbasis basis =
          ComputeThetaEigenbasis(theta_tr, RegularizedCEOptions().preconditioner_rank);
      for (auto& [eps, group] : newton) {
        if (absl::Status s = Newton(theta_tr, basis, &group); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

 private:
  // 2b / 2c ("2b. Unregularized", "2c. Squared loss"): one factorization of
  // Theta_tr + (shift + jitter) I with the jitter policy of SolveShifted
  // (direct_solve.cc), then two triangular solves per candidate.
  absl::Status Direct(const MatrixXd& theta_tr, double shift,
                      const std::vector<std::pair<int, TrainingProblem>>& group) {
    MatrixXd factor;
    double anorm = 0;
    const absl::StatusOr<double> jitter = solver_internal::FactorWithJitter(
        [&theta_tr](double s, MatrixXd* a) {
          *a = theta_tr;
          a->diagonal().array() += s;
        },
        shift, solver_internal::JitterScale(theta_tr), group.front().second.jitter,
        progress_->AsSolverProgress(), "the training NTK", &factor, &anorm);
    if (!jitter.ok()) return Annotate(group.front().first, &group.front().second, jitter.status());
    for (const auto& [i, p] : group) {
      const MatrixXd rhs = p.regime == Regime::kUnregularizedCE
                               ? MatrixXd(p.targets.array().log().matrix())
                               : p.targets;
      absl::StatusOr<MatrixXd> dual =
          solver_internal::SolveFactored(factor, rhs, progress_->AsSolverProgress());
      if (!dual.ok()) return Annotate(i, &p, dual.status());
      Record(i, Score(held_, *dual));
    }
    return absl::OkStatus();
  }

  // 2a ("2a. Regularized"): SolveByDecreasingLambda, one eigenbasis per fold.
  absl::Status Newton(const MatrixXd& theta_tr, const ThetaEigenbasis& basis,
                      std::vector<std::pair<int, TrainingProblem>>* group) {
    return SolveByDecreasingLambda(
        theta_tr, basis, options_, *progress_, group,
        [this](int i, const TrainingProblem& p, const absl::Status& s) {
          return Annotate(i, &p, s);
        },
        [this](int i, const TrainingProblem&, const MatrixXd& dual) {
          Record(i, Score(held_, dual));
          return absl::OkStatus();
        });
  }

  void Record(int i, const FoldScores& s) {
    (*scores_)[static_cast<size_t>(i)][static_cast<size_t>(f_)] = s;
    progress_->Done();
  }

  absl::Status Annotate(int i, const TrainingProblem* p, const absl::Status& s) const {
    if (s.code() == absl::StatusCode::kCancelled) return Cancelled();
    const std::string who =
        p != nullptr ? DescribeCandidate(i, *p) : absl::StrCat("candidate ", i);
    return absl::Status(s.code(),
                        absl::StrCat("selection: ", who, ", fold ", f_, ": ", s.message()));
  }

  const std::vector<ModelSpec>& candidates_;
  const SelectionOptions& options_;
  Progress* progress_;
  std::vector<std::vector<FoldScores>>* scores_;
  HeldOut held_;
  int f_ = 0;
};

// LAPLACE_EVIDENCE: each candidate (all 2a, eps 0) fitted on all rows,
// lambdas in decreasing order with warm starts and one eigenbasis as the
// folds do, then its evidence (evidence.h).
absl::Status EvidenceOnAllRows(const MatrixXd& theta, const std::vector<int>& which,
                               const std::vector<ModelSpec>& candidates, const TrainingData& data,
                               const MatrixXd& x, const SelectionOptions& options,
                               Progress* progress, std::vector<double>* log_evidence) {
  TrainingData all;
  all.features = x;
  all.labels = data.labels;
  all.targets = data.targets;
  std::vector<std::pair<int, TrainingProblem>> group;
  for (const int i : which) {
    absl::StatusOr<TrainingProblem> p = DecideTrainingProblem(candidates[i], all);
    if (!p.ok()) return p.status();
    group.emplace_back(i, *std::move(p));
  }
  const ThetaEigenbasis basis =
      ComputeThetaEigenbasis(theta, RegularizedCEOptions().preconditioner_rank);
  return SolveByDecreasingLambda(
      theta, basis, options, *progress, &group,
      [](int i, const TrainingProblem& p, const absl::Status& s) {
        if (s.code() == absl::StatusCode::kCancelled) return Cancelled();
        return absl::Status(s.code(), absl::StrCat("selection: ", DescribeCandidate(i, p),
                                                   ", all rows (evidence): ", s.message()));
      },
      [&](int i, const TrainingProblem& p, const MatrixXd& dual) {
        absl::StatusOr<LaplaceEvidence> e =
            ComputeLaplaceEvidence(p, theta, dual, progress->AsSolverProgress());
        if (!e.ok()) return e.status();
        (*log_evidence)[static_cast<size_t>(i)] = e->log_evidence;
        progress->Done();
        return absl::OkStatus();
      });
}

}  // namespace

std::string DescribeCandidate(int index, const TrainingProblem& p) {
  return absl::StrFormat(
      "candidate %d (depth %d, bias_variance %g, regularization %g, label_smoothing %g)", index,
      p.spec.kernel.depth, p.spec.kernel.bias_variance, p.lambda, p.label_smoothing);
}

absl::StatusOr<Evaluation> EvaluateCandidates(const std::vector<ModelSpec>& candidates,
                                              const TrainingData& data, const MatrixXd& x,
                                              const std::vector<int>& strata,
                                              const std::vector<int>& fold,
                                              const SelectionOptions& options) {
  const int folds = options.folds;
  const bool evidence = options.criterion == SelectionCriterion::kLaplaceEvidence;
  Evaluation out;
  out.scores.assign(candidates.size(), std::vector<FoldScores>(static_cast<size_t>(folds)));
  if (evidence) out.log_evidence.assign(candidates.size(), 0.0);
  Progress progress(options.progress,
                    static_cast<int>(candidates.size()) * (folds + (evidence ? 1 : 0)));
  // bias variance -> depth -> candidates (only depth and bias variance
  // change the kernel; activation and weight variance are the base spec's).
  std::map<double, std::map<int, std::vector<int>>> by_kernel;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const KernelSpec& k = candidates[i].kernel;
    by_kernel[k.bias_variance][k.depth].push_back(static_cast<int>(i));
  }
  FoldEvaluator evaluator(candidates, options, &progress, &out.scores);
  const std::function<bool()> keep_going = [&progress] { return progress.KeepGoing(); };
  for (const auto& [bias, depths] : by_kernel) {
    // One recursion per bias variance: depth after depth (ExtendTrainKernels).
    KernelSpec spec = candidates[static_cast<size_t>(depths.begin()->second.front())].kernel;
    spec.depth = depths.begin()->first;
    KernelMatrices k;
    if (!TrainKernels(spec, x, keep_going, &k)) return Cancelled();
    for (const auto& [depth, which] : depths) {
      const int from = spec.depth;
      spec.depth = depth;
      if (!ExtendTrainKernels(spec, from, x, keep_going, &k)) return Cancelled();
      if (!k.ntk.allFinite()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "features: the training NTK (depth %d, bias_variance %g) has non-finite entries "
            "(features too large in magnitude for the kernel?)",
            depth, bias));
      }
      for (int f = 0; f < folds; ++f) {
        if (absl::Status s = evaluator.Run(k.ntk, which, data, x, strata, fold, f); !s.ok()) {
          return s;
        }
      }
      if (evidence) {
        if (absl::Status s = EvidenceOnAllRows(k.ntk, which, candidates, data, x, options,
                                               &progress, &out.log_evidence);
            !s.ok()) {
          return s;
        }
      }
    }
  }
  return out;
}

}  // namespace ntk::selection_internal
