// ntk/core/numerics/work_steps.h: how much work a long loop of core does
// between two cancellation checks (its ProgressFn, or a keep_going
// callback), and the flop count of one kernel pair used to size such steps.
//
// Why one number: every long call must stop within 0.5 s of a deadline or
// a cancel (docs/operations.md "Work after a deadline or a cancel"). At
// ~20 GFLOP/s on one core of the development machine, 2e9 flops is ~0.1 s,
// so a stop lands within one step even when the other core is busy.
// Loops that size their blocks from this: the training Gram matrix
// (core/kernels/gram.h), Predict's query blocks (core/model/model.cc),
// Nystrom's kernel row blocks and 2a summaries (core/nystrom/), the
// LINEARIZED / LAPLACE factor steps (core/distribution/linearized_solver.h).
//
// Thread safety: constants and a pure function.
#ifndef NTK_CORE_NUMERICS_WORK_STEPS_H_
#define NTK_CORE_NUMERICS_WORK_STEPS_H_

#include <cstdint>

namespace ntk {

// Flops of one step of cancellable work.
inline constexpr double kFlopsPerStep = 2e9;

// Approximate flops of one (x, x') pair of the NNGP and NTK cross kernels
// of a depth-`depth` network on d features: the input dot product (2 d)
// plus the layer recursion, counted as 64 per layer
// (docs/model-contract.md "1. Kernels").
inline double KernelPairFlops(int64_t d, int depth) { return 2.0 * d + 64.0 * depth; }

}  // namespace ntk

#endif  // NTK_CORE_NUMERICS_WORK_STEPS_H_
