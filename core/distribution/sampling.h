// ntk/core/distribution/sampling.h (internal to core/): seeded Gaussian
// sampling and the probability-space moments of docs/model-contract.md "4. PredictDistribution".
//
// Randomness: std::mt19937_64 seeded through a splitmix64 hash, plus our own
// Box-Muller transform (not std::normal_distribution, whose algorithm is
// implementation-defined, nor absl random, whose streams are not stable
// across versions). So a (seed, point) pair gives the same stream on every
// build of this code.
//
// Thread safety: NormalStream is a value type (one per thread); the free
// functions are pure.
#ifndef NTK_CORE_DISTRIBUTION_SAMPLING_H_
#define NTK_CORE_DISTRIBUTION_SAMPLING_H_

#include <cstdint>
#include <random>
#include <vector>

#include <Eigen/Dense>

#include "core/model/model.h"

namespace ntk {

// splitmix64 finalizer: a bijective 64-bit mixer.
uint64_t Mix64(uint64_t x);

// Seed for the randomness that belongs to one query point: a hash of the
// request seed, a stream tag and the bits of the point's preprocessed row
// (-0.0 hashed as +0.0). Independent of the point's position in the batch.
// REQUIRES: 0 <= row < x.rows().
uint64_t PointSeed(uint64_t seed, uint64_t tag, const Eigen::MatrixXd& x,
                   Eigen::Index row);

// Seed of an indexed stream that depends on the request seed only (used for
// the Monte Carlo F0 samples: one stream per sample index s).
uint64_t IndexSeed(uint64_t seed, uint64_t tag, uint64_t index);

// Standard normal variates: mt19937_64 + Box-Muller, both outputs used.
class NormalStream {
 public:
  explicit NormalStream(uint64_t seed) : gen_(seed) {}
  double Next();

 private:
  std::mt19937_64 gen_;
  bool has_spare_ = false;
  double spare_ = 0;
};

// Fills `out` (any shape) with standard normals in storage order.
void FillNormal(NormalStream& stream, double* out, Eigen::Index n);

// Probability-space moments of logit samples. `logits` holds S samples of
// C logits, sample s at logits[s * C .. s * C + C). Writes
// probability_mean, probability_covariance (divisor S), predictive_entropy
// H[mean p], expected_entropy mean_s H[p_s] (nats, 0 log 0 = 0),
// mutual_information = predictive - expected and label = argmax mean p.
// By Jensen (entropy is concave and the mean is the sample mean) the mutual
// information of the sample is >= 0 exactly; values below 0 can only be
// rounding (|MI| < 1e-12) and are reported as 0.
// Leaves the logit fields of `out` untouched. Uses `scratch` (resized).
// REQUIRES: S >= 1, C >= 1, logits finite.
void ProbabilityMomentsFromLogitSamples(const double* logits, int S, int C,
                                        std::vector<double>& scratch,
                                        PointDistribution* out);

// The symmetric square root A = V sqrt(L) V^T (C x C, A A^T = covariance;
// unique and continuous in the covariance) from the symmetric
// eigendecomposition, negative eigenvalues (rounding of a PSD matrix)
// clamped to 0. REQUIRES: covariance symmetric.
Eigen::MatrixXd CovarianceSqrt(const Eigen::MatrixXd& covariance);

// Draws S samples z_s = mean + A eps_s, eps_s ~ N(0, I_C) from
// NormalStream(seed) (eps_s = the C normals s*C .. s*C + C-1 of the stream),
// and fills the probability fields of `out` as above. The logit fields are
// not touched. Allocation-light and BLAS-free: safe inside OpenMP loops.
// REQUIRES: mean C, sqrt_cov C x C, S >= 1.
void GaussianProbabilityMoments(const Eigen::VectorXd& mean,
                                const Eigen::MatrixXd& sqrt_cov, int S,
                                uint64_t seed, std::vector<double>& scratch,
                                PointDistribution* out);

// Softmax entropy in nats of a probability vector, 0 log 0 = 0.
double Entropy(const double* p, int C);

}  // namespace ntk

#endif  // NTK_CORE_DISTRIBUTION_SAMPLING_H_
