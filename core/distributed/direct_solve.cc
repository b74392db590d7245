// ntk/core/distributed/direct_solve.cc: the distributed 2b / 2c solve
// (direct_solve.h; docs/model-contract.md "2b. Unregularized", "2c. Squared
// loss"; the single-process original is core/training/direct_solve.cc).
#include "core/distributed/direct_solve.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/distributed/process_grid.h"
#include "core/distributed/scalapack.h"
#include "core/training/solver_util.h"

namespace ntk {

using Eigen::Index;
using Eigen::MatrixXd;

namespace {

// MPI counts are int: large arrays go in pieces of at most 2^30 doubles.
constexpr int64_t kMaxCount = int64_t{1} << 30;

absl::Status MpiOk(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("MPI: ", what, " failed (error ", rc, ")"));
}

absl::Status BroadcastDoubles(MPI_Comm comm, int root, double* data, int64_t n) {
  for (int64_t at = 0; at < n; at += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, n - at));
    if (absl::Status s = MpiOk(MPI_Bcast(data + at, count, MPI_DOUBLE, root, comm),
                               "MPI_Bcast");
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// Sums `m` over the ranks: onto every rank (root < 0) or onto `root`.
absl::Status SumDoubles(MPI_Comm comm, int root, MatrixXd* m) {
  const int64_t n = m->size();
  int me = 0;
  MPI_Comm_rank(comm, &me);
  for (int64_t at = 0; at < n; at += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, n - at));
    double* p = m->data() + at;
    const int rc =
        root < 0 ? MPI_Allreduce(MPI_IN_PLACE, p, count, MPI_DOUBLE, MPI_SUM, comm)
                 : MPI_Reduce(me == root ? MPI_IN_PLACE : p, p, count, MPI_DOUBLE, MPI_SUM,
                              root, comm);
    if (absl::Status s = MpiOk(rc, "reduction"); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// The same decision on every rank: true iff `local` holds on every rank.
bool AllRanks(MPI_Comm comm, bool local) {
  int v = local ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_LAND, comm);
  return v != 0;
}

// The checks of SolveUnregularizedCE / SolveSquared (core/training/
// direct_solve.cc, solver_util.h CheckShapes), on data every rank has.
absl::Status CheckSystem(const DirectSystem& s, int block_size) {
  if (s.regime == Regime::kRegularizedCE) {
    return absl::UnimplementedError(
        "spec.training.regularization: the distributed solve handles 2b and 2c only; "
        "2a (cross-entropy with lambda > 0) is not distributed yet");
  }
  if (block_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size: must be >= 1, got ", block_size));
  }
  if (s.targets.rows() != s.x.rows() || s.targets.cols() < 1) {
    return absl::InvalidArgumentError(absl::StrCat("targets: expected ", s.x.rows(),
                                                   " rows, got ", s.targets.rows()));
  }
  if (s.f0.size() != 0 && (s.f0.rows() != s.targets.rows() || s.f0.cols() != s.targets.cols())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "initial_train_outputs: expected ", s.targets.rows(), " x ", s.targets.cols(),
        ", got ", s.f0.rows(), " x ", s.f0.cols()));
  }
  if (s.x.rows() > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError("features: more rows than ScaLAPACK's int indices hold");
  }
  if (s.regime == Regime::kUnregularizedCE && !(s.targets.array() > 0).all()) {
    return absl::InvalidArgumentError(
        "targets: 2b (lambda = 0) needs every target > 0 (docs/model-contract.md \"2b. "
        "Unregularized\")");
  }
  if (s.regime == Regime::kSquared && (!(s.lambda >= 0) || !std::isfinite(s.lambda))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.training.regularization: must be a finite number >= 0, got ", s.lambda));
  }
  return absl::OkStatus();
}

// ||A||_1 of the distributed symmetric A (its largest column sum of |a_ij|).
double DistributedOneNorm(MPI_Comm comm, const BlockCyclicMatrix& a, Index n) {
  Eigen::VectorXd col_sums = Eigen::VectorXd::Zero(n);
  for (Index j = 0; j < a.local.cols(); ++j) {
    col_sums(a.cols[j]) = a.local.col(j).cwiseAbs().sum();
  }
  MPI_Allreduce(MPI_IN_PLACE, col_sums.data(), static_cast<int>(n), MPI_DOUBLE, MPI_SUM,
                comm);
  return n > 0 ? col_sums.maxCoeff() : 0.0;
}

// 1 / rcond from pdpocon on the factor in `a` (inf when it fails).
double ConditionEstimate(const BlockCyclicMatrix& a, int n, double anorm) {
  const int one = 1;
  double rcond = 0;
  int info = 0;
  int lwork = -1, liwork = -1;
  double work_size = 0;
  int iwork_size = 0;
  pdpocon_("L", &n, a.local.data(), &one, &one, a.desc.data(), &anorm, &rcond, &work_size,
           &lwork, &iwork_size, &liwork, &info);
  if (info != 0) return std::numeric_limits<double>::infinity();
  lwork = static_cast<int>(work_size) + 1;
  liwork = std::max(iwork_size, 1);
  std::vector<double> work(static_cast<size_t>(lwork));
  std::vector<int> iwork(static_cast<size_t>(liwork));
  pdpocon_("L", &n, a.local.data(), &one, &one, a.desc.data(), &anorm, &rcond, work.data(),
           &lwork, iwork.data(), &liwork, &info);
  return info == 0 && rcond > 0 ? 1.0 / rcond : std::numeric_limits<double>::infinity();
}

}  // namespace

DirectSystem DirectSystemFrom(const TrainingProblem& problem, const Eigen::MatrixXd& x_train,
                              const Eigen::MatrixXd& f0) {
  DirectSystem s;
  s.kernel = problem.spec.kernel;
  s.regime = problem.regime;
  s.lambda = problem.lambda;
  s.jitter = problem.jitter;
  s.x = x_train;
  s.targets = problem.targets;
  s.f0 = f0;
  return s;
}

absl::Status BroadcastDirectSystem(MPI_Comm comm, int root, DirectSystem* system) {
  DirectSystem& s = *system;
  int64_t ints[7] = {static_cast<int64_t>(s.kernel.activation), s.kernel.depth,
                     static_cast<int64_t>(s.regime),           s.x.rows(),
                     s.x.cols(),                               s.targets.cols(),
                     s.f0.size() != 0 ? 1 : 0};
  double reals[5] = {s.kernel.weight_variance, s.kernel.bias_variance, s.lambda,
                     s.jitter.relative, s.jitter.max_relative};
  if (absl::Status st = MpiOk(MPI_Bcast(ints, 7, MPI_INT64_T, root, comm), "MPI_Bcast");
      !st.ok()) {
    return st;
  }
  if (absl::Status st = MpiOk(MPI_Bcast(reals, 5, MPI_DOUBLE, root, comm), "MPI_Bcast");
      !st.ok()) {
    return st;
  }
  s.kernel.activation = static_cast<Activation>(ints[0]);
  s.kernel.depth = static_cast<int>(ints[1]);
  s.regime = static_cast<Regime>(ints[2]);
  s.kernel.weight_variance = reals[0];
  s.kernel.bias_variance = reals[1];
  s.lambda = reals[2];
  s.jitter.relative = reals[3];
  s.jitter.max_relative = reals[4];
  const Index n = ints[3], d = ints[4], c = ints[5];
  s.x.resize(n, d);  // no-op on the root (same shape)
  s.targets.resize(n, c);
  s.f0.resize(ints[6] != 0 ? n : 0, ints[6] != 0 ? c : 0);
  for (MatrixXd* m : {&s.x, &s.targets, &s.f0}) {
    if (absl::Status st = BroadcastDoubles(comm, root, m->data(), m->size()); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<DistributedSolveResult> DistributedDirectSolve(
    MPI_Comm comm, const DirectSystem& system, const DistributedSolveOptions& options) {
  if (absl::Status st = CheckSystem(system, options.block_size); !st.ok()) return st;
  absl::StatusOr<std::unique_ptr<ProcessGrid>> grid_or = ProcessGrid::Create(comm);
  if (!grid_or.ok()) return grid_or.status();
  const ProcessGrid& grid = **grid_or;
  int me = 0;
  MPI_Comm_rank(comm, &me);
  const bool is_root = me == options.root;
  const int n = static_cast<int>(system.x.rows());
  const int c = static_cast<int>(system.targets.cols());
  const int nb = options.block_size;

  // This rank's part of Theta_XX: Theta(rows, cols) in one CrossKernels call
  // (the NNGP part it also returns is dropped at once).
  BlockCyclicMatrix theta = BlockCyclicMatrix::Make(grid, n, n, nb, nb);
  DistributedSolveResult result;
  result.tiles = {grid.nprow(), grid.npcol(), grid.myrow(), grid.mycol(),
                  static_cast<int64_t>(theta.rows.size()),
                  static_cast<int64_t>(theta.cols.size())};
  const Eigen::VectorXd diagonal = DiagonalKernels(system.kernel, system.x).ntk;
  if (theta.local.size() > 0) {
    theta.local = CrossKernels(system.kernel, system.x(theta.rows, Eigen::all),
                               system.x(theta.cols, Eigen::all))
                      .ntk;
  }
  // The global diagonal as TrainKernels has it (rho = 1 exactly).
  const std::vector<std::pair<Index, Index>> local_diagonal = theta.LocalDiagonal();
  for (const auto& [i, j] : local_diagonal) theta.local(i, j) = diagonal(theta.rows[i]);
  if (!AllRanks(comm, theta.local.allFinite() && diagonal.allFinite())) {
    return absl::InvalidArgumentError(
        "features: the training NTK has non-finite entries (features too large in "
        "magnitude for the kernel?)");
  }

  // The right-hand side, as direct_solve.cc builds it: log Y - F0 (2b) or
  // Y - F0 (2c); every rank has all of it and keeps its block-cyclic part.
  MatrixXd rhs = system.regime == Regime::kUnregularizedCE
                     ? MatrixXd(system.targets.array().log().matrix())
                     : system.targets;
  if (system.f0.size() != 0) rhs -= system.f0;
  BlockCyclicMatrix b = BlockCyclicMatrix::Make(grid, n, c, nb, nb);
  b.local = rhs(b.rows, b.cols);

  // Theta + (base_shift + jitter) I, with the jitter policy of problem.h.
  const double base_shift = system.regime == Regime::kSquared ? system.lambda : 0.0;
  const double scale = solver_internal::JitterScaleOfDiagonal(diagonal);
  double jitter = solver_internal::FirstJitter(base_shift, scale, system.jitter);
  BlockCyclicMatrix factor = BlockCyclicMatrix::Make(grid, n, n, nb, nb);
  const int one = 1;
  double anorm = 0;
  for (;;) {
    factor.local = theta.local;
    for (const auto& [i, j] : local_diagonal) factor.local(i, j) += base_shift + jitter;
    anorm = DistributedOneNorm(comm, factor, n);
    int info = 0;
    pdpotrf_("L", &n, factor.local.data(), &one, &one, factor.desc.data(), &info);
    // Agree on the outcome: the worst info over the ranks.
    int worst = info, least = info;
    MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_INT, MPI_MAX, comm);
    MPI_Allreduce(MPI_IN_PLACE, &least, 1, MPI_INT, MPI_MIN, comm);
    if (least < 0) {
      return absl::InternalError(
          absl::StrCat("ScaLAPACK pdpotrf: argument ", -least, " is invalid"));
    }
    if (worst == 0) break;
    if (!solver_internal::NextJitter(scale, system.jitter, &jitter)) {
      return solver_internal::NotPositiveDefiniteError("the training NTK", jitter,
                                                       system.jitter);
    }
  }
  {
    int info = 0;
    pdpotrs_("L", &n, &c, factor.local.data(), &one, &one, factor.desc.data(),
             b.local.data(), &one, &one, b.desc.data(), &info);
    MPI_Allreduce(MPI_IN_PLACE, &info, 1, MPI_INT, MPI_MIN, comm);
    if (info < 0) {
      return absl::InternalError(
          absl::StrCat("ScaLAPACK pdpotrs: argument ", -info, " is invalid"));
    }
  }
  const double condition = n > 0 ? ConditionEstimate(factor, n, anorm) : 0.0;
  factor.local.resize(0, 0);

  // The dual onto every rank (each entry is held by exactly one rank: the
  // sum of zeros and that entry is exact), then Theta dual onto the root.
  SolverSolution& sol = result.solution;
  sol.dual = MatrixXd::Zero(n, c);
  sol.dual(b.rows, b.cols) = b.local;
  if (absl::Status st = SumDoubles(comm, -1, &sol.dual); !st.ok()) return st;
  MatrixXd theta_dual = MatrixXd::Zero(n, c);
  if (theta.local.size() > 0) {
    theta_dual(theta.rows, Eigen::all) = theta.local * sol.dual(theta.cols, Eigen::all);
  }
  if (absl::Status st = SumDoubles(comm, options.root, &theta_dual); !st.ok()) return st;
  sol.info.jitter = jitter;
  if (!is_root) return result;

  // As direct_solve.cc: the residual of the system actually factored.
  const double shift = base_shift + jitter;
  sol.info.fixed_point_residual =
      solver_internal::InfNorm(theta_dual + shift * sol.dual - rhs);
  sol.info.relative_residual =
      sol.info.fixed_point_residual / std::max(1.0, solver_internal::InfNorm(rhs));
  sol.info.condition_estimate = condition;
  sol.logits = std::move(theta_dual);
  if (system.f0.size() != 0) sol.logits += system.f0;
  return result;
}

}  // namespace ntk
