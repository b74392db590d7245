// ntk/core/distribution/factors.h (internal to core/distribution/): the
// factors that PredictDistribution builds on first use, and FactorSource,
// which fetches them through the caller's DistributionCache::Scope
// (core/distribution/cache.h) or, without a cache, computes them for one
// call.
//
// Every field is a deterministic function of the persisted State (x_train,
// problem, initial_train_outputs, dual, stats.jitter) and, for Monte Carlo
// samples, of (seed, number of samples). Nothing here is serialized. Entries
// are immutable once built and handed out as shared_ptr<const ...>, so a
// request keeps using its factors even if the cache evicts them meanwhile.
// Cache key parts: "exact", "linearized" (LinearizedFactor,
// linearized_solver.h), "prior", "ntk_train", "zero_f0_dual",
// "mc/seed=<s>/S=<S>", and for Nystrom models "nystrom" (and their own
// "mc/seed=<s>/S=<S>": a model is either exact or Nystrom), or, 2a,
// "nystrom2a/linearized" and "nystrom2a/laplace".
//
// Notation (docs/model-contract.md): K = NNGP kernel, Theta = NTK, N training points,
// C classes, lambda the regularization.
#ifndef NTK_CORE_DISTRIBUTION_FACTORS_H_
#define NTK_CORE_DISTRIBUTION_FACTORS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <memory>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/distribution/cache.h"

namespace ntk {

// Cache key part of ExactFactors (also what FittedModel::Fit hands over).
inline constexpr char kExactPart[] = "exact";

// 2b / 2c, methods EXACT and LINEARIZED (and the linear map of MONTE_CARLO).
// A = Theta_XX + (lambda_2c + jitter) I, the matrix the fit factored.
struct ExactFactors : CacheEntry {
  Eigen::MatrixXd nngp_train;  // K_XX, N x N
  Eigen::MatrixXd chol_a;      // lower Cholesky factor of A
  // Mean dual for f0 == 0: A^{-1} T with T = log Y (2b) or Y (2c). Equal to
  // state.dual when the fit used F0 = 0 (it is then copied from it).
  Eigen::MatrixXd mean_dual;   // N x C
  int64_t Bytes() const override;
};

// The prior of F0 for MONTE_CARLO: K_XX + jitter I = L_K L_K^T.
struct PriorFactor : CacheEntry {
  Eigen::MatrixXd chol_k;  // L_K, lower
  double jitter = 0;
  int64_t Bytes() const override;
};

// MONTE_CARLO training-side samples for one (seed, S): sample s uses
// F0_s = L_K Z_s with Z_s ~ N(0, I) (N x C) drawn from (seed, s) alone, and
// its trained dual Dual_s (f_s(x) = f0_s(x) + Theta_xX Dual_s). Stored
// stacked: rows 0..N-1 are Z, rows N..2N-1 are Dual; column s*C + c is
// sample s, class c.
struct MonteCarloSamples : CacheEntry {
  uint64_t seed = 0;
  int num_samples = 0;
  Eigen::MatrixXd z_and_dual;  // 2N x S*C
  int64_t Bytes() const override;
};

// Cache key part of NystromFactors.
inline constexpr char kNystromPart[] = "nystrom";

// Nystrom models, 2b / 2c (docs/model-contract.md "6. Nystrom models",
// "PredictDistribution of a Nystrom model"), from the model's m x m
// summaries: every method's factor (EXACT, LINEARIZED, MONTE_CARLO).
struct NystromFactors : CacheEntry {
  Eigen::MatrixXd chol_h;     // L_H, H = Theta_mn Theta_nm + delta Theta_mm (the fit's)
  Eigen::MatrixXd chol_k;     // L_K, K_mm + jitter_k I = L_K L_K^T
  double jitter_k = 0;        // 0 unless K_mm is numerically singular
  Eigen::MatrixXd w;          // W = L_K^{-1} K_mn Theta_nm, m x m
  Eigen::MatrixXd mean_beta;  // coefficients of the F0 = 0 solution, m x C
  int64_t Bytes() const override;
};

// Bytes of NystromFactors for m centers and C classes.
inline int64_t NystromFactorBytes(int64_t m, int64_t c) { return 8 * (3 * m * m + m * c); }

// Cache key parts of Nystrom2aFactors, one per method.
inline constexpr char kNystrom2aLinearizedPart[] = "nystrom2a/linearized";
inline constexpr char kNystrom2aLaplacePart[] = "nystrom2a/laplace";

// Nystrom models, 2a (docs/model-contract.md "6. Nystrom models",
// "PredictDistribution of a Nystrom model"), from the model's Newton
// summaries: with Hb = newton_hessian + lambda (I_C (x) Theta_mm), the
// Newton Hessian of the fit in beta (index c m + a),
//   LINEARIZED:        chol = L_K (K_mm + jitter I),       solved = Hb^{-1} newton_cross;
//   LAPLACE_POSTERIOR: chol = L_T (Theta_mm + jitter I),   solved = Hb^{-1}.
struct Nystrom2aFactors : CacheEntry {
  Eigen::MatrixXd chol;    // m x m, lower
  Eigen::MatrixXd solved;  // (m C) x (m C)
  int64_t Bytes() const override;
};

// Bytes of Nystrom2aFactors for m centers and C classes.
inline int64_t Nystrom2aFactorBytes(int64_t m, int64_t c) {
  return 8 * ((m * c) * (m * c) + m * m);
}

// A matrix kept as a factor (Theta_XX, the F0 = 0 dual).
struct MatrixFactor : CacheEntry {
  Eigen::MatrixXd value;
  int64_t Bytes() const override;
};

// Where one PredictDistribution call gets its factors: the scope's cache
// (single flight, shared across requests) or, when scope.cache is null, a
// computation kept for this call only. Within a call every part is fetched
// at most once (a per-call memo), so a part evicted from the cache in the
// middle of the call is not recomputed.
// Thread safety: one FactorSource per call, used by one thread.
class FactorSource {
 public:
  explicit FactorSource(const DistributionCache::Scope& scope) : scope_(scope) {}

  template <typename T>
  absl::StatusOr<std::shared_ptr<const T>> Get(
      const std::string& part,
      const std::function<absl::StatusOr<std::shared_ptr<const T>>()>& compute) {
    absl::StatusOr<std::shared_ptr<const CacheEntry>> e = GetEntry(
        part, [&]() -> absl::StatusOr<std::shared_ptr<const CacheEntry>> {
          absl::StatusOr<std::shared_ptr<const T>> v = compute();
          if (!v.ok()) return v.status();
          return std::shared_ptr<const CacheEntry>(*std::move(v));
        });
    if (!e.ok()) return e.status();
    return std::static_pointer_cast<const T>(*std::move(e));
  }

 private:
  absl::StatusOr<std::shared_ptr<const CacheEntry>> GetEntry(
      const std::string& part,
      const std::function<absl::StatusOr<std::shared_ptr<const CacheEntry>>()>& compute);

  const DistributionCache::Scope& scope_;
  std::map<std::string, std::shared_ptr<const CacheEntry>> memo_;
};

}  // namespace ntk

#endif  // NTK_CORE_DISTRIBUTION_FACTORS_H_
