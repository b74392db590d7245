// ntk/bench/bench_spec.h: the model spec the Fit benchmarks share
// (fit_bench, nystrom2a_bench): ReLU, depth 1, sw^2 = 2, sb^2 = 0, the
// recommended preprocessing (standardize + normalize rows), and
// regularization lambda when `lambda` > 0 (regime 2a), else the defaults.
//
// Thread safety: a pure function.
#ifndef NTK_BENCH_BENCH_SPEC_H_
#define NTK_BENCH_BENCH_SPEC_H_

#include "core/training/spec.h"

namespace ntk::bench {

inline ModelSpec FitBenchSpec(double lambda) {
  ModelSpec spec;
  spec.kernel.activation = Activation::kRelu;
  spec.kernel.depth = 1;
  spec.kernel.weight_variance = 2.0;
  spec.kernel.bias_variance = 0.0;
  spec.preprocessing.standardize = true;
  spec.preprocessing.normalize_rows = true;
  if (lambda > 0) spec.training.regularization = lambda;
  return spec;
}

}  // namespace ntk::bench

#endif  // NTK_BENCH_BENCH_SPEC_H_
