// ntk/core/kernels/finite_mlp.h: a real finite-width fully connected network in NTK
// parameterization (docs/model-contract.md "1. The network and its two kernels"), trained by full-batch gradient
// descent on the objective of docs/model-contract.md "2. Training objective".
//
// This is the finite-width counterpart of the infinite-width kernels in
// core/kernels/kernel.h. It exists to validate them: its empirical NTK J J^T tends
// to Theta as the width grows, its initial outputs tend to a GP with kernel
// K, and its trained outputs tend to the formulas of docs/model-contract.md "2. Training objective".
//
//   ntk::KernelSpec spec;  // activation, depth L, sw^2, sb^2
//   ntk::FiniteMlp net(spec, /*input_dim=*/d, /*width=*/4096,
//                      /*num_outputs=*/C, /*seed=*/7);
//   Eigen::MatrixXd f0 = net.Forward(x_train);            // N x C
//   Eigen::MatrixXd theta = net.EmpiricalNtk(x_train, x_test);
//   ntk::MlpTrainOptions opt;
//   opt.lambda = 1.0;
//   ntk::MlpTrainResult r = net.Train(x_train, y, opt);
//   Eigen::MatrixXd f = net.Forward(x_test);
//
// The network (L = spec.depth hidden layers of width n, input dimension d,
// C outputs, sw = sqrt(spec.weight_variance), sb = sqrt(spec.bias_variance)):
//
//   h1(x)      = (sw / sqrt(d)) W1 x + sb b1                 W1: n x d
//   h(l+1)(x)  = (sw / sqrt(n)) W(l+1) phi(hl(x)) + sb b(l+1) W(l+1): n x n
//   f(x)       = h(L+1)(x) in R^C                            W(L+1): C x n
//
// with every entry of every W and b drawn i.i.d. N(0, 1) at construction.
// The parameters are the raw N(0, 1) variables, so gradient flow on them is
// the "NTK parameterization" flow whose tangent kernel is J J^T -> Theta.
//
// Parameter layout of the flat vector theta (parameters(), Gradient()):
// for l = 1 .. L+1 in order, W_l in column-major order (out x in), then
// b_l. num_parameters() = n d + n + (L-1)(n n + n) + C n + C. The
// initialization fills theta in this order with standard normals from
// std::mt19937_64(seed) and a Box-Muller transform of 53-bit uniforms (no
// library distribution, so the draw is the same on every platform and
// standard library); the same seed gives bit-identical parameters.
//
// Thread safety: const methods may be called concurrently; the mutating
// methods (set_parameters, Train) require exclusive access. Forward and
// friends use the BLAS (OpenBLAS threads) for their matrix products.
// Memory: the parameters take 8 num_parameters() bytes (width 8192,
// depth 2 is already 0.5 GB); Forward/Gradient keep 2 L M n doubles of
// activations for M rows.
#ifndef NTK_CORE_KERNELS_FINITE_MLP_H_
#define NTK_CORE_KERNELS_FINITE_MLP_H_

#include <cstdint>
#include <functional>
#include <vector>

#include <Eigen/Dense>

#include "core/kernels/kernel.h"
#include "core/training/spec.h"

namespace ntk {

class FiniteMlp;

// What Train reports to the callback every `callback_every` steps.
struct MlpTrainProgress {
  int step = 0;                // gradient steps taken so far
  double time = 0;             // gradient-flow time = step * learning_rate
  double loss = 0;             // full objective (data term + anchor term)
  double gradient_norm = 0;    // ||dL/dtheta||_2 at the current parameters
  const Eigen::MatrixXd* train_logits = nullptr;  // N x C at the current theta
};

// Options of FiniteMlp::Train. The objective (docs/model-contract.md "2. Training objective") is
//   L(theta) = sum_i loss(y_i, f(x_i; theta)) + lambda/2 ||theta - theta0||^2
// with loss = CE(y, softmax(f)) (kCrossEntropy) or 0.5 ||f - y||^2
// (kSquared), a SUM over the N training points, and theta0 = the parameters
// when Train is called (for a fresh network: its initialization).
struct MlpTrainOptions {
  Loss loss = Loss::kCrossEntropy;
  double lambda = 0;  // >= 0: weight of the anchor to theta0

  // Step size eta; gradient-flow time after k steps is k * eta. <= 0 means
  // the default, derived from the largest eigenvalue lmax of the empirical
  // NTKs (the largest over the C outputs) on the training inputs at the
  // start:
  //   cross-entropy: eta = 2 / (lmax + 2 lambda)
  //   squared:       eta = 1 / (lmax + lambda)
  // i.e. half the stability limit 2 / lambda_max(Hessian): the Gauss-Newton
  // Hessian is J^T (W (x) 1) J + lambda I with ||W_i|| = ||diag(p) - p p^T||
  // <= 1/2 for CE (1 for squared loss), and J J^T has top eigenvalue lmax.
  // The remaining factor 2 covers the O(1/sqrt(n)) curvature of f and the
  // drift of the NTK during training. (With ReLU the objective is only
  // piecewise smooth: the gradient jumps by O(1/sqrt(n)) whenever a hidden
  // unit's pre-activation at a training point changes sign, so near a
  // minimizer GD keeps bouncing with a gradient norm of that order (e.g.
  // ~0.1 at width 1024, N = 48) instead of reaching a tight tolerance, for
  // any eta. Use erf where convergence to a tight tolerance matters.)
  double learning_rate = 0;

  // Heavy-ball momentum beta in [0, 1): v <- beta v - eta g, theta += v.
  // 0 is plain gradient descent (the discretized gradient flow, so `time`
  // is meaningful). With beta > 0 the time axis is not gradient-flow time.
  // On the linearized model momentum converges to the same point as plain
  // GD (both stay in theta0 + span of the Jacobian rows, where the
  // minimizer is unique). On the real network that still holds when
  // lambda > 0 (locally strongly convex; the tests check agreement to
  // 1e-7) but NOT when lambda = 0: the minimizers then form a manifold and
  // momentum stops at a different point of it, O(1/sqrt(n)) away and
  // biased (measured: it shrinks the seed-to-seed spread of test logits by
  // ~25% at width 512; docs/validation.md). Use plain GD where the
  // distribution over initializations matters.
  double momentum = 0;

  int max_steps = 10000;
  // Stop when ||dL/dtheta||_2 <= gradient_tolerance (checked every step).
  double gradient_tolerance = 1e-8;

  // Called at step 0, every `callback_every` steps and after the last step
  // (when callback_every > 0 and the callback is set). The network passed is
  // the one being trained, at the current parameters (it may be read, e.g.
  // Forward or EmpiricalNtk, but not modified). Returning false stops
  // training.
  int callback_every = 0;
  std::function<bool(const MlpTrainProgress&, const FiniteMlp&)> callback;
};

struct MlpTrainResult {
  int steps = 0;               // gradient steps taken
  double learning_rate = 0;    // the eta used (the default resolved)
  double time = 0;             // steps * learning_rate
  double initial_loss = 0;
  double final_loss = 0;
  double final_gradient_norm = 0;
  bool converged = false;      // gradient norm reached the tolerance
};

class FiniteMlp {
 public:
  // A network with random N(0,1) parameters drawn from `seed`.
  // REQUIRES: ValidateKernelSpec(spec).ok(), input_dim >= 1, width >= 1,
  // num_outputs >= 1.
  FiniteMlp(const KernelSpec& spec, int input_dim, int width, int num_outputs,
            uint64_t seed);

  FiniteMlp(const FiniteMlp&) = default;
  FiniteMlp& operator=(const FiniteMlp&) = default;

  const KernelSpec& spec() const { return spec_; }
  int input_dim() const { return input_dim_; }
  int width() const { return width_; }
  int num_outputs() const { return num_outputs_; }
  int64_t num_parameters() const { return theta_.size(); }

  // The flat parameter vector (layout above).
  const Eigen::VectorXd& parameters() const { return theta_; }
  // REQUIRES: theta.size() == num_parameters().
  void set_parameters(const Eigen::VectorXd& theta);

  // Logits f(x) for the rows of x: M x C.
  // REQUIRES: x.cols() == input_dim().
  Eigen::MatrixXd Forward(const Eigen::MatrixXd& x) const;

  // dL/dtheta = sum_i J(x_i)^T g_i for g = dL/dlogits (M x C, row i the
  // derivative of a loss with respect to f(x_i)), by backpropagation with
  // one matrix product per layer over all M rows.
  // REQUIRES: x.cols() == input_dim(), dloss_dlogits is x.rows() x C.
  Eigen::VectorXd Gradient(const Eigen::MatrixXd& x,
                           const Eigen::MatrixXd& dloss_dlogits) const;

  // The empirical NTK of output `output` between the rows of x1 and x2:
  // J_k(x1) J_k(x2)^T (M1 x M2), with J_k(x) = d f_k(x) / d theta. Computed
  // layer by layer without forming J: for a layer with input a and
  // pre-activation gradient delta, the block contributes
  // (c^2 <a, a'> + sb^2) <delta, delta'>, c = sw / sqrt(fan_in).
  // REQUIRES: x1.cols() == x2.cols() == input_dim(), 0 <= output < C.
  Eigen::MatrixXd EmpiricalNtk(const Eigen::MatrixXd& x1,
                               const Eigen::MatrixXd& x2, int output = 0) const;

  // The objective of MlpTrainOptions at the current parameters, with anchor
  // theta0 (pass an empty vector for no anchor term), and its gradient.
  // REQUIRES: x.rows() == y.rows(), y.cols() == C.
  double Objective(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y,
                   Loss loss, double lambda, const Eigen::VectorXd& theta0,
                   Eigen::VectorXd* gradient) const;

  // Full-batch gradient descent on the objective (see MlpTrainOptions) from
  // the current parameters, which become the anchor theta0.
  // REQUIRES: x.cols() == input_dim(), y is x.rows() x C; for cross-entropy
  // every row of y is on the probability simplex; lambda >= 0;
  // 0 <= momentum < 1.
  MlpTrainResult Train(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y,
                       const MlpTrainOptions& options);

 private:
  struct Cache;  // activations of one forward pass
  void ForwardWithCache(const Eigen::MatrixXd& x, Cache* cache) const;
  // Backpropagates g = dL/dlogits; writes dL/dtheta into *grad (sized P).
  void Backward(const Eigen::MatrixXd& x, const Cache& cache,
                const Eigen::MatrixXd& g, Eigen::VectorXd* grad) const;
  // Offsets of W_l and b_l in theta_ (l = 0 .. L), and their shapes.
  int64_t WeightOffset(int l) const { return offsets_[2 * l]; }
  int64_t BiasOffset(int l) const { return offsets_[2 * l + 1]; }
  int FanIn(int l) const { return l == 0 ? input_dim_ : width_; }
  int FanOut(int l) const { return l == spec_.depth ? num_outputs_ : width_; }

  KernelSpec spec_;
  int input_dim_;
  int width_;
  int num_outputs_;
  std::vector<int64_t> offsets_;
  Eigen::VectorXd theta_;
};

}  // namespace ntk

#endif  // NTK_CORE_KERNELS_FINITE_MLP_H_
