// ntk/core/training/newton_cg_preconditioner.h (internal to core/training/):
// the pieces of the 2a Newton-CG solver (newton_cg.cc) that know the
// structure of its Hessian: the per-point C x C blocks W_i, products with
// Theta, and the low-rank + block-Jacobi preconditioner of the CG solves.
// See solvers.h (SolveRegularizedCE) for the method.
//
// Thread safety: BlockHessian and LowRankPreconditioner are per-solve
// workspaces (one thread calls them; they use OpenMP inside, see ForRows);
// a PreconditionerBasis is read-only once built, shared by many solves.
#ifndef NTK_CORE_TRAINING_NEWTON_CG_PRECONDITIONER_H_
#define NTK_CORE_TRAINING_NEWTON_CG_PRECONDITIONER_H_

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <omp.h>

#include "core/numerics/parallel.h"
#include "core/training/solvers.h"

namespace ntk::solver_internal {

using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;

// body(i) for i in [0, n), on the OpenMP threads. Outside an active
// parallel region: a parallel loop when n > min_parallel. Inside one (a
// step of one solve among many, newton_cg_block.cc): tasks of 64 rows, so
// that the region's idle threads share a long step (the Hessian blocks of
// a new Newton step) instead of waiting for it. The iterations must be
// independent; their results do not depend on which thread runs them.
// Exceptions as RegionExceptions (rethrown here).
template <typename Fn>
void ForRows(Index n, Index min_parallel, Fn&& body) {
  RegionExceptions trap;  // core/numerics/parallel.h
  RegionExceptions* trap_p = &trap;
  auto* body_p = &body;
  if (omp_in_parallel()) {
#pragma omp taskloop grainsize(64)
    for (Index i = 0; i < n; ++i) {
      trap_p->Run([&] { (*body_p)(i); });
    }
  } else {
#pragma omp parallel for schedule(static) if (n > min_parallel)
    for (Index i = 0; i < n; ++i) {
      trap_p->Run([&] { (*body_p)(i); });
    }
  }
  trap.Rethrow();
}

// Per-point Hessian blocks W_i = diag(p_i) - p_i p_i^T = V_i diag(w_i) V_i^T.
// Stored as eigen-decompositions so that W^{1/2} and (I + t W)^{-1} are cheap.
// The rows come in blocks of kRows, each block's V_i(j, k) side by side
// (layout [block][j][k][row in block]), so that ApplySpectral's loops run
// over the rows of a block (vectorized) while every entry is still summed
// in the order of one row's plain loops: the same bits as a loop per row.
struct BlockHessian {
  static constexpr Index kRows = 32;
  int c = 0;
  Index n = 0;
  std::vector<double> vecs;  // V_i(j, k) at vecs[Offset(i, j, k)]
  MatrixXd vals;             // N x C (clamped >= 0)
  MatrixXd sqrt_vals;        // N x C, sqrt(vals)

  size_t Offset(Index i, int j, int k) const {
    return ((static_cast<size_t>(i / kRows) * c + j) * c + k) * kRows + i % kRows;
  }
  double V(Index i, int j, int k) const { return vecs[Offset(i, j, k)]; }

  void Build(const MatrixXd& p) {
    n = p.rows();
    c = static_cast<int>(p.cols());
    vecs.resize(static_cast<size_t>((n + kRows - 1) / kRows * kRows) * c * c);
    vals.resize(n, c);
    sqrt_vals.resize(n, c);
    ForRows(n, 256, [&](Index i) {
      const VectorXd pi = p.row(i).transpose();
      MatrixXd w = -pi * pi.transpose();
      w.diagonal() += pi;
      Eigen::SelfAdjointEigenSolver<MatrixXd> es(w);
      for (int k = 0; k < c; ++k) {
        for (int j = 0; j < c; ++j) vecs[Offset(i, j, k)] = es.eigenvectors()(j, k);
        vals(i, k) = std::max(es.eigenvalues()(k), 0.0);
        sqrt_vals(i, k) = std::sqrt(vals(i, k));
      }
    });
  }
  // out_i = V_i diag(g(i, k)) V_i^T in_i for each row i; plain loops (C is
  // small; this keeps tiny products out of the BLAS and out of the heap).
  // REQUIRES: in is N x C, out is not in.
  template <typename G>
  void ApplySpectral(const MatrixXd& in, MatrixXd* out, G g) const {
    out->resize(n, c);
    const Index blocks = (n + kRows - 1) / kRows;
    // About 4 C^2 flops per row: threads only pay off for large N.
    RegionExceptions trap;  // core/numerics/parallel.h
#pragma omp parallel for schedule(static) if (n > 4096)
    for (Index b = 0; b < blocks; ++b) {
      trap.Run([&] {
        const Index i0 = b * kRows;
        const Index len = std::min(kRows, n - i0);
        const double* vb = vecs.data() + static_cast<size_t>(b) * c * c * kRows;
        double small[16 * kRows];
        std::vector<double> big;
        double* tp = small;
        if (c > 16) {
          big.resize(static_cast<size_t>(c) * kRows);
          tp = big.data();
        }
        // t_k = (sum_j V(j, k) in_j) g(k), summed over j = 0, 1, ... in turn.
        for (int k = 0; k < c; ++k) {
          for (Index r = 0; r < len; ++r) tp[k * kRows + r] = 0;
        }
        for (int j = 0; j < c; ++j) {
          const double* __restrict x = in.data() + j * in.outerStride() + i0;
          for (int k = 0; k < c; ++k) {
            const double* __restrict v = vb + (j * c + k) * kRows;
            double* __restrict t = tp + k * kRows;
            for (Index r = 0; r < len; ++r) t[r] += v[r] * x[r];
          }
        }
        for (int k = 0; k < c; ++k) {
          for (Index r = 0; r < len; ++r) tp[k * kRows + r] *= g(i0 + r, k);
        }
        // out_j = sum_k V(j, k) t_k, summed over k = 0, 1, ... in turn.
        for (int j = 0; j < c; ++j) {
          double* __restrict o = out->data() + j * out->outerStride() + i0;
          for (Index r = 0; r < len; ++r) o[r] = 0;
          for (int k = 0; k < c; ++k) {
            const double* __restrict v = vb + (j * c + k) * kRows;
            const double* __restrict t = tp + k * kRows;
            for (Index r = 0; r < len; ++r) o[r] += v[r] * t[r];
          }
        }
      });
    }
    trap.Rethrow();
  }
  void ApplySqrt(const MatrixXd& in, MatrixXd* out) const {
    ApplySpectral(in, out, [this](Index i, int k) { return sqrt_vals(i, k); });
  }
  void ApplyW(const MatrixXd& in, MatrixXd* out) const {
    ApplySpectral(in, out, [this](Index i, int k) { return vals(i, k); });
  }
  // Block-Jacobi preconditioner: out_i = (I + scale_i W_i)^{-1} in_i.
  void ApplyBlockInverse(const VectorXd& scale, const MatrixXd& in,
                         MatrixXd* out) const {
    ApplySpectral(in, out, [this, &scale](Index i, int k) {
      return 1.0 / (1.0 + scale(i) * vals(i, k));
    });
  }
};

// out = theta * v (theta N x N symmetric, v N x C), see newton_cg_preconditioner.cc.
void ThetaTimes(const MatrixXd& theta, const MatrixXd& v, MatrixXd* out);
// *outs[s] = theta * *vs[s] for every s, each the same bits as ThetaTimes,
// theta read once for all (TransposeTimesNarrowBatch, core/numerics/linalg.h).
// False (outs unspecified) when keep_going, asked between blocks, said stop.
bool ThetaTimesBatch(const MatrixXd& theta, const std::vector<const MatrixXd*>& vs,
                     const std::vector<MatrixXd*>& outs, const std::function<bool()>& keep_going);

// The parts of the preconditioner below that depend on Theta and lambda
// only: built once and shared (read-only) by every solve with that Theta
// and lambda, e.g. the Monte Carlo samples of newton_cg_block.h.
// Memory: N (k (k + 1) / 2 + k + 1) doubles (k = the basis' rank).
struct PreconditionerBasis {
  PreconditionerBasis(const MatrixXd& theta, double lambda, const ThetaEigenbasis& basis);

  int k = 0;
  VectorXd resid_scale;  // r_i / lambda
  MatrixXd g;            // N x k
  MatrixXd gg;           // N x k(k+1)/2, rows: g_ia g_ib for a <= b
};

// Preconditioner for A = I + S (Theta / lambda (x) I_C) S with
// Theta ~= U diag(s) U^T + diag(r) (top-k eigenpairs plus the diagonal of
// the rest): M = B + Z Z^T, B = blockdiag(I + r_i / lambda W_i),
// (Z G)_i = S_i G^T g_i, g_i = diag(s / lambda)^{1/2} U_i^T. M^{-1} by
// Woodbury with the kC x kC capacitance matrix
// H = I + sum_i (g_i g_i^T) (x) S_i B_i^{-1} S_i, rebuilt per Newton step.
// k = 0 is plain block-Jacobi.
class LowRankPreconditioner {
 public:
  // basis: not owned, must outlive this.
  explicit LowRankPreconditioner(const PreconditionerBasis& basis) : basis_(basis) {}

  // Rebuild for new Hessian blocks.
  void Update(const BlockHessian& hess);

  // out = M^{-1} v.
  void Apply(const MatrixXd& v, MatrixXd* out);

 private:
  const PreconditionerBasis& basis_;
  Eigen::LLT<MatrixXd> llt_;
  const BlockHessian* hess_ = nullptr;
  MatrixXd sx_, gz_;
};

}  // namespace ntk::solver_internal

#endif  // NTK_CORE_TRAINING_NEWTON_CG_PRECONDITIONER_H_
