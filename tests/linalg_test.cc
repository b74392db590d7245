// Tests of core/numerics/linalg.h: the unpacked narrow product against a plain
// reference loop in long double, for every supported width, for shapes that
// exercise the short last block, and for the fallback.
#include "core/numerics/linalg.h"

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <thread>

#include <Eigen/Dense>
#include <gtest/gtest.h>

namespace ntk {
namespace {

using Eigen::MatrixXd;

MatrixXd Uniform(int rows, int cols, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  MatrixXd m(rows, cols);
  for (int j = 0; j < cols; ++j)
    for (int i = 0; i < rows; ++i) m(i, j) = u(gen);
  return m;
}

// out = a^T v, each entry summed in long double.
MatrixXd Reference(const MatrixXd& a, const MatrixXd& v) {
  MatrixXd out(a.cols(), v.cols());
  for (int i = 0; i < a.cols(); ++i)
    for (int c = 0; c < v.cols(); ++c) {
      long double acc = 0;
      for (int j = 0; j < a.rows(); ++j)
        acc += static_cast<long double>(a(j, i)) * v(j, c);
      out(i, c) = static_cast<double>(acc);
    }
  return out;
}

// Error bound of a recursively summed dot product of length k:
// |error| <= k eps sum_j |a_ji| |v_jc| (Higham, Accuracy and Stability, 3.1).
void ExpectClose(const MatrixXd& got, const MatrixXd& a, const MatrixXd& v) {
  const MatrixXd ref = Reference(a, v);
  ASSERT_EQ(got.rows(), ref.rows());
  ASSERT_EQ(got.cols(), ref.cols());
  const MatrixXd mag = a.cwiseAbs().transpose() * v.cwiseAbs();
  const double eps = std::numeric_limits<double>::epsilon();
  for (int i = 0; i < ref.rows(); ++i)
    for (int c = 0; c < ref.cols(); ++c)
      ASSERT_LE(std::abs(got(i, c) - ref(i, c)), a.rows() * eps * mag(i, c) + 1e-300)
          << "row " << i << " column " << c;
}

TEST(TransposeTimesNarrow, AllWidthsAndShapes) {
  // Widths 1..13 (13 takes the fallback), rows and columns that are not
  // multiples of the 4-column block, and a wide enough case for threads.
  const int shapes[][2] = {{1, 1}, {3, 5}, {7, 2}, {64, 61}, {300, 257}, {513, 130}};
  for (const auto& shape : shapes) {
    for (int c = 1; c <= kMaxNarrowColumns + 1; ++c) {
      const MatrixXd a = Uniform(shape[0], shape[1], 100 + c);
      const MatrixXd v = Uniform(shape[0], c, 200 + c);
      MatrixXd out;
      TransposeTimesNarrow(a, v, &out);
      ExpectClose(out, a, v);
    }
  }
}

TEST(TransposeTimesNarrow, SymmetricIsPlainProductAndFallbackAgrees) {
  MatrixXd a = Uniform(401, 401, 7);
  a = (a + a.transpose()).eval();
  const MatrixXd v = Uniform(401, 10, 8);
  MatrixXd fast, fallback;
  TransposeTimesNarrow(a, v, &fast);
  const bool has_kernel = internal::UseNarrowKernelForTesting(false);
  TransposeTimesNarrow(a, v, &fallback);
  internal::UseNarrowKernelForTesting(true);
  ExpectClose(fast, a, v);
  ExpectClose(fallback, a, v);
  if (!has_kernel) GTEST_SKIP() << "CPU lacks AVX2+FMA: only the fallback ran";
}

TEST(TransposeTimesNarrow, SameBitsEveryCall) {
  // The summation order is fixed, so repeated calls (different thread
  // timing) give identical bits.
  const MatrixXd a = Uniform(700, 650, 9);
  const MatrixXd v = Uniform(700, 10, 10);
  MatrixXd first, again;
  TransposeTimesNarrow(a, v, &first);
  for (int rep = 0; rep < 5; ++rep) {
    TransposeTimesNarrow(a, v, &again);
    ASSERT_TRUE((first.array() == again.array()).all());
  }
}

}  // namespace
}  // namespace ntk

extern "C" int openblas_get_num_threads(void);
extern "C" void openblas_set_num_threads(int);

namespace ntk {
namespace {

TEST(ScopedSingleThreadedBlas, OneThreadWhileAnyScopeLivesThenRestored) {
  const int saved = openblas_get_num_threads();
  openblas_set_num_threads(2);
  if (openblas_get_num_threads() != 2) {
    openblas_set_num_threads(saved);
    GTEST_SKIP() << "OpenBLAS was built for fewer than 2 threads";
  }
  {
    auto outer = std::make_unique<ScopedSingleThreadedBlas>();
    EXPECT_EQ(openblas_get_num_threads(), 1);
    // A second scope on another thread outlives the first: the count stays
    // 1 until the last scope ends, then the original 2 comes back.
    std::unique_ptr<ScopedSingleThreadedBlas> inner;
    std::thread t([&] { inner = std::make_unique<ScopedSingleThreadedBlas>(); });
    t.join();
    outer.reset();
    EXPECT_EQ(openblas_get_num_threads(), 1);
    inner.reset();
  }
  EXPECT_EQ(openblas_get_num_threads(), 2);
  openblas_set_num_threads(saved);
}

}  // namespace
}  // namespace ntk
