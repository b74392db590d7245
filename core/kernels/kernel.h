// ntk/core/kernels/kernel.h: infinite-width NNGP (K) and NTK (Theta) kernels of a
// fully connected network in NTK parameterization (docs/model-contract.md "1. The network and its two kernels").
//
// Every function here is pure: it reads its inputs and writes its outputs.
// Thread safety: safe to call concurrently. Functions use all cores (OpenMP
// and the BLAS) for large inputs.
//
// The conventions are those of neural-tangents'
// stax.serial(Dense(W_std, b_std, parameterization='ntk'), Relu/Erf, ...,
// Dense(...)) with W_std^2 = weight_variance, b_std^2 = bias_variance and
// `depth` hidden layers.
#ifndef NTK_CORE_KERNELS_KERNEL_H_
#define NTK_CORE_KERNELS_KERNEL_H_

#include <functional>

#include <Eigen/Dense>

#include "absl/status/status.h"

namespace ntk {

enum class Activation { kRelu = 1, kErf = 2 };

struct KernelSpec {
  Activation activation = Activation::kRelu;
  int depth = 1;                 // hidden layers L >= 1
  double weight_variance = 2.0;  // sw^2 > 0
  double bias_variance = 0.0;    // sb^2 >= 0
};

inline constexpr int kMaxDepth = 100;

// OK, or INVALID_ARGUMENT naming the field ("spec.kernel.depth: ...").
absl::Status ValidateKernelSpec(const KernelSpec& spec);

// The NNGP kernel K and the NTK Theta between two sets of points.
struct KernelMatrices {
  Eigen::MatrixXd nngp;  // K
  Eigen::MatrixXd ntk;   // Theta
};

// Cross kernels between the rows of x1 (N x d) and x2 (M x d): N x M each.
// REQUIRES: ValidateKernelSpec(spec).ok(), x1.cols() == x2.cols(), finite.
KernelMatrices CrossKernels(const KernelSpec& spec, const Eigen::MatrixXd& x1,
                            const Eigen::MatrixXd& x2);
// The same, with x1's squared row norms (x1.rowwise().squaredNorm())
// precomputed, e.g. a model's training set queried many times: saves one
// pass over x1, half the memory traffic of a single-row query. Identical
// bits to the overload above. (Put the large set first: the recursion is
// vectorized along x1, so CrossKernels(X_train, queries) is about 2x
// faster than CrossKernels(queries, X_train) for a few query rows.)
// REQUIRES: x1_squared_norms == x1.rowwise().squaredNorm().
KernelMatrices CrossKernels(const KernelSpec& spec, const Eigen::MatrixXd& x1,
                            const Eigen::MatrixXd& x2,
                            const Eigen::VectorXd& x1_squared_norms);

// K(X, X) and Theta(X, X) for the rows of x (N x N, exactly symmetric, the
// diagonal computed with rho = 1 exactly). Cheaper than CrossKernels(x, x).
KernelMatrices TrainKernels(const KernelSpec& spec, const Eigen::MatrixXd& x);
// The same, cancellable: keep_going (may be empty) is called on the calling
// thread before the work and between its tiles (128 x 128 entries each, a
// few ms); when it returns false the remaining tiles are skipped and the
// result is false (*out then holds partial values). Same bits otherwise.
bool TrainKernels(const KernelSpec& spec, const Eigen::MatrixXd& x,
                  const std::function<bool()>& keep_going, KernelMatrices* out);

// docs/model-contract.md "1. The network and its two kernels": the layer
// recursion produces every depth in order, so K and Theta of depths
// 1..L cost one recursion. ExtendTrainKernels advances *kernels, which hold
// TrainKernels(spec with depth = from_depth, x) (or an earlier extension),
// to depth spec.depth in place: the same bits as TrainKernels(spec, x),
// at (spec.depth - from_depth) / spec.depth of its recursion and without
// its GEMM. keep_going and the result as for TrainKernels; from_depth >=
// spec.depth changes nothing. Used by model selection over depths
// (core/selection/selection.h).
// REQUIRES: 1 <= from_depth; *kernels are N x N from the same x, activation
// and variances.
bool ExtendTrainKernels(const KernelSpec& spec, int from_depth, const Eigen::MatrixXd& x,
                        const std::function<bool()>& keep_going, KernelMatrices* kernels);

// Only the diagonals K(x, x), Theta(x, x) of the rows of x: O(N d).
struct KernelDiagonal {
  Eigen::VectorXd nngp;
  Eigen::VectorXd ntk;
};
KernelDiagonal DiagonalKernels(const KernelSpec& spec, const Eigen::MatrixXd& x);

}  // namespace ntk

#endif  // NTK_CORE_KERNELS_KERNEL_H_
