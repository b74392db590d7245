// ntk/core/kernels/gram.cc: see gram.h.
#include "core/kernels/gram.h"

#include <algorithm>
#include <atomic>
#include <cstdint>

#include <omp.h>

#include "core/numerics/linalg.h"
#include "core/numerics/parallel.h"
#include "core/numerics/work_steps.h"

namespace ntk {

bool GramUpper(const Eigen::MatrixXd& x, const std::function<bool()>& keep_going,
               Eigen::MatrixXd* g) {
  using Eigen::Index;
  const Index n = x.rows();
  const Index d = x.cols();
  g->resize(n, n);
  if (n == 0) return !keep_going || keep_going();
  const double per_column = 2.0 * static_cast<double>(n) * static_cast<double>(std::max<Index>(d, 1));
  const Index width =
      std::clamp<Index>(static_cast<Index>(kFlopsPerStep / per_column), 64, 1024);
  std::atomic<bool> stop{false};
  ScopedSingleThreadedBlas one_blas_thread;
  ParallelBlocks(n, width, [&](int64_t j0, int64_t w) {
    if (stop.load(std::memory_order_relaxed)) return;
    if (keep_going && omp_get_thread_num() == 0 && !keep_going()) {
      stop = true;
      return;
    }
    const Index j1 = j0 + w;
    g->block(0, j0, j1, w).noalias() = x.topRows(j1) * x.middleRows(j0, w).transpose();
  });
  return !stop.load();
}

}  // namespace ntk
