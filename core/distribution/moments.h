// ntk/core/distribution/moments.h (internal to core/): the moment
// computation every PredictDistribution method shares
// (docs/model-contract.md "4. PredictDistribution"): logit samples ->
// probability mean and covariance, predictive and expected entropy, mutual
// information; Gaussian logits -> samples; centering of logit moments.
//
// Thread safety: pure functions (BLAS-free except CovarianceSqrt).
#ifndef NTK_CORE_DISTRIBUTION_MOMENTS_H_
#define NTK_CORE_DISTRIBUTION_MOMENTS_H_

#include <cstdint>
#include <vector>

#include <Eigen/Dense>

#include "core/model/model.h"

namespace ntk {

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

// Centered copy of a C x C covariance: P S P, P = I - 11^T / C (symmetrized).
Eigen::MatrixXd CenterCovariance(const Eigen::MatrixXd& s);

// m := (m + m^T) / 2, entry by entry.
void Symmetrize(Eigen::MatrixXd* m);

// v - mean(v).
Eigen::VectorXd CenterVector(const Eigen::VectorXd& v);

}  // namespace ntk

#endif  // NTK_CORE_DISTRIBUTION_MOMENTS_H_
