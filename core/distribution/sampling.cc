#include "core/distribution/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace ntk {

uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t PointSeed(uint64_t seed, uint64_t tag, const Eigen::MatrixXd& x,
                   Eigen::Index row) {
  uint64_t h = Mix64(seed ^ Mix64(tag));
  h = Mix64(h ^ static_cast<uint64_t>(x.cols()));
  for (Eigen::Index j = 0; j < x.cols(); ++j) {
    double v = x(row, j);
    if (v == 0) v = 0;  // -0.0 -> +0.0
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    h = Mix64(h ^ bits);
  }
  return h;
}

uint64_t IndexSeed(uint64_t seed, uint64_t tag, uint64_t index) {
  return Mix64(Mix64(seed ^ Mix64(tag)) ^ Mix64(index + 0x632be59bd9b4e019ULL));
}

double NormalStream::Next() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  constexpr double kTwoPow53 = 1.0 / 9007199254740992.0;  // 2^-53
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  // u1 in (0, 1], u2 in [0, 1): log(u1) is finite.
  const double u1 = (static_cast<double>(gen_() >> 11) + 1.0) * kTwoPow53;
  const double u2 = static_cast<double>(gen_() >> 11) * kTwoPow53;
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double t = kTwoPi * u2;
  spare_ = r * std::sin(t);
  has_spare_ = true;
  return r * std::cos(t);
}

void FillNormal(NormalStream& stream, double* out, Eigen::Index n) {
  for (Eigen::Index i = 0; i < n; ++i) out[i] = stream.Next();
}

double Entropy(const double* p, int C) {
  double h = 0;
  for (int c = 0; c < C; ++c) {
    if (p[c] > 0) h -= p[c] * std::log(p[c]);
  }
  return h;
}

namespace {

// Stable softmax of C logits into p.
void Softmax(const double* z, int C, double* p) {
  double mx = z[0];
  for (int c = 1; c < C; ++c) mx = std::max(mx, z[c]);
  double sum = 0;
  for (int c = 0; c < C; ++c) {
    p[c] = std::exp(z[c] - mx);
    sum += p[c];
  }
  const double inv = 1.0 / sum;
  for (int c = 0; c < C; ++c) p[c] *= inv;
}

}  // namespace

void ProbabilityMomentsFromLogitSamples(const double* logits, int S, int C,
                                        std::vector<double>& scratch,
                                        PointDistribution* out) {
  scratch.resize(static_cast<size_t>(S) * C);
  double* probs = scratch.data();
  Eigen::VectorXd mean = Eigen::VectorXd::Zero(C);
  double expected_entropy = 0;
  for (int s = 0; s < S; ++s) {
    double* p = probs + static_cast<size_t>(s) * C;
    Softmax(logits + static_cast<size_t>(s) * C, C, p);
    for (int c = 0; c < C; ++c) mean[c] += p[c];
    expected_entropy += Entropy(p, C);
  }
  mean /= S;
  expected_entropy /= S;
  Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(C, C);
  std::vector<double> dev(C);
  for (int s = 0; s < S; ++s) {
    const double* p = probs + static_cast<size_t>(s) * C;
    for (int c = 0; c < C; ++c) dev[c] = p[c] - mean[c];
    for (int b = 0; b < C; ++b) {
      for (int a = b; a < C; ++a) cov(a, b) += dev[a] * dev[b];
    }
  }
  for (int b = 0; b < C; ++b) {
    for (int a = b; a < C; ++a) {
      cov(a, b) /= S;
      cov(b, a) = cov(a, b);
    }
  }
  out->probability_mean = mean;
  out->probability_covariance = cov;
  out->predictive_entropy = Entropy(mean.data(), C);
  out->expected_entropy = expected_entropy;
  // Jensen: H(mean p) >= mean H(p) for the sample mean; a negative
  // difference is rounding only.
  out->mutual_information =
      std::max(0.0, out->predictive_entropy - out->expected_entropy);
  int label = 0;
  for (int c = 1; c < C; ++c) {
    if (mean[c] > mean[label]) label = c;
  }
  out->label = label;
}

Eigen::MatrixXd CovarianceSqrt(const Eigen::MatrixXd& covariance) {
  const Eigen::Index C = covariance.rows();
  Eigen::MatrixXd sym = 0.5 * (covariance + covariance.transpose());
  // C x C; with EIGEN_USE_LAPACKE this is LAPACK dsyev. Deterministic. Call
  // it outside OpenMP loops (it may reach the BLAS).
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(sym);
  Eigen::MatrixXd a(C, C);
  for (Eigen::Index k = 0; k < C; ++k) {
    const double ev = es.eigenvalues()[k];
    a.col(k) = es.eigenvectors().col(k) * std::sqrt(std::max(ev, 0.0));
  }
  // The symmetric (principal) root V sqrt(L) V^T, not V sqrt(L): it is unique
  // and continuous in the covariance. V alone is not: EXACT covariances
  // s (I - 11^T/C) have a (C-1)-fold eigenvalue, so a 1e-16 change (GEMM
  // rounding for another batch shape) rotates V arbitrarily and with it every
  // sample, which made a point's answer depend on its batch.
  return a * es.eigenvectors().transpose();
}

void GaussianProbabilityMoments(const Eigen::VectorXd& mean,
                                const Eigen::MatrixXd& sqrt_cov, int S,
                                uint64_t seed, std::vector<double>& scratch,
                                PointDistribution* out) {
  const int C = static_cast<int>(mean.size());
  std::vector<double> logits(static_cast<size_t>(S) * C);
  std::vector<double> eps(C);
  NormalStream stream(seed);
  for (int s = 0; s < S; ++s) {
    FillNormal(stream, eps.data(), C);
    double* z = logits.data() + static_cast<size_t>(s) * C;
    for (int a = 0; a < C; ++a) {
      double v = mean[a];
      for (int k = 0; k < C; ++k) v += sqrt_cov(a, k) * eps[k];
      z[a] = v;
    }
  }
  ProbabilityMomentsFromLogitSamples(logits.data(), S, C, scratch, out);
}

}  // namespace ntk
