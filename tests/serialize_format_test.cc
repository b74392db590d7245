// Tests of core/model/serialize.h beyond the round trip (model_test.cc):
// the one CRC-32C (hardware and slicing-by-8 paths) against its bitwise
// definition, and the version 1 byte format written value by value, so
// that the block-copy writer and reader keep reading and writing the files
// of earlier builds. Comparisons are exact: the claims are bit-identity.
#include <cstdint>
#include <cstring>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "core/model/model.h"
#include "core/model/model_state.h"
#include "core/model/serialize.h"
#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using Eigen::MatrixXd;

// The bit-at-a-time definition (reflected 0x82F63B78), independent of the
// table and hardware paths.
uint32_t Crc32cBitwise(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

TEST(Serialize, Crc32cPathsAgreeWithTheDefinition) {
  std::mt19937_64 rng(7);
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{63},
                   size_t{1000}, size_t{4099}}) {
    std::string s(n, '\0');
    for (char& ch : s) ch = static_cast<char>(rng());
    const uint32_t want = Crc32cBitwise(s);
    EXPECT_EQ(Crc32c(s.data(), n), want) << n;
    EXPECT_EQ(internal::Crc32cPortableForTesting(s.data(), n), want) << n;
    // Continuation: the CRC of a split buffer is that of the whole.
    const size_t k = n / 3;
    EXPECT_EQ(Crc32c(s.data() + k, n - k, Crc32c(s.data(), k)), want) << n;
    EXPECT_EQ(internal::Crc32cPortableForTesting(
                  s.data() + k, n - k, internal::Crc32cPortableForTesting(s.data(), k)),
              want)
        << n;
  }
}

// The format of core/model/serialize.h, written here value by value (the
// way version 1 files were written before the block copies): Serialize
// must produce exactly these bytes and Deserialize must read them, so files
// written by earlier builds still load.
class ByteWriter {
 public:
  void U8(uint8_t v) { s_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) U8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void U64(uint64_t v) {
    for (int i = 0; i < 8; ++i) U8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void F64(double v) {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    U64(b);
  }
  void Vec(const Eigen::RowVectorXd& v) {
    U64(static_cast<uint64_t>(v.size()));
    for (Eigen::Index i = 0; i < v.size(); ++i) F64(v(i));
  }
  void Mat(const MatrixXd& m) {
    U64(static_cast<uint64_t>(m.rows()));
    U64(static_cast<uint64_t>(m.cols()));
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      for (Eigen::Index j = 0; j < m.cols(); ++j) F64(m(i, j));
  }
  std::string s_;
};

std::string VersionOneBytes(const FittedModel& m) {
  const FittedModel::State& s = ModelInternals::Of(m);
  const ModelSpec& spec = s.problem.spec;
  ByteWriter w;
  w.U32(static_cast<uint32_t>(spec.kernel.activation));
  w.U32(static_cast<uint32_t>(spec.kernel.depth));
  w.F64(spec.kernel.weight_variance);
  w.F64(spec.kernel.bias_variance);
  w.U32(static_cast<uint32_t>(spec.training.loss));
  w.F64(spec.training.regularization.value_or(s.problem.lambda));
  w.F64(spec.training.label_smoothing.value_or(s.problem.label_smoothing));
  w.U8(spec.preprocessing.standardize);
  w.U8(spec.preprocessing.normalize_rows);
  w.U32(static_cast<uint32_t>(spec.num_classes));
  w.U32(static_cast<uint32_t>(spec.class_names.size()));
  for (const std::string& name : spec.class_names) {
    w.U32(static_cast<uint32_t>(name.size()));
    w.s_ += name;
  }
  w.U32(s.problem.regime == Regime::kRegularizedCE ? 0
        : s.problem.regime == Regime::kUnregularizedCE ? 1 : 2);
  w.F64(s.problem.lambda);
  w.F64(s.problem.label_smoothing);
  w.U8(s.preprocessor.spec.standardize);
  w.U8(s.preprocessor.spec.normalize_rows);
  w.Vec(s.preprocessor.mean);
  w.Vec(s.preprocessor.scale);
  for (const MatrixXd* x : {&s.x_train, &s.problem.targets, &s.initial_train_outputs,
                            &s.train_logits, &s.dual}) {
    w.Mat(*x);
  }
  w.F64(s.stats.fit_seconds);
  w.U32(static_cast<uint32_t>(s.stats.solver_iterations));
  w.U32(static_cast<uint32_t>(s.stats.cg_iterations));
  for (double v : {s.stats.fixed_point_residual, s.stats.train_accuracy, s.stats.train_nll,
                   s.stats.jitter, s.stats.condition_estimate}) {
    w.F64(v);
  }
  w.U64(static_cast<uint64_t>(s.created_unix_ms));
  ByteWriter file;
  file.s_ = "NTKMODEL";
  file.U32(1);
  file.U64(w.s_.size());
  file.s_ += w.s_;
  file.U32(Crc32cBitwise(file.s_));
  return file.s_;
}

// One model per regime (2a with class names, 2b, 2c), fitted with F0.
TEST(Serialize, FormatUnchangedAndVersionOneFilesLoad) {
  TrainingData data;
  data.features = testing::StdNormalMatrix(30, 4, 18);
  for (int i = 0; i < 30; ++i) data.labels.push_back(i % 3);
  const MatrixXd q = testing::StdNormalMatrix(5, 4, 19);
  FitOptions with_f0;
  with_f0.initial_train_outputs = testing::StdNormalMatrix(30, 3, 20);
  ModelSpec s2a, s2b, s2c;
  s2a.training.regularization = 0.1;
  s2a.preprocessing.standardize = true;
  s2a.class_names = {"a", "bb", "ccc"};
  s2c.training.loss = Loss::kSquared;
  s2c.training.regularization = 0.01;
  for (const ModelSpec& spec : {s2a, s2b, s2c}) {
    absl::StatusOr<std::unique_ptr<FittedModel>> m = FittedModel::Fit(spec, data, with_f0);
    ASSERT_TRUE(m.ok()) << m.status();
    const std::string old_bytes = VersionOneBytes(**m);
    EXPECT_EQ((*m)->Serialize(), old_bytes);
    absl::StatusOr<std::unique_ptr<FittedModel>> back = FittedModel::Deserialize(old_bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ((*back)->Serialize(), old_bytes);
    absl::StatusOr<Prediction> a = (*m)->Predict(q), b = (*back)->Predict(q);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->logits, b->logits);
  }
}

}  // namespace
}  // namespace ntk
