// ntk/core/model/model_state.h (internal to core/): the data a FittedModel holds.
//
// Everything Predict needs is computed by Fit and persisted by Serialize.
// Factors that only PredictDistribution needs are not here: they are
// rebuilt deterministically from the persisted fields on first use and kept
// in the caller's DistributionCache (so an original and a loaded model go
// through the same code). Immutable after Fit / Deserialize.
#ifndef NTK_CORE_MODEL_MODEL_STATE_H_
#define NTK_CORE_MODEL_MODEL_STATE_H_

#include <cstdint>
#include <memory>
#include <optional>

#include <Eigen/Dense>

#include "core/kernels/kernel.h"
#include "core/kernels/kernel_rows.h"
#include "core/model/model.h"
#include "core/training/problem.h"
#include "core/training/solvers.h"

namespace ntk {

struct FittedModel::State {
  // Spec with defaults, regime, lambda, eps, C and the targets Y (N x C).
  TrainingProblem problem;
  Preprocessor preprocessor;
  Eigen::MatrixXd x_train;  // N x d, preprocessed
  // x_train.rowwise().squaredNorm(): derived (set by Fit and Deserialize,
  // not serialized); saves a pass over x_train per Predict.
  Eigen::VectorXd x_train_sq_norms;
  // F0 at the training points used by the fit (N x C), or empty for zero.
  Eigen::MatrixXd initial_train_outputs;
  // Trained logits at the training points (N x C, not centered):
  // 2a: F*; 2b, 2c: F0 + Theta_XX * dual.
  Eigen::MatrixXd train_logits;
  // f(x) = f0(x) + Theta(x, X) * dual  (N x C):
  //   2a: (Y - softmax(F*)) / lambda
  //   2b: (Theta_XX + jitter I)^{-1} (log Y - F0)
  //   2c: (Theta_XX + (lambda + jitter) I)^{-1} (Y - F0)
  Eigen::MatrixXd dual;
  FitStats stats;
  int64_t created_unix_ms = 0;
  // FitOptions::selection (docs/model-contract.md "7. Model selection").
  std::optional<SelectionReport> selection;

  // Nystrom models (problem.spec.nystrom()), docs/model-contract.md
  // "6. Nystrom models": f(x) = f0(x) + Theta(x, Z) beta. They keep no
  // training set: x_train, x_train_sq_norms, problem.targets,
  // initial_train_outputs, train_logits and dual are empty (O(m^2 + m d)
  // in memory and on disk).
  struct Nystrom {
    Eigen::MatrixXd centers;           // Z, m x d, preprocessed training rows
    Eigen::VectorXd centers_sq_norms;  // derived (not serialized), as x_train_sq_norms
    Eigen::MatrixXd beta;              // m x C
    int64_t num_train = 0;             // N
    // 2b/2c PredictDistribution summaries (docs/model-contract.md
    // "6. Nystrom models", "PredictDistribution"), m x m each; empty for 2a
    // and for files of format version 2:
    Eigen::MatrixXd gram;        // Theta_mn Theta_nm (H = gram + delta Theta_mm)
    Eigen::MatrixXd nngp_theta;  // K_mn Theta_nm
    // Theta_mn T (m x C, T = log Y or Y) when the fit used F0 != 0 (beta
    // then solved T - F0); empty: beta is the F0 = 0 solution.
    Eigen::MatrixXd mean_rhs;
    // 2a PredictDistribution summaries (docs/model-contract.md
    // "6. Nystrom models", "PredictDistribution of a Nystrom model"), at the
    // fit's solution (F0 = 0), (m C) x (m C) each, index c m + a for class
    // c and center a, with t_i = Theta(Z, x_i), k_i = K(Z, x_i) and
    // W_i = diag(p_i) - p_i p_i^T:
    // block (c, c') = Theta_mn diag_i(W_i[c, c']) Theta_nm = sum_i W_i[c, c'] t_i t_i^T
    Eigen::MatrixXd newton_hessian;
    // block (c, c') = Theta_mn diag_i(W_i[c, c']) K_nm = sum_i W_i[c, c'] t_i k_i^T
    Eigen::MatrixXd newton_cross;
    // Why a 2a model has no summaries (empty matrices above).
    enum class SummaryState : uint8_t {
      kKept = 0,          // present (2a), or not applicable (2b/2c)
      kOldFormat = 1,     // a file of format version < 5
      kOverCap = 2,       // NystromSummaryBytes(m, C) > summary_cap_bytes
      kInitialOutputs = 3,  // the fit used F0 != 0, not the F0 = 0 solution
    };
    SummaryState summary_state = SummaryState::kKept;
    int64_t summary_cap_bytes = 0;  // FitOptions::max_nystrom_summary_bytes of the fit
  } nystrom;

  bool is_nystrom() const { return problem.spec.nystrom(); }
  // The points and coefficients of f(x) = f0(x) + Theta(x, P) coef:
  // (X, dual) for exact models, (Z, beta) for Nystrom ones.
  const Eigen::MatrixXd& expansion_points() const {
    return is_nystrom() ? nystrom.centers : x_train;
  }
  const Eigen::VectorXd& expansion_sq_norms() const {
    return is_nystrom() ? nystrom.centers_sq_norms : x_train_sq_norms;
  }
  // The expansion points' KernelRows (core/kernels/kernel_rows.h): derived
  // on the first Predict and kept (not serialized; it is a function of the
  // points and the spec). Read and set only with std::atomic_load /
  // std::atomic_store (TrainingCrossKernels): concurrent Predicts may race to
  // compute it, and all compute the same.
  mutable std::shared_ptr<const KernelRows> expansion_rows;
  const Eigen::MatrixXd& expansion_coefficients() const {
    return is_nystrom() ? nystrom.beta : dual;
  }
  Eigen::Index num_features() const { return expansion_points().cols(); }
};

// Core's (and core tests') access to a model's State.
struct ModelInternals {
  static const FittedModel::State& Of(const FittedModel& m) { return *m.state_; }
  static std::unique_ptr<FittedModel> Make(std::unique_ptr<FittedModel::State> s) {
    return std::unique_ptr<FittedModel>(new FittedModel(std::move(s)));
  }
};

// The Nystrom part of FittedModel::Fit (core/model/model_nystrom.cc): selects
// the centers of s->x_train (preprocessed, with its norms), computes the
// Nystrom kernels (kernel_progress 0 -> 1) and solves s->problem
// (solve_progress), filling s->nystrom, *logits (N x C, F at the training
// points) and *info. The caller keeps x_train until it has its statistics.
absl::Status FitNystrom(FittedModel::State* s, const FitOptions& options,
                        const ProgressFn& kernel_progress, const ProgressFn& solve_progress,
                        Eigen::MatrixXd* logits, SolverInfo* info);

// K and Theta between the expansion points (the training rows; a Nystrom
// model's centers Z) and preprocessed query rows x: N x M (m x M), with
// the expansion points first (the orientation Predict and
// PredictDistribution share, so both compute identical kernel values) and
// their cached squared norms. REQUIRES: x.cols() == s.num_features().
KernelMatrices TrainingCrossKernels(const FittedModel::State& s, const Eigen::MatrixXd& x);

}  // namespace ntk

#endif  // NTK_CORE_MODEL_MODEL_STATE_H_
