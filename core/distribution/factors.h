// ntk/core/distribution/factors.h (internal to core/): the factors that
// PredictDistribution builds on first use and keeps inside a model
// (FittedModel::State::cache, guarded by State::cache_mu).
//
// Every field is a deterministic function of the persisted State (x_train,
// targets, initial_train_outputs, dual, resolved spec, stats.jitter) and,
// for Monte Carlo samples, of (seed, number of samples). Nothing here is
// serialized. Entries are immutable once built and handed out as
// shared_ptr<const ...>, so a request keeps using its factors after
// releasing cache_mu even if an LRU entry is evicted meanwhile.
//
// Notation (docs/model-contract.md): K = NNGP kernel, Theta = NTK, N training points,
// C classes, lambda the regularization.
#ifndef NTK_CORE_DISTRIBUTION_FACTORS_H_
#define NTK_CORE_DISTRIBUTION_FACTORS_H_

#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include <Eigen/Dense>

namespace ntk {

// 2b / 2c, methods EXACT and LINEARIZED (and the linear map of MONTE_CARLO).
// A = Theta_XX + (lambda_2c + jitter) I, the matrix the fit factored.
struct ExactFactors {
  Eigen::MatrixXd nngp_train;  // K_XX, N x N
  Eigen::MatrixXd chol_a;      // lower Cholesky factor of A
  // Mean dual for f0 == 0: A^{-1} T with T = log Y (2b) or Y (2c). Equal to
  // state.dual when the fit used F0 = 0 (it is then copied from it).
  Eigen::MatrixXd mean_dual;   // N x C
  int64_t Bytes() const;
};

// 2a, methods LINEARIZED and LAPLACE_POSTERIOR (Rasmussen & Williams
// algorithm 3.3 structure at the F0 = 0 solution with prior kernel
// Theta / lambda per class):
//   D_c = diag(p_c), p = softmax(F*) (N x C),
//   E_c = D_c^{1/2} (I + D_c^{1/2} (Theta/lambda) D_c^{1/2})^{-1} D_c^{1/2},
//   M = sum_c E_c = L_M L_M^T,
//   B := W (I + (Theta/lambda (x) I) W)^{-1} = E - E R M^{-1} R^T E
// (R = the C stacked N x N identities).
struct LinearizedFactors {
  std::vector<Eigen::MatrixXd> e;  // E_c, C of N x N, symmetric
  Eigen::MatrixXd chol_m;          // L_M, lower
  Eigen::MatrixXd mean_dual;       // (Y - softmax(F*)) / lambda at F0 = 0
  int64_t Bytes() const;
};

// LINEARIZED only (LAPLACE_POSTERIOR does not need them):
// K_XX and H = sum_c E_c K_XX E_c.
struct LinearizedCovarianceFactors {
  Eigen::MatrixXd nngp_train;  // K_XX
  Eigen::MatrixXd h;           // H, symmetric
  int64_t Bytes() const;
};

// The prior of F0 for MONTE_CARLO: K_XX + jitter I = L_K L_K^T.
struct PriorFactor {
  Eigen::MatrixXd chol_k;  // L_K, lower
  double jitter = 0;
  int64_t Bytes() const;
};

// MONTE_CARLO training-side samples for one (seed, S): sample s uses
// F0_s = L_K Z_s with Z_s ~ N(0, I) (N x C) drawn from (seed, s) alone, and
// its trained dual Dual_s (f_s(x) = f0_s(x) + Theta_xX Dual_s). Stored
// stacked: rows 0..N-1 are Z, rows N..2N-1 are Dual; column s*C + c is
// sample s, class c.
struct MonteCarloSamples {
  uint64_t seed = 0;
  int num_samples = 0;
  Eigen::MatrixXd z_and_dual;  // 2N x S*C
  int64_t Bytes() const;
};

struct ModelFactorSet {
  std::shared_ptr<const ExactFactors> exact;             // 2b, 2c
  std::shared_ptr<const LinearizedFactors> linearized;   // 2a
  std::shared_ptr<const LinearizedCovarianceFactors> linearized_covariance;
  std::shared_ptr<const PriorFactor> prior;              // MONTE_CARLO
  std::shared_ptr<const Eigen::MatrixXd> ntk_train;      // 2a MONTE_CARLO: Theta_XX
  std::shared_ptr<const Eigen::MatrixXd> zero_f0_dual;   // 2a: dual at F0 = 0
  // Most recently used first; at most kMaxSampleSets entries.
  std::list<std::shared_ptr<const MonteCarloSamples>> samples;
  static constexpr int kMaxSampleSets = 4;
  int64_t Bytes() const;
};

}  // namespace ntk

#endif  // NTK_CORE_DISTRIBUTION_FACTORS_H_
