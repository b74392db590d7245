// ntk/core/numerics/linalg.cc: see linalg.h.
#include "core/numerics/linalg.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>

namespace ntk {
namespace {

using Eigen::Index;

// Columns of `a` per block: 4 columns x NV vectors of 4 doubles = at most 12
// accumulators, leaving registers for the NV loads of v's row.
constexpr int kBlock = 4;

// Rows [col0, col0 + 4) of the result (row-major, width 4 * NV, in `out`)
// = a(:, cols)^T v for the four columns cols[0..3] of a (repeated pointers
// for a short last block: only `valid` rows of out are stored). vrow: v
// row-major, width 4 * NV, 32-byte aligned. Sums in the order j = 0..rows-1.
template <int NV>
__attribute__((target("avx2,fma"))) void NarrowBlockAvx2(
    const double* const* cols, Index rows, const double* vrow, int valid,
    double* out) {
  constexpr int kW = 4 * NV;
  __m256d acc[kBlock][NV];
  for (int q = 0; q < kBlock; ++q)
    for (int t = 0; t < NV; ++t)
      acc[q][t] = _mm256_setzero_pd();
  const double* c0 = cols[0];
  const double* c1 = cols[1];
  const double* c2 = cols[2];
  const double* c3 = cols[3];
  for (Index j = 0; j < rows; ++j) {
    __m256d vj[NV];
    for (int t = 0; t < NV; ++t) vj[t] = _mm256_load_pd(vrow + j * kW + 4 * t);
    // One broadcast live at a time: 4 NV accumulators + NV rows of v + 1
    // <= 16 ymm registers (no spills).
    __m256d b = _mm256_broadcast_sd(c0 + j);
    for (int t = 0; t < NV; ++t) acc[0][t] = _mm256_fmadd_pd(b, vj[t], acc[0][t]);
    b = _mm256_broadcast_sd(c1 + j);
    for (int t = 0; t < NV; ++t) acc[1][t] = _mm256_fmadd_pd(b, vj[t], acc[1][t]);
    b = _mm256_broadcast_sd(c2 + j);
    for (int t = 0; t < NV; ++t) acc[2][t] = _mm256_fmadd_pd(b, vj[t], acc[2][t]);
    b = _mm256_broadcast_sd(c3 + j);
    for (int t = 0; t < NV; ++t) acc[3][t] = _mm256_fmadd_pd(b, vj[t], acc[3][t]);
  }
  for (int q = 0; q < valid; ++q)
    for (int t = 0; t < NV; ++t) _mm256_storeu_pd(out + q * kW + 4 * t, acc[q][t]);
}

template <int NV>
void NarrowAvx2(const Eigen::MatrixXd& a, const Eigen::MatrixXd& v,
                Eigen::MatrixXd* out) {
  constexpr int kW = 4 * NV;
  const Index k = a.rows();
  const Index m = a.cols();
  const Index c = v.cols();
  // v as a row-major K x kW array, zero-padded, 32-byte aligned.
  double* vrow = static_cast<double*>(
      std::aligned_alloc(32, sizeof(double) * static_cast<size_t>(k) * kW));
  for (Index j = 0; j < k; ++j) {
    for (Index t = 0; t < c; ++t) vrow[j * kW + t] = v(j, t);
    for (Index t = c; t < kW; ++t) vrow[j * kW + t] = 0.0;
  }
  const Index blocks = (m + kBlock - 1) / kBlock;
  double* res = static_cast<double*>(
      std::aligned_alloc(32, sizeof(double) * static_cast<size_t>(blocks * kBlock) * kW));
  const double* base = a.data();
  const Index lda = a.outerStride();
  // Dynamic schedule in chunks of 16 blocks (64 columns): on a shared
  // machine a static split waits for the slowest thread (measured: 2a fits
  // 2x slower in wall time than CPU time next to a compiler job).
#pragma omp parallel for schedule(dynamic, 16) if (k * m > 65536)
  for (Index blk = 0; blk < blocks; ++blk) {
    const Index col0 = blk * kBlock;
    const int valid = static_cast<int>(std::min<Index>(kBlock, m - col0));
    const double* cols[kBlock];
    for (int q = 0; q < kBlock; ++q) {
      cols[q] = base + (col0 + std::min(q, valid - 1)) * lda;
    }
    NarrowBlockAvx2<NV>(cols, k, vrow, valid, res + col0 * kW);
  }
  out->resize(m, c);
  for (Index t = 0; t < c; ++t)
    for (Index i = 0; i < m; ++i) (*out)(i, t) = res[i * kW + t];
  std::free(res);
  std::free(vrow);
}

bool CpuHasAvx2Fma() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0 && __builtin_cpu_supports("fma") != 0;
  }();
  return has;
}

std::atomic<bool> g_use_narrow{true};

}  // namespace

void TransposeTimesNarrow(const Eigen::MatrixXd& a, const Eigen::MatrixXd& v,
                          Eigen::MatrixXd* out) {
  const Index c = v.cols();
  if (c >= 1 && c <= kMaxNarrowColumns && a.rows() > 0 && a.cols() > 0 &&
      g_use_narrow.load(std::memory_order_relaxed) && CpuHasAvx2Fma()) {
    if (c <= 4) return NarrowAvx2<1>(a, v, out);
    if (c <= 8) return NarrowAvx2<2>(a, v, out);
    return NarrowAvx2<3>(a, v, out);
  }
  out->resize(a.cols(), c);
  out->noalias() = a.transpose() * v;
}

namespace {
std::mutex g_blas_scope_mu;
int g_blas_scopes = 0;        // guarded by g_blas_scope_mu
int g_blas_saved_threads = 0;  // guarded by g_blas_scope_mu
}  // namespace

extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_num_threads(void);

ScopedSingleThreadedBlas::ScopedSingleThreadedBlas() {
  std::lock_guard<std::mutex> lock(g_blas_scope_mu);
  if (g_blas_scopes++ == 0) {
    g_blas_saved_threads = openblas_get_num_threads();
    if (g_blas_saved_threads != 1) openblas_set_num_threads(1);
  }
}

ScopedSingleThreadedBlas::~ScopedSingleThreadedBlas() {
  std::lock_guard<std::mutex> lock(g_blas_scope_mu);
  if (--g_blas_scopes == 0 && g_blas_saved_threads != 1) {
    openblas_set_num_threads(g_blas_saved_threads);
  }
}

namespace internal {
bool UseNarrowKernelForTesting(bool use) {
  g_use_narrow.store(use, std::memory_order_relaxed);
  return CpuHasAvx2Fma();
}
}  // namespace internal

}  // namespace ntk
