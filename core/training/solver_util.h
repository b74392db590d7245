// ntk/core/training/solver_util.h (internal to core/training/): small
// helpers shared by the solvers of docs/model-contract.md
// "2. Training objective" (newton_cg.cc, direct_solve.cc).
//
// Thread safety: pure functions.
#ifndef NTK_CORE_TRAINING_SOLVER_UTIL_H_
#define NTK_CORE_TRAINING_SOLVER_UTIL_H_

#include <Eigen/Dense>

#include "absl/status/status.h"

namespace ntk::solver_internal {

// max |m_ij|, 0 for an empty matrix.
double InfNorm(const Eigen::MatrixXd& m);

// sum_ij a_ij b_ij.
double Dot(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b);

// theta square, y N x C (C >= 1), f0 empty or N x C; INVALID_ARGUMENT naming
// the field otherwise.
absl::Status CheckShapes(const Eigen::MatrixXd& theta, const Eigen::MatrixXd& y,
                         const Eigen::MatrixXd& f0);

}  // namespace ntk::solver_internal

#endif  // NTK_CORE_TRAINING_SOLVER_UTIL_H_
