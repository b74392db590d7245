// ntk/core/distribution/moments.cc: see moments.h.
#include "core/distribution/moments.h"

#include <algorithm>
#include <cmath>

#include "core/numerics/random.h"

namespace ntk {

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

Eigen::MatrixXd CenterCovariance(const Eigen::MatrixXd& s) {
  const Eigen::Index C = s.rows();
  const Eigen::VectorXd row_mean = s.rowwise().mean();
  const Eigen::VectorXd col_mean = s.colwise().mean().transpose();
  const double all_mean = s.mean();
  Eigen::MatrixXd out(C, C);
  for (Eigen::Index b = 0; b < C; ++b) {
    for (Eigen::Index a = 0; a < C; ++a) {
      out(a, b) = s(a, b) - row_mean[a] - col_mean[b] + all_mean;
    }
  }
  Symmetrize(&out);
  return out;
}

void Symmetrize(Eigen::MatrixXd* m) {
  const Eigen::Index n = m->rows();
  for (Eigen::Index j = 0; j < n; ++j) {
    for (Eigen::Index i = j + 1; i < n; ++i) {
      const double v = 0.5 * ((*m)(i, j) + (*m)(j, i));
      (*m)(i, j) = v;
      (*m)(j, i) = v;
    }
  }
}

Eigen::VectorXd CenterVector(const Eigen::VectorXd& v) {
  return (v.array() - v.mean()).matrix();
}

}  // namespace ntk
