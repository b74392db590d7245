// ntk/core/distribution/laplace.cc: method LAPLACE_POSTERIOR (2a) of
// docs/model-contract.md "4. PredictDistribution": GP classification with
// prior GP(0, Theta / lambda (x) I) at the MAP (Predict's logits), the
// covariance of Rasmussen & Williams algorithm 3.4 from the factors E_c,
// L_M shared with LINEARIZED (linearized.cc). See methods.h.
#include "core/distribution/methods.h"
#include "core/distribution/moments.h"
#include "core/numerics/parallel.h"

namespace ntk::distribution_internal {

// Cov_cc' = delta Theta_xx / lambda - (k' (x) I)^T B (k' (x) I)
//         = delta (Theta_xx / lambda - k'.a_c) + alpha_c.alpha_c'
// (notation of ProjectLinearized). ~3 C N^2 flops per point.
void LaplaceBatch(const LinearizedFactors& f, const Batch& b, int C, double lambda,
                  std::vector<PointDistribution>* out) {
  const Index nb = b.size;
  const LinearizedProjections p = ProjectLinearized(f, b, C, lambda);
  auto dot = [](const MatrixXd& u, Index i, const MatrixXd& v, Index k) {
    return u.col(i).dot(v.col(k));
  };
  RegionExceptions trap;  // core/numerics/parallel.h
#pragma omp parallel for schedule(static)
  for (Index j = 0; j < nb; ++j) {
    trap.Run([&] {
      MatrixXd cov(C, C);
      for (Index c = 0; c < C; ++c) {
        for (Index c2 = 0; c2 <= c; ++c2) {
          double v = dot(p.alpha, c * nb + j, p.alpha, c2 * nb + j);
          if (c == c2) {
            v += b.diag.ntk[j] / lambda - dot(p.kp, j, p.a, c * nb + j);
          }
          cov(c, c2) = v;
          cov(c2, c) = v;
        }
      }
      StoreCenteredLogits(p.mean.row(j).transpose(), cov, &(*out)[b.begin + j]);
    });
  }
  trap.Rethrow();
}

}  // namespace ntk::distribution_internal
