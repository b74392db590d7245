#include "core/model/cost.h"

#include <algorithm>
#include <cmath>

#include "core/distribution/cache.h"
#include "core/distribution/factors.h"
#include "core/distribution/linearized_solver.h"

namespace ntk {
namespace {

// Doubles to bytes, in double precision so that huge shapes do not wrap.
int64_t Bytes(double doubles) {
  const double b = 8.0 * doubles;
  return b >= 9.0e18 ? INT64_MAX : static_cast<int64_t>(b);
}

// The Newton-CG preconditioner's rank (core/training/solvers.h
// RegularizedCEOptions::preconditioner_rank, capped at N / 2).
constexpr double kPreconditionerRank = 32;
// Newton iterations x CG steps a 2a fit typically takes (flops only).
constexpr double kTypicalThetaProducts = 200;
// Query rows per cross-kernel block (core/model/model.cc QueryBlockRows) and
// per-batch work of PredictDistribution (core/distribution/distribution.cc
// kBatchWorkDoubles): 32 Mi doubles.
constexpr double kBlockDoubles = 32.0 * 1024 * 1024;


// A Nystrom fit (core/nystrom/nystrom_solve.h, core/model/model_nystrom.cc).
Cost NystromFitCost(double n, double d, double c, double m, Regime regime) {
  // Raw and preprocessed features, targets, logits, initial outputs; the
  // centers; Theta_nm (held once) and one block of the cross kernels being
  // computed (NNGP + NTK, <= 8 Mi doubles each, nystrom_direct.cc); Theta_mm
  // with the NNGP of TrainKernels.
  double doubles = 2 * n * d + 4 * n * c + m * d + n * m + 2 * std::min(n * m, kBlockDoubles / 4) +
                   2 * m * m;
  double flops = n * m * d + m * m * d;
  if (regime == Regime::kRegularizedCE) {
    // The FALKON factors L, L^T L, R (3 m^2); Hessian blocks (N C^2 + N C);
    // ~15 N x C and m x C workspaces.
    doubles += 3 * m * m + n * c * c + n * c + 15 * (n + m) * c;
    flops += kTypicalThetaProducts * 2 * n * m * c + 20 * m * m * m / 3;
    // The PredictDistribution summaries when under the default cap
    // (FitOptions::max_nystrom_summary_bytes; the server's is never larger):
    // K_nm kept during the fit, the two (m C)^2 matrices, one m x 4096
    // product block; 2 C (C + 1) N m^2 flops (NewtonSummaries).
    if (NystromSummaryBytes(static_cast<int64_t>(m), static_cast<int64_t>(c)) <=
        kDefaultNystromSummaryBytes) {
      doubles += n * m + 2 * (m * c) * (m * c) + m * std::min(n, 4096.0);
      flops += 2 * c * (c + 1) * n * m * m;
    }
  } else {
    // Gram Theta_mn Theta_nm, the factored matrix, the right-hand sides,
    // and the PredictDistribution summary K_mn Theta_nm (kept in the model).
    doubles += 3 * m * m + 4 * n * c;
    flops += 2 * n * m * m + m * m * m / 3;
  }
  return Cost{Bytes(doubles), flops};
}

// The common tail of DistributionCost: factors (+ kernels) in doubles, one
// query batch's work, the rows * C^2 covariances of the result and the
// preprocessed queries, plus the response.
Cost DistributionTotal(double factors, double per_point, double flops, double rows, double d,
                       double c) {
  const double batch_work = std::min(rows, std::max(1.0, kBlockDoubles / per_point)) * per_point;
  // Each point keeps two C x C covariances, two C-vectors and its scalars.
  const double result = rows * (2 * c * c + 2 * c + 4);
  const double doubles = factors + batch_work + result + rows * d;
  return Cost{Bytes(doubles) + DistributionResponseBytes(static_cast<int64_t>(rows),
                                                         static_cast<int64_t>(c)),
              flops};
}

// PredictDistribution of a Nystrom model with m centers (the methods
// core/distribution/nystrom.cc builds; 2b / 2c below, 2a first): NystromFactors
// (NystromFactorBytes) and, while they are built, K_mm, Theta_mm and H
// (3 m^2); MONTE_CARLO adds its sample set (2 m S C). Flops: the two m x m
// Cholesky factors and W (m^3 / 3 + m^3 / 3 + m^3), then per query the
// cross kernels (2 m d), two triangular solves with L_H, one with L_K and
// the product W g (~2.5 m^2 multiply-adds), MONTE_CARLO m S C per query
// and 2 m^2 S C for the samples.
Cost NystromDistributionCost(DistributionMethod method, Regime regime, double rows, double d,
                             double c, double m, double s) {
  const bool mc = method == DistributionMethod::kMonteCarlo;
  if (regime == Regime::kRegularizedCE) {
    // 2a LINEARIZED / LAPLACE_POSTERIOR (Nystrom2aFactors): the factor
    // ((m C)^2 + m^2) and, while it is built, the Hessian's factor (m C)^2
    // and K_mm, Theta_mm (2 m^2); flops its Cholesky and two solves with
    // m C right-hand sides (LAPLACE: the inverse, a third of that), then per
    // query the cross kernels and ~3 m^2 C^2.
    const double mc2 = (m * c) * (m * c);
    const double factors =
        static_cast<double>(Nystrom2aFactorBytes(static_cast<int64_t>(m),
                                                 static_cast<int64_t>(c))) / 8 +
        mc2 + 2 * m * m;
    const double per_point = (2 * c + 1) * c * m + 4 * m;
    const double solve = method == DistributionMethod::kLaplacePosterior ? 2.0 / 3 : 2.0;
    const double flops = mc2 * m * c * (1.0 / 3 + solve) + rows * (2 * m * d + 3 * m * m * c * c);
    return DistributionTotal(factors, per_point, flops, rows, d, c);
  }
  double factors = static_cast<double>(NystromFactorBytes(static_cast<int64_t>(m),
                                                          static_cast<int64_t>(c))) / 8 +
                   3 * m * m;
  double per_point = 4 * m + 1;
  double flops = 5 * m * m * m / 3 + rows * (2 * m * d + 2.5 * m * m);
  if (mc) {
    factors += 2 * m * s * c;
    per_point = 3 * m + 2 * s * c;
    flops += 2 * m * m * s * c + rows * m * s * c;
  }
  return DistributionTotal(factors, per_point, flops, rows, d, c);
}

}  // namespace

Cost FitCost(int64_t n_in, int64_t d_in, int64_t c_in, Regime regime, int64_t num_centers) {
  const double n = static_cast<double>(n_in), d = static_cast<double>(d_in),
               c = static_cast<double>(c_in);
  if (num_centers > 0) {
    return NystromFitCost(n, d, c, static_cast<double>(std::min(num_centers, n_in)), regime);
  }
  // Raw and preprocessed features, the NTK and NNGP of the training set
  // (the NNGP is dropped at once, but both exist while computed), targets,
  // logits, dual and initial outputs.
  double doubles = 2 * n * d + 2 * n * n + 4 * n * c;
  double flops = n * n * d;
  if (regime == Regime::kRegularizedCE) {
    const double k = std::min(kPreconditionerRank, std::max(1.0, n / 2));
    // Per-point C x C Hessian blocks W_i with their eigenvectors (N*C*C),
    // ~20 N x C Newton-CG workspaces, the low-rank preconditioner
    // (N x k(k+1)/2 products, a (kC)^2 system, the N x (k+16) sketches).
    doubles += n * c * c + n * c + 20 * n * c + n * k * (k + 1) / 2 + (k * c) * (k * c) +
               3 * n * (k + 16);
    flops += kTypicalThetaProducts * n * n * c + n * c * c * c + (k * c) * (k * c) * (k * c) / 3;
  } else {
    // The shifted Cholesky factor of Theta and its solves.
    doubles += n * n + 4 * n * c;
    flops += n * n * n / 3 + n * n * c;
  }
  return Cost{Bytes(doubles), flops};
}

Cost FitCostUpperBound(int64_t n, int64_t d, int64_t c, bool squared_loss,
                       int64_t num_centers) {
  return FitCost(n, d, c, squared_loss ? Regime::kSquared : Regime::kRegularizedCE,
                 num_centers);
}

Cost SelectionCost(int64_t n_in, int64_t d_in, int64_t c_in, const SelectionShape& shape) {
  const double n = static_cast<double>(n_in), d = static_cast<double>(d_in),
               c = static_cast<double>(c_in);
  const double folds = static_cast<double>(std::max<int64_t>(shape.folds, 1));
  const double n_tr = n - std::floor(n / folds), n_te = n - n_tr + 1;
  // Raw and preprocessed features, Theta and K of all rows, the held-out
  // block and logits; FitCost of the fold's training rows counts its
  // training block, its factor or the 2a workspace.
  const Cost solve = FitCost(n_in - static_cast<int64_t>(n - n_tr), 0, c_in,
                             shape.newton_candidates > 0 ? Regime::kRegularizedCE
                                                         : Regime::kSquared);
  const double fold_work = n_tr * n_te + 4 * n_te * c + static_cast<double>(solve.bytes) / 8;
  // The evidence: the 2a solve on all rows, then M and one work matrix.
  const double evidence_work =
      shape.evidence
          ? static_cast<double>(FitCost(n_in, 0, c_in, Regime::kRegularizedCE).bytes) / 8 +
                2 * n * n
          : 0;
  const double doubles = 2 * n * d + 2 * n * n + std::max(fold_work, evidence_work);
  const double per_fold =
      static_cast<double>(shape.factorizations) * n_tr * n_tr * n_tr / 3 +
      static_cast<double>(shape.direct_candidates) * 2 * n_tr * n_tr * c +
      static_cast<double>(shape.newton_candidates) * kTypicalThetaProducts * n_tr * n_tr * c +
      static_cast<double>(shape.direct_candidates + shape.newton_candidates) * n_tr * n_te * c;
  const double evidence_flops =
      shape.evidence ? static_cast<double>(shape.newton_candidates) *
                           (kTypicalThetaProducts * n * n * c + (c + 1.0 / 3) * n * n * n)
                     : 0;
  const double flops = static_cast<double>(shape.bias_variances) * n * n *
                           (d + static_cast<double>(shape.max_depth)) +
                       (shape.folds >= 2 ? folds * per_fold : 0) + evidence_flops;
  return Cost{Bytes(doubles), flops};
}

Cost PredictCost(int64_t rows_in, int64_t n_in, int64_t d_in, int64_t c_in) {
  const double rows = static_cast<double>(rows_in), n = static_cast<double>(n_in),
               d = static_cast<double>(d_in), c = static_cast<double>(c_in);
  const double block = std::min(rows, std::max(1.0, std::floor(kBlockDoubles / std::max(1.0, n))));
  // NTK and NNGP cross kernels of one block, the preprocessed queries,
  // logits, probabilities, and the response's copy of both.
  const double doubles = 2 * block * n + rows * d + 4 * rows * c;
  return Cost{Bytes(doubles) + PredictResponseBytes(rows_in, c_in), rows * n * (d + c)};
}

int64_t PredictResponseBytes(int64_t rows, int64_t c) {
  // Two rows x C double matrices, one label varint (<= 5 bytes) per row,
  // and a few bytes of framing.
  return Bytes(2.0 * static_cast<double>(rows) * static_cast<double>(c)) + 5 * rows + 64;
}

int64_t DistributionFactorCapacity(const DistributionOptions& options) {
  if (options.cache.cache == nullptr) return options.max_cache_bytes;
  return std::min(options.max_cache_bytes, options.cache.cache->stats().budget_bytes);
}

Cost DistributionCost(DistributionMethod requested, Regime regime, int64_t rows_in,
                      int64_t n_in, int64_t d_in, int64_t c_in, int64_t num_samples,
                      int64_t factor_capacity_bytes, int64_t num_centers) {
  const double rows = static_cast<double>(rows_in), n = static_cast<double>(n_in),
               d = static_cast<double>(d_in), c = static_cast<double>(c_in);
  const DistributionMethod method = ResolvedMethod(requested, regime);
  const bool is_2a = regime == Regime::kRegularizedCE;
  const double s = static_cast<double>(
      num_samples > 0 ? num_samples
                      : (method == DistributionMethod::kMonteCarlo && is_2a
                             ? kDefaultMonteCarloSamples
                             : kDefaultNumSamples));
  if (num_centers > 0) {
    return NystromDistributionCost(method, regime, rows, d, c,
                                   static_cast<double>(std::min(num_centers, n_in)), s);
  }
  // The method's factors (the sizes its BudgetCheck names) and the training
  // kernels they are computed from; per query point, the batch work.
  double factors = 0, per_point = 4 * n + 1, flops = 0;
  // The training kernels the factors are computed from (LINEARIZED packs
  // them into its factor instead).
  double kernels = 2 * n * n;
  switch (method) {
    case DistributionMethod::kExact:
    case DistributionMethod::kUnspecified:
      factors = 2 * n * n + n * c;
      flops = n * n * n / 3 + rows * (n * n + n * c);
      break;
    case DistributionMethod::kLinearized:
    case DistributionMethod::kLaplacePosterior: {
      // core/distribution/linearized_solver.h: the factor (2 N^2 streamed,
      // (C + 2) N^2 kept) plus one N x N work matrix; its peak (kernels ->
      // packed + L_M + work) has no separate kernel term. Flops: Prepare
      // (C + 1/3) N^3, per call 2C N^3/3 refactoring when streamed, and
      // (2C + 3) products of an N x N operator with C vectors per row.
      const bool keep = KeepClassFactors(n_in, c_in, factor_capacity_bytes);
      factors = static_cast<double>(LinearizedFactorBytes(n_in, c_in, keep)) / 8 + n * n;
      kernels = 0;
      per_point = (5 * c + 3) * n;
      flops = (c + 1.0 / 3) * n * n * n + (keep ? 0 : 2 * c * n * n * n / 3) +
              rows * (2 * c + 3) * 2 * n * n * c;
      break;
    }
    case DistributionMethod::kMonteCarlo: {
      factors = (is_2a ? 2 * n * n : 3 * n * n + n * c) + 2 * n * s * c;
      per_point = 3 * n + 2 * s * c;
      flops = n * n * n / 3 + (is_2a ? s * kTypicalThetaProducts * n * n * c : s * n * n * c) +
              rows * s * (n * c + c * c);
      break;
    }
  }
  return DistributionTotal(factors + kernels, per_point, flops, rows, d, c);
}

int64_t DistributionResponseBytes(int64_t rows, int64_t c) {
  const double cd = static_cast<double>(c);
  // Per point: 2 C^2 + 2 C packed doubles, 3 doubles and a label, framing.
  return Bytes(static_cast<double>(rows) * (2 * cd * cd + 2 * cd + 3)) + 24 * rows + 64;
}

}  // namespace ntk
