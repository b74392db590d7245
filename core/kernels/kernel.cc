// ntk/core/kernels/kernel.cc: NNGP and NTK kernels of fully connected networks
// (docs/model-contract.md "1. The network and its two kernels").
//
// Structure of the computation (all three entry points):
//   1. Per point, the diagonal recursion S_l(x, x), T_l(x, x) with rho = 1
//      exactly, l = 1..L+1 (O(N L), scalar code, std::asin).
//   2. One GEMM of the inputs, G = X1 X2^T (TrainKernels: the upper triangle
//      by a rank-k update, i.e. dsyrk with EIGEN_USE_BLAS), written straight
//      into the K output.
//   3. The elementwise layer recursion, in place, tile by tile on all cores
//      (OpenMP). Each column segment of a tile is copied to L1-resident
//      buffers and pushed through the L layers with loops that gcc
//      auto-vectorizes (see "vectorizable arcsine" below); the final K and
//      Theta are written back. The recursion is compiled for the baseline
//      ISA and for AVX2 and dispatched by the CPU at run time (bit-identical
//      results). TrainKernels computes only tiles on or above
//      the diagonal and mirrors each tile into the lower triangle, so the
//      outputs are exactly symmetric and the only memory beyond the two
//      N x N outputs is O(N L) + O(tile) per thread. ExtendTrainKernels
//      runs the same tiles from layer l + 1 on, starting from K and Theta
//      of depth l instead of the GEMM of step 2.
//
// Why one file over ~500 lines: the kernel recursion is one vectorized
// pipeline. The arcsine approximations, the per-point diagonal data, the
// segment body and the tile drivers share file-local inline functions and
// the tile layout; the segment body inlines all of them into its two copies
// (baseline and target("avx2"), see ComputeSegmentAvx2) so that gcc
// vectorizes the whole layer loop. Splitting the file would put the hot
// loop's pieces in separate translation units (no inlining without LTO) or
// behind another header of internals that only this file uses.
//
// Accuracy: entries are accurate to a few ulp of the inputs' recursion,
// except that arccos is ill-conditioned at rho = +-1: an O(eps) error in rho
// (e.g. from the GEMM's summation order) becomes an O(sqrt(eps)) ~ 1e-8
// error in arccos(rho). So entries between parallel (or antiparallel)
// points are accurate to about 1e-8 relative, and CrossKernels(x, x)'s
// diagonal differs from TrainKernels(x)'s (computed with rho = 1 exactly)
// by about that much. Everything else agrees to ~1e-15 relative to the
// entry's scale sqrt(k(x,x) k(x',x')) (tests/kernel_test.cc).
//
// Speed (bench/kernel_bench.cc, N x 784 inputs, depth 3, 2 shared cores):
// TrainKernels takes 1.1-1.3x the time of the plain GEMM X X^T in the
// portable build and ~1.0x with -DNTK_NATIVE=ON; the GEMM part is a dsyrk
// (half a GEMM), the recursion about 0.4-0.7 GEMMs.
// Memory: TrainKernels for N points needs the two N x N outputs, the input,
// O(N depth) per-point data and ~7 KB of scratch per thread (N = 8000: peak
// RSS 1.08 GB = 2 x 512 MB + 50 MB input).
#include "core/kernels/kernel.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <vector>

#include <omp.h>

#include "absl/strings/str_cat.h"
#include "core/kernels/gram.h"
#include "core/kernels/kernel_internal.h"
#include "core/kernels/kernel_rows.h"
#include "core/numerics/parallel.h"

namespace ntk {
namespace {

using Eigen::Index;

constexpr double kPi = 3.14159265358979323846;
constexpr double kInv2Pi = 1.0 / (2.0 * kPi);
constexpr double kTwoOverPi = 2.0 / kPi;
constexpr double kFourOverPi = 4.0 / kPi;

// ---------------------------------------------------------------------------
// Vectorizable arcsine / arccosine.
//
// fdlibm's (e_asin.c / e_acos.c) minimax rational R(z), z in [0, 1/4]:
//   asin(s) = s + s R(s^2)   for |s| <= 1/2.
// For |x| > 1/2 the half-angle identities
//   asin(x) = pi/2 - 2 asin(s),  acos(x) = 2 asin(s)  (x > 1/2),
//   acos(x) = pi - 2 asin(s)  (x < -1/2),  s = sqrt((1 - |x|)/2) <= 1/2,
// reduce to the same form. The loops must contain no branches and no
// selects between computed values: gcc (-O3, default -ftrapping-math)
// refuses to if-convert those and then does not vectorize at all, and even
// std::min/std::max get turned back into branches when their result feeds
// further arithmetic. So the case split is done with exact 0/1 weights m
// built from fabs only (Pos, AboveHalf below): z = m w + (1 - m) x^2 picks
// one term exactly, since products with 0 or 1 are exact.
// The sqrt is done in a separate pass by Eigen's packet sqrt, because gcc
// cannot vectorize std::sqrt under the default -fmath-errno.
// ---------------------------------------------------------------------------
constexpr double kPio2Hi = 1.57079632679489655800e+00;
constexpr double kPio2Lo = 6.12323399573676603587e-17;
constexpr double kPiHi = 3.14159265358979311600e+00;
constexpr double kPiLo = 1.22464679914735317722e-16;
constexpr double kPS0 = 1.66666666666666657415e-01;
constexpr double kPS1 = -3.25565818622400915405e-01;
constexpr double kPS2 = 2.01212532134862925881e-01;
constexpr double kPS3 = -4.00555345006794114027e-02;
constexpr double kPS4 = 7.91534994289814532176e-04;
constexpr double kPS5 = 3.47933107596021167570e-05;
constexpr double kQS1 = -2.40339491173441421878e+00;
constexpr double kQS2 = 2.02094576023350569471e+00;
constexpr double kQS3 = -6.88283971605453293030e-01;
constexpr double kQS4 = 7.70381505559019352791e-02;

inline double AsinRational(double z) {
  const double p =
      z * (kPS0 + z * (kPS1 + z * (kPS2 + z * (kPS3 + z * (kPS4 + z * kPS5)))));
  const double q = 1.0 + z * (kQS1 + z * (kQS2 + z * (kQS3 + z * kQS4)));
  return p / q;
}

// max(y, 0), exactly: y + |y| is 2y or 0, both exact.
inline double Pos(double y) { return 0.5 * (y + std::fabs(y)); }

// Exactly 1.0 if v > 1/2, else exactly 0.0, without a comparison: doubles in
// (1/2, 1] are at least 2^-53 above 1/2 (the subtraction is exact there), so
// h = (v - 1/2) 2^60 is <= 0 or >= 128.
inline double AboveHalf(double v) {
  const double h = (v - 0.5) * 0x1p60;
  const double h2 = h + std::fabs(h);  // 2 Pos(h): 0 or >= 256
  // 1 - Pos(1 - h2): (1 - h2) + |1 - h2| is 2 for h2 = 0 and exactly 0 for
  // h2 >= 256.
  return 1.0 - 0.5 * ((1.0 - h2) + std::fabs(1.0 - h2));
}

// w = max(0, (1 - |x|)/2), the half-angle argument (clipped at 0 so that an
// |x| rounded slightly above 1 acts as |x| = 1); the caller takes its sqrt.
inline double HalfAngleArg(double x) { return Pos((1.0 - std::fabs(x)) * 0.5); }

// asin(s) for the reduced s = |x| (|x| <= 1/2) or sqrt(w) (|x| > 1/2),
// where sqrt_w = sqrt(HalfAngleArg(x)) and m = AboveHalf(|x|).
inline double ReducedAsin(double x, double sqrt_w, double m) {
  const double ax = std::fabs(x);
  const double w = Pos((1.0 - ax) * 0.5);
  const double z = w * m + (x * x) * (1.0 - m);
  const double s = sqrt_w * m + ax * (1.0 - m);
  return s + s * AsinRational(z);
}

// acos(x), |x| <= 1 (up to rounding), given sqrt_w = sqrt(HalfAngleArg(x)).
inline double AcosFromParts(double x, double sqrt_w) {
  const double m = AboveHalf(std::fabs(x));          // |x| > 1/2
  const double m_pos = m * 0.5 * (1.0 + std::copysign(1.0, x));  // x > 1/2
  const double m_neg = m - m_pos;                            // x < -1/2
  const double u = ReducedAsin(x, sqrt_w, m);
  const double small = kPio2Hi - (std::copysign(u, x) - kPio2Lo);
  const double big_pos = 2.0 * u;
  const double big_neg = kPiHi - (2.0 * u - kPiLo);
  return small * (1.0 - m_pos - m_neg) + big_pos * m_pos + big_neg * m_neg;
}

// The same arcsine split into the part before the sqrt pass and the part
// after it, so that nothing is computed twice: AsinPrep gives the case
// weight m = [|x| > 1/2], the rational's argument z, and w = (1 - |x|)/2
// (whose sqrt the caller takes); AsinFinish assembles asin(x).
struct AsinPrepared {
  double m, z, w;
};
inline AsinPrepared AsinPrep(double x) {
  const double ax = std::fabs(x);
  const double w = Pos((1.0 - ax) * 0.5);
  const double m = AboveHalf(ax);
  return {m, w * m + (x * x) * (1.0 - m), w};
}
inline double AsinFinish(double x, double m, double z, double sqrt_w) {
  const double s = sqrt_w * m + std::fabs(x) * (1.0 - m);
  const double u = s + s * AsinRational(z);
  const double big = kPio2Hi - (2.0 * u - kPio2Lo);
  return std::copysign(u * (1.0 - m) + big * m, x);
}

inline void SqrtInPlace(double* v, Index n) {
  Eigen::Map<Eigen::ArrayXd> a(v, n);
  a = a.sqrt();
}

// Length of the column segments (and tile edge). 128 doubles per buffer keep
// all per-segment buffers (~6 KB) in L1 and a tile (128 x 128, 128 KB per
// output) in L2 for the mirror copy.
constexpr Index kTile = 128;

// ---------------------------------------------------------------------------
// Per-point (diagonal) data.
// ---------------------------------------------------------------------------

// For each point and each hidden layer l = 1..L, the two per-point factors
// the off-diagonal update needs (stored layer-major: f[l * n + i]):
//   ReLU: f1 = 1/sqrt(a) (0 if a = 0), f2 = sqrt(a)          (a = S_l(x, x))
//   erf:  f1 = 1/sqrt(1 + 2a),         f2 = 1 + 2a
// plus the final diagonal K(x, x), Theta(x, x). Kept across calls for a
// model's expansion points as KernelRows (kernel_rows.h).
}  // namespace

struct KernelRowData {
  Index n = 0;
  std::vector<double> f1, f2;
  Eigen::VectorXd nngp, ntk;
};

namespace {

using PointData = KernelRowData;

PointData ComputePointData(const KernelSpec& spec, const Eigen::MatrixXd& x,
                           const Eigen::VectorXd& sq) {
  const Index n = x.rows();
  const int depth = spec.depth;
  const double sw2 = spec.weight_variance;
  const double sb2 = spec.bias_variance;
  const double alpha = x.cols() > 0 ? sw2 / static_cast<double>(x.cols()) : 0.0;
  PointData p;
  p.n = n;
  p.f1.resize(static_cast<size_t>(n) * depth);
  p.f2.resize(static_cast<size_t>(n) * depth);
  p.nngp.resize(n);
  p.ntk.resize(n);
  for (Index i = 0; i < n; ++i) {
    double a = alpha * sq(i) + sb2;  // S_1(x, x)
    double t = a;                    // T_1(x, x)
    for (int l = 0; l < depth; ++l) {
      const size_t k = static_cast<size_t>(l) * n + i;
      double e_pp, e_dd;  // E[phi phi], E[phi' phi'] at rho = 1
      if (spec.activation == Activation::kRelu) {
        const double sa = std::sqrt(a);
        p.f1[k] = a > 0.0 ? 1.0 / sa : 0.0;
        p.f2[k] = sa;
        e_pp = 0.5 * a;  // sqrt(a a) (sin 0 + pi cos 0) / (2 pi)
        e_dd = 0.5;      // pi / (2 pi)
      } else {
        const double pa = 1.0 + 2.0 * a;
        p.f1[k] = 1.0 / std::sqrt(pa);
        p.f2[k] = pa;
        e_pp = kTwoOverPi * std::asin(2.0 * a / pa);
        e_dd = kFourOverPi / std::sqrt(1.0 + 4.0 * a);  // (1+2a)^2 - 4a^2
      }
      const double s_next = sw2 * e_pp + sb2;
      t = s_next + sw2 * e_dd * t;
      a = s_next;
    }
    p.nngp(i) = a;
    p.ntk(i) = t;
  }
  return p;
}

PointData ComputePointData(const KernelSpec& spec, const Eigen::MatrixXd& x) {
  return ComputePointData(spec, x, x.rowwise().squaredNorm());
}

// ---------------------------------------------------------------------------
// The elementwise recursion on one column segment.
// ---------------------------------------------------------------------------

// Per-thread scratch for one segment of at most kTile entries.
struct Scratch {
  alignas(64) double s[kTile];          // S_l
  alignas(64) double t[kTile];          // T_l
  alignas(64) double v[kTile];          // rho (ReLU) or the asin argument (erf)
  alignas(64) double m[kTile];          // AsinPrep's case weight
  alignas(64) double z[kTile];          // AsinPrep's rational argument
  alignas(64) double roots[2 * kTile];  // sqrt(w) | sqrt(sin^2 t) or sqrt(den)
};

struct Recursion {
  const KernelSpec* spec;
  double alpha;  // sw^2 / d
  const PointData* rows;
  const PointData* cols;
  // 0: start from the Gram matrix (layer 1); l > 0: start from K and
  // Theta of depth l (ExtendTrainKernels), read from gram / theta_out.
  int first_layer = 0;
};

// Computes K and Theta for rows [i0, i0 + len) of column j, where
// gram[0..len) holds <x_i, x'_j> (r.first_layer == 0) or K of depth
// r.first_layer, with Theta of that depth in theta_out. Writes
// k_out[0..len), theta_out[0..len); gram may alias k_out. Always inlined
// into the per-ISA entry points below.
__attribute__((always_inline)) inline void ComputeSegmentBody(
    const Recursion& r, const double* gram, Index i0, Index len, Index j,
    double* k_out, double* theta_out, Scratch& sc) {
  const double sw2 = r.spec->weight_variance;
  const double sb2 = r.spec->bias_variance;
  const double alpha = r.alpha;
  double* __restrict s = sc.s;
  double* __restrict t = sc.t;
  double* __restrict v = sc.v;
  double* __restrict mm = sc.m;
  double* __restrict zz = sc.z;
  double* __restrict w = sc.roots;
  double* __restrict q = sc.roots + len;  // contiguous with w: one sqrt pass
  if (r.first_layer == 0) {
    for (Index i = 0; i < len; ++i) {
      s[i] = alpha * gram[i] + sb2;
      t[i] = s[i];
    }
  } else {  // the same values TrainKernels held after layer first_layer
    for (Index i = 0; i < len; ++i) {
      s[i] = gram[i];
      t[i] = theta_out[i];
    }
  }
  const Index nr = r.rows->n;
  const Index nc = r.cols->n;
  for (int l = r.first_layer; l < r.spec->depth; ++l) {
    const double* __restrict f1 = r.rows->f1.data() + l * nr + i0;
    const double* __restrict f2 = r.rows->f2.data() + l * nr + i0;
    const double g1 = r.cols->f1[l * nc + j];
    const double g2 = r.cols->f2[l * nc + j];
    if (r.spec->activation == Activation::kRelu) {
      // f1 = 1/sqrt(a), f2 = sqrt(a); rho = c / sqrt(a b).
      for (Index i = 0; i < len; ++i) {
        // |rho| <= 1 up to rounding; the arcsine parts treat |rho| > 1 as 1.
        const double rho = s[i] * f1[i] * g1;
        const AsinPrepared ap = AsinPrep(rho);
        v[i] = rho;
        mm[i] = ap.m;
        zz[i] = ap.z;
        w[i] = ap.w;
        q[i] = Pos((1.0 - rho) * (1.0 + rho));  // sin^2 t
      }
      SqrtInPlace(w, 2 * len);  // w and q
      for (Index i = 0; i < len; ++i) {
        const double rho = v[i];
        // pi - t = pi/2 + asin(rho). (Near rho = -1 this has an absolute, not
        // relative, error of ~1e-16; so do the entries, whose scale is set by
        // the diagonal: E[phi phi] -> 0 there.)
        const double pi_minus_t =
            kPio2Hi + (AsinFinish(rho, mm[i], zz[i], w[i]) + kPio2Lo);
        const double e_pp = f2[i] * g2 * (q[i] + pi_minus_t * rho) * kInv2Pi;
        const double e_dd = pi_minus_t * kInv2Pi;
        const double s_next = sw2 * e_pp + sb2;
        t[i] = s_next + sw2 * e_dd * t[i];
        s[i] = s_next;
      }
    } else {
      // f1 = 1/sqrt(1 + 2a), f2 = 1 + 2a.
      for (Index i = 0; i < len; ++i) {
        const double c = s[i];
        // |z| < 1 in exact arithmetic; |z| > 1 would act as |z| = 1.
        const double z = 2.0 * c * f1[i] * g1;
        const AsinPrepared ap = AsinPrep(z);
        v[i] = z;
        mm[i] = ap.m;
        zz[i] = ap.z;
        w[i] = ap.w;
        // (1+2a)(1+2b) - 4c^2 >= 1 + 2a + 2b whenever c^2 <= ab: clip at
        // that bound (guards against rounding; Pos is max(., 0)).
        const double lower = f2[i] + g2 - 1.0;
        q[i] = lower + Pos(f2[i] * g2 - 4.0 * c * c - lower);
      }
      SqrtInPlace(w, 2 * len);  // w and q
      for (Index i = 0; i < len; ++i) {
        const double e_pp = kTwoOverPi * AsinFinish(v[i], mm[i], zz[i], w[i]);
        const double e_dd = kFourOverPi / q[i];
        const double s_next = sw2 * e_pp + sb2;
        t[i] = s_next + sw2 * e_dd * t[i];
        s[i] = s_next;
      }
    }
  }
  for (Index i = 0; i < len; ++i) {
    k_out[i] = s[i];
    theta_out[i] = t[i];
  }
}

// The recursion compiled twice: for the build's baseline ISA (SSE2 in a
// portable build) and for AVX2 (4 doubles per vector instead of 2, no FMA),
// chosen at run time by the CPU. All operations are elementwise IEEE
// operations without FMA contraction, so both give bit-identical results
// (tests/kernel_test.cc checks this); the AVX2 copy is about twice as fast.
using SegmentFn = void (*)(const Recursion&, const double*, Index, Index, Index,
                           double*, double*, Scratch&);

void ComputeSegmentBaseline(const Recursion& r, const double* gram, Index i0,
                            Index len, Index j, double* k_out,
                            double* theta_out, Scratch& sc) {
  ComputeSegmentBody(r, gram, i0, len, j, k_out, theta_out, sc);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define NTK_KERNEL_HAVE_AVX2_PATH 1
__attribute__((target("avx2"))) void ComputeSegmentAvx2(
    const Recursion& r, const double* gram, Index i0, Index len, Index j,
    double* k_out, double* theta_out, Scratch& sc) {
  ComputeSegmentBody(r, gram, i0, len, j, k_out, theta_out, sc);
}
#endif

bool CpuHasAvx2() {
#ifdef NTK_KERNEL_HAVE_AVX2_PATH
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
#else
  return false;
#endif
}

std::atomic<int> g_isa_override{static_cast<int>(internal::VectorIsa::kAuto)};

SegmentFn ChooseSegmentFn() {
#ifdef NTK_KERNEL_HAVE_AVX2_PATH
  const auto isa = static_cast<internal::VectorIsa>(g_isa_override.load());
  if (isa != internal::VectorIsa::kBaseline && CpuHasAvx2()) {
    return &ComputeSegmentAvx2;
  }
#endif
  return &ComputeSegmentBaseline;
}

// Number of tiles along a dimension of size n.
inline Index NumTiles(Index n) { return (n + kTile - 1) / kTile; }

}  // namespace

namespace internal {

bool ForceVectorIsaForTesting(VectorIsa isa) {
  if (isa == VectorIsa::kAvx2 && !CpuHasAvx2()) return false;
  g_isa_override.store(static_cast<int>(isa));
  return true;
}

void AsinArray(const double* x, double* out, std::ptrdiff_t n) {
  // The same code path as the kernels' recursion (AsinPrep / AsinFinish).
  alignas(64) double m[kTile], z[kTile], w[kTile];
  for (std::ptrdiff_t b = 0; b < n; b += kTile) {
    const Index len = std::min<std::ptrdiff_t>(kTile, n - b);
    for (Index i = 0; i < len; ++i) {
      const AsinPrepared ap = AsinPrep(x[b + i]);
      m[i] = ap.m;
      z[i] = ap.z;
      w[i] = ap.w;
    }
    SqrtInPlace(w, len);
    for (Index i = 0; i < len; ++i) {
      out[b + i] = AsinFinish(x[b + i], m[i], z[i], w[i]);
    }
  }
}

void AcosArray(const double* x, double* out, std::ptrdiff_t n) {
  alignas(64) double w[kTile];
  for (std::ptrdiff_t b = 0; b < n; b += kTile) {
    const Index len = std::min<std::ptrdiff_t>(kTile, n - b);
    for (Index i = 0; i < len; ++i) w[i] = HalfAngleArg(x[b + i]);
    SqrtInPlace(w, len);
    for (Index i = 0; i < len; ++i) out[b + i] = AcosFromParts(x[b + i], w[i]);
  }
}

}  // namespace internal

absl::Status ValidateKernelSpec(const KernelSpec& spec) {
  if (spec.activation != Activation::kRelu &&
      spec.activation != Activation::kErf) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.kernel.activation: unknown activation ",
                     static_cast<int>(spec.activation),
                     " (expected RELU = 1 or ERF = 2)"));
  }
  if (spec.depth < 1 || spec.depth > kMaxDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.kernel.depth: must be in [1, ", kMaxDepth,
                     "], got ", spec.depth));
  }
  if (!std::isfinite(spec.weight_variance) || !(spec.weight_variance > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.kernel.weight_variance: must be finite and > 0, got ",
                     spec.weight_variance));
  }
  if (!std::isfinite(spec.bias_variance) || !(spec.bias_variance >= 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.kernel.bias_variance: must be finite and >= 0, got ",
                     spec.bias_variance));
  }
  return absl::OkStatus();
}

namespace {

// x1's point data: x1_rows when given, else computed (with
// x1_squared_norms when given).
KernelMatrices CrossKernelsImpl(const KernelSpec& spec, const Eigen::MatrixXd& x1,
                                const Eigen::MatrixXd& x2,
                                const Eigen::VectorXd* x1_squared_norms,
                                const PointData* x1_rows = nullptr) {
  const Index n = x1.rows();
  const Index m = x2.rows();
  KernelMatrices out;
  out.nngp.resize(n, m);
  out.ntk.resize(n, m);
  if (n == 0 || m == 0) return out;
  PointData computed;
  if (x1_rows == nullptr) {
    computed = x1_squared_norms != nullptr ? ComputePointData(spec, x1, *x1_squared_norms)
                                           : ComputePointData(spec, x1);
  }
  const PointData& rows = x1_rows != nullptr ? *x1_rows : computed;
  const PointData cols = ComputePointData(spec, x2);
  out.nngp.noalias() = x1 * x2.transpose();  // the one GEMM
  const Recursion rec{&spec,
                      x1.cols() > 0 ? spec.weight_variance / x1.cols() : 0.0,
                      &rows, &cols};
  const SegmentFn segment = ChooseSegmentFn();
  const Index tr = NumTiles(n);
  const Index tc = NumTiles(m);
  const Index ntiles = tr * tc;
  RegionExceptions trap;  // core/numerics/parallel.h
#pragma omp parallel for schedule(dynamic, 1) if (ntiles > 1)
  for (Index tile = 0; tile < ntiles; ++tile) {
    trap.Run([&] {
      Scratch sc;
      const Index i0 = (tile % tr) * kTile;
      const Index j0 = (tile / tr) * kTile;
      const Index len = std::min(kTile, n - i0);
      const Index j1 = std::min(j0 + kTile, m);
      for (Index j = j0; j < j1; ++j) {
        double* k_col = out.nngp.data() + j * n + i0;
        double* theta_col = out.ntk.data() + j * n + i0;
        segment(rec, k_col, i0, len, j, k_col, theta_col, sc);
      }
    });
  }
  trap.Rethrow();
  return out;
}

}  // namespace

KernelMatrices CrossKernels(const KernelSpec& spec, const Eigen::MatrixXd& x1,
                            const Eigen::MatrixXd& x2) {
  return CrossKernelsImpl(spec, x1, x2, nullptr);
}

KernelMatrices CrossKernels(const KernelSpec& spec, const Eigen::MatrixXd& x1,
                            const Eigen::MatrixXd& x2,
                            const Eigen::VectorXd& x1_squared_norms) {
  return CrossKernelsImpl(spec, x1, x2, &x1_squared_norms);
}

KernelRows KernelRows::Compute(const KernelSpec& spec, const Eigen::MatrixXd& x,
                               const Eigen::VectorXd& sq) {
  KernelRows r;
  r.data_ = std::make_shared<const KernelRowData>(ComputePointData(spec, x, sq));
  return r;
}

KernelMatrices CrossKernels(const KernelSpec& spec, const Eigen::MatrixXd& x1,
                            const Eigen::MatrixXd& x2, const KernelRows& x1_rows) {
  return CrossKernelsImpl(spec, x1, x2, nullptr, &x1_rows.data());
}

KernelMatrices TrainKernels(const KernelSpec& spec, const Eigen::MatrixXd& x) {
  KernelMatrices out;
  TrainKernels(spec, x, {}, &out);
  return out;
}

namespace {

// TrainKernels (first_layer 0) and ExtendTrainKernels (first_layer > 0:
// *out_ptr holds K and Theta of that depth, whose upper triangles the
// tiles read).
bool TrainKernelsFrom(const KernelSpec& spec, int first_layer, const Eigen::MatrixXd& x,
                      const std::function<bool()>& keep_going, KernelMatrices* out_ptr) {
  KernelMatrices& out = *out_ptr;
  const Index n = x.rows();
  if (n == 0) {
    out.nngp.resize(0, 0);
    out.ntk.resize(0, 0);
    return true;
  }
  if (keep_going && !keep_going()) return false;
  const PointData pts = ComputePointData(spec, x);
  if (first_layer == 0) {
    // The Gram matrix's upper triangle in blocks over the threads, asking
    // keep_going between blocks (gram.h; one dsyrk call had no check and
    // one core: ~1.3 s at N = 10000, d = 784).
    if (!GramUpper(x, keep_going, &out.nngp)) return false;
    out.ntk.resize(n, n);
  }
  Recursion rec{&spec, x.cols() > 0 ? spec.weight_variance / x.cols() : 0.0, &pts, &pts};
  rec.first_layer = first_layer;
  const SegmentFn segment = ChooseSegmentFn();
  const Index nt = NumTiles(n);
  const Index ntiles = nt * (nt + 1) / 2;
  double* kd = out.nngp.data();
  double* td = out.ntk.data();
  // Cancellation: the calling thread (OpenMP thread 0) asks keep_going
  // before each of its tiles; once it says stop, every thread skips the
  // tiles left.
  std::atomic<bool> stop{false};
  RegionExceptions trap;  // core/numerics/parallel.h
#pragma omp parallel for schedule(dynamic, 1) if (ntiles > 1)
  for (Index tile = 0; tile < ntiles; ++tile) {
    trap.Run([&] {
      if (stop.load(std::memory_order_relaxed)) return;
      if (keep_going && omp_get_thread_num() == 0 && !keep_going()) {
        stop = true;
        return;
      }
      // Map the linear index to (bi, bj) with bi <= bj: column bj holds tiles
      // bj (bj + 1) / 2 .. bj (bj + 1) / 2 + bj.
      Index bj = static_cast<Index>((std::sqrt(8.0 * tile + 1.0) - 1.0) / 2.0);
      while (bj * (bj + 1) / 2 > tile) --bj;
      while ((bj + 1) * (bj + 2) / 2 <= tile) ++bj;
      const Index bi = tile - bj * (bj + 1) / 2;
      Scratch sc;
      const Index i0 = bi * kTile;
      const Index j0 = bj * kTile;
      const Index i1 = std::min(i0 + kTile, n);
      const Index j1 = std::min(j0 + kTile, n);
      if (bi < bj) {
        for (Index j = j0; j < j1; ++j) {
          double* k_col = kd + j * n + i0;
          segment(rec, k_col, i0, i1 - i0, j, k_col, td + j * n + i0, sc);
        }
        // Mirror into the lower triangle, tile (bj, bi).
        for (Index j = j0; j < j1; ++j) {
          for (Index i = i0; i < i1; ++i) {
            kd[i * n + j] = kd[j * n + i];
            td[i * n + j] = td[j * n + i];
          }
        }
      } else {  // diagonal tile
        for (Index j = j0; j < j1; ++j) {
          if (j > i0) {
            double* k_col = kd + j * n + i0;
            segment(rec, k_col, i0, j - i0, j, k_col, td + j * n + i0, sc);
          }
          kd[j * n + j] = pts.nngp(j);  // rho = 1 exactly
          td[j * n + j] = pts.ntk(j);
        }
        for (Index j = j0; j < j1; ++j) {
          for (Index i = j + 1; i < j1; ++i) {
            kd[j * n + i] = kd[i * n + j];
            td[j * n + i] = td[i * n + j];
          }
        }
      }
    });
  }
  trap.Rethrow();
  return !stop.load();
}

}  // namespace

bool TrainKernels(const KernelSpec& spec, const Eigen::MatrixXd& x,
                  const std::function<bool()>& keep_going, KernelMatrices* out) {
  return TrainKernelsFrom(spec, 0, x, keep_going, out);
}

bool ExtendTrainKernels(const KernelSpec& spec, int from_depth, const Eigen::MatrixXd& x,
                        const std::function<bool()>& keep_going, KernelMatrices* kernels) {
  if (from_depth >= spec.depth) return !keep_going || keep_going();
  return TrainKernelsFrom(spec, from_depth, x, keep_going, kernels);
}

KernelDiagonal DiagonalKernels(const KernelSpec& spec, const Eigen::MatrixXd& x) {
  PointData pts = ComputePointData(spec, x);
  KernelDiagonal out;
  out.nngp = std::move(pts.nngp);
  out.ntk = std::move(pts.ntk);
  return out;
}

}  // namespace ntk
