// docs/model-contract.md "4. PredictDistribution": the distribution of the trained predictor over random
// initializations f0 ~ GP(0, K (x) I_C), plus the Laplace posterior.
//
// Layout of this file:
//   1. method resolution and validation
//   2. cache builders (each under state.cache_mu, deterministic)
//   3. per-method batch evaluation (GEMM / TRSM over a batch of queries)
//   4. ComputeDistribution: batches, progress, probability moments
//
// Every method produces, per query point, a centered logit mean and C x C
// covariance (Gaussian methods: analytically; MONTE_CARLO: sample moments)
// and then probability-space moments by sampling (distribution_sampling.h).
// Covariances of centered logits are P Sigma P with P = I - 11^T / C.
//
// Determinism: a point's randomness is seeded by (request seed, the bits of
// its preprocessed row); the MONTE_CARLO training samples by (seed, sample
// index). Loops over points write disjoint outputs and never reduce across
// points, so the thread count does not change any summation order of ours.
// A point's answer does not depend on which batch it is in, up to the
// rounding of the BLAS kernels for different batch widths (~1e-15 relative).
#include "core/distribution/distribution.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "core/distribution/sampling.h"
#include "core/kernels/kernel.h"
#include "core/numerics/linalg.h"
#include "core/training/solvers.h"

namespace ntk {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

int64_t ExactFactors::Bytes() const {
  return 8 * (nngp_train.size() + chol_a.size() + mean_dual.size());
}
int64_t LinearizedFactors::Bytes() const {
  int64_t n = chol_m.size() + mean_dual.size();
  for (const MatrixXd& m : e) n += m.size();
  return 8 * n;
}
int64_t LinearizedCovarianceFactors::Bytes() const {
  return 8 * (nngp_train.size() + h.size());
}
int64_t PriorFactor::Bytes() const { return 8 * chol_k.size(); }
int64_t MonteCarloSamples::Bytes() const { return 8 * z_and_dual.size(); }
int64_t ModelFactorSet::Bytes() const {
  int64_t b = 0;
  if (exact) b += exact->Bytes();
  if (linearized) b += linearized->Bytes();
  if (linearized_covariance) b += linearized_covariance->Bytes();
  if (prior) b += prior->Bytes();
  if (ntk_train) b += 8 * ntk_train->size();
  if (zero_f0_dual) b += 8 * zero_f0_dual->size();
  for (const auto& s : samples) b += s->Bytes();
  return b;
}

namespace {

// Largest num_samples accepted (per point this many C-vectors are drawn).
constexpr int kMaxNumSamples = 1 << 20;
// Relative jitter of K_XX for the MONTE_CARLO prior factor:
// K_XX + kPriorRelativeJitter * mean(diag K_XX) I, x10 per failed Cholesky
// up to kMaxRelativeJitter. It perturbs the sampled F0 covariance by
// 1e-10 relative, far below the Monte Carlo error.
constexpr double kPriorRelativeJitter = 1e-10;
// Working memory per query batch (doubles): batches are sized to stay
// under this (~256 MB).
constexpr double kBatchWorkDoubles = 32.0 * 1024 * 1024;

// Stream tags: different randomness for different uses of one seed.
constexpr uint64_t kTagGaussian = 0x47617573;  // logit -> probability sampling
constexpr uint64_t kTagF0 = 0x46304d43;        // MONTE_CARLO training F0
constexpr uint64_t kTagQuery = 0x51755279;     // MONTE_CARLO f0(x) | F0

// Calls the user's progress callback; false -> CANCELLED.
class Progress {
 public:
  explicit Progress(const ProgressFn& fn) : fn_(fn) {}
  absl::Status Report(double fraction, const char* phase) const {
    if (fn_ && !fn_(std::clamp(fraction, 0.0, 1.0), phase)) {
      return absl::CancelledError(
          absl::StrCat("PredictDistribution cancelled during ", phase));
    }
    return absl::OkStatus();
  }

 private:
  const ProgressFn& fn_;
};

absl::Status BudgetCheck(const char* what, int64_t bytes, int64_t budget) {
  if (bytes > budget) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "method: %s needs %d bytes of cached factors in the model (budget "
        "%d bytes)",
        what, bytes, budget));
  }
  return absl::OkStatus();
}

// Lower Cholesky factor of a (symmetric); false if not positive definite.
bool CholeskyLower(const MatrixXd& a, MatrixXd* l) {
  Eigen::LLT<MatrixXd> llt(a);
  if (llt.info() != Eigen::Success) return false;
  *l = llt.matrixL();
  return true;
}

void Symmetrize(MatrixXd* m) {
  const Index n = m->rows();
  for (Index j = 0; j < n; ++j) {
    for (Index i = j + 1; i < n; ++i) {
      const double v = 0.5 * ((*m)(i, j) + (*m)(j, i));
      (*m)(i, j) = v;
      (*m)(j, i) = v;
    }
  }
}

// X := L^{-1} X and X := L^{-T} X for lower triangular L (BLAS dtrsm).
void SolveLower(const MatrixXd& l, MatrixXd* x) {
  l.triangularView<Eigen::Lower>().solveInPlace(*x);
}
void SolveLowerT(const MatrixXd& l, MatrixXd* x) {
  l.triangularView<Eigen::Lower>().transpose().solveInPlace(*x);
}

// Centered copy of a C x C covariance: P S P, P = I - 11^T / C.
MatrixXd CenterCovariance(const MatrixXd& s) {
  const Index C = s.rows();
  const VectorXd row_mean = s.rowwise().mean();
  const VectorXd col_mean = s.colwise().mean().transpose();
  const double all_mean = s.mean();
  MatrixXd out(C, C);
  for (Index b = 0; b < C; ++b) {
    for (Index a = 0; a < C; ++a) {
      out(a, b) = s(a, b) - row_mean[a] - col_mean[b] + all_mean;
    }
  }
  Symmetrize(&out);
  return out;
}

VectorXd CenterVector(const VectorXd& v) {
  return (v.array() - v.mean()).matrix();
}

// ---------------------------------------------------------------------------
// 2. Cache builders. All REQUIRE state.cache_mu held by the caller.

bool HasInitialOutputs(const FittedModel::State& state) {
  return state.initial_train_outputs.size() > 0;
}

// 2a: the dual of the F0 = 0 solution (the fit's own when it used F0 = 0).
absl::StatusOr<std::shared_ptr<const MatrixXd>> ZeroF0Dual(
    const FittedModel::State& state, ModelFactorSet* cache,
    const MatrixXd& theta) {
  if (cache->zero_f0_dual) return cache->zero_f0_dual;
  std::shared_ptr<const MatrixXd> dual;
  if (!HasInitialOutputs(state)) {
    dual = std::make_shared<const MatrixXd>(state.dual);
  } else {
    RegularizedCEOptions opt;
    opt.warm_start_dual = &state.dual;
    absl::StatusOr<SolverSolution> sol =
        SolveRegularizedCE(theta, state.targets, MatrixXd(), state.resolved.lambda, opt);
    if (!sol.ok()) return sol.status();
    dual = std::make_shared<const MatrixXd>(std::move(sol->dual));
  }
  cache->zero_f0_dual = dual;
  return dual;
}

absl::StatusOr<std::shared_ptr<const ExactFactors>> GetExactFactors(
    const FittedModel::State& state, ModelFactorSet* cache,
    int64_t budget, const Progress& progress) {
  if (cache->exact) return cache->exact;
  const Index N = state.x_train.rows();
  const Index C = state.targets.cols();
  if (absl::Status s = BudgetCheck("EXACT", 8 * (2 * N * N + N * C), budget);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = progress.Report(0, "distribution: kernels"); !s.ok()) return s;
  KernelMatrices km = TrainKernels(state.resolved.spec.kernel, state.x_train);
  if (absl::Status s = progress.Report(0.3, "distribution: factor"); !s.ok()) return s;
  auto f = std::make_shared<ExactFactors>();
  double shift = state.stats.jitter;
  if (state.resolved.regime == Regime::kSquared) shift += state.resolved.lambda;
  MatrixXd a = std::move(km.ntk);
  a.diagonal().array() += shift;
  if (!CholeskyLower(a, &f->chol_a)) {
    return absl::InternalError(absl::StrFormat(
        "distribution: Theta_XX + %g I is not positive definite although the "
        "fit factored it",
        shift));
  }
  a.resize(0, 0);
  f->nngp_train = std::move(km.nngp);
  if (!HasInitialOutputs(state)) {
    f->mean_dual = state.dual;
  } else {
    MatrixXd t = state.resolved.regime == Regime::kSquared
                     ? state.targets
                     : MatrixXd(state.targets.array().log().matrix());
    SolveLower(f->chol_a, &t);
    SolveLowerT(f->chol_a, &t);
    f->mean_dual = std::move(t);
  }
  cache->exact = f;
  return cache->exact;
}

// The factors E_c, L_M (both methods) and, when need_covariance
// (LINEARIZED), K_XX and H = sum_c E_c K_XX E_c, built on first use.
absl::StatusOr<std::shared_ptr<const LinearizedFactors>> GetLinearizedFactors(
    const FittedModel::State& state, ModelFactorSet* cache,
    bool need_covariance, int64_t budget, const Progress& progress) {
  if (cache->linearized && (!need_covariance || cache->linearized_covariance)) {
    return cache->linearized;
  }
  const Index N = state.x_train.rows();
  const Index C = state.targets.cols();
  const double lambda = state.resolved.lambda;
  if (absl::Status s = BudgetCheck(need_covariance ? "LINEARIZED" : "LAPLACE_POSTERIOR",
                                   8 * ((C + (need_covariance ? 3 : 1)) * N * N + N * C),
                                   budget);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = progress.Report(0, "distribution: kernels"); !s.ok()) return s;
  KernelMatrices km = TrainKernels(state.resolved.spec.kernel, state.x_train);
  if (!cache->linearized) {
    absl::StatusOr<std::shared_ptr<const MatrixXd>> dual0 =
        ZeroF0Dual(state, cache, km.ntk);
    if (!dual0.ok()) return dual0.status();
    // F* at F0 = 0 is Theta dual0; the fit's own logits when it used F0 = 0.
    const MatrixXd fstar = HasInitialOutputs(state)
                               ? MatrixXd(km.ntk * (**dual0))
                               : state.train_logits;
    const MatrixXd p = RowSoftmax(fstar);

    auto f = std::make_shared<LinearizedFactors>();
    f->mean_dual = **dual0;
    f->e.resize(C);
    MatrixXd m = MatrixXd::Zero(N, N);
    MatrixXd work(N, N);
    for (Index c = 0; c < C; ++c) {
      if (absl::Status s = progress.Report(static_cast<double>(c) / C,
                                           "distribution: factor");
          !s.ok()) {
        return s;
      }
      const VectorXd sqrt_d = p.col(c).array().sqrt();
      // S_c = I + D^{1/2} (Theta / lambda) D^{1/2} = L_c L_c^T.
      work = (sqrt_d.asDiagonal() * km.ntk * sqrt_d.asDiagonal()) / lambda;
      work.diagonal().array() += 1.0;
      MatrixXd l;
      if (!CholeskyLower(work, &l)) {
        return absl::InternalError(
            "distribution: I + D^1/2 Theta D^1/2 / lambda is not positive "
            "definite (Theta_XX not PSD?)");
      }
      // V = L_c^{-1} D^{1/2}; E_c = V^T V = D^{1/2} S_c^{-1} D^{1/2} (dsyrk).
      work = sqrt_d.asDiagonal();
      SolveLower(l, &work);
      l.resize(0, 0);
      MatrixXd e = MatrixXd::Zero(N, N);
      e.selfadjointView<Eigen::Lower>().rankUpdate(work.transpose());
      e.triangularView<Eigen::StrictlyUpper>() = e.transpose();
      m += e;
      f->e[c] = std::move(e);
    }
    if (!CholeskyLower(m, &f->chol_m)) {
      return absl::InternalError(
          "distribution: M = sum_c E_c is not positive definite");
    }
    cache->linearized = f;
  }
  if (need_covariance && !cache->linearized_covariance) {
    auto cov = std::make_shared<LinearizedCovarianceFactors>();
    cov->h = MatrixXd::Zero(N, N);
    MatrixXd work(N, N);
    for (Index c = 0; c < C; ++c) {
      if (absl::Status s = progress.Report(static_cast<double>(c) / C,
                                           "distribution: factor H");
          !s.ok()) {
        return s;
      }
      // H += E_c K E_c (two dgemm).
      const MatrixXd& e = cache->linearized->e[c];
      work.noalias() = e * km.nngp;
      cov->h.noalias() += work * e;
    }
    Symmetrize(&cov->h);
    cov->nngp_train = std::move(km.nngp);
    cache->linearized_covariance = cov;
  }
  return cache->linearized;
}

absl::StatusOr<std::shared_ptr<const PriorFactor>> GetPriorFactor(
    const FittedModel::State& state, ModelFactorSet* cache,
    const MatrixXd& nngp_train) {
  if (cache->prior) return cache->prior;
  const Index N = nngp_train.rows();
  double base = N > 0 ? nngp_train.diagonal().mean() : 1.0;
  if (!(base > 0)) base = 1.0;
  auto f = std::make_shared<PriorFactor>();
  for (double rel = kPriorRelativeJitter; rel <= kMaxRelativeJitter * 1.0001;
       rel *= 10) {
    MatrixXd a = nngp_train;
    a.diagonal().array() += rel * base;
    if (CholeskyLower(a, &f->chol_k)) {
      f->jitter = rel * base;
      cache->prior = f;
      return cache->prior;
    }
  }
  (void)state;
  return absl::InternalError(
      "distribution: K_XX + jitter I is not positive definite for any "
      "jitter up to 1e-4 * mean(diag K_XX)");
}

// MONTE_CARLO samples for (seed, S), from the LRU or built.
absl::StatusOr<std::shared_ptr<const MonteCarloSamples>> GetSamples(
    const FittedModel::State& state, ModelFactorSet* cache, uint64_t seed,
    int S, int64_t budget, const Progress& progress) {
  for (auto it = cache->samples.begin(); it != cache->samples.end(); ++it) {
    if ((*it)->seed == seed && (*it)->num_samples == S) {
      auto hit = *it;
      cache->samples.erase(it);
      cache->samples.push_front(hit);
      return hit;
    }
  }
  const Index N = state.x_train.rows();
  const Index C = state.targets.cols();
  const Regime regime = state.resolved.regime;
  const int64_t sample_bytes = 8 * 2 * N * static_cast<int64_t>(S) * C;
  // Factors this method keeps: the prior factor, plus Theta_XX (2a) or the
  // EXACT factors (2b, 2c), plus this sample set.
  const int64_t factor_bytes =
      regime == Regime::kRegularizedCE ? 8 * (2 * N * N)
                                       : 8 * (3 * N * N + N * C);
  if (absl::Status s = BudgetCheck("MONTE_CARLO", factor_bytes + sample_bytes,
                                   budget);
      !s.ok()) {
    return s;
  }

  std::shared_ptr<const ExactFactors> exact;
  std::shared_ptr<const MatrixXd> theta;
  std::shared_ptr<const PriorFactor> prior;
  if (regime == Regime::kRegularizedCE) {
    if (!cache->ntk_train || !cache->prior) {
      if (absl::Status s = progress.Report(0, "distribution: kernels"); !s.ok()) return s;
      KernelMatrices km = TrainKernels(state.resolved.spec.kernel, state.x_train);
      absl::StatusOr<std::shared_ptr<const PriorFactor>> pf =
          GetPriorFactor(state, cache, km.nngp);
      if (!pf.ok()) return pf.status();
      if (!cache->ntk_train) {
        cache->ntk_train = std::make_shared<const MatrixXd>(std::move(km.ntk));
      }
    }
    theta = cache->ntk_train;
    prior = cache->prior;
  } else {
    absl::StatusOr<std::shared_ptr<const ExactFactors>> ef =
        GetExactFactors(state, cache, budget, progress);
    if (!ef.ok()) return ef.status();
    exact = *ef;
    absl::StatusOr<std::shared_ptr<const PriorFactor>> pf =
        GetPriorFactor(state, cache, exact->nngp_train);
    if (!pf.ok()) return pf.status();
    prior = *pf;
  }

  if (absl::Status s = progress.Report(0, "distribution: samples"); !s.ok()) return s;
  auto out = std::make_shared<MonteCarloSamples>();
  out->seed = seed;
  out->num_samples = S;
  const Index SC = static_cast<Index>(S) * C;
  out->z_and_dual.resize(2 * N, SC);
  // Z: sample s, class c from the stream of (seed, s), in (c, i) order.
  MatrixXd z(N, SC);
#pragma omp parallel for schedule(static)
  for (int s = 0; s < S; ++s) {
    NormalStream stream(IndexSeed(seed, kTagF0, static_cast<uint64_t>(s)));
    FillNormal(stream, z.data() + static_cast<Index>(s) * C * N, C * N);
  }
  // F0 = L_K Z for all samples at once (dtrmm).
  MatrixXd f0 = prior->chol_k.triangularView<Eigen::Lower>() * z;
  out->z_and_dual.topRows(N) = z;
  z.resize(0, 0);
  if (regime == Regime::kRegularizedCE) {
    // The preconditioner's eigenpairs depend on Theta only: compute them
    // once for all S solves instead of once per solve.
    const ThetaEigenbasis basis =
        ComputeThetaEigenbasis(*theta, RegularizedCEOptions().preconditioner_rank);
    // The S solves are independent: one per OpenMP thread at a time (each
    // solve's own kernels then run single-threaded inside the parallel
    // region). A solve is a deterministic function of its sample, so the
    // result does not depend on the number of threads. Measured at N = 1000,
    // 64 samples: one solve at a time with fine-grained parallelism inside
    // spent most of its time in idle thread pools.
    // Progress and cancellation are checked by the thread that runs the
    // first sample of each chunk; a failure stops the remaining samples.
    ScopedSingleThreadedBlas one_blas_thread;
    std::vector<absl::Status> failed(static_cast<size_t>(S));
    std::atomic<bool> stop{false};
    std::atomic<int> done{0};
#pragma omp parallel for schedule(dynamic, 1)
    for (int s = 0; s < S; ++s) {
      if (stop.load(std::memory_order_relaxed)) continue;
      if (omp_get_thread_num() == 0) {
        if (absl::Status st = progress.Report(
                static_cast<double>(done.load()) / S, "distribution: 2a solves");
            !st.ok()) {
          failed[static_cast<size_t>(s)] = st;
          stop = true;
          continue;
        }
      }
      const MatrixXd f0s = f0.middleCols(static_cast<Index>(s) * C, C);
      // Cold start (beta = 0, F = F0_s). Warm-starting from the fit's dual
      // was measured slower: at N = 1000, C = 10, lambda = 1, one sample
      // took 21 Newton steps from the fit's dual and 12 from beta = 0 (the
      // fit's beta is tuned to F0 = 0, a poor start for an O(1) F0_s).
      RegularizedCEOptions opt;
      opt.eigenbasis = &basis;
      absl::StatusOr<SolverSolution> sol = SolveRegularizedCE(
          *theta, state.targets, f0s, state.resolved.lambda, opt);
      if (!sol.ok()) {
        failed[static_cast<size_t>(s)] =
            absl::Status(sol.status().code(),
                         absl::StrCat("distribution: Monte Carlo sample ", s, ": ",
                                      sol.status().message()));
        stop = true;
        continue;
      }
      out->z_and_dual.block(N, static_cast<Index>(s) * C, N, C) = sol->dual;
      ++done;
    }
    for (const absl::Status& st : failed) {
      if (!st.ok()) return st;
    }
  } else {
    // Dual_s = A^{-1} (T - F0_s) = mean_dual - A^{-1} F0_s.
    SolveLower(exact->chol_a, &f0);
    SolveLowerT(exact->chol_a, &f0);
    for (int s = 0; s < S; ++s) {
      out->z_and_dual.block(N, static_cast<Index>(s) * C, N, C) =
          exact->mean_dual - f0.middleCols(static_cast<Index>(s) * C, C);
    }
  }
  // LRU: newest first; drop the oldest beyond the count or the budget.
  cache->samples.push_front(out);
  while (static_cast<int>(cache->samples.size()) > ModelFactorSet::kMaxSampleSets) {
    cache->samples.pop_back();
  }
  while (cache->samples.size() > 1 && cache->Bytes() > budget) {
    cache->samples.pop_back();
  }
  return std::shared_ptr<const MonteCarloSamples>(out);
}

// ---------------------------------------------------------------------------
// 3. Batch evaluation. Each fills, for the nb points of a batch, the
// centered logit mean (C) and covariance (C x C), or (MONTE_CARLO) all the
// fields.

struct Batch {
  const MatrixXd* x = nullptr;  // preprocessed rows of the whole request
  Index begin = 0, size = 0;
  KernelMatrices cross;  // N x nb: K_Xq, Theta_Xq
  KernelDiagonal diag;   // nb: K_qq, Theta_qq
};

// EXACT (2b, 2c): mean center(Theta_xX mean_dual); covariance s(x) P with
//   s(x) = K_xx - 2 r^T K_Xx + r^T K_XX r,   r = A^{-1} Theta_Xx.
// s is a difference of O(1) terms that is ~0 near training points: clamped
// at 0 (a negative value is rounding).
void ExactBatch(const ExactFactors& f, const Batch& b, int C,
                std::vector<PointDistribution>* out) {
  const MatrixXd mean = b.cross.ntk.transpose() * f.mean_dual;  // nb x C
  MatrixXd r = b.cross.ntk;
  SolveLower(f.chol_a, &r);
  SolveLowerT(f.chol_a, &r);
  const MatrixXd kr = f.nngp_train * r;
  const VectorXd rk = (r.array() * b.cross.nngp.array()).colwise().sum().transpose();
  const VectorXd rkr = (r.array() * kr.array()).colwise().sum().transpose();
  const MatrixXd p = MatrixXd::Identity(C, C) - MatrixXd::Constant(C, C, 1.0 / C);
  for (Index j = 0; j < b.size; ++j) {
    PointDistribution& pd = (*out)[b.begin + j];
    const double s = std::max(0.0, b.diag.nngp[j] - 2 * rk[j] + rkr[j]);
    pd.logit_mean = CenterVector(mean.row(j).transpose());
    pd.logit_covariance = s * p;
  }
}

// LINEARIZED (2a) and LAPLACE_POSTERIOR. With k' = Theta_Xx / lambda,
// a_c = E_c k', b_c = E_c K_Xx, alpha_c = L_M^{-1} a_c, beta_c = L_M^{-1} b_c,
// g_c = M^{-1} a_c = L_M^{-T} alpha_c, h_c = E_c K_XX a_c:
//
// The B-blocks: B_cc' = delta_cc' E_c - E_c M^{-1} E_c'.
//
// LINEARIZED: df(x) = df0(x) - Q^T dF0 with Q column c = B (e_c (x) k')
// (block c'' of it: delta a_c - E_c'' g_c). (f0(x), F0) ~ N(0, K (x) I):
//   Cov = K_xx I - T1 - T1^T + T2,
//   T1_cc' = Cov(Q^T F0, f0(x))_cc' = k'^T B_cc' K_Xx
//          = delta k'.b_c - alpha_c.beta_c',
//   T2_cc' = (Q^T (K_XX (x) I) Q)_cc'
//          = delta a_c^T K a_c - h_c.g_c' - g_c.h_c' + g_c^T H g_c',
//   H = sum_c E_c K E_c (cached).
// LAPLACE_POSTERIOR (R&W algorithm 3.4): prior Theta / lambda,
//   Cov_cc' = delta Theta_xx / lambda - (k' (x) I)^T B (k' (x) I)
//           = delta (Theta_xx / lambda - k'.a_c) + alpha_c.alpha_c'.
// Both means are Predict's logits at F0 = 0: Theta_xX mean_dual.
// Costs per point: LINEARIZED ~13 C N^2 flops, LAPLACE ~3 C N^2.
void LinearizedBatch(const LinearizedFactors& f,
                     const LinearizedCovarianceFactors* fc, const Batch& b,
                     int C, double lambda, std::vector<PointDistribution>* out) {
  const bool laplace = fc == nullptr;
  const Index N = f.chol_m.rows();
  const Index nb = b.size;
  const MatrixXd mean = b.cross.ntk.transpose() * f.mean_dual;  // nb x C
  const MatrixXd kp = b.cross.ntk / lambda;                     // k', N x nb
  // Class blocks side by side: column c * nb + j.
  MatrixXd a(N, C * nb), alpha;
  for (Index c = 0; c < C; ++c) a.middleCols(c * nb, nb).noalias() = f.e[c] * kp;
  alpha = a;
  SolveLower(f.chol_m, &alpha);
  MatrixXd bm, beta, g, ka, h, hg;
  if (!laplace) {
    bm.resize(N, C * nb);
    for (Index c = 0; c < C; ++c) {
      bm.middleCols(c * nb, nb).noalias() = f.e[c] * b.cross.nngp;
    }
    beta = bm;
    SolveLower(f.chol_m, &beta);
    g = alpha;
    SolveLowerT(f.chol_m, &g);
    ka.noalias() = fc->nngp_train * a;
    h.resize(N, C * nb);
    for (Index c = 0; c < C; ++c) {
      h.middleCols(c * nb, nb).noalias() = f.e[c] * ka.middleCols(c * nb, nb);
    }
    hg.noalias() = fc->h * g;
  }
  auto dot = [](const MatrixXd& u, Index i, const MatrixXd& v, Index k) {
    return u.col(i).dot(v.col(k));
  };
#pragma omp parallel for schedule(static)
  for (Index j = 0; j < nb; ++j) {
    MatrixXd cov(C, C);
    if (laplace) {
      for (Index c = 0; c < C; ++c) {
        for (Index c2 = 0; c2 <= c; ++c2) {
          double v = dot(alpha, c * nb + j, alpha, c2 * nb + j);
          if (c == c2) {
            v += b.diag.ntk[j] / lambda - dot(kp, j, a, c * nb + j);
          }
          cov(c, c2) = v;
          cov(c2, c) = v;
        }
      }
    } else {
      MatrixXd t1(C, C);
      for (Index c = 0; c < C; ++c) {
        for (Index c2 = 0; c2 < C; ++c2) {
          t1(c, c2) = -dot(alpha, c * nb + j, beta, c2 * nb + j);
        }
        t1(c, c) += kp.col(j).dot(bm.col(c * nb + j));
      }
      for (Index c = 0; c < C; ++c) {
        for (Index c2 = 0; c2 <= c; ++c2) {
          const Index i1 = c * nb + j, i2 = c2 * nb + j;
          double t2 = -dot(h, i1, g, i2) - dot(g, i1, h, i2) + dot(g, i1, hg, i2);
          if (c == c2) t2 += dot(a, i1, ka, i1);
          double v = t2 - t1(c, c2) - t1(c2, c);
          if (c == c2) v += b.diag.nngp[j];
          cov(c, c2) = v;
          cov(c2, c) = v;
        }
      }
    }
    PointDistribution& pd = (*out)[b.begin + j];
    pd.logit_mean = CenterVector(mean.row(j).transpose());
    pd.logit_covariance = CenterCovariance(cov);
  }
}

// MONTE_CARLO: sample s at query x,
//   f_s(x) = f0_s(x) + Theta_xX Dual_s,
//   f0_s(x) | F0_s ~ N(K_xX K^{-1} F0_s, sigma^2(x) I),
//   K_xX K^{-1} F0_s = w^T Z_s with w = L_K^{-1} K_Xx (F0_s = L_K Z_s),
//   sigma^2(x) = K_xx - |w|^2 (clamped at 0),
// the conditional noise eps_s ~ N(0, I_C) from (seed, point). Reports the
// sample moments (divisor S) of the centered logits and of the softmax.
void MonteCarloBatch(const PriorFactor& prior, const MonteCarloSamples& smp,
                     const Batch& b, int C, uint64_t seed,
                     std::vector<PointDistribution>* out) {
  const Index N = prior.chol_k.rows();
  const Index nb = b.size;
  const int S = smp.num_samples;
  MatrixXd q(2 * N, nb);
  q.topRows(N) = b.cross.nngp;
  {
    MatrixXd w = b.cross.nngp;
    SolveLower(prior.chol_k, &w);
    q.topRows(N) = w;
  }
  q.bottomRows(N) = b.cross.ntk;
  const VectorXd w2 = q.topRows(N).colwise().squaredNorm().transpose();
  const MatrixXd mean_part = q.transpose() * smp.z_and_dual;  // nb x S*C
#pragma omp parallel for schedule(static)
  for (Index j = 0; j < nb; ++j) {
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
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// 4. Entry point.

absl::StatusOr<DistributionResult> ComputeDistribution(
    const FittedModel::State& state, const MatrixXd& x,
    const DistributionOptions& options) {
  const Regime regime = state.resolved.regime;
  const bool is_2a = regime == Regime::kRegularizedCE;
  DistributionMethod method = options.method;
  switch (method) {
    case DistributionMethod::kUnspecified:
      method = is_2a ? DistributionMethod::kLinearized : DistributionMethod::kExact;
      break;
    case DistributionMethod::kExact:
      if (is_2a) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "method: EXACT needs a linear training map (lambda = 0 with "
            "cross-entropy, or the squared loss); this model is regime 2a "
            "(cross-entropy, lambda = %g): use LINEARIZED or MONTE_CARLO",
            state.resolved.lambda));
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
  if (x.cols() != state.x_train.cols()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("features: expected %d columns, got %d",
                        state.x_train.cols(), x.cols()));
  }
  int num_samples = options.num_samples;
  if (num_samples == 0) {
    num_samples = (method == DistributionMethod::kMonteCarlo && is_2a)
                      ? kDefaultMonteCarloSamples
                      : kDefaultNumSamples;
  }
  const Progress progress(options.progress);
  const int C = static_cast<int>(state.targets.cols());
  const Index N = state.x_train.rows();
  const Index M = x.rows();

  DistributionResult result;
  result.method = method;
  result.points.resize(M);
  if (M == 0) return result;

  // Factors, built on first use under the lock and then used without it.
  std::shared_ptr<const ExactFactors> exact;
  std::shared_ptr<const LinearizedFactors> lin;
  std::shared_ptr<const LinearizedCovarianceFactors> lin_cov;  // LINEARIZED only
  std::shared_ptr<const PriorFactor> prior;
  std::shared_ptr<const MonteCarloSamples> samples;
  {
    absl::MutexLock lock(&state.cache_mu);
    if (!state.cache) state.cache = std::make_unique<ModelFactorSet>();
    ModelFactorSet* cache = state.cache.get();
    if (method == DistributionMethod::kMonteCarlo) {
      absl::StatusOr<std::shared_ptr<const MonteCarloSamples>> s = GetSamples(
          state, cache, options.seed, num_samples, options.max_cache_bytes, progress);
      if (!s.ok()) return s.status();
      samples = *s;
      prior = cache->prior;
    } else if (is_2a) {
      const bool need_covariance = method == DistributionMethod::kLinearized;
      absl::StatusOr<std::shared_ptr<const LinearizedFactors>> f =
          GetLinearizedFactors(state, cache, need_covariance,
                               options.max_cache_bytes, progress);
      if (!f.ok()) return f.status();
      lin = *f;
      if (need_covariance) lin_cov = cache->linearized_covariance;
    } else {
      absl::StatusOr<std::shared_ptr<const ExactFactors>> f =
          GetExactFactors(state, cache, options.max_cache_bytes, progress);
      if (!f.ok()) return f.status();
      exact = *f;
    }
  }

  // Batch width: keep the per-batch work matrices under kBatchWorkDoubles.
  double per_point = 4.0 * N + 1;
  if (lin) per_point = (9.0 * C + 3) * N;
  if (samples) per_point = 3.0 * N + 2.0 * num_samples * C;
  const Index batch = std::clamp<Index>(
      static_cast<Index>(kBatchWorkDoubles / per_point), 1, 1024);

  const KernelSpec& kspec = state.resolved.spec.kernel;
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
      MonteCarloBatch(*prior, *samples, b, C, options.seed, &result.points);
      continue;
    }
    if (exact) {
      ExactBatch(*exact, b, C, &result.points);
    } else {
      LinearizedBatch(*lin, lin_cov.get(), b, C, state.resolved.lambda,
                      &result.points);
    }
    // Probability moments of the Gaussian logits. The square roots may
    // reach LAPACK: computed serially; the sampling runs in parallel.
    std::vector<MatrixXd> roots(b.size);
    for (Index j = 0; j < b.size; ++j) {
      roots[j] = CovarianceSqrt(result.points[begin + j].logit_covariance);
    }
#pragma omp parallel for schedule(static)
    for (Index j = 0; j < b.size; ++j) {
      PointDistribution& pd = result.points[begin + j];
      std::vector<double> scratch;
      GaussianProbabilityMoments(pd.logit_mean, roots[j], num_samples,
                                 PointSeed(options.seed, kTagGaussian, x, begin + j),
                                 scratch, &pd);
    }
  }
  if (absl::Status s = progress.Report(1.0, "distribution: points"); !s.ok()) {
    return s;
  }
  return result;
}

}  // namespace ntk
