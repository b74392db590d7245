// ntk/tools/validate/experiments.h: the finite-width validation experiments
// of docs/validation.md (docs/model-contract.md "5. Checks that tie the code to the theory", "Finite width"), shared by the
// ntk_validate tool and tests/validate_test.cc (header-only so that both can
// use it without a library target).
//
//   E1  lambda > 0 (regime 2a): trained finite network vs. the kernel
//       prediction with the same network's initial outputs, over widths.
//   E2  lambda = 0 with label smoothing (2b): the same.
//   E3  lambda = 0 with hard labels: logit norm and NTK drift over time,
//       next to the E1 and E2 settings at the same width.
//   E4  the distribution over initializations (many seeds of a wide net)
//       vs. FittedModel::PredictDistribution.
//
// Thread safety: the functions are pure (each builds its own networks and
// models); they use the BLAS and OpenMP through ntk_core.
#ifndef NTK_TOOLS_VALIDATE_EXPERIMENTS_H_
#define NTK_TOOLS_VALIDATE_EXPERIMENTS_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "core/kernels/finite_mlp.h"
#include "core/kernels/kernel.h"
#include "core/model/model.h"
#include "core/numerics/random.h"
#include "core/training/problem.h"
#include "core/training/spec.h"

namespace ntk {
namespace validate {

// ---------------------------------------------------------------- data ----

// A small synthetic classification problem: C class centers drawn
// N(0, separation^2 I_d), points = center + N(0, I_d), every row then scaled
// to L2 norm sqrt(d) (so <x, x>/d = 1, docs/model-contract.md "1. The network and its two kernels" "Input scale"; the
// models below use no further preprocessing, so the network and the kernel
// see identical inputs). Labels cycle 0, 1, ..., C-1.
struct Dataset {
  Eigen::MatrixXd x_train;  // N x d
  Eigen::MatrixXd x_test;   // M x d
  std::vector<int> train_labels;
  std::vector<int> test_labels;
  int num_classes = 0;
};

// Standard normals for the data only, row-major, from core's sampler
// (core/numerics/random.h; cosine only, u1 = 1 - k / 2^53: the stream the
// validation figures were made with).
inline Eigen::MatrixXd GaussianMatrix(int rows, int cols, NormalStream* gen) {
  Eigen::MatrixXd m(rows, cols);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) m(i, j) = gen->NextCosineOnly();
  }
  return m;
}

inline Dataset MakeDataset(int n_train, int n_test, int d, int num_classes,
                           double separation, uint64_t seed) {
  NormalStream gen(seed, BoxMullerU1::kOneMinus);
  const Eigen::MatrixXd centers = separation * GaussianMatrix(num_classes, d, &gen);
  Dataset data;
  data.num_classes = num_classes;
  auto draw = [&](int n, Eigen::MatrixXd* x, std::vector<int>* labels) {
    *x = GaussianMatrix(n, d, &gen);
    labels->resize(n);
    for (int i = 0; i < n; ++i) {
      (*labels)[i] = i % num_classes;
      x->row(i) += centers.row(i % num_classes);
      x->row(i) *= std::sqrt(static_cast<double>(d)) / x->row(i).norm();
    }
  };
  draw(n_train, &data.x_train, &data.train_labels);
  draw(n_test, &data.x_test, &data.test_labels);
  return data;
}

// ------------------------------------------------------------ settings ----

// One training objective (docs/model-contract.md "2. Training objective") on one architecture.
struct Setting {
  std::string name;          // e.g. "E1 2a lambda=1"
  KernelSpec kernel;
  double lambda = 0;         // regularization
  double label_smoothing = 0;
};

inline ModelSpec ToModelSpec(const Setting& s, int num_classes) {
  ModelSpec spec;
  spec.kernel = s.kernel;
  spec.training.loss = Loss::kCrossEntropy;
  spec.training.regularization = s.lambda;
  spec.training.label_smoothing = s.label_smoothing;
  spec.num_classes = num_classes;
  return spec;  // preprocessing off: the data are already scaled
}

// The targets Y exactly as the model builds them (DecideTrainingProblem).
// The E3 setting (lambda = 0, hard labels, no smoothing) has no kernel model
// (Fit refuses it, docs/model-contract.md "2b. Unregularized"); its targets are the one-hot labels.
inline absl::StatusOr<Eigen::MatrixXd> TargetsFor(const Setting& s,
                                                  const Dataset& data) {
  if (s.lambda == 0 && s.label_smoothing == 0) {
    Eigen::MatrixXd y = Eigen::MatrixXd::Zero(
        static_cast<Eigen::Index>(data.train_labels.size()), data.num_classes);
    for (size_t i = 0; i < data.train_labels.size(); ++i)
      y(static_cast<Eigen::Index>(i), data.train_labels[i]) = 1.0;
    return y;
  }
  TrainingData td;
  td.features = data.x_train;
  td.labels = data.train_labels;
  absl::StatusOr<TrainingProblem> r = DecideTrainingProblem(ToModelSpec(s, data.num_classes), td);
  if (!r.ok()) return r.status();
  return r->targets;
}

// The kernel model of `s` fitted with initial training outputs F0 (empty:
// zero, i.e. the served model).
inline absl::StatusOr<std::unique_ptr<FittedModel>> FitKernelModel(
    const Setting& s, const Dataset& data, const Eigen::MatrixXd& f0_train) {
  TrainingData td;
  td.features = data.x_train;
  td.labels = data.train_labels;
  FitOptions opt;
  opt.initial_train_outputs = f0_train;
  return FittedModel::Fit(ToModelSpec(s, data.num_classes), td, opt);
}

inline Eigen::MatrixXd CenterRows(const Eigen::MatrixXd& f) {
  return f.colwise() - f.rowwise().mean();
}

inline Eigen::MatrixXd SoftmaxRows(const Eigen::MatrixXd& f) {
  Eigen::MatrixXd p(f.rows(), f.cols());
  for (Eigen::Index i = 0; i < f.rows(); ++i) {
    const Eigen::RowVectorXd e = (f.row(i).array() - f.row(i).maxCoeff()).exp().matrix();
    p.row(i) = e / e.sum();
  }
  return p;
}

// How the finite networks are trained to (near) convergence.
struct TrainConfig {
  int max_steps = 20000;
  double gradient_tolerance = 1e-6;
  double momentum = 0;  // heavy ball; converges to the GD point (finite_mlp.h)
};

// The size of a matrix of differences (or of values), as every experiment
// reports it: the root mean square and the largest absolute entry.
struct Deviation {
  double rms = 0;
  double max = 0;
};

inline Deviation DeviationOf(const Eigen::MatrixXd& d) {
  Deviation v;
  v.rms = std::sqrt(d.squaredNorm() / static_cast<double>(d.size()));
  v.max = d.cwiseAbs().maxCoeff();
  return v;
}

// ---------------------------------------------------------- E1 and E2 ----

struct WidthResult {
  int width = 0;
  uint64_t seed = 0;
  // Trained network vs. kernel prediction on the test points, centered
  // logits (probabilities depend only on them; for 2b the kernel logits are
  // defined only up to a constant per point).
  Deviation logit;
  Deviation prob;
  double logit_scale = 0;   // rms of the kernel's centered test logits
  int steps = 0;
  double gradient_norm = 0;  // remaining ||dL/dtheta|| at the end
  bool converged = false;
  double seconds = 0;
};

// Trains FiniteMlp(width, seed) on `s` and compares its test logits with the
// kernel prediction that uses the same network's F0 and f0.
inline absl::StatusOr<WidthResult> RunWidth(const Setting& s, const Dataset& data,
                                            int width, uint64_t seed,
                                            const TrainConfig& cfg) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Eigen::MatrixXd> y = TargetsFor(s, data);
  if (!y.ok()) return y.status();
  FiniteMlp net(s.kernel, static_cast<int>(data.x_train.cols()), width,
                data.num_classes, seed);
  const Eigen::MatrixXd f0_train = net.Forward(data.x_train);
  const Eigen::MatrixXd f0_test = net.Forward(data.x_test);
  absl::StatusOr<std::unique_ptr<FittedModel>> model =
      FitKernelModel(s, data, f0_train);
  if (!model.ok()) return model.status();
  absl::StatusOr<Eigen::MatrixXd> kernel_logits =
      (*model)->PredictLogits(data.x_test, f0_test);
  if (!kernel_logits.ok()) return kernel_logits.status();

  MlpTrainOptions opt;
  opt.lambda = s.lambda;
  opt.max_steps = cfg.max_steps;
  opt.gradient_tolerance = cfg.gradient_tolerance;
  opt.momentum = cfg.momentum;
  const MlpTrainResult tr = net.Train(data.x_train, *y, opt);
  const Eigen::MatrixXd net_logits = CenterRows(net.Forward(data.x_test));
  const Eigen::MatrixXd ker_logits = CenterRows(*kernel_logits);
  const Eigen::MatrixXd dl = net_logits - ker_logits;
  const Eigen::MatrixXd dp = SoftmaxRows(net_logits) - SoftmaxRows(ker_logits);

  WidthResult r;
  r.width = width;
  r.seed = seed;
  r.logit = DeviationOf(dl);
  r.prob = DeviationOf(dp);
  r.logit_scale = DeviationOf(ker_logits).rms;
  r.steps = tr.steps;
  r.gradient_norm = tr.final_gradient_norm;
  r.converged = tr.converged;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

// Least-squares slope of log(y) against log(x).
inline double LogLogSlope(const std::vector<double>& x, const std::vector<double>& y) {
  const int n = static_cast<int>(std::min(x.size(), y.size()));
  double mx = 0, my = 0;
  for (int i = 0; i < n; ++i) {
    mx += std::log(x[i]) / n;
    my += std::log(y[i]) / n;
  }
  double sxy = 0, sxx = 0;
  for (int i = 0; i < n; ++i) {
    sxy += (std::log(x[i]) - mx) * (std::log(y[i]) - my);
    sxx += (std::log(x[i]) - mx) * (std::log(x[i]) - mx);
  }
  return sxx > 0 ? sxy / sxx : 0;
}

// ------------------------------------------------------------------ E3 ----

struct TrajectoryPoint {
  int step = 0;
  double time = 0;            // gradient-flow time
  double loss = 0;            // objective
  double gradient_norm = 0;
  Deviation logit;            // of the centered training logits
  double ntk_change = 0;      // ||Theta_t - Theta_0||_F / ||Theta_0||_F (output 0, train x train)
};

// Plain gradient descent (so that `time` is gradient-flow time) for
// `steps` steps, recording about `records` log-spaced points.
inline absl::StatusOr<std::vector<TrajectoryPoint>> RunTrajectory(
    const Setting& s, const Dataset& data, int width, uint64_t seed, int steps,
    int records) {
  absl::StatusOr<Eigen::MatrixXd> y = TargetsFor(s, data);
  if (!y.ok()) return y.status();
  FiniteMlp net(s.kernel, static_cast<int>(data.x_train.cols()), width,
                data.num_classes, seed);
  const Eigen::MatrixXd theta0 = net.EmpiricalNtk(data.x_train, data.x_train, 0);
  const double theta0_norm = theta0.norm();
  // Log-spaced record steps 0, 1, ..., steps.
  std::vector<int> marks = {0};
  for (int i = 0; i < records; ++i) {
    const int m = static_cast<int>(std::round(
        std::pow(static_cast<double>(steps), (i + 1.0) / records)));
    if (m > marks.back()) marks.push_back(std::min(m, steps));
  }
  std::vector<TrajectoryPoint> out;
  size_t next = 0;
  MlpTrainOptions opt;
  opt.lambda = s.lambda;
  opt.max_steps = steps;
  opt.gradient_tolerance = 0;  // run the whole horizon
  opt.callback_every = 1;
  opt.callback = [&](const MlpTrainProgress& p, const FiniteMlp& n) {
    if (next < marks.size() && p.step == marks[next]) {
      ++next;
      TrajectoryPoint t;
      t.step = p.step;
      t.time = p.time;
      t.loss = p.loss;
      t.gradient_norm = p.gradient_norm;
      t.logit = DeviationOf(CenterRows(*p.train_logits));
      t.ntk_change =
          (n.EmpiricalNtk(data.x_train, data.x_train, 0) - theta0).norm() / theta0_norm;
      out.push_back(t);
    }
    return true;
  };
  net.Train(data.x_train, *y, opt);
  return out;
}

// ------------------------------------------------------------------ E4 ----

// Centered test logits of `num_seeds` networks (seeds first_seed, ...) each
// trained to convergence on `s`: one M x C matrix per seed.
inline absl::StatusOr<std::vector<Eigen::MatrixXd>> TrainEnsemble(
    const Setting& s, const Dataset& data, int width, uint64_t first_seed,
    int num_seeds, const TrainConfig& cfg, int* not_converged,
    double* max_gradient_norm) {
  absl::StatusOr<Eigen::MatrixXd> y = TargetsFor(s, data);
  if (!y.ok()) return y.status();
  std::vector<Eigen::MatrixXd> out(num_seeds);
  std::vector<MlpTrainResult> results(num_seeds);
  // One network per thread (OpenMP); results do not depend on the order.
#pragma omp parallel for schedule(dynamic)
  for (int k = 0; k < num_seeds; ++k) {
    FiniteMlp net(s.kernel, static_cast<int>(data.x_train.cols()), width,
                  data.num_classes, first_seed + k);
    MlpTrainOptions opt;
    opt.lambda = s.lambda;
    opt.max_steps = cfg.max_steps;
    opt.gradient_tolerance = cfg.gradient_tolerance;
    opt.momentum = cfg.momentum;
    results[k] = net.Train(data.x_train, *y, opt);
    out[k] = CenterRows(net.Forward(data.x_test));
  }
  *not_converged = 0;
  *max_gradient_norm = 0;
  for (const MlpTrainResult& tr : results) {
    if (!tr.converged) ++*not_converged;
    *max_gradient_norm = std::max(*max_gradient_norm, tr.final_gradient_norm);
  }
  return out;
}

// Sample moments of per-seed vectors v_k (C each) with divisor S, and the
// standard errors of those moments estimated from the same samples:
// se(mean_c) = sd_c / sqrt(S); se(cov_cd) = sd of the products
// (v_c - m_c)(v_d - m_d) over seeds / sqrt(S) (distribution-free).
struct Moments {
  Eigen::VectorXd mean;
  Eigen::MatrixXd cov;
  Eigen::VectorXd mean_se;
  Eigen::MatrixXd cov_se;
};

inline Moments SampleMoments(const std::vector<Eigen::VectorXd>& v) {
  const int S = static_cast<int>(v.size());
  const int C = static_cast<int>(v[0].size());
  Moments m;
  m.mean = Eigen::VectorXd::Zero(C);
  for (const auto& x : v) m.mean += x / S;
  m.cov = Eigen::MatrixXd::Zero(C, C);
  Eigen::MatrixXd sq = Eigen::MatrixXd::Zero(C, C);
  for (const auto& x : v) {
    const Eigen::VectorXd d = x - m.mean;
    const Eigen::MatrixXd p = d * d.transpose();
    m.cov += p / S;
    sq += p.cwiseProduct(p) / S;
  }
  m.mean_se = (m.cov.diagonal() / S).cwiseSqrt();
  m.cov_se = ((sq - m.cov.cwiseProduct(m.cov)).cwiseMax(0.0) / S).cwiseSqrt();
  return m;
}

// One comparison of ensemble moments against a predicted distribution:
// z = (ensemble - predicted) / se over all test points and entries.
struct Agreement {
  double max_abs_z = 0;
  double rms_z = 0;
  double max_abs_diff = 0;
  double scale = 0;  // rms of the predicted quantity, for reading max_abs_diff
  int count = 0;
};

struct DistributionComparison {
  std::string setting;
  std::string method;
  Agreement logit_mean, logit_cov, prob_mean, prob_cov;
  // sum over test points of trace(ensemble cov) / the same for predicted:
  // a direct read of a systematic bias in the spread (1 when they agree).
  double logit_var_ratio = 0, prob_var_ratio = 0;
};

// Accumulates z-scores; `pred_se` is the predicted value's own Monte Carlo
// error (0 for exact quantities), combined in quadrature with the
// ensemble's standard error. Entries whose combined se is ~0 relative to
// the scale (e.g. the centered logits' exact null direction) are skipped.
class AgreementAccumulator {
 public:
  void Add(double ensemble, double predicted, double ens_se, double pred_se) {
    const double se = std::sqrt(ens_se * ens_se + pred_se * pred_se);
    diff_max_ = std::max(diff_max_, std::abs(ensemble - predicted));
    scale_sq_ += predicted * predicted;
    ++n_all_;
    if (!(se > 1e-12)) return;
    const double z = (ensemble - predicted) / se;
    max_z_ = std::max(max_z_, std::abs(z));
    z_sq_ += z * z;
    ++n_;
  }
  Agreement Result() const {
    Agreement a;
    a.max_abs_z = max_z_;
    a.rms_z = n_ > 0 ? std::sqrt(z_sq_ / n_) : 0;
    a.max_abs_diff = diff_max_;
    a.scale = n_all_ > 0 ? std::sqrt(scale_sq_ / n_all_) : 0;
    a.count = n_;
    return a;
  }

 private:
  double max_z_ = 0, z_sq_ = 0, diff_max_ = 0, scale_sq_ = 0;
  int n_ = 0, n_all_ = 0;
};

// Compares the ensemble (per-seed centered logits, M x C each) with
// PredictDistribution(method) of the F0 = 0 model. `pred_samples` is the
// method's Monte Carlo size for the probability moments (and for
// MONTE_CARLO in 2a the number of sampled initializations), used for the
// predicted side's standard error.
inline absl::StatusOr<DistributionComparison> CompareDistribution(
    const Setting& s, const Dataset& data, const FittedModel& model,
    const std::vector<Eigen::MatrixXd>& ensemble, DistributionMethod method,
    int pred_samples, uint64_t pred_seed) {
  DistributionOptions opt;
  opt.method = method;
  opt.num_samples = pred_samples;
  opt.seed = pred_seed;
  absl::StatusOr<DistributionResult> pred = model.PredictDistribution(data.x_test, opt);
  if (!pred.ok()) return pred.status();
  const int M = static_cast<int>(data.x_test.rows());
  const int C = data.num_classes;
  const bool logits_sampled =
      method == DistributionMethod::kMonteCarlo;  // logit moments are MC too
  AgreementAccumulator lm, lc, pm, pc;
  double ens_lvar = 0, pred_lvar = 0, ens_pvar = 0, pred_pvar = 0;
  for (int i = 0; i < M; ++i) {
    std::vector<Eigen::VectorXd> logits, probs;
    for (const auto& e : ensemble) {
      const Eigen::VectorXd f = e.row(i).transpose();
      logits.push_back(f);
      probs.push_back(SoftmaxRows(f.transpose()).transpose());
    }
    const Moments ml = SampleMoments(logits);
    const Moments mp = SampleMoments(probs);
    const PointDistribution& pd = pred->points[i];
    ens_lvar += ml.cov.trace();
    pred_lvar += pd.logit_covariance.trace();
    ens_pvar += mp.cov.trace();
    pred_pvar += pd.probability_covariance.trace();
    // The predicted side's se, from its own moments and sample count.
    const double ps = static_cast<double>(pred_samples);
    for (int c = 0; c < C; ++c) {
      const double lse = logits_sampled ? std::sqrt(pd.logit_covariance(c, c) / ps) : 0;
      lm.Add(ml.mean[c], pd.logit_mean[c], ml.mean_se[c], lse);
      pm.Add(mp.mean[c], pd.probability_mean[c], mp.mean_se[c],
             std::sqrt(std::max(0.0, pd.probability_covariance(c, c)) / ps));
      for (int d = c; d < C; ++d) {
        const auto& Lc = pd.logit_covariance;
        const double lcse =
            logits_sampled ? std::sqrt((Lc(c, c) * Lc(d, d) + Lc(c, d) * Lc(c, d)) / ps) : 0;
        lc.Add(ml.cov(c, d), Lc(c, d), ml.cov_se(c, d), lcse);
        const auto& Pc = pd.probability_covariance;
        // Gaussian-moment approximation of the se of a sampled covariance.
        const double pcse = std::sqrt(
            std::max(0.0, Pc(c, c) * Pc(d, d) + Pc(c, d) * Pc(c, d)) / ps);
        pc.Add(mp.cov(c, d), Pc(c, d), mp.cov_se(c, d), pcse);
      }
    }
  }
  DistributionComparison out;
  out.setting = s.name;
  out.method = DistributionMethodName(method);
  out.logit_mean = lm.Result();
  out.logit_cov = lc.Result();
  out.prob_mean = pm.Result();
  out.prob_cov = pc.Result();
  out.logit_var_ratio = pred_lvar > 0 ? ens_lvar / pred_lvar : 0;
  out.prob_var_ratio = pred_pvar > 0 ? ens_pvar / pred_pvar : 0;
  return out;
}

}  // namespace validate
}  // namespace ntk

#endif  // NTK_TOOLS_VALIDATE_EXPERIMENTS_H_
