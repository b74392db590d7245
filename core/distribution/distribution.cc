// ntk/core/distribution/distribution.cc: ComputeDistribution, the dispatch
// of docs/model-contract.md "4. PredictDistribution": method resolution and
// checks, the factors of the chosen method (methods.h: one file per
// method), the query batches, and the probability moments of the Gaussian
// methods (moments.h).
//
// Every method produces, per query point, a centered logit mean and C x C
// covariance (Gaussian methods: analytically; MONTE_CARLO: sample moments)
// and then probability-space moments by sampling. Covariances of centered
// logits are P Sigma P with P = I - 11^T / C.
//
// Determinism: a point's randomness is seeded by (request seed, the bits of
// its preprocessed row); the MONTE_CARLO training samples by (seed, sample
// index). Loops over points write disjoint outputs and never reduce across
// points, so the thread count does not change any summation order of ours.
// A point's answer does not depend on which batch it is in, up to the
// rounding of the BLAS kernels for different batch widths (~1e-15 relative).
#include "core/distribution/distribution.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/distribution/methods.h"
#include "core/distribution/moments.h"
#include "core/kernels/kernel.h"
#include "core/numerics/parallel.h"
#include "core/model/cost.h"
#include "core/numerics/random.h"

namespace ntk {

using namespace distribution_internal;  // NOLINT: this file is their dispatch

namespace {

// Working memory per query batch (doubles): batches are sized to stay
// under this (~256 MB).
constexpr double kBatchWorkDoubles = 32.0 * 1024 * 1024;
// Flops per query batch of a Nystrom 2a model (~0.1-0.2 s on 2 cores).
constexpr double kNystrom2aBatchFlops = 1e10;

}  // namespace

std::pair<std::string, std::shared_ptr<const CacheEntry>> ExactFactorsFromFit(
    const FittedModel::State& state, MatrixXd nngp_train, MatrixXd chol_a) {
  return {kExactPart, ExactFactorsFrom(state, std::move(nngp_train), std::move(chol_a))};
}

absl::StatusOr<DistributionResult> ComputeDistribution(
    const FittedModel::State& state, const MatrixXd& x,
    const DistributionOptions& options) {
  const Regime regime = state.problem.regime;
  const bool is_2a = regime == Regime::kRegularizedCE;
  const DistributionMethod method = ResolvedMethod(options.method, regime);
  switch (method) {
    case DistributionMethod::kExact:
      if (is_2a) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "method: EXACT needs a linear training map (lambda = 0 with "
            "cross-entropy, or the squared loss); this model is regime 2a "
            "(cross-entropy, lambda = %g): use LINEARIZED or MONTE_CARLO",
            state.problem.lambda));
      }
      break;
    case DistributionMethod::kLaplacePosterior:
      if (!is_2a) {
        return absl::FailedPreconditionError(absl::StrCat(
            "method: LAPLACE_POSTERIOR needs cross-entropy with lambda > 0 "
            "(the prior is GP(0, Theta / lambda)); this model is regime ",
            RegimeName(regime)));
      }
      break;
    case DistributionMethod::kLinearized:
    case DistributionMethod::kMonteCarlo:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "method: unknown distribution method ", static_cast<int>(method)));
  }
  if (options.num_samples < 0 || options.num_samples > kMaxNumSamples) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "num_samples: must be in [0, %d], got %d", kMaxNumSamples,
        options.num_samples));
  }
  if (x.cols() != state.num_features()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("features: expected %d columns, got %d",
                        state.num_features(), x.cols()));
  }
  int num_samples = options.num_samples;
  if (num_samples == 0) {
    num_samples = (method == DistributionMethod::kMonteCarlo && is_2a)
                      ? kDefaultMonteCarloSamples
                      : kDefaultNumSamples;
  }
  const Progress progress(options.progress);
  const int C = state.problem.num_classes;
  // The rows of the cross kernels: N training points, or m centers.
  const Index N = state.expansion_points().rows();
  const Index M = x.rows();

  DistributionResult result;
  result.method = method;
  result.points.resize(M);
  if (M == 0) return result;

  // Factors: fetched through options.cache (or computed for this call); no
  // lock is held while they are computed (core/distribution/cache.h).
  FactorSource source(options.cache);
  TrainingKernelsOnce kernels(state);
  const int64_t budget = options.max_cache_bytes;
  std::shared_ptr<const ExactFactors> exact;
  std::shared_ptr<const LinearizedFactor> lin;
  std::shared_ptr<const MatrixFactor> zero_f0_dual;  // with lin: the mean's dual
  std::shared_ptr<const PriorFactor> prior;
  std::shared_ptr<const MonteCarloSamples> samples;
  std::shared_ptr<const NystromFactors> nystrom;
  std::shared_ptr<const Nystrom2aFactors> nystrom_2a;
  const MatrixXd* chol_k = nullptr;  // MONTE_CARLO's prior factor
  if (state.is_nystrom() && is_2a) {
    // docs/model-contract.md "6. Nystrom models", 2a: LINEARIZED and
    // LAPLACE_POSTERIOR from the Newton summaries (FittedModel refuses the
    // rest and models without them).
    absl::StatusOr<std::shared_ptr<const Nystrom2aFactors>> f = GetNystrom2aFactors(
        state, source, method == DistributionMethod::kLaplacePosterior, budget, progress);
    if (!f.ok()) return f.status();
    nystrom_2a = *f;
  } else if (state.is_nystrom()) {
    // docs/model-contract.md "6. Nystrom models" (2b / 2c; FittedModel
    // refuses the others): every method from the one Nystrom factor.
    absl::StatusOr<std::shared_ptr<const NystromFactors>> f = GetNystromFactors(
        state, source,
        method == DistributionMethod::kMonteCarlo  ? "MONTE_CARLO"
        : method == DistributionMethod::kLinearized ? "LINEARIZED"
                                                    : "EXACT",
        budget, progress);
    if (!f.ok()) return f.status();
    nystrom = *f;
    if (method == DistributionMethod::kMonteCarlo) {
      absl::StatusOr<std::shared_ptr<const MonteCarloSamples>> smp =
          GetNystromSamples(*nystrom, source, options.seed, num_samples, budget, progress);
      if (!smp.ok()) return smp.status();
      samples = *smp;
      chol_k = &nystrom->chol_k;
    }
  } else if (method == DistributionMethod::kMonteCarlo) {
    absl::StatusOr<MonteCarloFactors> f = GetMonteCarloFactors(
        state, source, kernels, options.seed, num_samples, budget, progress);
    if (!f.ok()) return f.status();
    samples = f->samples;
    prior = f->prior;
    chol_k = &prior->chol_k;
  } else if (is_2a) {
    absl::StatusOr<std::shared_ptr<const LinearizedFactor>> f = GetLinearizedFactor(
        state, source, kernels,
        method == DistributionMethod::kLinearized ? "LINEARIZED" : "LAPLACE_POSTERIOR",
        DistributionFactorCapacity(options), budget, progress);
    if (!f.ok()) return f.status();
    lin = *f;
    absl::StatusOr<std::shared_ptr<const MatrixFactor>> d =
        GetZeroF0Dual(state, source, kernels, progress);
    if (!d.ok()) return d.status();
    zero_f0_dual = *d;
  } else {
    absl::StatusOr<std::shared_ptr<const ExactFactors>> f =
        GetExactFactors(state, source, budget, progress);
    if (!f.ok()) return f.status();
    exact = *f;
  }

  // Batch width: keep the per-batch work matrices under kBatchWorkDoubles.
  double per_point = 4.0 * N + 1;
  if (lin) per_point = (5.0 * C + 3) * N;  // ApplyLinearized's 5 N C m + kernels
  if (samples) per_point = 3.0 * N + 2.0 * num_samples * C;
  // Nystrom 2a: C products of m x m C per class step, and C^2 m-vectors per
  // point; a batch is also kept under ~kNystrom2aBatchFlops of work, so that
  // progress (asked per class step) is asked every ~kNystrom2aBatchFlops / C.
  double max_batch = 1024;
  if (nystrom_2a) {
    const double m = static_cast<double>(N);
    per_point = (2.0 * C + 1) * C * m + 4 * m;
    max_batch = std::max(1.0, kNystrom2aBatchFlops / (3 * m * m * C * C));
  }
  const Index batch = std::clamp<Index>(
      static_cast<Index>(std::min(kBatchWorkDoubles / per_point, max_batch)), 1, 1024);

  const KernelSpec& kspec = state.problem.spec.kernel;
  for (Index begin = 0; begin < M; begin += batch) {
    if (absl::Status s = progress.Report(static_cast<double>(begin) / M,
                                         "distribution: points");
        !s.ok()) {
      return s;
    }
    Batch b;
    b.x = &x;
    b.begin = begin;
    b.size = std::min(batch, M - begin);
    const MatrixXd xb = x.middleRows(begin, b.size);
    b.cross = TrainingCrossKernels(state, xb);
    b.diag = DiagonalKernels(kspec, xb);
    if (samples) {
      MonteCarloBatch(*chol_k, *samples, b, C, options.seed, &result.points);
      continue;
    }
    if (nystrom_2a) {
      const absl::Status s =
          method == DistributionMethod::kLaplacePosterior
              ? Nystrom2aLaplaceBatch(*nystrom_2a, state.nystrom.beta, state.problem.lambda, b,
                                      progress, &result.points)
              : Nystrom2aLinearizedBatch(*nystrom_2a, state.nystrom.beta, b, progress,
                                         &result.points);
      if (!s.ok()) return s;
    } else if (nystrom) {
      NystromExactBatch(*nystrom, b, C, &result.points);
    } else if (exact) {
      ExactBatch(*exact, b, C, &result.points);
    } else {
      const absl::Status s =
          method == DistributionMethod::kLinearized
              ? LinearizedBatch(*lin, zero_f0_dual->value, b, progress, &result.points)
              : LaplaceBatch(*lin, zero_f0_dual->value, b, progress, &result.points);
      if (!s.ok()) return s;
    }
    // Probability moments of the Gaussian logits. The square roots may
    // reach LAPACK: computed serially; the sampling runs in parallel.
    std::vector<MatrixXd> roots(b.size);
    for (Index j = 0; j < b.size; ++j) {
      roots[j] = CovarianceSqrt(result.points[begin + j].logit_covariance);
    }
    RegionExceptions trap;  // core/numerics/parallel.h
#pragma omp parallel for schedule(static)
    for (Index j = 0; j < b.size; ++j) {
      trap.Run([&] {
        PointDistribution& pd = result.points[begin + j];
        std::vector<double> scratch;
        GaussianProbabilityMoments(pd.logit_mean, roots[j], num_samples,
                                   PointSeed(options.seed, kTagGaussian, x, begin + j),
                                   scratch, &pd);
      });
    }
    trap.Rethrow();
  }
  if (absl::Status s = progress.Report(1.0, "distribution: points"); !s.ok()) {
    return s;
  }
  return result;
}

}  // namespace ntk
