// ntk/core/distribution/methods.h (internal to core/distribution/): the
// PredictDistribution methods of docs/model-contract.md
// "4. PredictDistribution", one file each, and what they share.
//
//   exact.cc        EXACT (2b, 2c): Gaussian logits from the fit's factor
//   linearized.cc   LINEARIZED (2a): F0 -> f(x) linearized at F0 = 0, and
//                   the factor (linearized_solver.h) it shares with
//                   LAPLACE_POSTERIOR
//   laplace.cc      LAPLACE_POSTERIOR (2a): R&W algorithm 3.4 covariance
//   monte_carlo.cc  MONTE_CARLO (all): S trained samples of F0
//   nystrom.cc      Nystrom models, 2b / 2c: their factors, EXACT (also
//                   LINEARIZED) and MONTE_CARLO sample sets; 2a:
//                   LINEARIZED and LAPLACE_POSTERIOR from Newton summaries
//                   (docs/model-contract.md "6. Nystrom models")
//   moments.h       logit samples -> probability moments and entropies
//   distribution.cc the dispatch (ComputeDistribution)
//
// Factor getters fetch through a FactorSource (factors.h); none holds a
// lock while computing. Batch functions fill, for the points of one batch,
// the centered logit mean and covariance (MONTE_CARLO: every field).
//
// Thread safety: the getters may run concurrently for different calls; the
// batch functions use OpenMP inside and write disjoint outputs.
#ifndef NTK_CORE_DISTRIBUTION_METHODS_H_
#define NTK_CORE_DISTRIBUTION_METHODS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/distribution/factors.h"
#include "core/distribution/linearized_solver.h"
#include "core/distribution/moments.h"
#include "core/kernels/kernel.h"
#include "core/model/model.h"
#include "core/model/model_state.h"

namespace ntk::distribution_internal {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;
using State = FittedModel::State;

// Relative jitter of K_XX for the MONTE_CARLO prior factor:
// K_XX + kPriorRelativeJitter * mean(diag K_XX) I, x10 per failed Cholesky
// up to kMaxRelativeJitter. It perturbs the sampled F0 covariance by
// 1e-10 relative, far below the Monte Carlo error.
inline constexpr double kPriorRelativeJitter = 1e-10;

// Stream tags: different randomness for different uses of one seed.
inline constexpr uint64_t kTagGaussian = 0x47617573;  // logit -> probability sampling
inline constexpr uint64_t kTagF0 = 0x46304d43;        // MONTE_CARLO training F0
inline constexpr uint64_t kTagQuery = 0x51755279;     // MONTE_CARLO f0(x) | F0

// Calls the user's progress callback; false -> CANCELLED.
class Progress {
 public:
  explicit Progress(const ProgressFn& fn) : fn_(fn) {}
  absl::Status Report(double fraction, const char* phase) const;
  const ProgressFn& fn() const { return fn_; }

 private:
  const ProgressFn& fn_;
};

// RESOURCE_EXHAUSTED when a method's factors (bytes) exceed the budget.
absl::Status BudgetCheck(const char* what, int64_t bytes, int64_t budget);

// Lower Cholesky factor of a (symmetric) by CholeskyLowerInPlace
// (core/numerics/cholesky.h); false if not positive definite.
bool CholeskyLower(const MatrixXd& a, MatrixXd* l);
// The same, reporting (fraction, phase) between the factorization's blocks:
// CANCELLED when progress says stop, FAILED_PRECONDITION when not positive
// definite (*l untouched on error).
absl::Status CholeskyLower(MatrixXd a, MatrixXd* l, const Progress& progress, double fraction,
                           const char* phase);
// The lower Cholesky factor of the matrix a 2b/2c fit factored (A, or a
// Nystrom model's H), again, as CholeskyLower above (fraction, phase
// "distribution: factor"): CANCELLED when progress says stop; INTERNAL
// "distribution: <name> is not positive definite although the fit factored
// it" otherwise (the fit succeeded on the same matrix, so this is a bug).
absl::Status RefactorFitMatrix(MatrixXd a, const std::string& name, double fraction,
                               const Progress& progress, MatrixXd* l);
// X := L^{-1} X and X := L^{-T} X for lower triangular L (BLAS dtrsm).
void SolveLower(const MatrixXd& l, MatrixXd* x);
void SolveLowerT(const MatrixXd& l, MatrixXd* x);
// X := (L L^T)^{-1} X: SolveLower, then SolveLowerT.
void SolveCholesky(const MatrixXd& l, MatrixXd* x);

// Stores one point's logit mean and covariance, centered as
// docs/model-contract.md "4. PredictDistribution" reports them (LINEARIZED and
// LAPLACE_POSTERIOR share this last step).
inline void StoreCenteredLogits(const VectorXd& mean, const MatrixXd& cov,
                                PointDistribution* pd) {
  pd->logit_mean = CenterVector(mean);
  pd->logit_covariance = CenterCovariance(cov);
}

inline bool HasInitialOutputs(const State& state) {
  return state.initial_train_outputs.size() > 0;
}

// K_XX and Theta_XX, reporting (fraction, "distribution: kernels") before
// the work and between kernel tiles; CANCELLED when progress says stop.
absl::StatusOr<KernelMatrices> TrainKernelsWithProgress(const State& state,
                                                       const Progress& progress,
                                                       double fraction);

// K_XX and Theta_XX, computed at most once per call, on first need.
class TrainingKernelsOnce {
 public:
  explicit TrainingKernelsOnce(const State& state) : state_(state) {}
  // Reports "distribution: kernels" before computing them.
  absl::StatusOr<const KernelMatrices*> Get(const Progress& progress);
  // The kernels (computed if needed), moved out: a later Get recomputes.
  absl::StatusOr<KernelMatrices> Take(const Progress& progress);

 private:
  const State& state_;
  std::optional<KernelMatrices> km_;
};

// One batch of query points.
struct Batch {
  const MatrixXd* x = nullptr;  // preprocessed rows of the whole request
  Index begin = 0, size = 0;
  KernelMatrices cross;  // N x nb: K_Xq, Theta_Xq (Nystrom: m x nb, K_Zq, Theta_Zq)
  KernelDiagonal diag;   // nb: K_qq, Theta_qq
};

// ---- exact.cc ----
// The shift the 2b/2c fit added to its matrix (A = Theta_XX + shift I, or
// a Nystrom model's H = gram + shift Theta_mm): its jitter, plus lambda
// for 2c.
double FitShift(const State& state);
// The EXACT factors from K_XX and the lower Cholesky factor of
// A = Theta_XX + (lambda_2c + jitter) I (as CholeskyLowerInPlace computes it).
std::shared_ptr<const ExactFactors> ExactFactorsFrom(const State& state, MatrixXd nngp_train,
                                                     MatrixXd chol_a);
absl::StatusOr<std::shared_ptr<const ExactFactors>> GetExactFactors(
    const State& state, FactorSource& source, int64_t budget, const Progress& progress);
void ExactBatch(const ExactFactors& f, const Batch& b, int C,
                std::vector<PointDistribution>* out);
// Stores, for the points of b, the centered mean row j of `mean` (nb x C)
// and the covariance s_j P of logits whose covariance is s_j I_C, with
// s_j = K_jj - 2 r_j.k_j + r_j.kr_j (columns j of k, r, kr), clamped at 0:
// a difference of O(K_jj) terms that is ~0 near the training points, where
// a negative value is rounding. (EXACT: k = K_Xq, r = A^{-1} Theta_Xq,
// kr = K_XX r; Nystrom: k = psi, r = kr = u.)
void StoreScalarVariance(const MatrixXd& mean, const MatrixXd& k, const MatrixXd& r,
                         const MatrixXd& kr, const Batch& b, int C,
                         std::vector<PointDistribution>* out);

// ---- linearized.cc ----
// 2a: the dual of the F0 = 0 solution (the fit's own when it used F0 = 0;
// else one Solve with Theta_XX from `theta`, called only then).
absl::StatusOr<std::shared_ptr<const MatrixFactor>> GetZeroF0Dual(
    const State& state, FactorSource& source,
    const std::function<absl::StatusOr<const MatrixXd*>()>& theta);
// The same with Theta_XX from `kernels`.
absl::StatusOr<std::shared_ptr<const MatrixFactor>> GetZeroF0Dual(
    const State& state, FactorSource& source, TrainingKernelsOnce& kernels,
    const Progress& progress);
// The LINEARIZED / LAPLACE_POSTERIOR factor (cache part "linearized");
// `method` names the caller in RESOURCE_EXHAUSTED; the L_c are kept when
// KeepClassFactors(N, C, capacity) (capacity: DistributionFactorCapacity,
// core/model/cost.h).
absl::StatusOr<std::shared_ptr<const LinearizedFactor>> GetLinearizedFactor(
    const State& state, FactorSource& source, TrainingKernelsOnce& kernels, const char* method,
    int64_t capacity, int64_t budget, const Progress& progress);
// Stores, for the points of b, the mean Theta_xX mean_dual (Predict's
// logits at F0 = 0) and the covariances `cov` (or returns its error).
absl::Status StoreWithPredictMean(const MatrixXd& mean_dual, const Batch& b,
                                  const absl::StatusOr<std::vector<MatrixXd>>& cov,
                                  std::vector<PointDistribution>* out);
absl::Status LinearizedBatch(const LinearizedFactor& f, const MatrixXd& mean_dual,
                             const Batch& b, const Progress& progress,
                             std::vector<PointDistribution>* out);

// ---- laplace.cc ----
absl::Status LaplaceBatch(const LinearizedFactor& f, const MatrixXd& mean_dual, const Batch& b,
                          const Progress& progress, std::vector<PointDistribution>* out);

// ---- monte_carlo.cc ----
struct MonteCarloFactors {
  std::shared_ptr<const PriorFactor> prior;
  std::shared_ptr<const MonteCarloSamples> samples;
};
absl::StatusOr<MonteCarloFactors> GetMonteCarloFactors(
    const State& state, FactorSource& source, TrainingKernelsOnce& kernels, uint64_t seed,
    int S, int64_t budget, const Progress& progress);
// chol_k: the prior factor of the rows of b.cross (L_K of K_XX, or of
// K_mm for a Nystrom model, whose samples have m rows in place of N).
void MonteCarloBatch(const MatrixXd& chol_k, const MonteCarloSamples& smp, const Batch& b,
                     int C, uint64_t seed, std::vector<PointDistribution>* out);
// A MONTE_CARLO sample set for (seed, S) with `rows` training-side rows
// (N, or m for a Nystrom model): z_and_dual 2 rows x S*C with its top rows
// Z, sample s, class c from the stream of (seed, kTagF0, s) in (c, i)
// order; the dual rows are left for the caller.
std::shared_ptr<MonteCarloSamples> NewSampleSet(uint64_t seed, int S, Index C, Index rows);
// 2b/2c: dual rows of sample s := mean - solved(:, s*C .. s*C+C-1)
// (mean rows x C, solved rows x S*C: the solve applied to F0_s).
void SetLinearSampleDuals(const MatrixXd& mean, const MatrixXd& solved,
                          MonteCarloSamples* samples);

// ---- nystrom.cc ----
// The factors of a Nystrom model (cache part kNystromPart); `method` names
// the caller in RESOURCE_EXHAUSTED. REQUIRES: regime 2b / 2c and the
// model's summaries (state.nystrom.gram non-empty).
absl::StatusOr<std::shared_ptr<const NystromFactors>> GetNystromFactors(
    const State& state, FactorSource& source, const char* method, int64_t budget,
    const Progress& progress);
void NystromExactBatch(const NystromFactors& f, const Batch& b, int C,
                       std::vector<PointDistribution>* out);
// MONTE_CARLO sample set (seed, S) of a Nystrom model: rows 0..m-1 z_s,
// rows m..2m-1 beta_s (MonteCarloBatch with f.chol_k).
absl::StatusOr<std::shared_ptr<const MonteCarloSamples>> GetNystromSamples(
    const NystromFactors& f, FactorSource& source, uint64_t seed, int S, int64_t budget,
    const Progress& progress);

// 2a (docs/model-contract.md "6. Nystrom models", "PredictDistribution of
// a Nystrom model"): the LINEARIZED (laplace false) or LAPLACE_POSTERIOR
// factor (cache parts kNystrom2aLinearizedPart / kNystrom2aLaplacePart)
// from the model's Newton summaries: (m C)^3 / 3 for the Hessian's
// factor, then 2 (m C)^3 (LINEARIZED, two triangular solves) or
// 2 (m C)^3 / 3 (LAPLACE_POSTERIOR, the inverse) flops, in steps
// of at most ~kLinearizedStepFlops. REQUIRES: regime 2a and the summaries
// (state.nystrom.newton_hessian non-empty).
absl::StatusOr<std::shared_ptr<const Nystrom2aFactors>> GetNystrom2aFactors(
    const State& state, FactorSource& source, bool laplace, int64_t budget,
    const Progress& progress);
// Per query ~3 m^2 C^2 (LINEARIZED) or 2 m^2 C^2 (LAPLACE_POSTERIOR) flops,
// progress asked before each of C steps; mean Theta_xZ beta (Predict's).
absl::Status Nystrom2aLinearizedBatch(const Nystrom2aFactors& f, const MatrixXd& beta,
                                      const Batch& b, const Progress& progress,
                                      std::vector<PointDistribution>* out);
absl::Status Nystrom2aLaplaceBatch(const Nystrom2aFactors& f, const MatrixXd& beta,
                                   double lambda, const Batch& b, const Progress& progress,
                                   std::vector<PointDistribution>* out);

}  // namespace ntk::distribution_internal

#endif  // NTK_CORE_DISTRIBUTION_METHODS_H_
