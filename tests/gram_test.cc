// core/kernels/gram.h: the blocked, cancellable Gram matrix of the kernels'
// first layer.
#include "core/kernels/gram.h"

#include <algorithm>
#include <limits>

#include <omp.h>

#include <gtest/gtest.h>

#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using Eigen::Index;
using Eigen::MatrixXd;

// n = 1000, d = 2000: column blocks of 500 (kFlopsPerStep / (2 n d)), so
// two blocks, the case where block boundaries and the threads matter.
MatrixXd TwoBlockRows() { return testing::StdNormalMatrix(1000, 2000, 7); }

TEST(GramUpper, EqualsTheProductOnTheUpperTriangle) {
  const MatrixXd x = TwoBlockRows();
  MatrixXd g;
  ASSERT_TRUE(GramUpper(x, {}, &g));
  ASSERT_EQ(g.rows(), 1000);
  ASSERT_EQ(g.cols(), 1000);
  // Reference: each entry's dot product on its own (Eigen, no BLAS
  // blocking). Tolerance: d * eps * |x_i| |x_j|, the bound of a sum of d
  // products in any order.
  const double eps = std::numeric_limits<double>::epsilon();
  for (Index j = 0; j < x.rows(); j += 37) {
    for (Index i = 0; i <= j; i += 11) {
      const double want = x.row(i).dot(x.row(j));
      EXPECT_NEAR(g(i, j), want, 2000 * eps * x.row(i).norm() * x.row(j).norm())
          << i << ", " << j;
    }
  }
}

TEST(GramUpper, SameBitsForAnyThreadCount) {
  const MatrixXd x = TwoBlockRows();
  const int threads = omp_get_max_threads();
  MatrixXd one, two;
  omp_set_num_threads(1);
  ASSERT_TRUE(GramUpper(x, {}, &one));
  omp_set_num_threads(2);
  ASSERT_TRUE(GramUpper(x, {}, &two));
  omp_set_num_threads(threads);
  EXPECT_EQ(one.triangularView<Eigen::Upper>().toDenseMatrix(),
            two.triangularView<Eigen::Upper>().toDenseMatrix());
}

TEST(GramUpper, KeepGoingIsAskedBeforeEachBlock) {
  const MatrixXd x = TwoBlockRows();
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);  // the calling thread runs every block: count them
  for (int allow : {0, 1}) {
    int calls = 0;
    MatrixXd g;
    EXPECT_FALSE(GramUpper(x, [&] { return calls++ < allow; }, &g)) << allow;
    EXPECT_EQ(calls, allow + 1);
  }
  int calls = 0;
  MatrixXd g;
  EXPECT_TRUE(GramUpper(x, [&] { return ++calls > 0; }, &g));
  EXPECT_EQ(calls, 2);  // two blocks
  omp_set_num_threads(threads);
}

TEST(GramUpper, EmptyAndNarrow) {
  MatrixXd g;
  EXPECT_TRUE(GramUpper(MatrixXd(0, 3), {}, &g));
  EXPECT_EQ(g.size(), 0);
  const MatrixXd x = testing::StdNormalMatrix(5, 0, 1);  // d = 0: all zeros
  EXPECT_TRUE(GramUpper(x, {}, &g));
  EXPECT_EQ(g.triangularView<Eigen::Upper>().toDenseMatrix(), MatrixXd::Zero(5, 5));
}

}  // namespace
}  // namespace ntk
