// ntk/core/distribution/distribution.h (internal to core/): docs/model-contract.md "4. PredictDistribution", the
// distribution of trained predictors over random initializations
// f0 ~ GP(0, K (x) I_C), and the Laplace posterior.
//
// FittedModel::PredictDistribution validates and preprocesses the queries
// and then calls ComputeDistribution.
//
// Methods (regimes: 2a = CE with lambda > 0, 2b = CE with lambda = 0,
// 2c = squared loss):
//   EXACT (2b, 2c; FAILED_PRECONDITION for 2a): centered logits are
//     Gaussian, mean center(Theta_xX A^{-1} T), covariance s(x) (I - 11^T/C),
//     s(x) = K_xx - 2 r^T K_Xx + r^T K_XX r, r = A^{-1} Theta_Xx,
//     A = Theta_XX + (lambda_2c + jitter) I (the fit's matrix), T = log Y or Y.
//   LINEARIZED (all): for 2b/2c the map is linear and the EXACT formula is
//     used (the result reports LINEARIZED); for 2a the map F0 -> f(x) is
//     linearized at F0 = 0 (R&W algorithm 3.3 factors,
//     linearized_solver.h; docs/model-contract.md "4. PredictDistribution",
//     "LINEARIZED: derivation and cost").
//   MONTE_CARLO (all): S samples F0_s ~ N(0, K_XX (x) I) from the seed alone,
//     each trained (2a: one Newton solve, core/training/solvers.h; 2b/2c: the linear
//     map), f0_s(x) | F0_s drawn per point; sample moments (divisor S).
//     Default S: kDefaultMonteCarloSamples (64) for 2a, kDefaultNumSamples
//     (1000) for 2b/2c. Sample sets are cached per (seed, S).
//   LAPLACE_POSTERIOR (2a; FAILED_PRECONDITION otherwise): GP classification
//     with prior GP(0, Theta / lambda (x) I) at the MAP (Predict's logits),
//     R&W algorithm 3.4 covariance. Logit covariances are reported for the
//     centered logits, P Sigma P.
// Nystrom models (docs/model-contract.md "6. Nystrom models"; 2b / 2c
// only, FittedModel refuses 2a): EXACT, LINEARIZED and MONTE_CARLO by the
// same formulas with the Nystrom NNGP on the training side, from the
// model's m x m summaries (nystrom.cc; O(m^2) per query, factors 3 m^2).
// For the Gaussian methods, num_samples (default 1000) is the number of
// logit samples used for the probability moments and entropies.
//
// Cost (N training points, C classes, per query point, besides the kernel
// row O(N d)): EXACT ~4 N^2 flops, LAPLACE ~2 (C + 1) C N^2, LINEARIZED
// ~2 (2C + 3) C N^2, MONTE_CARLO ~N^2 + 4 N S C; plus S C^2 for the
// probability moments.
// Factors built on first use (kept in options.cache): EXACT 2 N^2 doubles
// (~2 N^3/3 flops + kernels); LINEARIZED and LAPLACE share one factor
// ((C + 1/3) N^3 flops): 2 N^2 doubles, or (C + 2) N^2 with the per-class
// Cholesky factors kept when DistributionFactorCapacity (core/model/cost.h)
// holds them; streamed, each call refactors (LINEARIZED 2C N^3/3 flops,
// LAPLACE C N^3/3; core/distribution/linearized_solver.h); MONTE_CARLO
// 2 N^2 (+ EXACT's for 2b/2c) plus 2 N S C per sample set (2a: S Newton
// solves). Refused with RESOURCE_EXHAUSTED when the method's cache exceeds
// DistributionOptions::max_cache_bytes.
// Determinism: the same request on the same model (or its serialized copy)
// gives bit-identical results, whatever the OpenMP thread count. Each
// point's randomness depends only on (seed, its preprocessed row), so a
// point's answer does not depend on the rest of the batch except through
// BLAS rounding (~1e-15 relative).
//
// Thread safety: safe to call concurrently on one State; no lock is held
// while factors are computed. With a cache, concurrent first calls that need
// the same factor compute it once (the cache's single flight) and calls for
// other factors or models proceed; without one (options.cache.cache ==
// nullptr) every call computes its own. Built factors are immutable.
#ifndef NTK_CORE_DISTRIBUTION_DISTRIBUTION_H_
#define NTK_CORE_DISTRIBUTION_DISTRIBUTION_H_

#include <memory>
#include <string>
#include <utility>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/model/model.h"
#include "core/model/model_state.h"

namespace ntk {

// Errors: FAILED_PRECONDITION (method not applicable), INVALID_ARGUMENT
// ("num_samples: ..." outside [0, kMaxNumSamples], "features: ..." wrong column
// count), RESOURCE_EXHAUSTED (cache budget), CANCELLED (progress returned
// false), INTERNAL (a factorization the fit succeeded with failed).
// REQUIRES: x is preprocessed, x.cols() == state.num_features(), finite.
// The EXACT factors (cache part kExactPart, core/distribution/factors.h)
// from what a 2b/2c fit computed: K_XX and SolverSolution::cholesky_factor.
// REQUIRES: state is the fitted state (dual, stats.jitter set) and chol_a
// the factor of the matrix its solve factored.
std::pair<std::string, std::shared_ptr<const CacheEntry>> ExactFactorsFromFit(
    const FittedModel::State& state, Eigen::MatrixXd nngp_train, Eigen::MatrixXd chol_a);

absl::StatusOr<DistributionResult> ComputeDistribution(
    const FittedModel::State& state, const Eigen::MatrixXd& x,
    const DistributionOptions& options);

}  // namespace ntk

#endif  // NTK_CORE_DISTRIBUTION_DISTRIBUTION_H_
