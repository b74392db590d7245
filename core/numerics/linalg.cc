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

// TransposeTimesNarrowBatch: the k right-hand sides side by side, W = k C
// columns padded to a multiple of the tile width (12 or 16), packed per
// tile column group g as a K x width row-major panel; the result row-major
// M x Wp. Tasks of 16 tiles' worth of columns of a (64 or 96); inside a
// task, chunks of kChunkRows rows of a: the task's a-block stays in L2,
// each group's panel chunk in L1, the task's rows of the result in L2
// between chunks. Two tiles: AVX2 (4 columns of a x 12, as the narrow
// kernel) and AVX-512 (6 x 16), both one fused multiply-add per term in the
// order j = 0, 1, ..., K-1, so the same bits.
constexpr Index kChunkRows = 128;

// The 4 x 12 tile at `out` (row stride wp) continues its sums with rows
// [0, kc) of the four columns `cols` of a (already offset to the chunk)
// times the panel vp (kc x 12, row-major, 32-byte aligned): the same fused
// multiply-adds, in the same order, as NarrowBlockAvx2<3>. Twelve named
// accumulators: with arrays GCC kept them in memory (measured 7x slower).
__attribute__((target("avx2,fma"))) void BatchTileAvx2(
    const double* const* cols, Index kc, const double* vp, bool first, Index wp,
    double* out) {
  double* o0 = out;
  double* o1 = out + wp;
  double* o2 = out + 2 * wp;
  double* o3 = out + 3 * wp;
  __m256d a00, a01, a02, a10, a11, a12, a20, a21, a22, a30, a31, a32;
  if (first) {
    a00 = a01 = a02 = a10 = a11 = a12 = _mm256_setzero_pd();
    a20 = a21 = a22 = a30 = a31 = a32 = _mm256_setzero_pd();
  } else {
    a00 = _mm256_load_pd(o0), a01 = _mm256_load_pd(o0 + 4), a02 = _mm256_load_pd(o0 + 8);
    a10 = _mm256_load_pd(o1), a11 = _mm256_load_pd(o1 + 4), a12 = _mm256_load_pd(o1 + 8);
    a20 = _mm256_load_pd(o2), a21 = _mm256_load_pd(o2 + 4), a22 = _mm256_load_pd(o2 + 8);
    a30 = _mm256_load_pd(o3), a31 = _mm256_load_pd(o3 + 4), a32 = _mm256_load_pd(o3 + 8);
  }
  const double* c0 = cols[0];
  const double* c1 = cols[1];
  const double* c2 = cols[2];
  const double* c3 = cols[3];
  for (Index j = 0; j < kc; ++j) {
    const double* v = vp + j * 12;
    const __m256d v0 = _mm256_load_pd(v), v1 = _mm256_load_pd(v + 4),
                  v2 = _mm256_load_pd(v + 8);
    __m256d b = _mm256_broadcast_sd(c0 + j);
    a00 = _mm256_fmadd_pd(b, v0, a00), a01 = _mm256_fmadd_pd(b, v1, a01),
    a02 = _mm256_fmadd_pd(b, v2, a02);
    b = _mm256_broadcast_sd(c1 + j);
    a10 = _mm256_fmadd_pd(b, v0, a10), a11 = _mm256_fmadd_pd(b, v1, a11),
    a12 = _mm256_fmadd_pd(b, v2, a12);
    b = _mm256_broadcast_sd(c2 + j);
    a20 = _mm256_fmadd_pd(b, v0, a20), a21 = _mm256_fmadd_pd(b, v1, a21),
    a22 = _mm256_fmadd_pd(b, v2, a22);
    b = _mm256_broadcast_sd(c3 + j);
    a30 = _mm256_fmadd_pd(b, v0, a30), a31 = _mm256_fmadd_pd(b, v1, a31),
    a32 = _mm256_fmadd_pd(b, v2, a32);
  }
  _mm256_store_pd(o0, a00), _mm256_store_pd(o0 + 4, a01), _mm256_store_pd(o0 + 8, a02);
  _mm256_store_pd(o1, a10), _mm256_store_pd(o1 + 4, a11), _mm256_store_pd(o1 + 8, a12);
  _mm256_store_pd(o2, a20), _mm256_store_pd(o2 + 4, a21), _mm256_store_pd(o2 + 8, a22);
  _mm256_store_pd(o3, a30), _mm256_store_pd(o3 + 4, a31), _mm256_store_pd(o3 + 8, a32);
}

// The 6 x 16 tile: as BatchTileAvx2 with 512-bit vectors (vp 64-byte
// aligned, wp a multiple of 16).
__attribute__((target("avx512f"))) void BatchTileAvx512(
    const double* const* cols, Index kc, const double* vp, bool first, Index wp,
    double* out) {
  double* o[6];
  for (int q = 0; q < 6; ++q) o[q] = out + q * wp;
  __m512d a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51;
  if (first) {
    a00 = a01 = a10 = a11 = a20 = a21 = _mm512_setzero_pd();
    a30 = a31 = a40 = a41 = a50 = a51 = _mm512_setzero_pd();
  } else {
    a00 = _mm512_load_pd(o[0]), a01 = _mm512_load_pd(o[0] + 8);
    a10 = _mm512_load_pd(o[1]), a11 = _mm512_load_pd(o[1] + 8);
    a20 = _mm512_load_pd(o[2]), a21 = _mm512_load_pd(o[2] + 8);
    a30 = _mm512_load_pd(o[3]), a31 = _mm512_load_pd(o[3] + 8);
    a40 = _mm512_load_pd(o[4]), a41 = _mm512_load_pd(o[4] + 8);
    a50 = _mm512_load_pd(o[5]), a51 = _mm512_load_pd(o[5] + 8);
  }
  const double* c0 = cols[0];
  const double* c1 = cols[1];
  const double* c2 = cols[2];
  const double* c3 = cols[3];
  const double* c4 = cols[4];
  const double* c5 = cols[5];
  for (Index j = 0; j < kc; ++j) {
    const __m512d v0 = _mm512_load_pd(vp + j * 16), v1 = _mm512_load_pd(vp + j * 16 + 8);
    __m512d b = _mm512_set1_pd(c0[j]);
    a00 = _mm512_fmadd_pd(b, v0, a00), a01 = _mm512_fmadd_pd(b, v1, a01);
    b = _mm512_set1_pd(c1[j]);
    a10 = _mm512_fmadd_pd(b, v0, a10), a11 = _mm512_fmadd_pd(b, v1, a11);
    b = _mm512_set1_pd(c2[j]);
    a20 = _mm512_fmadd_pd(b, v0, a20), a21 = _mm512_fmadd_pd(b, v1, a21);
    b = _mm512_set1_pd(c3[j]);
    a30 = _mm512_fmadd_pd(b, v0, a30), a31 = _mm512_fmadd_pd(b, v1, a31);
    b = _mm512_set1_pd(c4[j]);
    a40 = _mm512_fmadd_pd(b, v0, a40), a41 = _mm512_fmadd_pd(b, v1, a41);
    b = _mm512_set1_pd(c5[j]);
    a50 = _mm512_fmadd_pd(b, v0, a50), a51 = _mm512_fmadd_pd(b, v1, a51);
  }
  _mm512_store_pd(o[0], a00), _mm512_store_pd(o[0] + 8, a01);
  _mm512_store_pd(o[1], a10), _mm512_store_pd(o[1] + 8, a11);
  _mm512_store_pd(o[2], a20), _mm512_store_pd(o[2] + 8, a21);
  _mm512_store_pd(o[3], a30), _mm512_store_pd(o[3] + 8, a31);
  _mm512_store_pd(o[4], a40), _mm512_store_pd(o[4] + 8, a41);
  _mm512_store_pd(o[5], a50), _mm512_store_pd(o[5] + 8, a51);
}

struct Avx2Tile {
  static constexpr int kRows = 4, kWidth = 12, kAlign = 32;
  static void Run(const double* const* cols, Index kc, const double* vp, bool first, Index wp,
                  double* out) {
    BatchTileAvx2(cols, kc, vp, first, wp, out);
  }
};
struct Avx512Tile {
  static constexpr int kRows = 6, kWidth = 16, kAlign = 64;
  static void Run(const double* const* cols, Index kc, const double* vp, bool first, Index wp,
                  double* out) {
    BatchTileAvx512(cols, kc, vp, first, wp, out);
  }
};

template <typename Tile>
bool BatchBlocked(const Eigen::MatrixXd& a, const std::vector<const Eigen::MatrixXd*>& vs,
                  const std::vector<Eigen::MatrixXd*>& outs,
                  const std::function<bool()>& keep_going) {
  constexpr Index kR = Tile::kRows, kW = Tile::kWidth, kTaskCols = 16 * Tile::kRows;
  const Index k = a.rows();
  const Index m = a.cols();
  const Index c = vs[0]->cols();
  const Index w = static_cast<Index>(vs.size()) * c;
  const Index groups = (w + kW - 1) / kW;
  const Index wp = groups * kW;
  double* vpack = static_cast<double*>(
      std::aligned_alloc(Tile::kAlign, sizeof(double) * static_cast<size_t>(k * wp)));
  // Rows padded to whole tiles (the padding rows are never read).
  const Index m_padded = (m + kR - 1) / kR * kR;
  double* res = static_cast<double*>(
      std::aligned_alloc(Tile::kAlign, sizeof(double) * static_cast<size_t>(m_padded * wp)));
  for (Eigen::MatrixXd* out : outs) out->resize(m, c);
  const double* base = a.data();
  const Index lda = a.outerStride();
  const Index tasks = (m + kTaskCols - 1) / kTaskCols;
  std::mutex ask_mu;
  std::atomic<bool> stop{false};
  // Threads only for products of at least kMinParallelBatchTerms multiply-adds
  // (about 0.1 ms on one core): below, waking the threads and the barriers
  // cost more than they save, most of all on a busy machine.
#pragma omp parallel if (k * m * w >= kMinParallelBatchTerms)
  {
    // Column u of the side-by-side v is column u % c of vs[u / c].
#pragma omp for schedule(static)
    for (Index g = 0; g < groups; ++g) {
      double* panel = vpack + g * k * kW;
      for (Index u = 0; u < kW; ++u) {
        const Index col = g * kW + u;
        const Eigen::MatrixXd* v = col < w ? vs[col / c] : nullptr;
        const double* src = v ? v->data() + (col % c) * v->outerStride() : nullptr;
        for (Index j = 0; j < k; ++j) panel[j * kW + u] = src ? src[j] : 0.0;
      }
    }
#pragma omp for schedule(dynamic, 1)
    for (Index task = 0; task < tasks; ++task) {
      if (stop.load(std::memory_order_relaxed)) continue;
      if (keep_going) {
        std::lock_guard<std::mutex> lock(ask_mu);
        if (stop.load() || !keep_going()) {
          stop = true;
          continue;
        }
      }
      const Index task_begin = task * kTaskCols;
      const Index task_end = std::min(m, task_begin + kTaskCols);
      for (Index j0 = 0; j0 < k; j0 += kChunkRows) {
        const Index kc = std::min(kChunkRows, k - j0);
        for (Index g = 0; g < groups; ++g) {
          const double* vp = vpack + (g * k + j0) * kW;
          for (Index col0 = task_begin; col0 < task_end; col0 += kR) {
            // A short last tile repeats its last column (rows never read).
            const Index valid = std::min(kR, m - col0);
            const double* cols[kR];
            for (Index q = 0; q < kR; ++q) {
              cols[q] = base + (col0 + std::min(q, valid - 1)) * lda + j0;
            }
            Tile::Run(cols, kc, vp, j0 == 0, wp, res + col0 * wp + g * kW);
          }
        }
      }
      // This task's rows of every result.
      for (size_t s = 0; s < outs.size(); ++s) {
        for (Index t = 0; t < c; ++t) {
          const Index col = static_cast<Index>(s) * c + t;
          double* dst = outs[s]->data() + t * outs[s]->outerStride();
          for (Index i = task_begin; i < task_end; ++i) dst[i] = res[i * wp + col];
        }
      }
    }
  }
  std::free(res);
  std::free(vpack);
  return !stop.load();
}

bool CpuHasAvx512() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return has;
}

std::atomic<bool> g_use_avx512_batch{true};

}  // namespace

bool TransposeTimesNarrowBatch(const Eigen::MatrixXd& a,
                               const std::vector<const Eigen::MatrixXd*>& vs,
                               const std::vector<Eigen::MatrixXd*>& outs,
                               const std::function<bool()>& keep_going) {
  if (vs.empty()) return true;
  const Index c = vs[0]->cols();
  if (c >= 1 && c <= kMaxNarrowColumns && a.rows() > 0 && a.cols() > 0 &&
      g_use_narrow.load(std::memory_order_relaxed) && CpuHasAvx2Fma()) {
    if (g_use_avx512_batch.load(std::memory_order_relaxed) && CpuHasAvx512()) {
      return BatchBlocked<Avx512Tile>(a, vs, outs, keep_going);
    }
    return BatchBlocked<Avx2Tile>(a, vs, outs, keep_going);
  }
  for (size_t s = 0; s < vs.size(); ++s) {
    if (keep_going && !keep_going()) return false;
    TransposeTimesNarrow(a, *vs[s], outs[s]);
  }
  return true;
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

bool UseAvx512BatchKernelForTesting(bool use) {
  g_use_avx512_batch.store(use, std::memory_order_relaxed);
  return CpuHasAvx2Fma() && CpuHasAvx512();
}
}  // namespace internal

}  // namespace ntk
