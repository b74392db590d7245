// ntk/tests/cholesky_test.cc: CholeskyLowerInPlace (core/numerics/cholesky.h),
// the blocked factorization whose blocks run on OpenMP threads.
//
// Checked against independent computations: the residual of L L^T against
// A, and Eigen's unblocked LLT (a different algorithm, no BLAS blocking) of
// the same matrix. Tolerances from the backward-error bound of Cholesky:
// ||L L^T - A|| <= c n u ||A|| (Higham, "Accuracy and Stability of Numerical
// Algorithms", Thm. 10.3) with u = 1.1e-16: at n = 700 that is ~1e-13 c;
// we require 1e-12 relative Frobenius. The two factors differ by at most
// ~kappa(A) n u relative; the test matrix has kappa ~ 1e2, so 1e-11.
// Determinism across thread counts is exact (same bits): the header
// promises it, and Fit hands its factor to EXACT relying on it.
#include <omp.h>

#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <gtest/gtest.h>

#include "core/numerics/cholesky.h"

namespace ntk {
namespace {

using Eigen::MatrixXd;

// A = B B^T / n + I: symmetric positive definite, kappa ~ 1e2. n is not a
// multiple of the block or the task size, so the ragged edges are covered.
MatrixXd TestMatrix(Eigen::Index n) {
  std::srand(7);
  const MatrixXd b = MatrixXd::Random(n, n);
  return b * b.transpose() / static_cast<double>(n) + MatrixXd::Identity(n, n);
}

class ThreadCount {
 public:
  explicit ThreadCount(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

TEST(CholeskyTest, FactorsAndMatchesUnblockedLlt) {
  const MatrixXd a = TestMatrix(701);
  MatrixXd l = a;
  ASSERT_TRUE(CholeskyLowerInPlace(&l, {}, /*block=*/128).ok());
  EXPECT_TRUE(l.triangularView<Eigen::StrictlyUpper>().toDenseMatrix().isZero(0.0));
  EXPECT_LE((l * l.transpose() - a).norm() / a.norm(), 1e-12);
  const MatrixXd reference = Eigen::LLT<MatrixXd>(a).matrixL();
  EXPECT_LE((l - reference).norm() / reference.norm(), 1e-11);
}

TEST(CholeskyTest, SameBitsForEveryThreadCount) {
  const MatrixXd a = TestMatrix(901);
  MatrixXd one = a, two = a, four = a;
  {
    ThreadCount t(1);
    ASSERT_TRUE(CholeskyLowerInPlace(&one, {}, 128).ok());
  }
  {
    ThreadCount t(2);
    ASSERT_TRUE(CholeskyLowerInPlace(&two, {}, 128).ok());
  }
  {
    ThreadCount t(4);
    ASSERT_TRUE(CholeskyLowerInPlace(&four, {}, 128).ok());
  }
  EXPECT_TRUE(one == two);
  EXPECT_TRUE(one == four);
}

TEST(CholeskyTest, RefusesIndefiniteAndCancels) {
  MatrixXd a = TestMatrix(300);
  a(200, 200) = -1.0;
  EXPECT_EQ(CholeskyLowerInPlace(&a, {}, 64).code(), absl::StatusCode::kFailedPrecondition);
  MatrixXd b = TestMatrix(300);
  int calls = 0;
  const absl::Status st = CholeskyLowerInPlace(&b, [&] { return ++calls < 2; }, 64);
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace ntk
