// ntk/core/model/cost.h: what an operation will allocate (bytes) and
// compute (flops), from its shapes alone, before it runs. The server admits
// a request against its memory budget with these (server/memory_budget.h);
// see docs/operations.md "Memory".
//
// The estimates count the dominant matrices of each operation (the N^2
// kernel and factor terms, the N*C*C Hessian blocks of 2a, the rows*C^2
// covariances of PredictDistribution and its answer), as allocated by
// core/model/model.cc, core/training/*.cc and core/distribution/*.cc (the
// per-method factor sizes are those their BudgetCheck calls name). They
// over-count rather than under-count: factors a method may find in the
// DistributionCache are counted as if computed.
//
// Thread safety: pure functions.
#ifndef NTK_CORE_MODEL_COST_H_
#define NTK_CORE_MODEL_COST_H_

#include <cstdint>

#include "core/model/model.h"
#include "core/training/problem.h"

namespace ntk {

struct Cost {
  int64_t bytes = 0;  // peak working memory, bytes
  double flops = 0;   // multiply-adds, order of magnitude
};

// FittedModel::Fit of n rows, d features, c classes in `regime`
// (docs/model-contract.md "2. Training objective"); num_centers m > 0: a
// Nystrom fit with m centers ("6. Nystrom models": Theta_nm held once,
// N m + a few m^2 doubles, never N^2; 2a also K_nm and the 2 (m C)^2
// PredictDistribution summaries when they are under
// kDefaultNystromSummaryBytes), 0: the exact kernel.
Cost FitCost(int64_t n, int64_t d, int64_t c, Regime regime, int64_t num_centers = 0);
// The most expensive regime a spec may end in: 2a for cross-entropy (which
// 2b never exceeds), 2c for the squared loss.
Cost FitCostUpperBound(int64_t n, int64_t d, int64_t c, bool squared_loss,
                       int64_t num_centers = 0);

// Model selection inside Fit (core/selection/selection.h,
// docs/model-contract.md "7. Model selection"): what its cross-validation
// does, counted after the candidates were resolved.
struct SelectionShape {
  int64_t folds = 0;
  int64_t max_depth = 0;       // the largest depth tried
  int64_t bias_variances = 0;  // kernel recursions (one per bias variance)
  int64_t kernels = 0;         // (depth, bias variance) pairs
  // Per fold, summed over kernels: distinct 2b/2c factorizations (one per
  // shift lambda + jitter), 2b/2c candidates (triangular solves) and 2a
  // candidates (Newton-CG solves).
  int64_t factorizations = 0;
  int64_t direct_candidates = 0;
  int64_t newton_candidates = 0;
  // LAPLACE_EVIDENCE: each candidate (all 2a) also fitted on all rows and
  // its log det (core/selection/evidence.h) computed.
  bool evidence = false;
};
// The cross-validation of n rows, d features, c classes: Theta and K of
// all rows (2 n^2), one fold's training block and its factor (2 n_tr^2,
// n_tr = n - floor(n / folds)), the held-out cross block, and the 2a
// solver's workspace; flops count the shared work (one recursion per bias
// variance, one factorization per shift and fold). With evidence: the
// larger of one fold's work and the all-rows 2a solve plus the log det's
// 2 n^2, and (c + 1/3) n^3 flops per candidate. The final fit on all rows
// is FitCost and runs after this memory is freed.
Cost SelectionCost(int64_t n, int64_t d, int64_t c, const SelectionShape& shape);

// FittedModel::Predict of `rows` queries on a model of n training rows, d
// features, c classes (docs/model-contract.md "3. Predict").
Cost PredictCost(int64_t rows, int64_t n, int64_t d, int64_t c);
// Bytes of the PredictResponse (probabilities and logits as doubles, labels).
int64_t PredictResponseBytes(int64_t rows, int64_t c);

// The bytes a method's cached factor may take for a call with `options`:
// the smaller of options.max_cache_bytes and the budget of options.cache's
// cache (when it has one). LINEARIZED / LAPLACE_POSTERIOR keep their
// per-class factors when they fit in it (KeepClassFactors,
// core/distribution/linearized_solver.h).
int64_t DistributionFactorCapacity(const DistributionOptions& options);

// FittedModel::PredictDistribution (docs/model-contract.md
// "4. PredictDistribution") of `rows` queries: the method's factors, one
// query batch's work, and the rows * C^2 covariances of the result.
// num_samples: 0 for the method's default. factor_capacity_bytes:
// DistributionFactorCapacity of the call (LINEARIZED's storage choice).
// num_centers m > 0: a Nystrom model of n training rows ("6. Nystrom
// models": m x m factors and m-row kernels, never n), 0: the exact kernel.
Cost DistributionCost(DistributionMethod method, Regime regime, int64_t rows, int64_t n,
                      int64_t d, int64_t c, int64_t num_samples,
                      int64_t factor_capacity_bytes, int64_t num_centers = 0);
// Bytes of the PredictDistributionResponse (two C x C covariances, two
// C-vectors and four scalars per point).
int64_t DistributionResponseBytes(int64_t rows, int64_t c);

}  // namespace ntk

#endif  // NTK_CORE_MODEL_COST_H_
