// Tests of core/kernels/kernel.h (docs/model-contract.md "1. The network and
// its two kernels") against Monte Carlo estimates over finite random networks:
// the NNGP is E[f(x) f(y)] and the NTK E[<df/dtheta(x), df/dtheta(y)>] over
// the initialization, so averages over many finite-width networks must agree
// with the closed-form recursion within their standard error. The closed
// forms, the scalar reference and the structural checks are in
// tests/kernel_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/kernels/kernel.h"
#include "core/numerics/random.h"
#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using testing::Spec;

constexpr double kPi = 3.14159265358979323846;
// ---------------------------------------------------------------------------
// Monte Carlo over finite networks.
// ---------------------------------------------------------------------------

// Our own seeded normals (Box-Muller on mt19937_64), stable across
// standard-library versions.
// (core/numerics/random.h with u1 = k / 2^53 redrawn while 0: this test's
// original stream).
class Normals {
 public:
  explicit Normals(uint64_t seed) : stream_(seed, BoxMullerU1::kRejectZero) {}
  double operator()() { return stream_.Next(); }
  MatrixXd Matrix(int rows, int cols) {
    MatrixXd m(rows, cols);
    for (int j = 0; j < cols; ++j)
      for (int i = 0; i < rows; ++i) m(i, j) = (*this)();
    return m;
  }

 private:
  NormalStream stream_;
};

// A width-n network with `depth` hidden layers and a scalar output, in NTK
// parameterization with N(0, 1) weights and biases:
//   h1 = sw/sqrt(d) W1 x + sb b1,  h(l+1) = sw/sqrt(n) W(l+1) phi(hl) + sb b(l+1),
//   f = sw/sqrt(n) w_out . phi(hL) + sb b_out.
// For a batch of inputs (rows of x), returns
//   nngp(i, j) = E_{w_out, b_out}[f(x_i) f(x_j)] = sw^2/n phi(hL_i).phi(hL_j) + sb^2
//     (the average of f0 f0' over the readout layer, in closed form), and
//   ntk(i, j)  = J(x_i) . J(x_j), J = df/d(all weights and biases), by backprop.
// Backprop: delta_L = sw/sqrt(n) w_out * phi'(hL),
//   delta_(l-1) = sw/sqrt(n) W_l^T delta_l * phi'(h_(l-1)),
//   df/dW_l = scale_l delta_l g_(l-1)^T, df/db_l = sb delta_l, df/dw_out =
//   sw/sqrt(n) phi(hL), df/db_out = sb; with the outer-product structure
//   J(x).J(x') = sum_l (delta_l . delta_l') (scale_l^2 g_(l-1) . g_(l-1)' + sb^2)
//                + sw^2/n phi(hL).phi(hL)' + sb^2, g_0 = x, scale_1 = sw/sqrt(d).
struct Empirical {
  MatrixXd nngp, ntk;
};

Empirical FiniteNetworkKernels(const KernelSpec& spec, const MatrixXd& x,
                               int width, Normals& rng) {
  const int d = static_cast<int>(x.cols());
  const double sw = std::sqrt(spec.weight_variance);
  const double sb = std::sqrt(spec.bias_variance);
  const int depth = spec.depth;
  const bool relu = spec.activation == Activation::kRelu;
  auto phi = [&](const MatrixXd& h) -> MatrixXd {
    if (relu) return h.cwiseMax(0.0);
    return h.unaryExpr([](double v) { return std::erf(v); });
  };
  auto dphi = [&](const MatrixXd& h) -> MatrixXd {
    if (relu) return h.unaryExpr([](double v) { return v > 0 ? 1.0 : 0.0; });
    return h.unaryExpr(
        [](double v) { return 2.0 / std::sqrt(kPi) * std::exp(-v * v); });
  };
  std::vector<MatrixXd> w(depth + 1);  // w[l]: layer l+1's weight
  std::vector<VectorXd> b(depth + 1);
  w[0] = rng.Matrix(width, d);
  b[0] = rng.Matrix(width, 1);
  for (int l = 1; l < depth; ++l) {
    w[l] = rng.Matrix(width, width);
    b[l] = rng.Matrix(width, 1);
  }
  const VectorXd w_out = rng.Matrix(width, 1);
  // Forward, columns = points. g[0] = x^T, h[l] pre-activations of layer l+1.
  std::vector<MatrixXd> g(depth + 1), h(depth);
  g[0] = x.transpose();
  for (int l = 0; l < depth; ++l) {
    const double scale = sw / std::sqrt(l == 0 ? d : width);
    h[l] = (scale * (w[l] * g[l])).colwise() + sb * b[l];
    g[l + 1] = phi(h[l]);
  }
  const double out_scale = sw / std::sqrt(width);
  Empirical e;
  e.nngp = out_scale * out_scale * (g[depth].transpose() * g[depth]);
  e.nngp.array() += spec.bias_variance;
  e.ntk = e.nngp;  // readout weight and bias gradients
  MatrixXd delta = (out_scale * w_out).asDiagonal() * dphi(h[depth - 1]);
  for (int l = depth - 1; l >= 0; --l) {
    const double scale = sw / std::sqrt(l == 0 ? d : width);
    MatrixXd gram = scale * scale * (g[l].transpose() * g[l]);
    gram.array() += spec.bias_variance;
    e.ntk += (delta.transpose() * delta).cwiseProduct(gram);
    if (l > 0) {
      delta = (scale * (w[l].transpose() * delta)).cwiseProduct(dphi(h[l - 1]));
    }
  }
  return e;
}

// Empirical NNGP and NTK of finite networks converge to K and Theta with
// fluctuations O(1/sqrt(n)) (and a bias O(1/n)). For widths 64, 256, 1024 we
// average R = 8 independent networks and check
//  (a) the spread across networks shrinks like 1/sqrt(n): the RMS over
//      entries of the per-network standard deviation drops by a factor in
//      [2, 8] from n = 64 to n = 1024 (theory: 4);
//  (b) the error of the average shrinks from n = 64 to n = 1024;
//  (c) at n = 1024 every entry of the average is within 5 standard errors
//      (per-network sd / sqrt(R), estimated from the same samples) plus
//      a 5/n relative allowance for the O(1/n) bias of the infinite-width limit.
// Fixed seeds make the test deterministic; the bounds come from the
// fluctuation theory, not from the observed values.
void CheckMonteCarlo(const KernelSpec& spec, uint64_t seed) {
  MatrixXd x(4, 5);
  x << 1.0, -0.5, 0.3, 0.8, -1.2,  //
      0.2, 1.1, -0.7, 0.4, 0.9,    //
      -1.0, 0.5, -0.3, -0.8, 1.2,  // = -row 0
      0.0, 0.0, 0.0, 0.0, 0.0;     // zero input (bias only)
  const KernelMatrices exact = TrainKernels(spec, x);
  const int widths[3] = {64, 256, 1024};
  const int kNets = 8;
  double spread[3][2], error[3][2];
  Normals rng(seed);
  for (int wi = 0; wi < 3; ++wi) {
    const int n = widths[wi];
    std::vector<Empirical> nets;
    for (int r = 0; r < kNets; ++r) nets.push_back(FiniteNetworkKernels(spec, x, n, rng));
    for (int which = 0; which < 2; ++which) {
      const MatrixXd& target = which == 0 ? exact.nngp : exact.ntk;
      MatrixXd mean = MatrixXd::Zero(x.rows(), x.rows());
      for (const Empirical& e : nets) mean += which == 0 ? e.nngp : e.ntk;
      mean /= kNets;
      MatrixXd var = MatrixXd::Zero(x.rows(), x.rows());
      for (const Empirical& e : nets) {
        var += ((which == 0 ? e.nngp : e.ntk) - mean).array().square().matrix();
      }
      var /= (kNets - 1);
      const double scale = target.cwiseAbs().maxCoeff();
      spread[wi][which] = std::sqrt(var.mean()) / scale;
      error[wi][which] = std::sqrt((mean - target).array().square().mean()) / scale;
      if (wi == 2) {
        for (int i = 0; i < x.rows(); ++i) {
          for (int j = 0; j < x.rows(); ++j) {
            const double stderr_ij = std::sqrt(var(i, j) / kNets);
            EXPECT_LE(std::abs(mean(i, j) - target(i, j)),
                      5 * stderr_ij + 5.0 / n * scale)
                << (which == 0 ? "nngp" : "ntk") << " entry " << i << "," << j
                << " mean " << mean(i, j) << " exact " << target(i, j);
          }
        }
      }
    }
  }
  for (int which = 0; which < 2; ++which) {
    const char* name = which == 0 ? "nngp" : "ntk";
    std::printf("%s relative spread per net: %.4f %.4f %.4f; error of mean: %.4f %.4f %.4f\n",
                name, spread[0][which], spread[1][which], spread[2][which],
                error[0][which], error[1][which], error[2][which]);
    const double ratio = spread[0][which] / spread[2][which];
    EXPECT_GE(ratio, 2.0) << name;
    EXPECT_LE(ratio, 8.0) << name;
    EXPECT_LT(error[2][which], error[0][which]) << name;
  }
}

TEST(MonteCarlo, ReluFiniteNetworksConverge) {
  CheckMonteCarlo(Spec(Activation::kRelu, 2, 2.0, 0.1), 11);
}

TEST(MonteCarlo, ErfFiniteNetworksConverge) {
  CheckMonteCarlo(Spec(Activation::kErf, 2, 1.5, 0.2), 12);
}

}  // namespace
}  // namespace ntk
