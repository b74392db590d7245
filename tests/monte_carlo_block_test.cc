// Tests of the lockstep 2a block solve (core/training/newton_cg_block.h)
// that MONTE_CARLO uses for its samples (docs/model-contract.md
// "4. PredictDistribution", "2a. Regularized"), and of the batched Theta
// product under it (TransposeTimesNarrowBatch, core/numerics/linalg.h):
//   - every problem of a block has the bits of its own Solve (same options,
//     same warm start), whatever the number in flight;
//   - the bits do not depend on the number of OpenMP threads, for the block
//     and for MONTE_CARLO through a fitted model;
//   - each answer is the problem's fixed point, checked directly;
//   - cancellation at any progress call ends the block with CANCELLED and
//     no further calls; a problem that cannot converge ends it with that
//     problem's error.
// The claims are bit-identity (EXPECT_EQ on doubles), not closeness, except
// the direct fixed-point check (its tolerance is derived below).
#include <omp.h>

#include <string>
#include <vector>

#include <Eigen/Dense>
#include <gtest/gtest.h>

#include "core/distribution/distribution.h"
#include "core/kernels/kernel.h"
#include "core/model/model.h"
#include "core/numerics/linalg.h"
#include "core/training/newton_cg_block.h"
#include "core/training/problem.h"
#include "core/training/solve.h"
#include "core/training/solvers.h"
#include "tests/testing/distribution_fixtures.h"

namespace ntk {
namespace {

using Eigen::MatrixXd;
using testing::RandomFeatures;
using testing::RandomTargets;

bool Same(const MatrixXd& a, const MatrixXd& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && (a.array() == b.array()).all();
}

// A 2a problem and S draws of F0 from the prior N(0, K (x) I) (K + 1e-8 I
// factored), the MONTE_CARLO setting.
struct Block {
  TrainingProblem problem;
  MatrixXd theta, f0, dual0;  // dual0: the F0 = 0 solution's dual
  int S = 0;
};

Block MakeBlock(int n, int c, int S, double lambda, uint64_t seed) {
  Block b;
  const MatrixXd x = RandomFeatures(n, 6, seed);
  const KernelMatrices km = TrainKernels(testing::Relu2(), x);
  b.theta = km.ntk;
  b.problem.regime = Regime::kRegularizedCE;
  b.problem.lambda = lambda;
  b.problem.num_classes = c;
  b.problem.targets = RandomTargets(x, c, 0.0, seed + 1);
  MatrixXd k = km.nngp;
  k.diagonal().array() += 1e-8;
  const MatrixXd l = k.llt().matrixL();
  b.f0 = l * RandomFeatures(n, S * c, seed + 2);
  b.S = S;
  absl::StatusOr<SolverSolution> zero = Solve(b.problem, b.theta);
  EXPECT_TRUE(zero.ok()) << zero.status();
  if (zero.ok()) b.dual0 = zero->dual;
  return b;
}

BlockSolveOptions WarmOptions(const Block& b, int in_flight) {
  BlockSolveOptions o;
  o.solve.warm_start_dual = &b.dual0;
  o.max_in_flight = in_flight;
  return o;
}

TEST(BlockSolve, EveryProblemHasTheBitsOfItsOwnSolve) {
  const int c = 4, S = 5;
  for (double lambda : {0.02, 1.0}) {
    SCOPED_TRACE(lambda);
    const Block b = MakeBlock(300, c, S, lambda, 11);
    std::vector<SolverSolution> own;
    {
      // OpenBLAS single-threaded as in the block (the BLAS fallback of
      // ThetaTimes then sees the same threads).
      ScopedSingleThreadedBlas one_blas_thread;
      for (int s = 0; s < S; ++s) {
        const MatrixXd f0s = b.f0.middleCols(s * c, c);
        SolveOptions o;
        o.initial_outputs = &f0s;
        o.warm_start_dual = &b.dual0;
        absl::StatusOr<SolverSolution> sol = Solve(b.problem, b.theta, o);
        ASSERT_TRUE(sol.ok()) << sol.status();
        own.push_back(*sol);
      }
    }
    for (int in_flight : {1, 2, S}) {
      SCOPED_TRACE(in_flight);
      absl::StatusOr<BlockSolveResult> r = SolveRegularizedCEBlock(
          b.theta, b.problem.targets, b.f0, lambda, WarmOptions(b, in_flight));
      ASSERT_TRUE(r.ok()) << r.status();
      for (int s = 0; s < S; ++s) {
        EXPECT_TRUE(Same(r->duals.middleCols(s * c, c), own[s].dual)) << s;
        EXPECT_EQ(r->info[s].newton_iterations, own[s].info.newton_iterations) << s;
        EXPECT_EQ(r->info[s].cg_iterations, own[s].info.cg_iterations) << s;
        EXPECT_GT(r->info[s].cg_iterations, 0) << s;  // the solve did work
      }
    }
  }
}

// The hand-written product (its AVX-512 and AVX2 tiles, where the CPU has
// them) and the BLAS fallback (the testing switches of core/numerics/linalg.h)
// each give the bits of their own single product.
TEST(BlockSolve, BatchedProductHasTheBitsOfSingleProducts) {
  const MatrixXd a = RandomFeatures(301, 307, 3);  // odd sizes: partial tiles
  for (int c : {1, 3, 10, 12, 13}) {
    std::vector<MatrixXd> v, out(3);
    std::vector<const MatrixXd*> vs;
    std::vector<MatrixXd*> outs;
    for (int s = 0; s < 3; ++s) v.push_back(RandomFeatures(301, c, 10 + s));
    for (int s = 0; s < 3; ++s) {
      vs.push_back(&v[s]);
      outs.push_back(&out[s]);
    }
    for (int path : {0, 1, 2}) {  // AVX-512 tile, AVX2 tile, BLAS
      internal::UseAvx512BatchKernelForTesting(path == 0);
      internal::UseNarrowKernelForTesting(path < 2);
      ASSERT_TRUE(TransposeTimesNarrowBatch(a, vs, outs));
      for (int s = 0; s < 3; ++s) {
        MatrixXd single;
        TransposeTimesNarrow(a, v[s], &single);
        EXPECT_TRUE(Same(out[s], single)) << c << " " << path << " " << s;
        // And it is the product (rounding of 301 terms of size ~1 each).
        EXPECT_LT((out[s] - a.transpose() * v[s]).cwiseAbs().maxCoeff(), 1e-11);
      }
    }
    internal::UseAvx512BatchKernelForTesting(true);
    internal::UseNarrowKernelForTesting(true);
  }
}

// Each dual is its problem's fixed point: with F = F0 + Theta dual (an
// independent Eigen product), the 2a residual F - F0 - Theta (Y - softmax F)
// / lambda = Theta (dual - (Y - softmax F) / lambda) is within the solver's
// stopping rule, 1e2 x the 1e-12 tolerance relative to max(1, |F|_inf)
// (solvers.h: it may stop at the rounding floor within 100x), plus the
// rounding of the products here, N eps |Theta|_max |dual|_max.
TEST(BlockSolve, AnswersAreTheFixedPoints) {
  const int c = 3, S = 4;
  const double lambda = 0.05;
  const Block b = MakeBlock(300, c, S, lambda, 21);
  absl::StatusOr<BlockSolveResult> r =
      SolveRegularizedCEBlock(b.theta, b.problem.targets, b.f0, lambda, WarmOptions(b, 3));
  ASSERT_TRUE(r.ok()) << r.status();
  for (int s = 0; s < S; ++s) {
    const MatrixXd dual = r->duals.middleCols(s * c, c);
    const MatrixXd f = b.f0.middleCols(s * c, c) + b.theta * dual;
    const MatrixXd p = RowSoftmax(f);
    const MatrixXd resid = b.theta * (dual - (b.problem.targets - p) / lambda);
    const double scale = std::max(1.0, f.cwiseAbs().maxCoeff());
    const double rounding = 300 * 2.2e-16 * b.theta.cwiseAbs().maxCoeff() *
                            (dual.cwiseAbs().maxCoeff() + 1 / lambda);
    EXPECT_LE(resid.cwiseAbs().maxCoeff(), 1e-10 * scale + rounding) << s;
  }
}

// N = 500: rounds of 3 or more in flight use the threads (N^2 k C >=
// kMinParallelBatchTerms, core/numerics/linalg.h).
TEST(BlockSolve, ThreadCountDoesNotChangeTheBits) {
  const int c = 3, S = 6;
  const Block b = MakeBlock(500, c, S, 0.05, 31);
  const int saved = omp_get_max_threads();
  std::vector<MatrixXd> duals;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    absl::StatusOr<BlockSolveResult> r =
        SolveRegularizedCEBlock(b.theta, b.problem.targets, b.f0, 0.05, WarmOptions(b, 4));
    ASSERT_TRUE(r.ok()) << r.status();
    duals.push_back(r->duals);
  }
  omp_set_num_threads(saved);
  EXPECT_TRUE(Same(duals[0], duals[1]));
}

// MONTE_CARLO through a fitted model: S = 20 > the samples in flight, so
// samples enter the block as others finish; N = 400 puts rounds of 5 or
// more on the threads.
TEST(MonteCarlo2a, ThreadCountDoesNotChangeTheAnswer) {
  const MatrixXd x = RandomFeatures(400, 5, 41);
  const MatrixXd y = RandomTargets(x, 3, 0.0, 42);
  const MatrixXd q = RandomFeatures(6, 5, 43);
  const int saved = omp_get_max_threads();
  std::vector<std::vector<PointDistribution>> runs;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    auto st = testing::MakeState(testing::Relu2(), Regime::kRegularizedCE, 0.1, x, y);
    ASSERT_NE(st, nullptr);
    DistributionOptions o;
    o.method = DistributionMethod::kMonteCarlo;
    o.num_samples = 20;
    o.seed = 5;
    absl::StatusOr<DistributionResult> r = ComputeDistribution(*st, q, o);
    ASSERT_TRUE(r.ok()) << r.status();
    runs.push_back(r->points);
  }
  omp_set_num_threads(saved);
  for (size_t j = 0; j < runs[0].size(); ++j) {
    EXPECT_EQ(runs[0][j].logit_mean, runs[1][j].logit_mean) << j;
    EXPECT_EQ(runs[0][j].logit_covariance, runs[1][j].logit_covariance) << j;
    EXPECT_EQ(runs[0][j].probability_covariance, runs[1][j].probability_covariance) << j;
  }
}

TEST(BlockSolve, CancelAtAnyProgressCallStopsThere) {
  const int c = 3, S = 5;
  const Block b = MakeBlock(300, c, S, 0.05, 51);
  int total = 0;
  BlockSolveOptions count = WarmOptions(b, 2);
  count.progress = [&](double, const char* phase) {
    EXPECT_STREQ(phase, "newton block");
    ++total;
    return true;
  };
  ASSERT_TRUE(SolveRegularizedCEBlock(b.theta, b.problem.targets, b.f0, 0.05, count).ok());
  ASSERT_GE(total, S);
  for (int k : {0, total / 2, total - 1}) {
    SCOPED_TRACE(k);
    int calls = 0;
    BlockSolveOptions o = WarmOptions(b, 2);
    o.progress = [&](double, const char*) { return calls++ < k; };
    absl::StatusOr<BlockSolveResult> r =
        SolveRegularizedCEBlock(b.theta, b.problem.targets, b.f0, 0.05, o);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
    EXPECT_EQ(calls, k + 1);  // no call after the one that said stop
  }
}

// Which problem's error is reported is deterministic too (the lowest index
// of the first round in which any failed), so compare 1 and 2 threads.
TEST(BlockSolve, AProblemThatCannotConvergeEndsTheBlockWithItsError) {
  const int c = 3, S = 3;
  const Block b = MakeBlock(300, c, S, 0.05, 61);
  BlockSolveOptions o;  // cold start: one Newton step cannot reach 1e3 x 1e-12
  o.solve.max_newton_iterations = 1;
  const int saved = omp_get_max_threads();
  std::vector<std::string> messages;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    absl::StatusOr<BlockSolveResult> r =
        SolveRegularizedCEBlock(b.theta, b.problem.targets, b.f0, 0.05, o);
    ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    messages.emplace_back(r.status().message());
  }
  omp_set_num_threads(saved);
  const std::string& m = messages[0];
  EXPECT_EQ(m.rfind("sample ", 0), 0u) << m;
  EXPECT_NE(m.find(": spec.training.regularization: the 2a Newton solve did not converge"),
            std::string::npos)
      << m;
  EXPECT_EQ(messages[0], messages[1]);
}

TEST(BlockSolve, BadShapesAreRefused) {
  const Block b = MakeBlock(300, 3, 1, 0.05, 71);
  const MatrixXd ragged = MatrixXd::Zero(300, 4);  // not a multiple of C = 3
  EXPECT_EQ(SolveRegularizedCEBlock(b.theta, b.problem.targets, ragged, 0.05, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SolveRegularizedCEBlock(b.theta, b.problem.targets, b.f0, 0.0, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ntk
