// ntk/core/kernels/finite_mlp.cc: see finite_mlp.h.
#include "core/kernels/finite_mlp.h"

#include "core/numerics/random.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <random>

#include <Eigen/Eigenvalues>

namespace ntk {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Standard normals from core's sampler (core/numerics/random.h, u1 = 1 -
// k / 2^53: the stream of finite_mlp.h, "Parameter layout").
void FillStandardNormal(uint64_t seed, Eigen::VectorXd* out) {
  NormalStream stream(seed, BoxMullerU1::kOneMinus);
  FillNormal(stream, out->data(), out->size());
}

// a = phi(h) and dphi = phi'(h), elementwise; parallel over columns for
// large inputs (std::erf is the dominant cost of a wide erf network).
void ApplyPhi(Activation act, const Eigen::MatrixXd& h, Eigen::MatrixXd* a,
              Eigen::MatrixXd* dphi) {
  a->resize(h.rows(), h.cols());
  dphi->resize(h.rows(), h.cols());
  const Eigen::Index rows = h.rows(), cols = h.cols();
  const bool parallel = h.size() >= (1 << 16);
  if (act == Activation::kRelu) {
#pragma omp parallel for schedule(static) if (parallel)
    for (Eigen::Index j = 0; j < cols; ++j) {
      for (Eigen::Index i = 0; i < rows; ++i) {
        const double v = h(i, j);
        (*a)(i, j) = v > 0 ? v : 0.0;
        (*dphi)(i, j) = v > 0 ? 1.0 : 0.0;
      }
    }
  } else {
    const double c = 2.0 / std::sqrt(kPi);
#pragma omp parallel for schedule(static) if (parallel)
    for (Eigen::Index j = 0; j < cols; ++j) {
      for (Eigen::Index i = 0; i < rows; ++i) {
        const double v = h(i, j);
        (*a)(i, j) = std::erf(v);
        (*dphi)(i, j) = c * std::exp(-v * v);
      }
    }
  }
}

// The largest eigenvalue of a symmetric PSD matrix.
double LargestEigenvalue(const Eigen::MatrixXd& a) {
  if (a.rows() == 0) return 0;
  if (a.rows() <= 1500) {
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(a, Eigen::EigenvaluesOnly);
    return es.eigenvalues().maxCoeff();
  }
  // Power iteration from the all-ones vector (the NTK's top eigenvector is
  // close to it); 10% margin for the slow convergence from below.
  Eigen::VectorXd v = Eigen::VectorXd::Ones(a.rows()).normalized();
  double mu = 0;
  for (int it = 0; it < 300; ++it) {
    Eigen::VectorXd w = a * v;
    mu = v.dot(w);
    const double norm = w.norm();
    if (norm == 0) return 0;
    v = w / norm;
  }
  return 1.1 * mu;
}

}  // namespace

struct FiniteMlp::Cache {
  std::vector<Eigen::MatrixXd> dphi;  // phi'(h) of the hidden layers, M x n
  std::vector<Eigen::MatrixXd> a;     // phi(h)
  Eigen::MatrixXd z;                  // scratch: current pre-activation
  Eigen::MatrixXd out;             // M x C logits
};

FiniteMlp::FiniteMlp(const KernelSpec& spec, int input_dim, int width,
                     int num_outputs, uint64_t seed)
    : spec_(spec),
      input_dim_(input_dim),
      width_(width),
      num_outputs_(num_outputs) {
  assert(spec.depth >= 1 && input_dim >= 1 && width >= 1 && num_outputs >= 1);
  int64_t offset = 0;
  for (int l = 0; l <= spec_.depth; ++l) {
    offsets_.push_back(offset);
    offset += static_cast<int64_t>(FanOut(l)) * FanIn(l);
    offsets_.push_back(offset);
    offset += FanOut(l);
  }
  theta_.resize(offset);
  FillStandardNormal(seed, &theta_);
}

void FiniteMlp::set_parameters(const Eigen::VectorXd& theta) {
  assert(theta.size() == theta_.size());
  theta_ = theta;
}

void FiniteMlp::ForwardWithCache(const Eigen::MatrixXd& x, Cache* cache) const {
  assert(x.cols() == input_dim_);
  const int L = spec_.depth;
  const double sw = std::sqrt(spec_.weight_variance);
  const double sb = std::sqrt(spec_.bias_variance);
  cache->dphi.resize(L);
  cache->a.resize(L);
  for (int l = 0; l <= L; ++l) {
    const Eigen::Map<const Eigen::MatrixXd> w(theta_.data() + WeightOffset(l),
                                              FanOut(l), FanIn(l));
    const Eigen::Map<const Eigen::RowVectorXd> b(theta_.data() + BiasOffset(l),
                                                 FanOut(l));
    const Eigen::MatrixXd& in = l == 0 ? x : cache->a[l - 1];
    Eigen::MatrixXd& z = l == L ? cache->out : cache->z;
    z.resize(x.rows(), FanOut(l));
    z.noalias() = in * w.transpose();
    z *= sw / std::sqrt(static_cast<double>(FanIn(l)));
    if (sb != 0) z.rowwise() += sb * b;
    if (l < L) ApplyPhi(spec_.activation, z, &cache->a[l], &cache->dphi[l]);
  }
}

void FiniteMlp::Backward(const Eigen::MatrixXd& x, const Cache& cache,
                         const Eigen::MatrixXd& g, Eigen::VectorXd* grad) const {
  const int L = spec_.depth;
  const double sw = std::sqrt(spec_.weight_variance);
  const double sb = std::sqrt(spec_.bias_variance);
  grad->resize(theta_.size());
  Eigen::MatrixXd delta = g;  // dL/dz of layer l, M x FanOut(l)
  for (int l = L; l >= 0; --l) {
    const double c = sw / std::sqrt(static_cast<double>(FanIn(l)));
    const Eigen::MatrixXd& in = l == 0 ? x : cache.a[l - 1];
    Eigen::Map<Eigen::MatrixXd> gw(grad->data() + WeightOffset(l), FanOut(l),
                                   FanIn(l));
    Eigen::Map<Eigen::VectorXd> gb(grad->data() + BiasOffset(l), FanOut(l));
    gw.noalias() = delta.transpose() * in;
    gw *= c;
    gb = sb * delta.colwise().sum().transpose();
    if (l > 0) {
      const Eigen::Map<const Eigen::MatrixXd> w(theta_.data() + WeightOffset(l),
                                                FanOut(l), FanIn(l));
      Eigen::MatrixXd next(x.rows(), FanIn(l));
      next.noalias() = delta * w;
      next *= c;
      next.array() *= cache.dphi[l - 1].array();
      delta.swap(next);
    }
  }
}

Eigen::MatrixXd FiniteMlp::Forward(const Eigen::MatrixXd& x) const {
  Cache cache;
  ForwardWithCache(x, &cache);
  return std::move(cache.out);
}

Eigen::VectorXd FiniteMlp::Gradient(const Eigen::MatrixXd& x,
                                    const Eigen::MatrixXd& dloss_dlogits) const {
  assert(dloss_dlogits.rows() == x.rows() &&
         dloss_dlogits.cols() == num_outputs_);
  Cache cache;
  ForwardWithCache(x, &cache);
  Eigen::VectorXd grad;
  Backward(x, cache, dloss_dlogits, &grad);
  return grad;
}

Eigen::MatrixXd FiniteMlp::EmpiricalNtk(const Eigen::MatrixXd& x1,
                                        const Eigen::MatrixXd& x2,
                                        int output) const {
  assert(x1.cols() == input_dim_ && x2.cols() == input_dim_);
  assert(output >= 0 && output < num_outputs_);
  const int L = spec_.depth;
  const double sw = std::sqrt(spec_.weight_variance);
  const double sb2 = spec_.bias_variance;
  Cache c1, c2;
  ForwardWithCache(x1, &c1);
  ForwardWithCache(x2, &c2);
  // Output layer: delta = e_output for every row, so <delta, delta'> = 1.
  Eigen::MatrixXd d1 = Eigen::MatrixXd::Zero(x1.rows(), num_outputs_);
  Eigen::MatrixXd d2 = Eigen::MatrixXd::Zero(x2.rows(), num_outputs_);
  d1.col(output).setOnes();
  d2.col(output).setOnes();
  Eigen::MatrixXd theta = Eigen::MatrixXd::Zero(x1.rows(), x2.rows());
  for (int l = L; l >= 0; --l) {
    const double c = sw / std::sqrt(static_cast<double>(FanIn(l)));
    const Eigen::MatrixXd& in1 = l == 0 ? x1 : c1.a[l - 1];
    const Eigen::MatrixXd& in2 = l == 0 ? x2 : c2.a[l - 1];
    Eigen::MatrixXd aa(x1.rows(), x2.rows());
    aa.noalias() = in1 * in2.transpose();
    aa = (c * c) * aa.array() + sb2;
    Eigen::MatrixXd dd(x1.rows(), x2.rows());
    dd.noalias() = d1 * d2.transpose();
    theta.array() += aa.array() * dd.array();
    if (l > 0) {
      const Eigen::Map<const Eigen::MatrixXd> w(theta_.data() + WeightOffset(l),
                                                FanOut(l), FanIn(l));
      Eigen::MatrixXd n1(x1.rows(), FanIn(l)), n2(x2.rows(), FanIn(l));
      n1.noalias() = d1 * w;
      n2.noalias() = d2 * w;
      n1 *= c;
      n2 *= c;
      n1.array() *= c1.dphi[l - 1].array();
      n2.array() *= c2.dphi[l - 1].array();
      d1.swap(n1);
      d2.swap(n2);
    }
  }
  return theta;
}

namespace {

// Data term of the objective and its gradient with respect to the logits.
double DataLoss(const Eigen::MatrixXd& f, const Eigen::MatrixXd& y, Loss loss,
                Eigen::MatrixXd* g) {
  if (loss == Loss::kSquared) {
    *g = f - y;
    return 0.5 * g->squaredNorm();
  }
  // CE(y, softmax(f)) = sum_c y_c (lse(f) - f_c); d/df = p sum(y) - y.
  double total = 0;
  g->resize(f.rows(), f.cols());
  for (Eigen::Index i = 0; i < f.rows(); ++i) {
    const double m = f.row(i).maxCoeff();
    const Eigen::RowVectorXd e = (f.row(i).array() - m).exp().matrix();
    const double s = e.sum();
    const double lse = m + std::log(s);
    const double ysum = y.row(i).sum();
    total += ysum * lse - y.row(i).dot(f.row(i));
    g->row(i) = (e / s) * ysum - y.row(i);
  }
  return total;
}

}  // namespace

double FiniteMlp::Objective(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y,
                            Loss loss, double lambda,
                            const Eigen::VectorXd& theta0,
                            Eigen::VectorXd* gradient) const {
  assert(x.rows() == y.rows() && y.cols() == num_outputs_);
  Cache cache;
  ForwardWithCache(x, &cache);
  Eigen::MatrixXd g;
  double value = DataLoss(cache.out, y, loss, &g);
  const bool anchored = lambda != 0 && theta0.size() == theta_.size();
  if (anchored) value += 0.5 * lambda * (theta_ - theta0).squaredNorm();
  if (gradient != nullptr) {
    Backward(x, cache, g, gradient);
    if (anchored) *gradient += lambda * (theta_ - theta0);
  }
  return value;
}

MlpTrainResult FiniteMlp::Train(const Eigen::MatrixXd& x,
                                const Eigen::MatrixXd& y,
                                const MlpTrainOptions& options) {
  assert(x.cols() == input_dim_ && y.rows() == x.rows() &&
         y.cols() == num_outputs_);
  assert(options.lambda >= 0 && options.momentum >= 0 && options.momentum < 1);
  MlpTrainResult result;
  const Eigen::VectorXd theta0 = theta_;
  const double lambda = options.lambda;
  double eta = options.learning_rate;
  if (eta <= 0) {
    double lmax = 0;
    for (int k = 0; k < num_outputs_; ++k)
      lmax = std::max(lmax, LargestEigenvalue(EmpiricalNtk(x, x, k)));
    eta = options.loss == Loss::kSquared ? 1.0 / (lmax + lambda)
                                         : 2.0 / (lmax + 2.0 * lambda);
  }
  result.learning_rate = eta;
  const bool use_momentum = options.momentum > 0;
  Eigen::VectorXd velocity;
  if (use_momentum) velocity = Eigen::VectorXd::Zero(theta_.size());

  Cache cache;
  Eigen::MatrixXd g;
  Eigen::VectorXd grad;
  int step = 0;
  for (;; ++step) {
    ForwardWithCache(x, &cache);
    double loss = DataLoss(cache.out, y, options.loss, &g);
    Backward(x, cache, g, &grad);
    if (lambda != 0) {
      loss += 0.5 * lambda * (theta_ - theta0).squaredNorm();
      grad += lambda * (theta_ - theta0);
    }
    const double gnorm = grad.norm();
    if (step == 0) result.initial_loss = loss;
    result.final_loss = loss;
    result.final_gradient_norm = gnorm;
    const bool done = gnorm <= options.gradient_tolerance ||
                      step >= options.max_steps || !std::isfinite(loss);
    result.converged = gnorm <= options.gradient_tolerance;
    if (options.callback && options.callback_every > 0 &&
        (step % options.callback_every == 0 || done)) {
      MlpTrainProgress p;
      p.step = step;
      p.time = step * eta;
      p.loss = loss;
      p.gradient_norm = gnorm;
      p.train_logits = &cache.out;
      if (!options.callback(p, *this)) break;
    }
    if (done) break;
    if (use_momentum) {
      velocity = options.momentum * velocity - eta * grad;
      theta_ += velocity;
    } else {
      theta_ -= eta * grad;
    }
  }
  result.steps = step;
  result.time = step * eta;
  return result;
}

}  // namespace ntk
