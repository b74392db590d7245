// ntk/core/distribution/monte_carlo.cc: method MONTE_CARLO (all regimes) of
// docs/model-contract.md "4. PredictDistribution": S samples F0_s of the
// prior N(0, K_XX (x) I), each trained (2a: the Newton solves as a block; 2b/2c:
// the linear map of exact.cc), f0_s(x) | F0_s drawn per point, and sample
// moments. See methods.h.
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/distribution/methods.h"
#include "core/distribution/moments.h"
#include "core/numerics/parallel.h"
#include "core/numerics/random.h"
#include "core/training/newton_cg_block.h"
#include "core/training/solvers.h"

namespace ntk::distribution_internal {
namespace {

// 2a samples solved together (SolveSamples2a). Measured at N = 5000, C = 10
// (one thread, CPU time of one sample's product with Theta): 82 ms with the
// narrow kernel of a lone solve (it waits on memory), batched 24 ms alone,
// 12 ms with 4 in flight, 10.8 with 8, 9.7 with 16 (AVX-512 tile; AVX2:
// 18, 15.5, 16). Each in flight costs BlockSolveSlotDoubles(N, C) doubles
// of work space (~14 MB at N = 5000).
constexpr int kSamplesInFlight = 8;

// The prior of F0: K_XX + jitter I = L_K L_K^T. K_XX comes from the EXACT
// factors (2b, 2c: they are needed anyway) or from the training kernels (2a).
absl::StatusOr<std::shared_ptr<const PriorFactor>> GetPriorFactor(
    const State& state, FactorSource& source, TrainingKernelsOnce& kernels, int64_t budget,
    const Progress& progress) {
  return source.Get<PriorFactor>("prior", [&]() -> absl::StatusOr<std::shared_ptr<const PriorFactor>> {
    std::shared_ptr<const ExactFactors> exact;
    const MatrixXd* nngp = nullptr;
    if (state.problem.regime == Regime::kRegularizedCE) {
      absl::StatusOr<const KernelMatrices*> km = kernels.Get(progress);
      if (!km.ok()) return km.status();
      nngp = &(*km)->nngp;
    } else {
      absl::StatusOr<std::shared_ptr<const ExactFactors>> ef =
          GetExactFactors(state, source, budget, progress);
      if (!ef.ok()) return ef.status();
      exact = *ef;
      nngp = &exact->nngp_train;
    }
    const MatrixXd& nngp_train = *nngp;
    const Index N = nngp_train.rows();
    double base = N > 0 ? nngp_train.diagonal().mean() : 1.0;
    if (!(base > 0)) base = 1.0;
    auto f = std::make_shared<PriorFactor>();
    for (double rel = kPriorRelativeJitter; rel <= kMaxRelativeJitter * 1.0001; rel *= 10) {
      MatrixXd a = nngp_train;
      a.diagonal().array() += rel * base;
      const absl::Status s =
          CholeskyLower(std::move(a), &f->chol_k, progress, 0, "distribution: prior factor");
      if (s.code() == absl::StatusCode::kCancelled) return s;
      if (s.ok()) {
        f->jitter = rel * base;
        return std::shared_ptr<const PriorFactor>(f);
      }
    }
    return absl::InternalError(
        "distribution: K_XX + jitter I is not positive definite for any "
        "jitter up to 1e-4 * mean(diag K_XX)");
  });
}

// 2a: Theta_XX, kept for the per-sample solves.
absl::StatusOr<std::shared_ptr<const MatrixFactor>> GetNtkTrain(
    FactorSource& source, TrainingKernelsOnce& kernels, const Progress& progress) {
  return source.Get<MatrixFactor>("ntk_train", [&]() -> absl::StatusOr<std::shared_ptr<const MatrixFactor>> {
    absl::StatusOr<const KernelMatrices*> km = kernels.Get(progress);
    if (!km.ok()) return km.status();
    auto f = std::make_shared<MatrixFactor>();
    f->value = (*km)->ntk;
    return std::shared_ptr<const MatrixFactor>(f);
  });
}

// 2a: Dual_s for every sample s (F0_s = columns s*C .. s*C+C-1 of f0),
// written to rows N..2N-1 of *z_and_dual.
//
// Each sample is one Newton solve (core/training/newton_cg_solver.h, the
// solver of Solve), warm-started from the F0 = 0 solution's dual: the fixed
// point is the sample's own (the start changes the iterates, not the
// answer, up to the solver tolerance), but the Newton steps begin at
// F0_s + F*_0 instead of F0_s. Measured (Fashion-MNIST N = 400, C = 10,
// depth 3, 6 samples): CG iterations 1438 -> 342 (lambda = 0.01) and
// 515 -> 223 (lambda = 1); Newton steps 101 -> 58 and 59 -> 43; duals agree
// to 4e-13 relative.
// The solves run as a block (SolveRegularizedCEBlock,
// core/training/newton_cg_block.h): kSamplesInFlight samples advance in
// lockstep, each round one pass over Theta computes every sample's next
// product (CG iteration, residual or Newton direction) with the bits of a
// product of its own, and the samples' own work runs in parallel across
// them. So Dual_s is the same bits as sample s's own Solve with the
// block's eigenbasis (computed with single-threaded OpenBLAS), whatever
// the number of OpenMP or OpenBLAS threads. The preconditioner's eigenpairs
// and low-rank terms depend on Theta only: computed once. Measured through
// the server (N = 5000, S = 64, lambda = 0.01, loaded machine): first call
// 462 s with one solve per thread, 202 s as a block (docs/performance.md).
// Cancellation: the block asks the user's progress once per round and
// between the blocks of each pass over Theta (phase "distribution: 2a
// solves"); once it says stop nothing is returned (nothing is cached).
absl::Status SolveSamples2a(const State& state, FactorSource& source, const MatrixXd& theta,
                            const MatrixXd& f0, const Progress& progress,
                            MatrixXd* z_and_dual) {
  const Index N = state.x_train.rows();
  absl::StatusOr<std::shared_ptr<const MatrixFactor>> dual0 = GetZeroF0Dual(
      state, source, [&]() -> absl::StatusOr<const MatrixXd*> { return &theta; });
  if (!dual0.ok()) return dual0.status();
  BlockSolveOptions opt;
  opt.solve.warm_start_dual = &(*dual0)->value;
  opt.max_in_flight = kSamplesInFlight;
  absl::Status cancelled;
  opt.progress = [&](double fraction, const char*) {
    cancelled = progress.Report(fraction, "distribution: 2a solves");
    return cancelled.ok();
  };
  absl::StatusOr<BlockSolveResult> solved =
      SolveRegularizedCEBlock(theta, state.problem.targets, f0, state.problem.lambda, opt);
  if (!cancelled.ok()) return cancelled;
  if (!solved.ok()) {
    return absl::Status(solved.status().code(),
                        absl::StrCat("distribution: Monte Carlo ", solved.status().message()));
  }
  z_and_dual->bottomRows(N) = solved->duals;
  return absl::OkStatus();
}

// The training-side samples for (seed, S).
absl::StatusOr<std::shared_ptr<const MonteCarloSamples>> BuildSamples(
    const State& state, FactorSource& source, TrainingKernelsOnce& kernels, uint64_t seed,
    int S, int64_t budget, const Progress& progress, const PriorFactor* prior) {
  const Index N = state.x_train.rows();
  const Index C = state.problem.targets.cols();
  const Regime regime = state.problem.regime;
  std::shared_ptr<const ExactFactors> exact;
  std::shared_ptr<const MatrixFactor> theta_factor;
  const MatrixXd* theta = nullptr;
  if (regime == Regime::kRegularizedCE) {
    absl::StatusOr<std::shared_ptr<const MatrixFactor>> t = GetNtkTrain(source, kernels, progress);
    if (!t.ok()) return t.status();
    theta_factor = *t;
    theta = &theta_factor->value;
  } else {
    absl::StatusOr<std::shared_ptr<const ExactFactors>> ef =
        GetExactFactors(state, source, budget, progress);
    if (!ef.ok()) return ef.status();
    exact = *ef;
  }

  if (absl::Status s = progress.Report(0, "distribution: samples"); !s.ok()) return s;
  std::shared_ptr<MonteCarloSamples> out = NewSampleSet(seed, S, C, N);
  // F0 = L_K Z for all samples at once (dtrmm).
  MatrixXd f0 = prior->chol_k.triangularView<Eigen::Lower>() * out->z_and_dual.topRows(N);
  if (regime == Regime::kRegularizedCE) {
    absl::Status st = SolveSamples2a(state, source, *theta, f0, progress, &out->z_and_dual);
    if (!st.ok()) return st;
  } else {
    // Dual_s = A^{-1} (T - F0_s) = mean_dual - A^{-1} F0_s.
    SolveCholesky(exact->chol_a, &f0);
    SetLinearSampleDuals(exact->mean_dual, f0, out.get());
  }
  return std::shared_ptr<const MonteCarloSamples>(out);
}

}  // namespace

std::shared_ptr<MonteCarloSamples> NewSampleSet(uint64_t seed, int S, Index C, Index rows) {
  auto out = std::make_shared<MonteCarloSamples>();
  out->seed = seed;
  out->num_samples = S;
  out->z_and_dual.resize(2 * rows, static_cast<Index>(S) * C);
  // Z: sample s, class c from the stream of (seed, s), in (c, i) order.
  double* z = out->z_and_dual.data();
  const Index stride = out->z_and_dual.rows();
#pragma omp parallel for schedule(static)
  for (int s = 0; s < S; ++s) {
    NormalStream stream(IndexSeed(seed, kTagF0, static_cast<uint64_t>(s)));
    for (Index c = 0; c < C; ++c) {
      FillNormal(stream, z + (static_cast<Index>(s) * C + c) * stride, rows);
    }
  }
  return out;
}

void SetLinearSampleDuals(const MatrixXd& mean, const MatrixXd& solved,
                          MonteCarloSamples* samples) {
  const Index rows = mean.rows(), C = mean.cols();
  for (int s = 0; s < samples->num_samples; ++s) {
    samples->z_and_dual.block(rows, static_cast<Index>(s) * C, rows, C) =
        mean - solved.middleCols(static_cast<Index>(s) * C, C);
  }
}

absl::StatusOr<MonteCarloFactors> GetMonteCarloFactors(
    const State& state, FactorSource& source, TrainingKernelsOnce& kernels, uint64_t seed,
    int S, int64_t budget, const Progress& progress) {
  MonteCarloFactors out;
  std::shared_ptr<const PriorFactor> prior;
  absl::StatusOr<std::shared_ptr<const MonteCarloSamples>> samples =
      source.Get<MonteCarloSamples>(
          absl::StrCat("mc/seed=", seed, "/S=", S),
          [&]() -> absl::StatusOr<std::shared_ptr<const MonteCarloSamples>> {
            const Index N = state.x_train.rows();
            const Index C = state.problem.targets.cols();
            const int64_t sample_bytes = 8 * 2 * N * static_cast<int64_t>(S) * C;
            // Factors this method keeps: the prior factor, plus Theta_XX (2a) or
            // the EXACT factors (2b, 2c), plus this sample set.
            const int64_t factor_bytes = state.problem.regime == Regime::kRegularizedCE
                                             ? 8 * (2 * N * N)
                                             : 8 * (3 * N * N + N * C);
            if (absl::Status s =
                    BudgetCheck("MONTE_CARLO", factor_bytes + sample_bytes, budget);
                !s.ok()) {
              return s;
            }
            absl::StatusOr<std::shared_ptr<const PriorFactor>> pf =
                GetPriorFactor(state, source, kernels, budget, progress);
            if (!pf.ok()) return pf.status();
            prior = *pf;
            return BuildSamples(state, source, kernels, seed, S, budget, progress, prior.get());
          });
  if (!samples.ok()) return samples.status();
  out.samples = *samples;
  if (prior == nullptr) {
    absl::StatusOr<std::shared_ptr<const PriorFactor>> pf =
        GetPriorFactor(state, source, kernels, budget, progress);
    if (!pf.ok()) return pf.status();
    prior = *pf;
  }
  out.prior = prior;
  return out;
}

// MONTE_CARLO: sample s at query x,
//   f_s(x) = f0_s(x) + Theta_xX Dual_s,
//   f0_s(x) | F0_s ~ N(K_xX K^{-1} F0_s, sigma^2(x) I),
//   K_xX K^{-1} F0_s = w^T Z_s with w = L_K^{-1} K_Xx (F0_s = L_K Z_s),
//   sigma^2(x) = K_xx - |w|^2 (clamped at 0),
// the conditional noise eps_s ~ N(0, I_C) from (seed, point). Reports the
// sample moments (divisor S) of the centered logits and of the softmax.
void MonteCarloBatch(const MatrixXd& chol_k, const MonteCarloSamples& smp, const Batch& b,
                     int C, uint64_t seed, std::vector<PointDistribution>* out) {
  const Index N = chol_k.rows();
  const Index nb = b.size;
  const int S = smp.num_samples;
  MatrixXd q(2 * N, nb);
  q.topRows(N) = b.cross.nngp;
  {
    MatrixXd w = b.cross.nngp;
    SolveLower(chol_k, &w);
    q.topRows(N) = w;
  }
  q.bottomRows(N) = b.cross.ntk;
  const VectorXd w2 = q.topRows(N).colwise().squaredNorm().transpose();
  const MatrixXd mean_part = q.transpose() * smp.z_and_dual;  // nb x S*C
  RegionExceptions trap;  // core/numerics/parallel.h
#pragma omp parallel for schedule(static)
  for (Index j = 0; j < nb; ++j) {
    trap.Run([&] {
      const double sigma = std::sqrt(std::max(0.0, b.diag.nngp[j] - w2[j]));
      NormalStream stream(PointSeed(seed, kTagQuery, *b.x, b.begin + j));
      std::vector<double> logits(static_cast<size_t>(S) * C);
      VectorXd mean = VectorXd::Zero(C);
      for (int s = 0; s < S; ++s) {
        double* z = logits.data() + static_cast<size_t>(s) * C;
        double avg = 0;
        for (int c = 0; c < C; ++c) {
          z[c] = mean_part(j, static_cast<Index>(s) * C + c) + sigma * stream.Next();
          avg += z[c];
        }
        avg /= C;
        for (int c = 0; c < C; ++c) {
          z[c] -= avg;
          mean[c] += z[c];
        }
      }
      mean /= S;
      MatrixXd cov = MatrixXd::Zero(C, C);
      for (int s = 0; s < S; ++s) {
        const double* z = logits.data() + static_cast<size_t>(s) * C;
        for (int c2 = 0; c2 < C; ++c2) {
          for (int c = c2; c < C; ++c) {
            cov(c, c2) += (z[c] - mean[c]) * (z[c2] - mean[c2]);
          }
        }
      }
      for (int c2 = 0; c2 < C; ++c2) {
        for (int c = c2; c < C; ++c) {
          cov(c, c2) /= S;
          cov(c2, c) = cov(c, c2);
        }
      }
      PointDistribution& pd = (*out)[b.begin + j];
      pd.logit_mean = mean;
      pd.logit_covariance = cov;
      std::vector<double> scratch;
      ProbabilityMomentsFromLogitSamples(logits.data(), S, C, scratch, &pd);
    });
  }
  trap.Rethrow();
}

}  // namespace ntk::distribution_internal
