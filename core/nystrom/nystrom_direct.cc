// ntk/core/nystrom/nystrom_direct.cc: ComputeNystromKernels, SolveNystrom's
// dispatch and the 2b / 2c normal equations of docs/model-contract.md
// "6. Nystrom models" (nystrom_solve.h).
#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/numerics/work_steps.h"
#include "core/nystrom/nystrom_solve.h"
#include "core/training/solver_util.h"

namespace ntk {

using Eigen::Index;
using Eigen::MatrixXd;

using solver_internal::InfNorm;

namespace {

// Training rows per Theta_nm block: the block's NNGP and NTK (2 m rows
// doubles) stay under ~128 MiB, and its work under ~kFlopsPerStep (the cross
// kernels, KernelPairFlops per pair, core/numerics/work_steps.h; with the K_mn Theta_nm summary also 2 m per pair): progress (the
// cancellation check) is asked between blocks, so a stopped fit ends
// within one block (~0.1 s of a core; 1-2 s with the memory bound alone at
// m ~ 2000, d = 784).
Index KernelBlockRows(Index m, Index d, int depth, bool with_nngp_theta) {
  const double per_row = static_cast<double>(std::max<Index>(1, m)) *
                         (KernelPairFlops(d, depth) + (with_nngp_theta ? 2.0 * m : 0.0));
  const Index by_flops = static_cast<Index>(kFlopsPerStep / per_row);
  return std::max<Index>(1, std::min((Index{8} << 20) / std::max<Index>(1, m), by_flops));
}

// 2b / 2c: (G + delta Theta_mm) beta = Theta_mn rhs with G = Theta_mn
// Theta_nm, delta = base_shift + jitter (JitterPolicy, scale mean diag Theta_XX,
// x10 per failed Cholesky as the exact 2b/2c solve).
absl::StatusOr<NystromSolution> SolveNormalEquations(const NystromKernels& k,
                                                     const MatrixXd& rhs, const MatrixXd& f0,
                                                     double base_shift,
                                                     const JitterPolicy& policy,
                                                     const ProgressFn& progress) {
  const Index m = k.theta_mm.rows();
  const double scale = k.mean_diag > 0 ? k.mean_diag : 1.0;
  MatrixXd gram(m, m);
  gram.noalias() = k.theta_nm.transpose() * k.theta_nm;
  MatrixXd b(m, rhs.cols());
  b.noalias() = k.theta_nm.transpose() * rhs;
  absl::StatusOr<solver_internal::FactoredSolve> solved = solver_internal::FactorAndSolve(
      [&](double shift, MatrixXd* a) { *a = gram + shift * k.theta_mm; }, base_shift, scale,
      policy, progress, "the Nystrom matrix Theta_mn Theta_nm + delta Theta_mm", b);
  if (!solved.ok()) return solved.status();
  NystromSolution sol;
  sol.info.jitter = solved->jitter;
  sol.beta = std::move(solved->solution);
  const double delta = base_shift + solved->jitter;
  MatrixXd h_beta(m, rhs.cols());
  h_beta.noalias() = gram * sol.beta;
  h_beta.noalias() += delta * (k.theta_mm * sol.beta);
  sol.info.fixed_point_residual = InfNorm(h_beta - b);
  sol.info.relative_residual = sol.info.fixed_point_residual / std::max(1.0, InfNorm(b));
  sol.logits.noalias() = k.theta_nm * sol.beta;
  if (f0.size() != 0) sol.logits += f0;
  sol.gram = std::move(gram);
  sol.info.condition_estimate = solver_internal::ConditionEstimate(solved->factor, solved->anorm);
  return sol;
}

}  // namespace

absl::StatusOr<NystromKernels> ComputeNystromKernels(const KernelSpec& spec,
                                                     const MatrixXd& x,
                                                     const std::vector<Index>& center_rows,
                                                     const ProgressFn& progress,
                                                     bool with_nngp_theta, bool keep_nngp_nm) {
  const Index n = x.rows();
  const Index m = static_cast<Index>(center_rows.size());
  MatrixXd z(m, x.cols());
  for (Index j = 0; j < m; ++j) z.row(j) = x.row(center_rows[static_cast<size_t>(j)]);
  const Eigen::VectorXd z_sq = z.rowwise().squaredNorm();
  NystromKernels k;
  k.mean_diag = DiagonalKernels(spec, x).ntk.mean();
  MatrixXd nngp_mm;
  {
    KernelMatrices km;
    if (!TrainKernels(spec, z, [&] { return ReportProgress(progress, 0.0, "kernel"); }, &km)) {
      return absl::CancelledError("fit cancelled");
    }
    k.theta_mm = std::move(km.ntk);
    if (with_nngp_theta || keep_nngp_nm) nngp_mm = std::move(km.nngp);
  }
  k.theta_nm.resize(n, m);
  if (keep_nngp_nm) k.nngp_nm.resize(n, m);
  if (with_nngp_theta) k.nngp_theta = MatrixXd::Zero(m, m);
  const Index block = KernelBlockRows(m, x.cols(), spec.depth, with_nngp_theta);
  size_t next_center = 0;
  for (Index r0 = 0; r0 < n; r0 += block) {
    if (!ReportProgress(progress, static_cast<double>(r0) / n, "kernel")) {
      return absl::CancelledError("fit cancelled");
    }
    const Index rows = std::min(block, n - r0);
    // Centers first: the orientation Predict uses (CrossKernels(Z, x)).
    KernelMatrices km = CrossKernels(spec, z, x.middleRows(r0, rows), z_sq);
    k.theta_nm.middleRows(r0, rows) = km.ntk.transpose();
    if (keep_nngp_nm) k.nngp_nm.middleRows(r0, rows) = km.nngp.transpose();
    if (!with_nngp_theta) continue;
    // The centers' columns take the TrainKernels values (as Theta_nm's
    // rows below), then K_mn Theta_nm += K_mb Theta_bm for this block.
    for (; next_center < center_rows.size() && center_rows[next_center] < r0 + rows;
         ++next_center) {
      const Index col = center_rows[next_center] - r0;
      const Index j = static_cast<Index>(next_center);
      km.nngp.col(col) = nngp_mm.col(j);
      km.ntk.col(col) = k.theta_mm.col(j);
    }
    k.nngp_theta.noalias() += km.nngp * km.ntk.transpose();
  }
  for (Index j = 0; j < m; ++j) {
    k.theta_nm.row(center_rows[static_cast<size_t>(j)]) = k.theta_mm.row(j);
    if (keep_nngp_nm) k.nngp_nm.row(center_rows[static_cast<size_t>(j)]) = nngp_mm.row(j);
  }
  if (!k.theta_nm.allFinite() || !k.theta_mm.allFinite() || !std::isfinite(k.mean_diag)) {
    return absl::InvalidArgumentError(
        "features: the training NTK has non-finite entries (features too large in "
        "magnitude for the kernel?)");
  }
  return k;
}

absl::StatusOr<NystromSolution> SolveNystrom(const TrainingProblem& problem,
                                             const NystromKernels& k,
                                             const NystromSolveOptions& options) {
  const MatrixXd& y = problem.targets;
  const Index n = y.rows();
  const Index c = y.cols();
  if (k.theta_nm.rows() != n || k.theta_mm.rows() != k.theta_nm.cols() ||
      k.theta_mm.cols() != k.theta_mm.rows() || k.theta_mm.rows() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "theta: Nystrom kernels of shapes ", k.theta_nm.rows(), " x ", k.theta_nm.cols(),
        " and ", k.theta_mm.rows(), " x ", k.theta_mm.cols(), " do not fit ", n,
        " training rows"));
  }
  static const MatrixXd kNone;
  const MatrixXd& f0_in = options.initial_outputs != nullptr ? *options.initial_outputs : kNone;
  if (f0_in.size() != 0 && (f0_in.rows() != n || f0_in.cols() != c)) {
    return absl::InvalidArgumentError(absl::StrCat("initial_train_outputs: expected ", n,
                                                   " x ", c, ", got ", f0_in.rows(), " x ",
                                                   f0_in.cols()));
  }
  switch (problem.regime) {
    case Regime::kRegularizedCE: {
      const MatrixXd f0 = f0_in.size() == 0 ? MatrixXd::Zero(n, c) : f0_in;
      return nystrom_internal::SolveNystromNewton(k, y, f0, problem.lambda, options);
    }
    case Regime::kUnregularizedCE:
    case Regime::kSquared: {
      absl::StatusOr<MatrixXd> rhs = solver_internal::DirectRhs(problem.regime, y, f0_in);
      if (!rhs.ok()) return rhs.status();
      const double base_shift = problem.regime == Regime::kSquared ? problem.lambda : 0.0;
      return SolveNormalEquations(k, *rhs, f0_in, base_shift, problem.jitter, options.progress);
    }
  }
  return absl::InternalError("SolveNystrom: unknown regime");
}

}  // namespace ntk
