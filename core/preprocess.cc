// ntk/core/preprocess.cc: Preprocessor (declared in core/model.h),
// MODEL.md section 1 "Input scale": z-score with training statistics, then
// rows scaled to L2 norm sqrt(d).
#include <algorithm>
#include <cmath>

#include "core/model.h"

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
  Eigen::MatrixXd z = x;
  if (spec.standardize && mean.size() == x.cols()) {
    z.rowwise() -= mean;
    z.array().rowwise() *= scale.array();
  }
  if (spec.normalize_rows && z.cols() > 0) {
    const double target = std::sqrt(static_cast<double>(z.cols()));
    for (Eigen::Index i = 0; i < z.rows(); ++i) {
      const double norm = z.row(i).norm();
      if (norm > 0) z.row(i) *= target / norm;
    }
  }
  return z;
}

}  // namespace ntk
