// ntk/core/kernels/kernel_rows.h: the per-row data of x1 that every
// CrossKernels call derives (step 1 of core/kernels/kernel.cc: each row's
// diagonal recursion S_l(x, x), T_l(x, x), docs/model-contract.md
// "1. The network and its two kernels"), computed once for a set of rows
// queried many times: a model's expansion points ("3. Predict").
//
//   KernelRows rows = KernelRows::Compute(spec, x_train, x_train_sq_norms);
//   KernelMatrices k = CrossKernels(spec, x_train, queries, rows);
//
// Same bits as CrossKernels(spec, x_train, queries). Why: for a one-row
// query this step is a pass over all N rows with two square roots per row
// and layer; perf of single-row Predicts on N = 1000, d = 64 under h2load
// put 9% of the server's CPU there (docs/performance.md, "Per-call cost").
// Memory: (2 depth + 2) N doubles.
//
// Thread safety: immutable once computed; copies share the data.
#ifndef NTK_CORE_KERNELS_KERNEL_ROWS_H_
#define NTK_CORE_KERNELS_KERNEL_ROWS_H_

#include <cstdint>
#include <memory>

#include <Eigen/Dense>

#include "core/kernels/kernel.h"

namespace ntk {

struct KernelRowData;  // core/kernels/kernel.cc

class KernelRows {
 public:
  KernelRows() = default;  // empty
  // REQUIRES: ValidateKernelSpec(spec).ok(), sq == x.rowwise().squaredNorm().
  static KernelRows Compute(const KernelSpec& spec, const Eigen::MatrixXd& x,
                            const Eigen::VectorXd& sq);
  bool empty() const { return data_ == nullptr; }
  const KernelRowData& data() const { return *data_; }

 private:
  std::shared_ptr<const KernelRowData> data_;
};

// CrossKernels(spec, x1, x2) with x1's rows precomputed.
// REQUIRES: !x1_rows.empty(), x1_rows == KernelRows::Compute(spec, x1, ...).
KernelMatrices CrossKernels(const KernelSpec& spec, const Eigen::MatrixXd& x1,
                            const Eigen::MatrixXd& x2, const KernelRows& x1_rows);

}  // namespace ntk

#endif  // NTK_CORE_KERNELS_KERNEL_ROWS_H_
