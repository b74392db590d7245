// tests/evidence_test.cc: the Laplace evidence (core/selection/evidence.h)
// and model selection by it (criterion LAPLACE_EVIDENCE,
// core/selection/selection.h; docs/model-contract.md "7. Model selection").
//
// References, each computed independently here:
//   - the log det term against the dense NC x NC matrix I + (Theta' (x) I) W
//     and its LU factorization (no class-wise factors, no matrix
//     determinant lemma): 1e-10 relative, rounding of two O(NC) ~ 100-row
//     factorizations of matrices with condition number < 1e4 (~1e-12);
//   - the whole evidence against the Laplace approximation done by brute
//     force in f-space: the mode of log p(y|f) + log N(f; 0, Theta/lambda
//     (x) I) by dense Newton, the Hessian of the negative log posterior by
//     central differences of its analytic gradient, and
//     log Z ~ log p(y|f^) + log N(f^; 0, K) + (NC/2) log 2 pi - 1/2 log det H
//     (R&W eq. 3.32). Tolerance 1e-6 relative: the difference Hessian's
//     error is ~h^2 * (third derivative) ~1e-10 per entry for h = 1e-5,
//     and the log det of a 12 x 12 matrix with condition < 1e3 amplifies it
//     to ~1e-8; the margin is 100x;
//   - selection: a plain loop (own kernels, a cold Newton solve per
//     candidate) gives the same evidences to 1e-8 relative (the 2a solves
//     stop at 1e-12 relative residual; the evidence's terms are O(N), so
//     its absolute error is ~1e-10, against values of ~ -25).
// Measured (this machine, 2026-12-08): log det 7.2e-16 relative, brute
// force 6.0e-11, plain loop 3.1e-13.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/distribution/linearized_solver.h"
#include "core/kernels/kernel.h"
#include "core/model/model.h"
#include "core/selection/evidence.h"
#include "core/selection/selection.h"
#include "core/training/solve.h"
#include "core/training/solvers.h"
#include "tests/testing/server_fixture.h"  // BlobsData
#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using ::testing::HasSubstr;
using Eigen::Index;
using Eigen::MatrixXd;
using Eigen::VectorXd;


// I + (Theta / lambda (x) I_C) W, class-major (row c * N + i).
MatrixXd DenseIPlusKW(const MatrixXd& theta, const MatrixXd& p, double lambda) {
  const Index n = theta.rows(), c = p.cols();
  MatrixXd k = MatrixXd::Zero(n * c, n * c), w = MatrixXd::Zero(n * c, n * c);
  for (Index a = 0; a < c; ++a) {
    k.block(a * n, a * n, n, n) = theta / lambda;
    for (Index b = 0; b < c; ++b) {
      for (Index i = 0; i < n; ++i) {
        w(a * n + i, b * n + i) = (a == b ? p(i, a) : 0.0) - p(i, a) * p(i, b);
      }
    }
  }
  return MatrixXd::Identity(n * c, n * c) + k * w;
}

double LogAbsDet(const MatrixXd& a) {
  const Eigen::PartialPivLU<MatrixXd> lu(a);
  return lu.matrixLU().diagonal().array().abs().log().sum();
}

MatrixXd Softmax(const MatrixXd& f) {
  MatrixXd p = (f.colwise() - f.rowwise().maxCoeff()).array().exp().matrix();
  p.array().colwise() /= p.rowwise().sum().array();
  return p;
}

TEST(LaplaceEvidenceTest, LogDetEqualsDenseDeterminant) {
  const MatrixXd x = testing::StdNormalMatrix(40, 5, 7);
  const MatrixXd theta = TrainKernels(testing::Spec(Activation::kRelu, 2, 2.0, 0.1), x).ntk;
  // Rows on the simplex, some nearly one-hot (tiny p: D_c^{1/2} ~ 0).
  MatrixXd logits = 3 * testing::StdNormalMatrix(40, 3, 8);
  logits(0, 1) = 40;
  const MatrixXd p = Softmax(logits);
  for (const double lambda : {0.01, 1.0}) {
    absl::StatusOr<double> fast = LaplaceLogDet(theta, p, lambda);
    ASSERT_TRUE(fast.ok()) << fast.status();
    const double dense = LogAbsDet(DenseIPlusKW(theta, p, lambda));
    EXPECT_NEAR(*fast, dense, 1e-10 * std::abs(dense)) << "lambda " << lambda;
    EXPECT_GT(dense, 1.0);  // not a trivial determinant
  }
  // Bad arguments are named.
  EXPECT_EQ(LaplaceLogDet(theta, p, 0.0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(LaplaceLogDet(theta, p.topRows(3), 1.0).status().message(), HasSubstr("p must"));
}

// The Laplace approximation of log p(y | X) by brute force in f-space.
double BruteForceLaplace(const MatrixXd& theta, const std::vector<int>& labels, int c,
                         double lambda) {
  const Index n = theta.rows(), nc = n * c;
  // K = Theta / lambda (x) I_C, class-major.
  MatrixXd k = MatrixXd::Zero(nc, nc);
  for (Index a = 0; a < c; ++a) k.block(a * n, a * n, n, n) = theta / lambda;
  const MatrixXd k_inv = k.inverse();
  const auto unpack = [&](const VectorXd& f) {
    MatrixXd m(n, c);
    for (Index a = 0; a < c; ++a) m.col(a) = f.segment(a * n, n);
    return m;
  };
  // Gradient of the negative log posterior: -(Y - P) + K^{-1} f.
  const auto gradient = [&](const VectorXd& f) {
    const MatrixXd p = Softmax(unpack(f));
    VectorXd g = k_inv * f;
    for (Index a = 0; a < c; ++a) {
      for (Index i = 0; i < n; ++i) g(a * n + i) += p(i, a) - (labels[size_t(i)] == a ? 1 : 0);
    }
    return g;
  };
  const auto hessian = [&](const VectorXd& f) {  // central differences
    const double h = 1e-5;
    MatrixXd hm(nc, nc);
    for (Index j = 0; j < nc; ++j) {
      VectorXd up = f, down = f;
      up(j) += h;
      down(j) -= h;
      hm.col(j) = (gradient(up) - gradient(down)) / (2 * h);
    }
    return MatrixXd(0.5 * (hm + hm.transpose()));
  };
  VectorXd f = VectorXd::Zero(nc);
  for (int it = 0; it < 50; ++it) f -= hessian(f).ldlt().solve(gradient(f));
  EXPECT_LT(gradient(f).lpNorm<Eigen::Infinity>(), 1e-10);
  const MatrixXd fm = unpack(f);
  double log_lik = 0;
  for (Index i = 0; i < n; ++i) {
    const double top = fm.row(i).maxCoeff();
    log_lik += fm(i, labels[size_t(i)]) - top - std::log((fm.row(i).array() - top).exp().sum());
  }
  const Eigen::LLT<MatrixXd> k_llt(k);
  const double log_det_k = 2 * MatrixXd(k_llt.matrixL()).diagonal().array().log().sum();
  const double log_prior = -0.5 * f.dot(k_inv * f) - 0.5 * log_det_k -
                           0.5 * static_cast<double>(nc) * std::log(2 * M_PI);
  const Eigen::LLT<MatrixXd> h_llt(hessian(f));
  const double log_det_h = 2 * MatrixXd(h_llt.matrixL()).diagonal().array().log().sum();
  return log_lik + log_prior + 0.5 * static_cast<double>(nc) * std::log(2 * M_PI) -
         0.5 * log_det_h;
}

// The evidence of `spec` fitted the plain way on `data` with `theta`: its
// own training problem and a cold 2a solve.
absl::StatusOr<LaplaceEvidence> EvidenceOfColdFit(const ModelSpec& spec, const TrainingData& data,
                                                  const MatrixXd& theta) {
  absl::StatusOr<TrainingProblem> p = DecideTrainingProblem(spec, data);
  if (!p.ok()) return p.status();
  absl::StatusOr<SolverSolution> sol = Solve(*p, theta);
  if (!sol.ok()) return sol.status();
  return ComputeLaplaceEvidence(*p, theta, sol->dual);
}

TEST(LaplaceEvidenceTest, EqualsTheLaplaceApproximationByBruteForce) {
  const TrainingData data = testing::BlobsData(5, 3, 3, 11);
  const KernelSpec spec = testing::Spec(Activation::kRelu, 1, 2.0, 0.1);
  const MatrixXd theta = TrainKernels(spec, data.features).ntk;
  for (const double lambda : {0.05, 0.5}) {
    ModelSpec s;
    s.kernel = spec;
    s.training.regularization = lambda;
    absl::StatusOr<LaplaceEvidence> e = EvidenceOfColdFit(s, data, theta);
    ASSERT_TRUE(e.ok()) << e.status();
    const double brute = BruteForceLaplace(theta, data.labels, 3, lambda);
    EXPECT_NEAR(e->log_evidence, brute, 1e-6 * std::abs(brute)) << "lambda " << lambda;
    EXPECT_NEAR(e->log_evidence, e->log_likelihood + e->log_prior - 0.5 * e->log_det, 1e-12);
  }
}

TEST(LaplaceEvidenceTest, RefusesWhatHasNoCategoricalLikelihood) {
  const TrainingData data = testing::BlobsData(30, 3, 3, 2);
  const MatrixXd theta = TrainKernels(testing::Spec(Activation::kRelu, 1, 2.0, 0.0),
                                      data.features).ntk;
  ModelSpec s;
  s.kernel.depth = 1;
  s.training.label_smoothing = 0.1;  // 2b: lambda defaults to 0
  absl::StatusOr<TrainingProblem> p = DecideTrainingProblem(s, data);
  ASSERT_TRUE(p.ok());
  const MatrixXd dual = MatrixXd::Zero(30, 3);
  EXPECT_THAT(ComputeLaplaceEvidence(*p, theta, dual).status().message(), HasSubstr("2a"));
  s.training.regularization = 0.1;  // 2a with smoothed targets
  p = DecideTrainingProblem(s, data);
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(ComputeLaplaceEvidence(*p, theta, dual).status().message(),
              HasSubstr("one-hot"));
}

ModelSpec BaseSpec() {
  ModelSpec s;
  s.kernel.depth = 1;
  s.preprocessing.standardize = true;
  return s;
}

SelectionOptions EvidenceGrid() {
  SelectionOptions o;
  o.criterion = SelectionCriterion::kLaplaceEvidence;
  o.depths = {1, 2};
  o.regularizations = {0.01, 0.1, 1.0};
  o.bias_variances = {0.0, 0.5};
  return o;
}

// Each candidate on all rows the plain way: its own kernels, a cold solve.
std::vector<double> PlainEvidences(const ModelSpec& base, const TrainingData& data,
                                   const SelectionOptions& o) {
  const MatrixXd x = Preprocessor::FitTo(base.preprocessing, data.features).Apply(data.features);
  TrainingData pre = data;
  pre.features = x;
  std::vector<double> out;
  for (const ModelSpec& spec : SelectionCandidates(base, data, o)) {
    absl::StatusOr<LaplaceEvidence> e =
        EvidenceOfColdFit(spec, pre, TrainKernels(spec.kernel, x).ntk);
    EXPECT_TRUE(e.ok()) << e.status();
    out.push_back(e.ok() ? e->log_evidence : std::numeric_limits<double>::quiet_NaN());
  }
  return out;
}

TEST(EvidenceSelectionTest, ChoosesTheArgmaxOfPlainEvidences) {
  const TrainingData data = testing::BlobsData(60, 4, 3, 2);
  const SelectionOptions o = EvidenceGrid();
  absl::StatusOr<SelectionReport> report = SelectModel(BaseSpec(), data, o);
  ASSERT_TRUE(report.ok()) << report.status();
  const std::vector<double> plain = PlainEvidences(BaseSpec(), data, o);
  ASSERT_EQ(report->rows.size(), plain.size());
  ASSERT_EQ(plain.size(), 12u);
  EXPECT_EQ(report->criterion, SelectionCriterion::kLaplaceEvidence);
  EXPECT_EQ(report->folds, 0);
  size_t argmax = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_NEAR(report->rows[i].log_evidence, plain[i], 1e-8 * std::abs(plain[i])) << i;
    EXPECT_TRUE(std::isnan(report->rows[i].mean_nll)) << i;  // no folds ran
    if (plain[i] > plain[argmax]) argmax = i;
  }
  EXPECT_EQ(report->chosen, static_cast<int>(argmax));
  const auto [lo, hi] = std::minmax_element(plain.begin(), plain.end());
  EXPECT_GT(*hi - *lo, 1.0);  // the grid spreads the evidence: a real choice
}

TEST(EvidenceSelectionTest, WithFoldsReportsTheSameCvBesideIt) {
  const TrainingData data = testing::BlobsData(60, 4, 3, 2);
  SelectionOptions both = EvidenceGrid();
  both.folds = 3;
  both.seed = 4;
  SelectionOptions cv = both;
  cv.criterion = SelectionCriterion::kCrossValidation;
  SelectionOptions only = EvidenceGrid();
  absl::StatusOr<SelectionReport> rb = SelectModel(BaseSpec(), data, both);
  absl::StatusOr<SelectionReport> rc = SelectModel(BaseSpec(), data, cv);
  absl::StatusOr<SelectionReport> ro = SelectModel(BaseSpec(), data, only);
  ASSERT_TRUE(rb.ok() && rc.ok() && ro.ok()) << rb.status() << rc.status() << ro.status();
  ASSERT_EQ(rb->rows.size(), rc->rows.size());
  for (size_t i = 0; i < rb->rows.size(); ++i) {
    EXPECT_EQ(rb->rows[i].mean_nll, rc->rows[i].mean_nll) << i;  // same work, same bits
    EXPECT_EQ(rb->rows[i].mean_ece, rc->rows[i].mean_ece) << i;
    EXPECT_EQ(rb->rows[i].log_evidence, ro->rows[i].log_evidence) << i;
    EXPECT_TRUE(std::isnan(rc->rows[i].log_evidence)) << i;
  }
  EXPECT_EQ(rb->chosen, ro->chosen);
  EXPECT_EQ(rb->folds, 3);
}

TEST(EvidenceSelectionTest, FitsTheChosenSpecAndPersistsTheReport) {
  const TrainingData data = testing::BlobsData(60, 4, 3, 2);
  const SelectionOptions o = EvidenceGrid();
  auto model = FitWithSelection(BaseSpec(), data, o);
  ASSERT_TRUE(model.ok()) << model.status();
  const SelectionReport r = *(*model)->Info().selection;
  const ModelSpec chosen = SelectionCandidates(BaseSpec(), data, o)[size_t(r.chosen)];
  auto plain = FittedModel::Fit(chosen, data);
  ASSERT_TRUE(plain.ok());
  const MatrixXd q = testing::StdNormalMatrix(5, 4, 8);
  EXPECT_TRUE((*model)->Predict(q)->probabilities == (*plain)->Predict(q)->probabilities);
  // Format version 6 keeps the criterion and every evidence.
  const std::string bytes = (*model)->Serialize();
  uint32_t version = 0;
  std::memcpy(&version, bytes.data() + 8, 4);
  EXPECT_EQ(version, 6u);
  auto loaded = FittedModel::Deserialize(bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const SelectionReport rl = *(*loaded)->Info().selection;
  EXPECT_EQ(rl.criterion, SelectionCriterion::kLaplaceEvidence);
  EXPECT_EQ(rl.chosen, r.chosen);
  ASSERT_EQ(rl.rows.size(), r.rows.size());
  for (size_t i = 0; i < rl.rows.size(); ++i) {
    EXPECT_EQ(rl.rows[i].log_evidence, r.rows[i].log_evidence) << i;
    EXPECT_TRUE(std::isnan(rl.rows[i].mean_nll)) << i;
  }
  EXPECT_TRUE((*loaded)->Predict(q)->probabilities == (*model)->Predict(q)->probabilities);
}

TEST(EvidenceSelectionTest, BadInputNamesTheField) {
  const TrainingData data = testing::BlobsData(60, 4, 3, 2);
  SelectionOptions o = EvidenceGrid();
  o.criterion = static_cast<SelectionCriterion>(7);
  absl::Status s = SelectModel(BaseSpec(), data, o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("selection.criterion: unknown value 7"));
  o = EvidenceGrid();
  o.regularizations = {0.0, 0.1};
  o.label_smoothings = {0.05};  // lambda 0: a 2b candidate
  s = SelectModel(BaseSpec(), data, o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("selection.criterion: LAPLACE_EVIDENCE needs every"));
  EXPECT_THAT(s.message(), HasSubstr("candidate 0"));
  o = EvidenceGrid();
  o.label_smoothings = {0.1};  // 2a, but smoothed targets
  s = SelectModel(BaseSpec(), data, o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("label_smoothing 0"));
  TrainingData soft = data;
  soft.targets = MatrixXd::Constant(60, 3, 1.0 / 3);
  soft.labels.clear();
  o = EvidenceGrid();
  s = SelectModel(BaseSpec(), soft, o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("soft targets"));
  o = EvidenceGrid();
  o.folds = 1;
  s = SelectModel(BaseSpec(), data, o).status();
  EXPECT_THAT(s.message(), HasSubstr("selection.folds"));
  o.criterion = SelectionCriterion::kCrossValidation;
  o.folds = 0;
  s = SelectModel(BaseSpec(), data, o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("selection.folds: must be at least 2"));
}

}  // namespace
}  // namespace ntk
