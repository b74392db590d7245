// Tests of core/model/model.h: Fit/Predict end to end, invariances, validation,
// cancellation and the serialized format (round trip and damaged bytes).
#include "core/model/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/kernels/kernel.h"
#include "core/model/model_state.h"
#include "core/model/serialize.h"
#include "core/training/solvers.h"
#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using Eigen::MatrixXd;

MatrixXd Gaussian(int rows, int cols, uint64_t seed, double scale = 1.0) {
  return testing::StdNormalMatrix(rows, cols, seed, scale);
}

// Three Gaussian blobs in d = 5, shifted and scaled so that preprocessing
// has something to do.
TrainingData Blobs(int n, uint64_t seed, int c = 3) {
  TrainingData t;
  t.features = Gaussian(n, 5, seed);
  for (int i = 0; i < n; ++i) {
    const int k = i % c;
    t.features(i, k % 5) += 2.5;
    t.labels.push_back(k);
  }
  t.features.col(1) = t.features.col(1) * 30.0 + Eigen::VectorXd::Constant(n, 100.0);
  return t;
}

ModelSpec Spec2a() {
  ModelSpec s;
  s.training.regularization = 0.1;
  s.preprocessing.standardize = true;
  s.preprocessing.normalize_rows = true;
  s.class_names = {"x", "y", "z"};
  return s;
}

ModelSpec Spec2b() {
  ModelSpec s;  // defaults: eps = 0.1, lambda = 0
  s.preprocessing.standardize = true;
  s.kernel.activation = Activation::kErf;
  s.kernel.depth = 2;
  s.kernel.bias_variance = 0.2;
  s.kernel.weight_variance = 1.5;
  return s;
}

ModelSpec Spec2c() {
  ModelSpec s;
  s.training.loss = Loss::kSquared;
  s.training.regularization = 0.01;
  s.preprocessing.normalize_rows = true;
  return s;
}

std::unique_ptr<FittedModel> MustFit(const ModelSpec& spec, const TrainingData& data,
                                     const FitOptions& opt = {}) {
  absl::StatusOr<std::unique_ptr<FittedModel>> m = FittedModel::Fit(spec, data, opt);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

double MaxAbs(const MatrixXd& m) { return m.size() ? m.cwiseAbs().maxCoeff() : 0.0; }

TEST(Fit, StatsPerRegime) {
  const TrainingData data = Blobs(60, 1);
  {
    auto m = MustFit(Spec2a(), data);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->Info().regime, Regime::kRegularizedCE);
    EXPECT_GT(m->Info().stats.solver_iterations, 0);
    EXPECT_GT(m->Info().stats.cg_iterations, 0);
    // Residual target of FitOptions.tolerance (1e-12 relative).
    EXPECT_LE(m->Info().stats.fixed_point_residual,
              1e-12 * std::max(1.0, MaxAbs(ModelInternals::Of(*m).train_logits)));
    EXPECT_GT(m->Info().stats.train_accuracy, 0.8);  // separable blobs
    EXPECT_GT(m->Info().stats.fit_seconds, 0);
    EXPECT_GT(ModelInternals::Of(*m).created_unix_ms, 0);
    EXPECT_EQ(m->Info().num_train, 60);
    EXPECT_EQ(m->Info().num_features, 5);
    EXPECT_EQ(m->Info().num_classes, 3);
    // train_nll is the mean CE against the targets at the train logits.
    EXPECT_NEAR(m->Info().stats.train_nll,
                SumCrossEntropy(ModelInternals::Of(*m).problem.targets, ModelInternals::Of(*m).train_logits) / 60, 1e-14);
  }
  {
    auto m = MustFit(Spec2b(), data);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->Info().regime, Regime::kUnregularizedCE);
    EXPECT_GT(m->Info().stats.jitter, 0);
    EXPECT_GT(m->Info().stats.condition_estimate, 1);
    EXPECT_EQ(m->Info().stats.train_accuracy, 1.0);  // softmax(F) == Y
    // softmax(train logits) == Y up to the jitter's effect (solvers_test
    // derives this bound: jitter * ||Theta^-1|| * ||log Y||, with
    // ||Theta^-1|| <= cond / lambda_max and lambda_max >= mean diag).
    const MatrixXd p = RowSoftmax(ModelInternals::Of(*m).train_logits);
    const double bound = m->Info().stats.jitter * m->Info().stats.condition_estimate * 60 * 3.0;
    EXPECT_LE(MaxAbs(p - ModelInternals::Of(*m).problem.targets), std::max(bound, 1e-12));
    // mean CE at softmax = Y is the mean entropy of Y.
    double h = 0;
    for (int i = 0; i < 60; ++i)
      for (int c = 0; c < 3; ++c) h -= ModelInternals::Of(*m).problem.targets(i, c) * std::log(ModelInternals::Of(*m).problem.targets(i, c));
    EXPECT_NEAR(m->Info().stats.train_nll, h / 60, 1e-6);
  }
  {
    auto m = MustFit(Spec2c(), data);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->Info().regime, Regime::kSquared);
    EXPECT_EQ(m->Info().stats.jitter, 0);  // lambda = 0.01 > 1e-10 mean diag
  }
}

// Predict(x_train) reproduces the train logits (with f0 = 0). The only
// difference is CrossKernels(x, x) vs TrainKernels(x) (the latter uses
// rho = 1 exactly on the diagonal; docs/model-contract.md "1. The network and its two kernels" puts the two paths
// ~1e-8 apart), so the tolerance is that kernel difference times |dual|.
TEST(Predict, OnTrainingPointsReproducesTrainLogits) {
  const TrainingData data = Blobs(45, 2);
  for (const ModelSpec& spec : {Spec2a(), Spec2b(), Spec2c()}) {
    auto m = MustFit(spec, data);
    ASSERT_TRUE(m);
    absl::StatusOr<Prediction> p = m->Predict(data.features);
    ASSERT_TRUE(p.ok()) << p.status();
    const FittedModel::State& s = ModelInternals::Of(*m);
    const MatrixXd cross = CrossKernels(spec.kernel, s.x_train, s.x_train).ntk;
    const MatrixXd train = TrainKernels(spec.kernel, s.x_train).ntk;
    const double kernel_err =
        ((cross - train).cwiseAbs() * s.dual.cwiseAbs()).maxCoeff();
    const double rounding = 1e-13 * (train.cwiseAbs() * s.dual.cwiseAbs()).maxCoeff();
    MatrixXd expected = s.train_logits;
    expected.colwise() -= expected.rowwise().mean();
    // 2a: train logits = Theta dual up to the fixed-point residual.
    const double fp = s.stats.fixed_point_residual;
    EXPECT_LE(MaxAbs(p->logits - expected), 2 * (kernel_err + rounding + fp))
        << RegimeName(m->Info().regime);
    // Probabilities, labels and centering.
    EXPECT_LE(MaxAbs(p->logits.rowwise().sum()), 1e-12);
    for (int i = 0; i < p->probabilities.rows(); ++i) {
      EXPECT_NEAR(p->probabilities.row(i).sum(), 1.0, 1e-14);
      int k;
      p->probabilities.row(i).maxCoeff(&k);
      EXPECT_EQ(p->labels[i], k);
    }
  }
}

TEST(Predict, ValidationMessages) {
  auto m = MustFit(Spec2a(), Blobs(30, 3));
  ASSERT_TRUE(m);
  absl::StatusOr<Prediction> p = m->Predict(MatrixXd::Zero(2, 4));
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(p.status().message()), "features: expected 5 columns, got 4");
  MatrixXd q = MatrixXd::Zero(3, 5);
  q(1, 3) = std::numeric_limits<double>::quiet_NaN();
  p = m->Predict(q);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(p.status().message()), "features: row 1 column 3 is NaN");
  q(1, 3) = std::numeric_limits<double>::infinity();
  EXPECT_EQ(m->Predict(q).status().code(), absl::StatusCode::kInvalidArgument);
  // Zero queries is fine.
  p = m->Predict(MatrixXd(0, 5));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->logits.rows(), 0);
  // PredictLogits: f0 shape.
  absl::StatusOr<MatrixXd> l = m->PredictLogits(MatrixXd::Zero(2, 5), MatrixXd::Zero(2, 2));
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(l.status().message()).rfind("initial_query_outputs:", 0), 0u);
  // PredictDistribution validates the queries before anything else.
  DistributionOptions dopt;
  EXPECT_EQ(m->PredictDistribution(MatrixXd::Zero(1, 6), dopt).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Fit: initial_train_outputs shape.
  FitOptions fo;
  fo.initial_train_outputs = MatrixXd::Zero(29, 3);
  absl::StatusOr<std::unique_ptr<FittedModel>> bad =
      FittedModel::Fit(Spec2a(), Blobs(30, 3), fo);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(bad.status().message()).rfind("initial_train_outputs:", 0), 0u);
  // Fit passes ResolveSpec errors through.
  ModelSpec s = Spec2a();
  s.training.regularization = -1;
  EXPECT_EQ(FittedModel::Fit(s, Blobs(30, 3)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Predict, PredictLogitsWithInitialOutputs) {
  const TrainingData data = Blobs(40, 4);
  FitOptions fo;
  fo.initial_train_outputs = Gaussian(40, 3, 5, 0.5);
  auto m = MustFit(Spec2a(), data, fo);
  ASSERT_TRUE(m);
  // At the training points with f0 = F0 the model returns F* (up to the
  // kernel-path difference explained above and the fixed-point residual).
  absl::StatusOr<MatrixXd> l = m->PredictLogits(data.features, fo.initial_train_outputs);
  ASSERT_TRUE(l.ok()) << l.status();
  const FittedModel::State& s = ModelInternals::Of(*m);
  const MatrixXd cross = CrossKernels(Spec2a().kernel, s.x_train, s.x_train).ntk;
  const MatrixXd train = TrainKernels(Spec2a().kernel, s.x_train).ntk;
  const double kernel_err = ((cross - train).cwiseAbs() * s.dual.cwiseAbs()).maxCoeff();
  EXPECT_LE(MaxAbs(*l - s.train_logits),
            2 * (kernel_err + s.stats.fixed_point_residual) + 1e-13);
  // f0 enters additively at a query point.
  const MatrixXd q = Gaussian(4, 5, 6);
  const MatrixXd f0q = Gaussian(4, 3, 7);
  absl::StatusOr<MatrixXd> a = m->PredictLogits(q);
  absl::StatusOr<MatrixXd> b = m->PredictLogits(q, f0q);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LE(MaxAbs(*b - *a - f0q), 1e-14 * (1 + MaxAbs(*a)));
}

// Permuting the training points changes nothing (docs/model-contract.md's formulas are
// permutation-equivariant). Tolerance: different summation orders in the
// GEMMs and the factorization, amplified by the conditioning of the solve:
// 1e-10 relative for these well-conditioned problems.
TEST(Invariance, PermutingTrainingPoints) {
  const TrainingData data = Blobs(50, 8);
  std::vector<int> perm(50);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937_64(9));
  TrainingData shuffled;
  shuffled.features.resize(50, 5);
  for (int i = 0; i < 50; ++i) {
    shuffled.features.row(i) = data.features.row(perm[i]);
    shuffled.labels.push_back(data.labels[perm[i]]);
  }
  const MatrixXd q = Gaussian(6, 5, 10) * 2.0;
  for (const ModelSpec& spec : {Spec2a(), Spec2b(), Spec2c()}) {
    auto a = MustFit(spec, data);
    auto b = MustFit(spec, shuffled);
    ASSERT_TRUE(a && b);
    absl::StatusOr<Prediction> pa = a->Predict(q);
    absl::StatusOr<Prediction> pb = b->Predict(q);
    ASSERT_TRUE(pa.ok() && pb.ok());
    EXPECT_LE(MaxAbs(pa->logits - pb->logits), 1e-10 * (1 + MaxAbs(pa->logits)))
        << RegimeName(a->Info().regime);
    EXPECT_EQ(pa->labels, pb->labels);
  }
}

// Relabeling the classes permutes the outputs' columns.
TEST(Invariance, RelabelingClassesPermutesOutputs) {
  const TrainingData data = Blobs(45, 11);
  const std::vector<int> sigma = {2, 0, 1};  // class k -> sigma[k]
  TrainingData relabeled = data;
  for (int& k : relabeled.labels) k = sigma[k];
  const MatrixXd q = Gaussian(5, 5, 12);
  for (ModelSpec spec : {Spec2a(), Spec2b(), Spec2c()}) {
    spec.class_names.clear();
    auto a = MustFit(spec, data);
    auto b = MustFit(spec, relabeled);
    ASSERT_TRUE(a && b);
    absl::StatusOr<Prediction> pa = a->Predict(q);
    absl::StatusOr<Prediction> pb = b->Predict(q);
    ASSERT_TRUE(pa.ok() && pb.ok());
    for (int k = 0; k < 3; ++k) {
      // Same tolerance origin as above (the class blocks are solved jointly
      // in 2a, so the summation order differs).
      EXPECT_LE(MaxAbs(pa->logits.col(k) - pb->logits.col(sigma[k])),
                1e-10 * (1 + MaxAbs(pa->logits)));
    }
    for (int i = 0; i < 5; ++i) EXPECT_EQ(sigma[pa->labels[i]], pb->labels[i]);
  }
}

// Predict asks its progress before each block of query rows
// (core/model/model.cc QueryBlockRows: ~2e9 flops each): N = 1000 training
// rows of d = 1000 give blocks of 2e9 / (1000 (2 d + 64)) = 968 rows, so
// 1100 query rows take 2 blocks.
TEST(Predict, CancelledByProgressBetweenBlocks) {
  TrainingData data;
  data.features = Gaussian(1000, 1000, 21);
  for (int i = 0; i < 1000; ++i) data.labels.push_back(i % 3);
  ModelSpec spec = Spec2b();
  spec.kernel.depth = 1;
  const auto m = MustFit(spec, data);
  const MatrixXd q = Gaussian(1100, 1000, 22);
  for (int allow : {0, 1}) {
    int calls = 0;
    absl::StatusOr<Prediction> p =
        m->Predict(q, [&](double, const char*) { return calls++ < allow; });
    EXPECT_EQ(p.status().code(), absl::StatusCode::kCancelled) << allow;
    EXPECT_EQ(calls, allow + 1);
  }
  std::vector<double> fractions;
  absl::StatusOr<Prediction> p = m->Predict(q, [&](double f, const char*) {
    fractions.push_back(f);
    return true;
  });
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(fractions.size(), 2u);
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
  // The same partition without a progress function: the same bits.
  absl::StatusOr<Prediction> plain = m->Predict(q);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(p->logits, plain->logits);
  // Another partition (two calls) changes rounding only: each row's kernel
  // values are the same formulas; products of length N = 1000 differ by at
  // most ~N eps relative.
  absl::StatusOr<Prediction> head = m->Predict(q.topRows(550));
  absl::StatusOr<Prediction> tail = m->Predict(q.bottomRows(550));
  ASSERT_TRUE(head.ok() && tail.ok());
  MatrixXd joined(1100, plain->logits.cols());
  joined << head->logits, tail->logits;
  EXPECT_LE((joined - plain->logits).cwiseAbs().maxCoeff(),
            1000 * std::numeric_limits<double>::epsilon() *
                (1 + plain->logits.cwiseAbs().maxCoeff()));
}

TEST(Fit, CancelledByProgress) {
  const TrainingData data = Blobs(40, 13);
  for (const ModelSpec& spec : {Spec2a(), Spec2b()}) {
    for (int allow : {0, 1}) {
      FitOptions fo;
      int calls = 0;
      std::vector<double> fractions;
      fo.progress = [&](double f, const char*) {
        fractions.push_back(f);
        return calls++ < allow;
      };
      absl::StatusOr<std::unique_ptr<FittedModel>> m = FittedModel::Fit(spec, data, fo);
      EXPECT_EQ(m.status().code(), absl::StatusCode::kCancelled);
      for (double f : fractions) {
        EXPECT_GE(f, 0);
        EXPECT_LE(f, 1);
      }
    }
    // With a progress function that never cancels, fractions are monotone-ish
    // in [0, 1] and the fit succeeds.
    FitOptions fo;
    std::vector<double> fractions;
    fo.progress = [&](double f, const char*) {
      fractions.push_back(f);
      return true;
    };
    ASSERT_TRUE(FittedModel::Fit(spec, data, fo).ok());
    ASSERT_FALSE(fractions.empty());
    EXPECT_EQ(fractions.back(), 1.0);
  }
}

// ------------------------------------------------------------ serialization

void ExpectSameModel(const FittedModel& a, const FittedModel& b, const MatrixXd& q) {
  absl::StatusOr<Prediction> pa = a.Predict(q);
  absl::StatusOr<Prediction> pb = b.Predict(q);
  ASSERT_TRUE(pa.ok() && pb.ok());
  // Bit for bit.
  ASSERT_EQ(pa->logits.size(), pb->logits.size());
  EXPECT_EQ(std::memcmp(pa->logits.data(), pb->logits.data(),
                        sizeof(double) * pa->logits.size()),
            0);
  EXPECT_EQ(std::memcmp(pa->probabilities.data(), pb->probabilities.data(),
                        sizeof(double) * pa->probabilities.size()),
            0);
  EXPECT_EQ(pa->labels, pb->labels);
  const FittedModelInfo ra = a.Info();
  const FittedModelInfo rb = b.Info();
  EXPECT_EQ(ra.regime, rb.regime);
  EXPECT_EQ(ra.lambda, rb.lambda);
  EXPECT_EQ(ra.label_smoothing, rb.label_smoothing);
  EXPECT_EQ(ra.num_classes, rb.num_classes);
  EXPECT_EQ(ra.spec.class_names, rb.spec.class_names);
  EXPECT_EQ(ra.spec.kernel.activation, rb.spec.kernel.activation);
  EXPECT_EQ(ra.spec.kernel.depth, rb.spec.kernel.depth);
  EXPECT_EQ(ra.spec.kernel.weight_variance, rb.spec.kernel.weight_variance);
  EXPECT_EQ(ra.spec.kernel.bias_variance, rb.spec.kernel.bias_variance);
  EXPECT_EQ(ra.spec.training.loss, rb.spec.training.loss);
  EXPECT_EQ(ra.spec.training.regularization, rb.spec.training.regularization);
  EXPECT_EQ(ra.spec.training.label_smoothing, rb.spec.training.label_smoothing);
  EXPECT_EQ(ra.spec.preprocessing.standardize, rb.spec.preprocessing.standardize);
  EXPECT_EQ(ra.spec.preprocessing.normalize_rows, rb.spec.preprocessing.normalize_rows);
  const FitStats sa = a.Info().stats;
  const FitStats sb = b.Info().stats;
  EXPECT_EQ(sa.fit_seconds, sb.fit_seconds);
  EXPECT_EQ(sa.solver_iterations, sb.solver_iterations);
  EXPECT_EQ(sa.cg_iterations, sb.cg_iterations);
  EXPECT_EQ(sa.fixed_point_residual, sb.fixed_point_residual);
  EXPECT_EQ(sa.train_accuracy, sb.train_accuracy);
  EXPECT_EQ(sa.train_nll, sb.train_nll);
  EXPECT_EQ(sa.jitter, sb.jitter);
  EXPECT_EQ(sa.condition_estimate, sb.condition_estimate);
  EXPECT_EQ(ModelInternals::Of(a).created_unix_ms, ModelInternals::Of(b).created_unix_ms);
  EXPECT_EQ(ModelInternals::Of(a).x_train, ModelInternals::Of(b).x_train);
  EXPECT_EQ(ModelInternals::Of(a).problem.targets, ModelInternals::Of(b).problem.targets);
  EXPECT_EQ(ModelInternals::Of(a).initial_train_outputs, ModelInternals::Of(b).initial_train_outputs);
  EXPECT_EQ(ModelInternals::Of(a).train_logits, ModelInternals::Of(b).train_logits);
  EXPECT_EQ(ModelInternals::Of(a).dual, ModelInternals::Of(b).dual);
}

TEST(Serialize, RoundTripIsBitExact) {
  const TrainingData data = Blobs(40, 14);
  const MatrixXd q = Gaussian(7, 5, 15) * 3.0;
  FitOptions with_f0;
  with_f0.initial_train_outputs = Gaussian(40, 3, 16);
  for (const ModelSpec& spec : {Spec2a(), Spec2b(), Spec2c()}) {
    for (const FitOptions* fo : std::vector<const FitOptions*>{&with_f0, nullptr}) {
      auto m = MustFit(spec, data, fo ? *fo : FitOptions{});
      ASSERT_TRUE(m);
      const std::string bytes = m->Serialize();
      EXPECT_EQ(bytes.compare(0, 8, "NTKMODEL"), 0);
      absl::StatusOr<std::unique_ptr<FittedModel>> back = FittedModel::Deserialize(bytes);
      ASSERT_TRUE(back.ok()) << back.status();
      ExpectSameModel(*m, **back, q);
      // Serializing the loaded model gives the same bytes.
      EXPECT_EQ((*back)->Serialize(), bytes);
    }
  }
}

void PutU32(std::string* s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*s)[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

TEST(Serialize, DamagedBytes) {
  auto m = MustFit(Spec2a(), Blobs(20, 17));
  ASSERT_TRUE(m);
  const std::string bytes = m->Serialize();
  auto code = [](const std::string& b) { return FittedModel::Deserialize(b).status().code(); };
  EXPECT_EQ(code(""), absl::StatusCode::kDataLoss);
  EXPECT_EQ(code("NTKMODEL"), absl::StatusCode::kDataLoss);
  // Truncation at many lengths, including inside the header and the CRC.
  for (size_t len : {size_t{1}, size_t{7}, size_t{12}, size_t{19}, size_t{20}, size_t{23},
                     bytes.size() / 2, bytes.size() - 5, bytes.size() - 1}) {
    EXPECT_EQ(code(bytes.substr(0, len)), absl::StatusCode::kDataLoss) << len;
  }
  EXPECT_EQ(code(bytes + "x"), absl::StatusCode::kDataLoss);
  // Bad magic.
  std::string bad = bytes;
  bad[0] = 'X';
  absl::Status st = FittedModel::Deserialize(bad).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(st.message()).find("magic"), std::string::npos);
  // Every single flipped bit in a sample of positions (all header bytes,
  // then a stride through payload and CRC) is detected.
  std::vector<size_t> positions;
  for (size_t i = 0; i < 24; ++i) positions.push_back(i);
  for (size_t i = 24; i < bytes.size(); i += 97) positions.push_back(i);
  positions.push_back(bytes.size() - 1);
  for (size_t pos : positions) {
    for (int bit : {0, 5}) {
      std::string flipped = bytes;
      flipped[pos] = static_cast<char>(flipped[pos] ^ (1 << bit));
      const absl::StatusCode c = code(flipped);
      EXPECT_EQ(c, absl::StatusCode::kDataLoss) << "byte " << pos << " bit " << bit;
    }
  }
  // A newer version with a valid checksum: UNIMPLEMENTED.
  std::string newer = bytes;
  PutU32(&newer, 8, kModelFormatVersion + 1);
  PutU32(&newer, newer.size() - 4, Crc32c(newer.data(), newer.size() - 4));
  st = FittedModel::Deserialize(newer).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented) << st;
  // CRC-valid but inconsistent content (class count vs targets): DATA_LOSS.
  // num_classes sits after kernel (4+4+8+8), training (4+8+8), preprocessing (2).
  std::string inconsistent = bytes;
  PutU32(&inconsistent, kModelHeaderBytes + 24 + 20 + 2, 4);
  PutU32(&inconsistent, inconsistent.size() - 4,
         Crc32c(inconsistent.data(), inconsistent.size() - 4));
  EXPECT_EQ(code(inconsistent), absl::StatusCode::kDataLoss);
}

TEST(Serialize, Crc32cKnownValue) {
  // RFC 3720 test vector: CRC-32C of "123456789" is 0xE3069283.
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(internal::Crc32cPortableForTesting("123456789", 9), 0xE3069283u);
}
}  // namespace
}  // namespace ntk
