// ntk/core/model/serialize.cc: FittedModel::Serialize / Deserialize in the format
// documented in core/model/serialize.h.
//
// Why one file of ~510 lines: the writer and the reader of each format
// version (1 exact, 2-3 Nystrom, 4 selection report, 5 Nystrom 2a,
// 6 evidence) sit side by side so that a field added to one cannot be
// forgotten in the other; splitting them by version would separate exactly
// what must change together.
#include "core/model/serialize.h"

#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/model/model.h"
#include "core/model/model_state.h"

namespace ntk {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the block copies below write the little-endian format as memory");

namespace {

using Eigen::Index;
using Eigen::MatrixXd;

using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Integers and doubles are written as their little-endian memory (see the
// static_assert above): one append per value, one per matrix.
class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void Raw(const void* p, size_t n) {
    if (n > 0) out_.append(static_cast<const char*>(p), n);  // p may be null when n == 0
  }
  void I32(int32_t v) { U32(static_cast<uint32_t>(v)); }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void F64(double v) { Raw(&v, 8); }
  void Str(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void Vec(const Eigen::RowVectorXd& v) {
    U64(static_cast<uint64_t>(v.size()));
    Raw(v.data(), 8 * static_cast<size_t>(v.size()));
  }
  // Row-major (the format's order): one transposing copy, one append.
  void Mat(const MatrixXd& m) {
    U64(static_cast<uint64_t>(m.rows()));
    U64(static_cast<uint64_t>(m.cols()));
    const RowMajorMatrix rm = m;
    Raw(rm.data(), 8 * static_cast<size_t>(rm.size()));
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), end_(p + n) {}
  bool ok() const { return ok_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  uint8_t U8() {
    if (!Need(1)) return 0;
    return static_cast<uint8_t>(*p_++);
  }
  uint32_t U32() {
    uint32_t v = 0;
    Raw(&v, 4);
    return v;
  }
  uint64_t U64() {
    uint64_t v = 0;
    Raw(&v, 8);
    return v;
  }
  // Copies n bytes out (zeros and !ok() when fewer are left).
  void Raw(void* out, size_t n) {
    if (!Need(n)) return;
    // n == 0 comes with out == nullptr (the data of an empty Eigen matrix),
    // which memcpy may not be given even for 0 bytes (UBSan, ./ntk.sh ci-checks).
    if (n > 0) std::memcpy(out, p_, n);
    p_ += n;
  }
  int32_t I32() { return static_cast<int32_t>(U32()); }
  int64_t I64() { return static_cast<int64_t>(U64()); }
  double F64() {
    double v = 0;
    Raw(&v, 8);
    return v;
  }
  std::string Str() {
    const uint32_t n = U32();
    if (!Need(n)) return {};
    std::string s(p_, n);
    p_ += n;
    return s;
  }
  Eigen::RowVectorXd Vec() {
    const uint64_t n = U64();
    if (!ok_ || n > remaining() / 8) {
      ok_ = false;
      return {};
    }
    Eigen::RowVectorXd v(static_cast<Index>(n));
    Raw(v.data(), 8 * n);
    return v;
  }
  MatrixXd Mat() {
    const uint64_t rows = U64();
    const uint64_t cols = U64();
    // Every matrix of a model is 0 x 0 or has both dimensions >= 1, so its
    // size is bounded by the bytes left. (A 0-column matrix of 2^62 rows
    // passed a size-only check: the loop below spun for hours, and the
    // row norms of a 2^31 x 0 x_train allocated 16 GB.)
    const bool empty = rows == 0 || cols == 0;
    if (!ok_ || (empty && (rows != 0 || cols != 0)) ||
        (!empty && rows > remaining() / 8 / cols)) {
      ok_ = false;
      return {};
    }
    RowMajorMatrix m(static_cast<Index>(rows), static_cast<Index>(cols));
    Raw(m.data(), 8 * static_cast<size_t>(m.size()));
    return m;
  }

 private:
  bool Need(size_t n) {
    if (!ok_ || remaining() < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

uint32_t RegimeCode(Regime r) {
  switch (r) {
    case Regime::kRegularizedCE:
      return 0;
    case Regime::kUnregularizedCE:
      return 1;
    case Regime::kSquared:
      return 2;
  }
  return 0;
}

absl::Status Corrupt(const std::string& what) {
  return absl::DataLossError(absl::StrCat("model bytes: ", what));
}

// Bytes of one selection row in the file (serialize.h, version 4).
constexpr size_t kSelectionRowBytes = 4 + 4 + 8 + 8 + 4 + 8 + 8 + 4 * 8;

// Version 6 appends the criterion and each row's log evidence.
void WriteSelection(const SelectionReport& report, uint32_t version, Writer* w) {
  w->U32(static_cast<uint32_t>(report.folds));
  w->U32(static_cast<uint32_t>(report.chosen));
  w->F64(report.seconds);
  w->U32(static_cast<uint32_t>(report.rows.size()));
  for (const SelectionRow& row : report.rows) {
    w->U32(static_cast<uint32_t>(row.kernel.activation));
    w->I32(row.kernel.depth);
    w->F64(row.kernel.weight_variance);
    w->F64(row.kernel.bias_variance);
    w->U32(static_cast<uint32_t>(row.training.loss));
    w->F64(row.training.regularization.value_or(0));
    w->F64(row.training.label_smoothing.value_or(0));
    w->F64(row.mean_nll);
    w->F64(row.std_nll);
    w->F64(row.mean_accuracy);
    w->F64(row.mean_ece);
  }
  if (version >= 6) {
    w->U32(static_cast<uint32_t>(report.criterion));
    for (const SelectionRow& row : report.rows) w->F64(row.log_evidence);
  }
}

// The selection block; DATA_LOSS for unknown enums or a chosen index out
// of range (a CRC-valid file written by something else).
absl::StatusOr<SelectionReport> ReadSelection(uint32_t version, Reader* r) {
  SelectionReport report;
  report.folds = static_cast<int>(r->U32());
  const uint32_t chosen = r->U32();
  report.seconds = r->F64();
  const uint32_t rows = r->U32();
  if (!r->ok() || rows > r->remaining() / kSelectionRowBytes) {
    return Corrupt("bad selection row count");
  }
  if (chosen >= rows) return Corrupt("selection: chosen index out of range");
  report.chosen = static_cast<int>(chosen);
  for (uint32_t i = 0; i < rows; ++i) {
    SelectionRow row;
    const uint32_t activation = r->U32();
    row.kernel.depth = r->I32();
    row.kernel.weight_variance = r->F64();
    row.kernel.bias_variance = r->F64();
    const uint32_t loss = r->U32();
    row.training.regularization = r->F64();
    row.training.label_smoothing = r->F64();
    row.mean_nll = r->F64();
    row.std_nll = r->F64();
    row.mean_accuracy = r->F64();
    row.mean_ece = r->F64();
    if (activation != static_cast<uint32_t>(Activation::kRelu) &&
        activation != static_cast<uint32_t>(Activation::kErf)) {
      return Corrupt(absl::StrCat("selection: unknown activation ", activation));
    }
    if (loss != static_cast<uint32_t>(Loss::kCrossEntropy) &&
        loss != static_cast<uint32_t>(Loss::kSquared)) {
      return Corrupt(absl::StrCat("selection: unknown loss ", loss));
    }
    row.kernel.activation = static_cast<Activation>(activation);
    row.training.loss = static_cast<Loss>(loss);
    report.rows.push_back(row);
  }
  if (version >= 6) {
    const uint32_t criterion = r->U32();
    if (criterion != static_cast<uint32_t>(SelectionCriterion::kCrossValidation) &&
        criterion != static_cast<uint32_t>(SelectionCriterion::kLaplaceEvidence)) {
      return Corrupt(absl::StrCat("selection: unknown criterion ", criterion));
    }
    report.criterion = static_cast<SelectionCriterion>(criterion);
    for (SelectionRow& row : report.rows) row.log_evidence = r->F64();
  }
  return report;
}

}  // namespace

std::string FittedModel::Serialize() const {
  const State& s = *state_;
  Writer w;
  const ModelSpec& spec = s.problem.spec;
  // Header (length patched below), payload, CRC in one buffer.
  w.bytes().reserve(kModelHeaderBytes + 4 + 256 +
                    8 * static_cast<size_t>(s.x_train.size() + s.problem.targets.size() +
                                            s.initial_train_outputs.size() +
                                            s.train_logits.size() + s.dual.size() +
                                            s.preprocessor.mean.size() +
                                            s.preprocessor.scale.size()));
  w.Raw(kModelMagic, 8);
  // Exact models keep version 1 (bit-identical to earlier builds' files);
  // Nystrom models need version 3, models with a selection report 4.
  // Nystrom 2a models need 5 (their PredictDistribution summaries), models
  // selected by the Laplace evidence 6 (the report's criterion and evidence).
  const bool nystrom_2a = s.is_nystrom() && s.problem.regime == Regime::kRegularizedCE;
  const bool evidence = s.selection.has_value() &&
                        s.selection->criterion == SelectionCriterion::kLaplaceEvidence;
  const uint32_t version = evidence                 ? 6
                           : nystrom_2a             ? 5
                           : s.selection.has_value() ? 4
                           : s.is_nystrom()          ? 3
                                                     : 1;
  w.U32(version);
  w.U64(0);
  w.U32(static_cast<uint32_t>(spec.kernel.activation));
  w.I32(spec.kernel.depth);
  w.F64(spec.kernel.weight_variance);
  w.F64(spec.kernel.bias_variance);
  w.U32(static_cast<uint32_t>(spec.training.loss));
  w.F64(spec.training.regularization.value_or(s.problem.lambda));
  w.F64(spec.training.label_smoothing.value_or(s.problem.label_smoothing));
  w.U8(spec.preprocessing.standardize ? 1 : 0);
  w.U8(spec.preprocessing.normalize_rows ? 1 : 0);
  w.I32(spec.num_classes);
  w.U32(static_cast<uint32_t>(spec.class_names.size()));
  for (const std::string& name : spec.class_names) w.Str(name);
  w.U32(RegimeCode(s.problem.regime));
  w.F64(s.problem.lambda);
  w.F64(s.problem.label_smoothing);
  w.U8(s.preprocessor.spec.standardize ? 1 : 0);
  w.U8(s.preprocessor.spec.normalize_rows ? 1 : 0);
  w.Vec(s.preprocessor.mean);
  w.Vec(s.preprocessor.scale);
  w.Mat(s.x_train);
  w.Mat(s.problem.targets);
  w.Mat(s.initial_train_outputs);
  w.Mat(s.train_logits);
  w.Mat(s.dual);
  w.F64(s.stats.fit_seconds);
  w.I32(s.stats.solver_iterations);
  w.I32(s.stats.cg_iterations);
  w.F64(s.stats.fixed_point_residual);
  w.F64(s.stats.train_accuracy);
  w.F64(s.stats.train_nll);
  w.F64(s.stats.jitter);
  w.F64(s.stats.condition_estimate);
  w.I64(s.created_unix_ms);
  if (version >= 2) {
    const ApproximationSpec& a = spec.approximation;
    w.U32(static_cast<uint32_t>(a.kind));
    w.I32(a.num_centers);
    w.U64(a.seed);
    w.I64(s.nystrom.num_train);
    w.Mat(s.nystrom.centers);
    w.Mat(s.nystrom.beta);
  }
  if (version >= 3) {
    w.Mat(s.nystrom.gram);
    w.Mat(s.nystrom.nngp_theta);
    w.Mat(s.nystrom.mean_rhs);
  }
  if (version == 4) WriteSelection(*s.selection, version, &w);
  if (version >= 5) {
    w.U8(s.selection.has_value() ? 1 : 0);
    if (s.selection.has_value()) WriteSelection(*s.selection, version, &w);
    w.U8(static_cast<uint8_t>(s.nystrom.summary_state));
    w.I64(s.nystrom.summary_cap_bytes);
    w.Mat(s.nystrom.newton_hessian);
    w.Mat(s.nystrom.newton_cross);
  }
  std::string& bytes = w.bytes();
  const uint64_t payload = bytes.size() - kModelHeaderBytes;
  std::memcpy(&bytes[12], &payload, 8);
  w.U32(Crc32c(bytes.data(), bytes.size()));
  return std::move(bytes);
}

absl::StatusOr<std::unique_ptr<FittedModel>> FittedModel::Deserialize(
    const std::string& bytes) {
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kModelMagic, 8) != 0) {
    return Corrupt(bytes.size() < 8 ? "truncated (shorter than the magic)"
                                    : "bad magic (not an NTKMODEL file)");
  }
  if (bytes.size() < kModelHeaderBytes + 4) return Corrupt("truncated header");
  Reader header(bytes.data() + 8, kModelHeaderBytes - 8);
  const uint32_t version = header.U32();
  const uint64_t length = header.U64();
  if (length != bytes.size() - kModelHeaderBytes - 4) {
    return Corrupt(absl::StrCat("length mismatch: header says ", length,
                                " payload bytes, file has ",
                                bytes.size() - kModelHeaderBytes - 4,
                                " (truncated or trailing bytes)"));
  }
  Reader trailer(bytes.data() + bytes.size() - 4, 4);
  const uint32_t stored_crc = trailer.U32();
  const uint32_t crc = Crc32c(bytes.data(), bytes.size() - 4);
  if (crc != stored_crc) {
    return Corrupt(absl::StrCat("checksum mismatch (CRC-32C stored ", stored_crc,
                                ", computed ", crc, ")"));
  }
  if (version > kModelFormatVersion) {
    return absl::UnimplementedError(absl::StrCat(
        "model bytes: format version ", version, " is newer than this build (",
        kModelFormatVersion, "); upgrade the server"));
  }
  if (version == 0) return Corrupt("format version 0 is invalid");

  Reader r(bytes.data() + kModelHeaderBytes, length);
  auto state = std::make_unique<State>();
  TrainingProblem& rs = state->problem;
  ModelSpec& spec = rs.spec;
  const uint32_t activation = r.U32();
  spec.kernel.depth = r.I32();
  spec.kernel.weight_variance = r.F64();
  spec.kernel.bias_variance = r.F64();
  const uint32_t loss = r.U32();
  spec.training.regularization = r.F64();
  spec.training.label_smoothing = r.F64();
  spec.preprocessing.standardize = r.U8() != 0;
  spec.preprocessing.normalize_rows = r.U8() != 0;
  spec.num_classes = r.I32();
  const uint32_t names = r.U32();
  if (!r.ok() || names > r.remaining() / 4) return Corrupt("bad class name count");
  for (uint32_t i = 0; i < names; ++i) spec.class_names.push_back(r.Str());
  const uint32_t regime = r.U32();
  rs.lambda = r.F64();
  rs.label_smoothing = r.F64();
  rs.num_classes = spec.num_classes;
  state->preprocessor.spec.standardize = r.U8() != 0;
  state->preprocessor.spec.normalize_rows = r.U8() != 0;
  state->preprocessor.mean = r.Vec();
  state->preprocessor.scale = r.Vec();
  state->x_train = r.Mat();
  state->x_train_sq_norms = state->x_train.rowwise().squaredNorm();
  state->problem.targets = r.Mat();
  state->initial_train_outputs = r.Mat();
  state->train_logits = r.Mat();
  state->dual = r.Mat();
  FitStats& st = state->stats;
  st.fit_seconds = r.F64();
  st.solver_iterations = r.I32();
  st.cg_iterations = r.I32();
  st.fixed_point_residual = r.F64();
  st.train_accuracy = r.F64();
  st.train_nll = r.F64();
  st.jitter = r.F64();
  st.condition_estimate = r.F64();
  state->created_unix_ms = r.I64();
  uint32_t approximation = static_cast<uint32_t>(ApproximationKind::kExactKernel);
  FittedModel::State::Nystrom& ny = state->nystrom;
  if (version >= 2) {
    approximation = r.U32();
    spec.approximation.num_centers = r.I32();
    spec.approximation.seed = r.U64();
    ny.num_train = r.I64();
    ny.centers = r.Mat();
    ny.centers_sq_norms = ny.centers.rowwise().squaredNorm();
    ny.beta = r.Mat();
  }
  if (version >= 3) {
    ny.gram = r.Mat();
    ny.nngp_theta = r.Mat();
    ny.mean_rhs = r.Mat();
  }
  const bool has_selection = version == 4 || (version >= 5 && r.U8() != 0);
  if (has_selection) {
    absl::StatusOr<SelectionReport> selection = ReadSelection(version, &r);
    if (!selection.ok()) return selection.status();
    state->selection = *std::move(selection);
  }
  using SummaryState = FittedModel::State::Nystrom::SummaryState;
  uint8_t summary_state = static_cast<uint8_t>(SummaryState::kOldFormat);
  if (version >= 5) {
    summary_state = r.U8();
    ny.summary_cap_bytes = r.I64();
    ny.newton_hessian = r.Mat();
    ny.newton_cross = r.Mat();
  }
  if (!r.ok()) return Corrupt("payload truncated");
  if (r.remaining() != 0) return Corrupt("trailing bytes in the payload");

  // Enums and shapes (a CRC-valid file written by something else).
  if (activation != static_cast<uint32_t>(Activation::kRelu) &&
      activation != static_cast<uint32_t>(Activation::kErf)) {
    return Corrupt(absl::StrCat("unknown activation ", activation));
  }
  spec.kernel.activation = static_cast<Activation>(activation);
  if (loss != static_cast<uint32_t>(Loss::kCrossEntropy) &&
      loss != static_cast<uint32_t>(Loss::kSquared)) {
    return Corrupt(absl::StrCat("unknown loss ", loss));
  }
  spec.training.loss = static_cast<Loss>(loss);
  if (regime > 2) return Corrupt(absl::StrCat("unknown regime ", regime));
  rs.regime = regime == 0   ? Regime::kRegularizedCE
              : regime == 1 ? Regime::kUnregularizedCE
                            : Regime::kSquared;
  rs.regime_reason = RestoredRegimeReason(rs.regime);
  if (summary_state > static_cast<uint8_t>(SummaryState::kInitialOutputs)) {
    return Corrupt(absl::StrCat("unknown summary state ", static_cast<int>(summary_state)));
  }
  // Files before version 5 have no 2a summaries; the state only matters
  // for Nystrom 2a models (kKept otherwise).
  ny.summary_state = static_cast<SummaryState>(summary_state);
  if (rs.regime != Regime::kRegularizedCE) ny.summary_state = SummaryState::kKept;
  if (approximation != static_cast<uint32_t>(ApproximationKind::kExactKernel) &&
      approximation != static_cast<uint32_t>(ApproximationKind::kNystrom)) {
    return Corrupt(absl::StrCat("unknown approximation kind ", approximation));
  }
  spec.approximation.kind = static_cast<ApproximationKind>(approximation);
  if (!ValidateKernelSpec(spec.kernel).ok()) return Corrupt("invalid kernel spec");
  const Index d = state->num_features();
  const Index c = spec.num_classes;
  auto is = [](const MatrixXd& m, Index rows, Index cols) {
    return m.rows() == rows && m.cols() == cols;
  };
  if (spec.nystrom()) {
    // No training set; Z (m x d) and beta (m x C), 1 <= m <= N.
    const Index m = ny.centers.rows();
    if (ny.num_train < 1 || m < 1 || m > ny.num_train || d < 1 || c < 2 ||
        spec.approximation.num_centers != m || !is(ny.beta, m, c) ||
        !(ny.gram.size() == 0 || is(ny.gram, m, m)) ||
        ny.nngp_theta.size() != ny.gram.size() ||
        !(ny.nngp_theta.size() == 0 || is(ny.nngp_theta, m, m)) ||
        !(ny.mean_rhs.size() == 0 || (ny.gram.size() != 0 && is(ny.mean_rhs, m, c))) ||
        !((ny.newton_hessian.size() == 0 && ny.newton_cross.size() == 0 &&
           (rs.regime != Regime::kRegularizedCE ||
            ny.summary_state != SummaryState::kKept)) ||
          (rs.regime == Regime::kRegularizedCE && ny.summary_state == SummaryState::kKept &&
           is(ny.newton_hessian, m * c, m * c) && is(ny.newton_cross, m * c, m * c))) ||
        state->x_train.size() != 0 || state->problem.targets.size() != 0 ||
        state->train_logits.size() != 0 || state->dual.size() != 0 ||
        state->initial_train_outputs.size() != 0 ||
        !(spec.class_names.empty() || static_cast<Index>(spec.class_names.size()) == c)) {
      return Corrupt("inconsistent shapes");
    }
  }
  const Index n = spec.nystrom() ? ny.num_train : state->x_train.rows();
  if (!spec.nystrom() && (n < 1 || d < 1 || c < 2 || !is(state->problem.targets, n, c) ||
      !is(state->train_logits, n, c) || !is(state->dual, n, c) ||
      !(state->initial_train_outputs.size() == 0 ||
        is(state->initial_train_outputs, n, c)) ||
      !(spec.class_names.empty() || static_cast<Index>(spec.class_names.size()) == c))) {
    return Corrupt("inconsistent shapes");
  }
  if (state->preprocessor.spec.standardize &&
      (state->preprocessor.mean.size() != d || state->preprocessor.scale.size() != d)) {
    return Corrupt("inconsistent preprocessor");
  }
  return ModelInternals::Make(std::move(state));
}

}  // namespace ntk
