// ntk/core/kernels/kernel_internal.h: pieces of core/kernels/kernel.cc exposed for tests and
// benchmarks only. Not part of the service's interface; callers outside
// core/kernels/kernel.cc, tests/ and bench/ should use core/kernels/kernel.h.
//
// Thread safety: every function is pure (reads its inputs, writes its
// outputs) and safe to call concurrently.
#ifndef NTK_CORE_KERNELS_KERNEL_INTERNAL_H_
#define NTK_CORE_KERNELS_KERNEL_INTERNAL_H_

#include <cstddef>

namespace ntk {
namespace internal {

// Branch-free, auto-vectorizable arcsine and arccosine of n values (the
// loops use only +, -, *, /, fabs and copysign, and Eigen's packet sqrt, so
// gcc -O3 vectorizes them with baseline SSE2 and with AVX2/AVX-512 under
// -march=native). AsinArray runs the same code as the kernels' recursion;
// AcosArray keeps full relative accuracy near x = -1 as well.
// fdlibm's rational approximation R(z) of (asin(sqrt z) - sqrt z)/sqrt z on
// z in [0, 1/4] with the half-angle reduction
//   asin(x) = pi/2 - 2 asin(sqrt((1 - x)/2)),  acos(x) = 2 asin(sqrt((1 - x)/2))
// for |x| > 1/2. Measured error against glibc: a few ulp (see
// tests/kernel_test.cc, which checks 1e-15 relative on a dense grid).
// Inputs outside [-1, 1] are clipped to [-1, 1].
// REQUIRES: x and out hold n doubles each (they may be the same array);
// x is not NaN.
void AsinArray(const double* x, double* out, std::ptrdiff_t n);
void AcosArray(const double* x, double* out, std::ptrdiff_t n);

// Which compiled copy of the kernels' elementwise recursion to use. kAuto
// (the default) picks AVX2 when the CPU has it, else the build's baseline.
// Both give bit-identical results; this switch exists so that tests can
// check that. Returns false (and changes nothing) if the CPU lacks the ISA.
// Thread safety: affects later calls in all threads; tests only.
enum class VectorIsa { kAuto = 0, kBaseline = 1, kAvx2 = 2 };
bool ForceVectorIsaForTesting(VectorIsa isa);

}  // namespace internal
}  // namespace ntk

#endif  // NTK_CORE_KERNELS_KERNEL_INTERNAL_H_
