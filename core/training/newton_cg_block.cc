// ntk/core/training/newton_cg_block.cc: SolveRegularizedCEBlock
// (newton_cg_block.h), the lockstep driver of many NewtonCGSolvers.
#include "core/training/newton_cg_block.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/numerics/linalg.h"
#include "core/numerics/parallel.h"
#include "core/training/newton_cg_preconditioner.h"
#include "core/training/newton_cg_solver.h"
#include "core/training/solver_util.h"

namespace ntk {

using Eigen::Index;
using Eigen::MatrixXd;

namespace {

// One problem in flight: its F0 and its solver.
struct Slot {
  int index = 0;
  MatrixXd f0;
  std::unique_ptr<solver_internal::NewtonCGSolver> solver;
  bool begun = false;
};

}  // namespace

int64_t BlockSolveSlotDoubles(int64_t n, int64_t c) {
  // NewtonCGSolver: 25 N x C matrices (iterate, CG, preconditioner and
  // line-search workspaces) and the N C x C Hessian blocks; plus the
  // slot's F0.
  return n * c * 26 + n * c * c;
}

absl::StatusOr<BlockSolveResult> SolveRegularizedCEBlock(const MatrixXd& theta,
                                                         const MatrixXd& y, const MatrixXd& f0,
                                                         double lambda,
                                                         const BlockSolveOptions& options) {
  if (absl::Status s = solver_internal::CheckShapes(theta, y, MatrixXd()); !s.ok()) return s;
  const Index n = y.rows(), c = y.cols();
  if (f0.rows() != n || f0.cols() < c || f0.cols() % c != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "initial_train_outputs: expected ", n, " x (S * ", c, ") with S >= 1, got ",
        f0.rows(), " x ", f0.cols()));
  }
  if (!(lambda > 0) || !std::isfinite(lambda)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.training.regularization: 2a needs lambda > 0, got ", lambda));
  }
  const int num = static_cast<int>(f0.cols() / c);
  const size_t window = static_cast<size_t>(std::max(1, options.max_in_flight));
  // OpenBLAS single-threaded, as in SolveRegularizedCE's loop, and already
  // for the eigenbasis: OpenBLAS's GEMM rounds differently with different
  // thread counts, so this keeps the answers the same bits for any.
  ScopedSingleThreadedBlas one_blas_thread;
  ThetaEigenbasis own_basis;
  if (options.solve.eigenbasis == nullptr) {
    own_basis = ComputeThetaEigenbasis(theta, options.solve.preconditioner_rank);
  }
  const solver_internal::PreconditionerBasis basis(
      theta, lambda, options.solve.eigenbasis ? *options.solve.eigenbasis : own_basis);
  RegularizedCEOptions solve_options = options.solve;
  solve_options.progress = nullptr;

  BlockSolveResult out;
  out.duals.resize(n, f0.cols());
  out.info.resize(static_cast<size_t>(num));
  int finished = 0;
  const auto keep_going = [&] {
    return ReportProgress(options.progress, static_cast<double>(finished) / num, "newton block");
  };
  const auto cancelled = [] {
    return absl::CancelledError("cancelled during the 2a Newton solves");
  };
  std::vector<std::unique_ptr<Slot>> active;
  int next = 0;
  for (;;) {
    while (active.size() < window && next < num) {
      auto slot = std::make_unique<Slot>();
      slot->index = next;
      slot->f0 = f0.middleCols(static_cast<Index>(next) * c, c);
      slot->solver = std::make_unique<solver_internal::NewtonCGSolver>(
          theta, y, slot->f0, lambda, solve_options, basis);
      active.push_back(std::move(slot));
      ++next;
    }
    if (active.empty()) break;
    // Each problem's own work up to its next product (or its end), one
    // task per problem; a long step (a new Newton step's Hessian blocks)
    // splits into tasks of rows that idle threads take (ForRows,
    // newton_cg_preconditioner.h). On the threads when the round's product
    // is (TransposeTimesNarrowBatch): smaller rounds are faster on one.
    RegionExceptions trap;  // core/numerics/parallel.h
    const size_t count = active.size();
    const bool threads =
        count > 1 && n * n * static_cast<Index>(count) * c >= kMinParallelBatchTerms;
#pragma omp parallel if (threads)
#pragma omp single
    for (size_t i = 0; i < count; ++i) {
      Slot* slot = active[i].get();
#pragma omp task firstprivate(slot) shared(trap)
      trap.Run([slot] {
        if (slot->begun) {
          slot->solver->Advance();
        } else {
          slot->solver->Begin();
          slot->begun = true;
        }
      });
    }
    trap.Rethrow();
    // Retire the problems that ended, in index order.
    absl::Status failure;
    std::vector<std::unique_ptr<Slot>> still;
    for (std::unique_ptr<Slot>& slot : active) {
      if (slot->solver->WantsProduct()) {
        still.push_back(std::move(slot));
        continue;
      }
      absl::StatusOr<SolverSolution> sol = slot->solver->TakeResult();
      if (!sol.ok()) {
        if (failure.ok()) {
          failure = absl::Status(sol.status().code(), absl::StrCat("sample ", slot->index, ": ",
                                                                   sol.status().message()));
        }
        continue;
      }
      out.duals.middleCols(static_cast<Index>(slot->index) * c, c) = sol->dual;
      out.info[static_cast<size_t>(slot->index)] = sol->info;
      ++finished;
    }
    if (!failure.ok()) return failure;
    active = std::move(still);
    if (active.empty()) continue;  // admit the next problems, if any
    if (!keep_going()) return cancelled();
    // One pass over Theta for every product asked for.
    std::vector<const MatrixXd*> ins;
    std::vector<MatrixXd*> outs;
    for (const std::unique_ptr<Slot>& slot : active) {
      ins.push_back(&slot->solver->ProductInput());
      outs.push_back(slot->solver->ProductOutput());
    }
    if (!solver_internal::ThetaTimesBatch(theta, ins, outs, keep_going)) return cancelled();
  }
  return out;
}

}  // namespace ntk
