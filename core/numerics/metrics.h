// ntk/core/numerics/metrics.h: the classification metrics of docs/evaluation.md,
// used by tools/evaluate and by model selection's held-out scores
// (core/selection/selection.h, docs/model-contract.md "7. Model selection").
//
//   ntk::eval::ClassificationMetrics m = ntk::eval::Classify(probs, labels);
//   double a = ntk::eval::Auroc(scores, is_positive);
//
// Definitions (the same as scripts/baselines.py, so that the NTK and the
// scikit-learn numbers are comparable):
//   accuracy  mean of [argmax_c p_ic == y_i] (ties: the first maximum)
//   NLL       mean of -log p_{i,y_i}; p is floored at DBL_MIN so a zero
//             probability gives a large finite value (708.4), not inf
//   Brier     mean over points of sum_c (p_ic - [c == y_i])^2, in [0, 2]
//   ECE       15 equal-width bins of the confidence max_c p_ic, bin k =
//             (k/15, (k+1)/15] (index ceil(15 conf) - 1, clamped to
//             [0, 14]); ECE = sum_k |B_k| / n * |acc(B_k) - conf(B_k)|
//   AUROC     P(score of a positive > score of a negative) with ties counted
//             1/2 (Mann-Whitney U / (n_pos n_neg), average ranks for ties)
//   entropy   -sum_c p_c log p_c in nats, 0 log 0 = 0
//
// Header-only so that the evaluation tool, model selection and
// tests/evaluate_test.cc share one implementation. Thread safety: pure functions.
#ifndef NTK_CORE_NUMERICS_METRICS_H_
#define NTK_CORE_NUMERICS_METRICS_H_

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <vector>

#include <Eigen/Dense>

namespace ntk::eval {

inline constexpr int kEceBins = 15;

struct ReliabilityBin {
  int count = 0;
  double mean_confidence = 0;  // 0 for an empty bin
  double accuracy = 0;         // 0 for an empty bin
};

struct ClassificationMetrics {
  int n = 0;
  double accuracy = 0;
  double nll = 0;
  double brier = 0;
  double ece = 0;
  std::vector<ReliabilityBin> reliability;  // kEceBins bins
};

// Index of the first maximum of row i.
inline int ArgmaxRow(const Eigen::MatrixXd& p, Eigen::Index i) {
  Eigen::Index best = 0;
  for (Eigen::Index c = 1; c < p.cols(); ++c) {
    if (p(i, c) > p(i, best)) best = c;
  }
  return static_cast<int>(best);
}

// REQUIRES: labels[i] in [0, p.cols()), labels.size() == p.rows() > 0.
inline std::vector<ReliabilityBin> Reliability(const Eigen::MatrixXd& p,
                                               const std::vector<int>& labels,
                                               int bins = kEceBins) {
  std::vector<ReliabilityBin> out(bins);
  std::vector<double> conf_sum(bins, 0.0), correct_sum(bins, 0.0);
  for (Eigen::Index i = 0; i < p.rows(); ++i) {
    const int k = ArgmaxRow(p, i);
    const double conf = p(i, k);
    int b = static_cast<int>(std::ceil(conf * bins)) - 1;
    b = std::clamp(b, 0, bins - 1);
    ++out[b].count;
    conf_sum[b] += conf;
    correct_sum[b] += (k == labels[i]) ? 1.0 : 0.0;
  }
  for (int b = 0; b < bins; ++b) {
    if (out[b].count > 0) {
      out[b].mean_confidence = conf_sum[b] / out[b].count;
      out[b].accuracy = correct_sum[b] / out[b].count;
    }
  }
  return out;
}

inline double ExpectedCalibrationError(const std::vector<ReliabilityBin>& bins) {
  int n = 0;
  for (const ReliabilityBin& b : bins) n += b.count;
  if (n == 0) return 0;
  double ece = 0;
  for (const ReliabilityBin& b : bins) {
    ece += static_cast<double>(b.count) / n * std::abs(b.accuracy - b.mean_confidence);
  }
  return ece;
}

// REQUIRES: labels.size() == p.rows() > 0, labels in [0, p.cols()).
inline ClassificationMetrics Classify(const Eigen::MatrixXd& p,
                                      const std::vector<int>& labels) {
  ClassificationMetrics m;
  m.n = static_cast<int>(p.rows());
  double correct = 0, nll = 0, brier = 0;
  for (Eigen::Index i = 0; i < p.rows(); ++i) {
    const int y = labels[i];
    correct += (ArgmaxRow(p, i) == y) ? 1.0 : 0.0;
    nll += -std::log(std::max(p(i, y), DBL_MIN));
    for (Eigen::Index c = 0; c < p.cols(); ++c) {
      const double d = p(i, c) - (c == y ? 1.0 : 0.0);
      brier += d * d;
    }
  }
  m.accuracy = correct / m.n;
  m.nll = nll / m.n;
  m.brier = brier / m.n;
  m.reliability = Reliability(p, labels);
  m.ece = ExpectedCalibrationError(m.reliability);
  return m;
}

// Entropy in nats of each row of p (0 log 0 = 0).
inline Eigen::VectorXd RowEntropy(const Eigen::MatrixXd& p) {
  Eigen::VectorXd h(p.rows());
  for (Eigen::Index i = 0; i < p.rows(); ++i) {
    double s = 0;
    for (Eigen::Index c = 0; c < p.cols(); ++c) {
      if (p(i, c) > 0) s -= p(i, c) * std::log(p(i, c));
    }
    h(i) = s;
  }
  return h;
}

// Area under the ROC curve of `score` for separating positives (true) from
// negatives, with average ranks for ties. Returns NaN when either class is
// empty. REQUIRES: score.size() == positive.size().
inline double Auroc(const std::vector<double>& score, const std::vector<bool>& positive) {
  const size_t n = score.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return score[a] < score[b]; });
  double rank_sum_pos = 0;
  size_t n_pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && score[order[j]] == score[order[i]]) ++j;
    const double avg_rank = 0.5 * static_cast<double>(i + 1 + j);  // ranks i+1..j
    for (size_t k = i; k < j; ++k) {
      if (positive[order[k]]) {
        rank_sum_pos += avg_rank;
        ++n_pos;
      }
    }
    i = j;
  }
  const size_t n_neg = n - n_pos;
  if (n_pos == 0 || n_neg == 0) return std::nan("");
  const double np = static_cast<double>(n_pos), nn = static_cast<double>(n_neg);
  return (rank_sum_pos - np * (np + 1) / 2) / (np * nn);
}

}  // namespace ntk::eval

#endif  // NTK_CORE_NUMERICS_METRICS_H_
