// Tests of docs/model-contract.md "4. PredictDistribution", the moments of
// Gaussian logits (core/distribution/moments.h): probability means and
// covariances and the three entropies against quadrature (C = 2) and an
// independent sampler. The methods themselves: tests/distribution_test.cc.
//
// Tolerances: Monte Carlo comparisons use a bound of k standard errors with
// the standard error computed from the quantities being estimated (stated
// next to each).
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "core/distribution/moments.h"
#include "core/numerics/random.h"
#include "tests/testing/distribution_fixtures.h"
#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using testing::Centering;
using testing::ExpectWithinSE;
using testing::RandomFeatures;

double Sigmoid(double t) { return 1.0 / (1.0 + std::exp(-t)); }

// E[g(t)], t ~ N(mu, sigma^2), by the trapezoid rule on mu +- 12 sigma with
// 40001 nodes: the integrand is smooth and the tails beyond 12 sigma weigh
// < 1e-30, so the quadrature error is far below the MC tolerances used.
template <typename G>
double GaussExpect(double mu, double sigma, G g) {
  const int n = 40001;
  const double a = -12, h = 24.0 / (n - 1);
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    const double u = a + i * h;
    const double w = (i == 0 || i == n - 1) ? 0.5 : 1.0;
    sum += w * std::exp(-0.5 * u * u) * g(mu + sigma * u);
  }
  return sum * h / std::sqrt(2 * M_PI);
}

double BinaryEntropy(double p) {
  double h = 0;
  if (p > 0) h -= p * std::log(p);
  if (p < 1) h -= (1 - p) * std::log(1 - p);
  return h;
}
// --- Gaussian logits -> probability moments -------------------------------

// C = 2, centered logits (m, -m) with covariance s P: then p_1 = sigmoid(t),
// t = z_1 - z_2 ~ N(2m, 2s). Quadrature gives the exact moments; the MC
// estimate must lie within 4 standard errors (SE from the quadrature
// moments: sd / sqrt(S); for the variance sqrt((mu4 - var^2) / S)).
TEST(DistributionProbabilityMoments, BinaryMatchesQuadrature) {
  const int S = 200000;
  for (double m : {0.0, 0.4, -1.3}) {
    for (double s : {0.05, 1.0, 6.0}) {
      VectorXd mean(2);
      mean << m, -m;
      const MatrixXd cov = s * Centering(2);
      PointDistribution pd;
      std::vector<double> scratch;
      GaussianProbabilityMoments(mean, CovarianceSqrt(cov), S, 1234, scratch, &pd);
      const double mu = 2 * m, sd = std::sqrt(2 * s);
      const double e1 = GaussExpect(mu, sd, Sigmoid);
      const double e2 = GaussExpect(mu, sd, [](double t) { return std::pow(Sigmoid(t), 2); });
      const double var = e2 - e1 * e1;
      const double mu4 = GaussExpect(mu, sd, [&](double t) { return std::pow(Sigmoid(t) - e1, 4); });
      const double eh = GaussExpect(mu, sd, [](double t) { return BinaryEntropy(Sigmoid(t)); });
      const double eh2 = GaussExpect(mu, sd, [](double t) { return std::pow(BinaryEntropy(Sigmoid(t)), 2); });
      const double se_mean = std::sqrt(var / S);
      const double se_var = std::sqrt((mu4 - var * var) / S);
      const double se_h = std::sqrt((eh2 - eh * eh) / S);
      // MI = h(E p) - E h(p). Its estimate h(mean p_s) - mean h(p_s) has,
      // by the delta method, the variance of u = h'(e1) p - h(p) over S:
      // h'(q) = log((1 - q) / q).
      const double dh = std::log((1 - e1) / e1);
      const double mi = BinaryEntropy(e1) - eh;
      const double eu = dh * e1 - eh;
      const double eu2 = GaussExpect(mu, sd, [&](double t) {
        return std::pow(dh * Sigmoid(t) - BinaryEntropy(Sigmoid(t)), 2);
      });
      const double se_mi = std::sqrt((eu2 - eu * eu) / S);
      SCOPED_TRACE(::testing::Message() << "m=" << m << " s=" << s);
      EXPECT_NEAR(pd.probability_mean[0], e1, 4 * se_mean + 1e-14);
      EXPECT_NEAR(pd.probability_mean[0] + pd.probability_mean[1], 1.0, 1e-12);
      EXPECT_NEAR(pd.probability_covariance(0, 0), var, 4 * se_var + 1e-14);
      // p_2 = 1 - p_1: covariance entries are +-var exactly up to rounding.
      EXPECT_NEAR(pd.probability_covariance(0, 1), -pd.probability_covariance(0, 0), 1e-12);
      EXPECT_NEAR(pd.expected_entropy, eh, 4 * se_h + 1e-14);
      EXPECT_NEAR(pd.predictive_entropy, BinaryEntropy(pd.probability_mean[0]), 1e-12);
      // MI against the quadrature value (the clamp at 0 in the code cannot
      // hide an error here: for s = 6 the true MI is ~0.1 nats).
      EXPECT_NEAR(pd.mutual_information, mi, 4 * se_mi + 1e-14);
      EXPECT_NEAR(pd.mutual_information, pd.predictive_entropy - pd.expected_entropy, 1e-12);
      EXPECT_EQ(pd.label, pd.probability_mean[0] >= pd.probability_mean[1] ? 0 : 1);
    }
  }
}

TEST(DistributionProbabilityMoments, ZeroCovarianceHasNoEpistemicPart) {
  VectorXd mean(4);
  mean << 0.5, -0.2, 1.0, -1.3;
  PointDistribution pd;
  std::vector<double> scratch;
  GaussianProbabilityMoments(mean, CovarianceSqrt(MatrixXd::Zero(4, 4)), 100, 7, scratch, &pd);
  const VectorXd p = (mean.array().exp() / mean.array().exp().sum()).matrix();
  EXPECT_LT((pd.probability_mean - p).cwiseAbs().maxCoeff(), 1e-15);
  // All S samples are the same vector p: the sample mean is p up to the
  // rounding of summing S copies (~1e-16), so covariance entries are
  // products of two such deviations (< 1e-28) and MI is rounding (< 1e-14).
  EXPECT_LT(pd.probability_covariance.cwiseAbs().maxCoeff(), 1e-28);
  EXPECT_LT(pd.mutual_information, 1e-14);
  EXPECT_NEAR(pd.predictive_entropy, -(p.array() * p.array().log()).sum(), 1e-14);
  EXPECT_EQ(pd.label, 2);
}

TEST(DistributionProbabilityMoments, ZeroLogZeroIsZero) {
  // Logits 800 apart: softmax underflows to exactly 0 for the small ones.
  VectorXd mean(3);
  mean << 800, 0, -800;
  PointDistribution pd;
  std::vector<double> scratch;
  GaussianProbabilityMoments(mean, MatrixXd::Zero(3, 3), 10, 1, scratch, &pd);
  EXPECT_EQ(pd.probability_mean[0], 1.0);
  EXPECT_EQ(pd.predictive_entropy, 0.0);
  EXPECT_EQ(pd.expected_entropy, 0.0);
  EXPECT_FALSE(std::isnan(pd.mutual_information));
}

// C = 5, random mean and full-rank centered covariance: the entropies and
// MI of the core sampler (S = 20000) against the test's own estimate from
// S logit samples mean + L z (L Cholesky factor, z from StdNormalMatrix: another
// root and another generator, the same distribution). The two estimates are
// independent, so their difference has SE sqrt(2) * se, with se the delta
// method SE of one estimate: MI_hat = H(mean p) - mean H(p) has the
// variance of u_s = -(log pbar + 1) . p_s - H(p_s) over S. Bound: 5 SE
// (140 checks; false alarm ~ 1e-4).
TEST(DistributionProbabilityMoments, EntropiesMatchAnIndependentSampler) {
  const int C = 5, S = 20000;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const MatrixXd a = RandomFeatures(C, C, seed);
    const MatrixXd cov = Centering(C) * a * a.transpose() * Centering(C);
    const VectorXd mean = RandomFeatures(C, 1, seed + 100).col(0);
    PointDistribution p1, p2;
    std::vector<double> scratch;
    GaussianProbabilityMoments(mean, CovarianceSqrt(cov), S, seed, scratch, &p1);
    GaussianProbabilityMoments(mean, CovarianceSqrt(cov), S, seed, scratch, &p2);
    // Seeded: the same request gives the same answer bit for bit.
    EXPECT_EQ(p1.probability_mean, p2.probability_mean);
    EXPECT_EQ(p1.mutual_information, p2.mutual_information);

    // The test's own estimate. cov is rank C - 1 (centered): factor
    // cov + 1e-12 I; the added 1e-12 variance changes probabilities by
    // ~1e-6 relative, far below the SE (~1e-3).
    const MatrixXd l = (cov + 1e-12 * MatrixXd::Identity(C, C)).llt().matrixL();
    const MatrixXd z = l * testing::StdNormalMatrix(C, S, seed + 1000);
    MatrixXd p(C, S);
    VectorXd h(S);
    for (int s = 0; s < S; ++s) {
      const VectorXd e = (mean + z.col(s)).array().exp();
      p.col(s) = e / e.sum();
      h[s] = -(p.col(s).array() * p.col(s).array().log()).sum();
    }
    const VectorXd pbar = p.rowwise().mean();
    const double hbar = h.mean();
    const double mi = -(pbar.array() * pbar.array().log()).sum() - hbar;
    const VectorXd g = -(pbar.array().log() + 1.0);
    const VectorXd u = (g.transpose() * p).transpose() - h;
    const double se_mi = std::sqrt((u.array() - u.mean()).square().mean() / S);
    const double se_h = std::sqrt((h.array() - hbar).square().mean() / S);
    SCOPED_TRACE(::testing::Message() << "seed " << seed << " MI " << mi);
    EXPECT_NEAR(p1.mutual_information, mi, 5 * std::sqrt(2.0) * se_mi);
    EXPECT_NEAR(p1.expected_entropy, hbar, 5 * std::sqrt(2.0) * se_h);
    for (int c = 0; c < C; ++c) {
      const double se_p = std::sqrt((p.row(c).array() - pbar[c]).square().mean() / S);
      EXPECT_NEAR(p1.probability_mean[c], pbar[c], 5 * std::sqrt(2.0) * se_p);
    }
  }
}

}  // namespace
}  // namespace ntk
