// ntk/core/model/preprocess.cc: Preprocessor (declared in core/model/model.h),
// docs/model-contract.md "1. The network and its two kernels" "Input scale": z-score with training statistics, then
// rows scaled to L2 norm sqrt(d).
#include <algorithm>
#include <cmath>

#include "core/model/model.h"

namespace ntk {

namespace {
// A feature counts as having zero spread when its (population) standard
// deviation is below this fraction of its largest absolute value: the mean
// of N equal doubles is not always exactly that double, so an exactly
// constant column can show a spread of ~1e-17 * |value|; dividing by that
// would turn rounding noise into O(1) features.
constexpr double kZeroSpreadRelative = 1e-12;
}  // namespace

Preprocessor Preprocessor::FitTo(const PreprocessingSpec& spec,
                                 const Eigen::MatrixXd& x) {
  Preprocessor p;
  p.spec = spec;
  if (spec.standardize && x.rows() > 0) {
    const Eigen::Index d = x.cols();
    p.mean = x.colwise().mean();
    p.scale.resize(d);
    for (Eigen::Index j = 0; j < d; ++j) {
      const double var =
          (x.col(j).array() - p.mean(j)).square().sum() / static_cast<double>(x.rows());
      const double sd = std::sqrt(var);
      const double max_abs = x.col(j).cwiseAbs().maxCoeff();
      p.scale(j) = (sd > kZeroSpreadRelative * max_abs && sd > 0) ? 1.0 / sd : 1.0;
    }
  }
  return p;
}

Eigen::MatrixXd Preprocessor::Apply(const Eigen::MatrixXd& x) const {
  // Plain loops with a fixed order per row: a row's preprocessed bits must not
  // depend on how many other rows share its batch (Eigen picks different
  // reduction paths for different shapes), because PredictDistribution seeds
  // each point's randomness by those bits.
  Eigen::MatrixXd z = x;
  const Eigen::Index n = z.rows(), d = z.cols();
  const bool standardize = spec.standardize && mean.size() == d;
  const double target = std::sqrt(static_cast<double>(d));
  for (Eigen::Index i = 0; i < n; ++i) {
    if (standardize) {
      for (Eigen::Index j = 0; j < d; ++j) z(i, j) = (z(i, j) - mean(j)) * scale(j);
    }
    if (spec.normalize_rows && d > 0) {
      double sum_sq = 0;
      for (Eigen::Index j = 0; j < d; ++j) sum_sq += z(i, j) * z(i, j);
      const double norm = std::sqrt(sum_sq);
      if (norm > 0) {
        const double factor = target / norm;
        for (Eigen::Index j = 0; j < d; ++j) z(i, j) *= factor;
      }
    }
  }
  return z;
}

}  // namespace ntk
