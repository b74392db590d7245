// Shared by finite_width_test.cc and finite_width_long_test.cc.
// Finite width -> infinite width (docs/model-contract.md "5. Checks that tie the code to the theory"): a real one-hidden-
// layer network in NTK parameterization (core/kernels/finite_mlp.h), trained by
// full-batch gradient descent on the regularized cross-entropy objective of
// docs/model-contract.md "2. Training objective" (lambda > 0), predicts what the fitted NTK model
// predicts when the model is given the network's own initial outputs
// (FitOptions.initial_train_outputs, PredictLogits' initial_query_outputs).
// The discrepancy comes from the finite-width fluctuation of the tangent
// kernel (and its drift during training), both O(1/sqrt(n)).
#ifndef NTK_TESTS_TESTING_FINITE_WIDTH_CHECK_H_
#define NTK_TESTS_TESTING_FINITE_WIDTH_CHECK_H_

#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

#include <Eigen/Dense>
#include <gtest/gtest.h>

#include "core/kernels/finite_mlp.h"
#include "core/model/model.h"
#include "core/model/model_state.h"
#include "core/training/problem.h"
#include "core/training/spec.h"

namespace ntk {
namespace testing_finite_width {

using Eigen::MatrixXd;

inline MatrixXd UnitScaleRows(int rows, int cols, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  MatrixXd m(rows, cols);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) m(i, j) = nd(gen);
    m.row(i) *= std::sqrt(static_cast<double>(cols)) / m.row(i).norm();  // <x,x>/d = 1
  }
  return m;
}

struct WidthError {
  int width;
  double query_rms;  // RMS over seeds, query points and classes
  double train_rms;
};

// Trains `seeds` networks per width (erf, one hidden layer, lambda = 0.5) and
// compares them with the kernel model given each network's own initial
// outputs. Appends one WidthError per width to *errors.
inline void MeasureFiniteWidthErrors(const std::vector<int>& widths, int seeds,
                                     std::vector<WidthError>* errors) {
  const int n_train = 20, n_query = 10, d = 4, c = 3;
  const double lambda = 0.5;
  const MatrixXd x = UnitScaleRows(n_train, d, 1);
  const MatrixXd xq = UnitScaleRows(n_query, d, 2);
  TrainingData data;
  data.features = x;
  for (int i = 0; i < n_train; ++i) data.labels.push_back((x(i, 0) > 0) + (x(i, 1) > 0.5));

  ModelSpec spec;
  // erf: smooth, so gradient descent converges to a tight tolerance (with
  // ReLU the finite network's objective is only piecewise smooth).
  spec.kernel.activation = Activation::kErf;
  spec.kernel.depth = 1;
  spec.kernel.weight_variance = 1.5;
  spec.kernel.bias_variance = 0.1;
  spec.training.regularization = lambda;
  spec.training.label_smoothing = 0.1;
  spec.num_classes = c;
  absl::StatusOr<TrainingProblem> resolved = DecideTrainingProblem(spec, data);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  const MatrixXd y = resolved->targets;

  for (int width : widths) {
    double q2 = 0, t2 = 0;
    for (int seed = 0; seed < seeds; ++seed) {
      FiniteMlp net(spec.kernel, d, width, c, 1000 + seed);
      const MatrixXd f0 = net.Forward(x);
      const MatrixXd f0q = net.Forward(xq);
      MlpTrainOptions opt;
      opt.loss = Loss::kCrossEntropy;
      opt.lambda = lambda;
      opt.momentum = 0.9;
      opt.max_steps = 20000;
      // GD error must be far below the O(1/sqrt(n)) effect being measured
      // (~1e-2 at the largest width).
      opt.gradient_tolerance = 1e-9;
      const MlpTrainResult r = net.Train(x, y, opt);
      if (seed == 0) std::printf("width %d: %d GD steps\n", width, r.steps);
      ASSERT_TRUE(r.converged) << "width " << width << " seed " << seed
                               << " grad " << r.final_gradient_norm;
      const MatrixXd f_net = net.Forward(xq);
      const MatrixXd f_net_train = net.Forward(x);

      FitOptions fo;
      fo.initial_train_outputs = f0;
      absl::StatusOr<std::unique_ptr<FittedModel>> model = FittedModel::Fit(spec, data, fo);
      ASSERT_TRUE(model.ok()) << model.status();
      absl::StatusOr<MatrixXd> f_kernel = (*model)->PredictLogits(xq, f0q);
      ASSERT_TRUE(f_kernel.ok()) << f_kernel.status();
      q2 += (f_net - *f_kernel).squaredNorm();
      t2 += (f_net_train - ModelInternals::Of(**model).train_logits).squaredNorm();
    }
    errors->push_back({width, std::sqrt(q2 / (seeds * n_query * c)),
                      std::sqrt(t2 / (seeds * n_train * c))});
    std::printf("width %6d  query logit RMS error %.4g  train logit RMS error %.4g\n",
                width, errors->back().query_rms, errors->back().train_rms);
  }
}

// The 1/sqrt(n) law with slack: from the first to the last width the error
// should shrink by expected_shrink = sqrt(last/first). Slack: a factor 2 for
// seed noise and the O(1/n) terms that matter at the smallest width; at most
// 4x faster (faster would mean the small-width error is something else, e.g.
// unconverged GD). Logits are O(1), so the last error must be below
// final_bound (a few times 1/sqrt(last width)). Consecutive widths (4x apart,
// expect 2x) shrink the error by > 1.2x.
inline void ExpectOneOverSqrtWidth(const std::vector<WidthError>& errors,
                                   double expected_shrink, double final_bound) {
  ASSERT_GE(errors.size(), 2u);
  const double shrink = errors.front().query_rms / errors.back().query_rms;
  EXPECT_GE(shrink, expected_shrink / 2) << "query error shrank only " << shrink << "x";
  EXPECT_LE(shrink, expected_shrink * 4);
  const double shrink_train = errors.front().train_rms / errors.back().train_rms;
  EXPECT_GE(shrink_train, expected_shrink / 2);
  EXPECT_LE(errors.back().query_rms, final_bound);
  EXPECT_LE(errors.back().train_rms, final_bound);
  for (size_t i = 1; i < errors.size(); ++i) {
    EXPECT_LT(errors[i].query_rms * 1.2, errors[i - 1].query_rms)
        << "width " << errors[i].width;
  }
}

}  // namespace testing_finite_width
}  // namespace ntk

#endif  // NTK_TESTS_TESTING_FINITE_WIDTH_CHECK_H_
