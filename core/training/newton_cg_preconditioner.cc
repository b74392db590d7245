// ntk/core/training/newton_cg_preconditioner.cc: see newton_cg_preconditioner.h.
#include "core/training/newton_cg_preconditioner.h"

#include <algorithm>
#include <random>

#include "core/numerics/linalg.h"

namespace ntk {
namespace solver_internal {

// out = theta * v (theta N x N symmetric, v N x C): core/numerics/linalg.h's
// unpacked kernel on OpenMP threads. Measured at N = 5000, C = 10 on 2
// cores: 1.5x faster than OpenBLAS's dgemm, and the Newton-CG loop no longer
// alternates between OpenMP's and OpenBLAS's thread pools (their spinning
// threads fought over the cores and made 2a 1.7x slower).
void ThetaTimes(const MatrixXd& theta, const MatrixXd& v, MatrixXd* out) {
  TransposeTimesNarrow(theta, v, out);
}

bool ThetaTimesBatch(const MatrixXd& theta, const std::vector<const MatrixXd*>& vs,
                     const std::vector<MatrixXd*>& outs, const std::function<bool()>& keep_going) {
  return TransposeTimesNarrowBatch(theta, vs, outs, keep_going);
}

namespace {

// Top-k eigenpairs of the symmetric PSD `theta` by randomized subspace
// iteration (Halko, Martinsson & Tropp 2011, alg. 4.4 with q = 1): three
// GEMMs of theta with an N x (k + 16) block. Seeded: deterministic.
void TopEigenpairs(const MatrixXd& theta, int k, MatrixXd* u, VectorXd* vals) {
  const Index n = theta.rows();
  const Index l = std::min<Index>(n, k + 16);
  std::mt19937_64 gen(0x6e746b);  // "ntk"
  std::normal_distribution<double> nd(0.0, 1.0);
  MatrixXd omega(n, l);
  for (Index j = 0; j < l; ++j)
    for (Index i = 0; i < n; ++i) omega(i, j) = nd(gen);
  MatrixXd y(n, l);
  y.noalias() = theta * omega;
  MatrixXd q = Eigen::HouseholderQR<MatrixXd>(y).householderQ() * MatrixXd::Identity(n, l);
  y.noalias() = theta * q;
  q = Eigen::HouseholderQR<MatrixXd>(y).householderQ() * MatrixXd::Identity(n, l);
  y.noalias() = theta * q;
  MatrixXd b = q.transpose() * y;
  b = 0.5 * (b + b.transpose()).eval();
  Eigen::SelfAdjointEigenSolver<MatrixXd> es(b);
  const Index kk = std::min<Index>(k, l);
  // Eigenvalues ascending: take the last kk.
  *vals = es.eigenvalues().tail(kk).cwiseMax(0.0);
  u->noalias() = q * es.eigenvectors().rightCols(kk);
}

}  // namespace

PreconditionerBasis::PreconditionerBasis(const MatrixXd& theta, double lambda,
                                         const ThetaEigenbasis& basis) {
  const Index n = theta.rows();
  resid_scale = theta.diagonal() / lambda;
  if (basis.vectors.cols() > 0 && basis.vectors.rows() == n) {
    g = basis.vectors * (basis.values / lambda).cwiseSqrt().asDiagonal();
    resid_scale -= g.rowwise().squaredNorm();
    resid_scale = resid_scale.cwiseMax(0.0);
    k = static_cast<int>(g.cols());
    // Only pairs a <= b: g_i g_i^T is symmetric.
    gg.resize(n, k * (k + 1) / 2);
    for (Index i = 0; i < n; ++i) {
      Index col = 0;
      for (int a = 0; a < k; ++a)
        for (int b = a; b < k; ++b) gg(i, col++) = g(i, a) * g(i, b);
    }
  }
}

void LowRankPreconditioner::Update(const BlockHessian& hess) {
  hess_ = &hess;
  const int k = basis_.k;
  if (k == 0) return;
  const Index n = basis_.g.rows();
  const int c = hess.c;
  // Only pairs e <= f: each Q_i is symmetric. With the a <= b symmetry of
  // basis_.gg this is a quarter of the flops of the full (k^2 x N) (N x C^2)
  // product, which dominated small-N solves.
  const int cp = c * (c + 1) / 2;
  MatrixXd qmat(n, cp);
  ForRows(n, 1024, [&](Index i) {
    int col = 0;
    for (int e = 0; e < c; ++e) {
      for (int f = e; f < c; ++f) {
        double acc = 0;
        for (int j = 0; j < c; ++j) {
          const double w = hess.vals(i, j);
          acc += hess.V(i, e, j) * hess.V(i, f, j) * w / (1.0 + basis_.resid_scale(i) * w);
        }
        qmat(i, col++) = acc;
      }
    }
  });
  MatrixXd hsum(basis_.gg.cols(), cp);
  hsum.noalias() = basis_.gg.transpose() * qmat;
  // H[(a, e), (b, f)] = delta + sum_i g_ia g_ib Q_i(e, f); index (a, e) = a * c + e.
  MatrixXd h = MatrixXd::Identity(k * c, k * c);
  int ab = 0;
  for (int a = 0; a < k; ++a) {
    for (int b = a; b < k; ++b, ++ab) {
      int ef = 0;
      for (int e = 0; e < c; ++e) {
        for (int f = e; f < c; ++f, ++ef) {
          const double v = hsum(ab, ef);
          h(a * c + e, b * c + f) += v;
          if (e != f) h(a * c + f, b * c + e) += v;
          if (a != b) {
            h(b * c + e, a * c + f) += v;
            if (e != f) h(b * c + f, a * c + e) += v;
          }
        }
      }
    }
  }
  llt_.compute(h);
}

void LowRankPreconditioner::Apply(const MatrixXd& v, MatrixXd* out) {
  const int k = basis_.k;
  const MatrixXd& g = basis_.g;
  hess_->ApplyBlockInverse(basis_.resid_scale, v, out);
  if (k == 0) return;
  const int c = hess_->c;
  hess_->ApplySqrt(*out, &sx_);
  MatrixXd zt;
  TransposeTimesNarrow(g, sx_, &zt);  // k x C, no BLAS threads
  VectorXd vec(k * c);
  for (int a = 0; a < k; ++a)
    for (int e = 0; e < c; ++e) vec(a * c + e) = zt(a, e);
  vec = llt_.solve(vec);
  for (int a = 0; a < k; ++a)
    for (int e = 0; e < c; ++e) zt(a, e) = vec(a * c + e);
  gz_.noalias() = g.lazyProduct(zt);  // N x C (coefficient-wise: no BLAS threads)
  hess_->ApplySqrt(gz_, &sx_);
  hess_->ApplyBlockInverse(basis_.resid_scale, sx_, &gz_);
  *out -= gz_;
}

}  // namespace solver_internal

ThetaEigenbasis ComputeThetaEigenbasis(const Eigen::MatrixXd& theta, int rank) {
  ThetaEigenbasis b;
  rank = static_cast<int>(std::min<Eigen::Index>(rank, theta.rows() / 2));
  if (rank > 0) solver_internal::TopEigenpairs(theta, rank, &b.vectors, &b.values);
  return b;
}

}  // namespace ntk
