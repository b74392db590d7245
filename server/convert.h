// ntk/server/convert.h: translation between the wire (ntk.v1 protos) and
// core/, with the checks that are the server's: wire facts (matrix sizes,
// encodings and enum values, proto/matrix_convert.h; required matrices
// present) and the configured limits (server/options.h). Everything about
// meaning -- column counts against a model, NaN/Inf, label ranges, spec
// values -- is core's (FittedModel::Fit / Predict / PredictDistribution
// return INVALID_ARGUMENT naming the field).
//
// Every error names the field by its wire name first, e.g.
//   INVALID_ARGUMENT "features.values: size 10 != rows*cols = 12"
//   INVALID_ARGUMENT "spec.kernel.activation: unknown value 7"
//   RESOURCE_EXHAUSTED "features.rows: 20000 exceeds --max_train_rows = 10000"
//
// Thread safety: pure functions.
#ifndef NTK_SERVER_CONVERT_H_
#define NTK_SERVER_CONVERT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include <Eigen/Dense>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/model/model.h"
#include "core/selection/selection.h"
#include "core/training/spec.h"
#include "proto/matrix_convert.h"
#include "proto/ntk/v1/ntk.pb.h"
#include "server/options.h"

namespace ntk::server {

// RESOURCE_EXHAUSTED "<field>: <value> exceeds --<flag> = <limit>" when
// limit > 0 and value > limit.
absl::Status CheckLimit(absl::string_view field, uint64_t value, int limit,
                        absl::string_view flag);

// 1-128 characters of [A-Za-z0-9._-], not starting with '.' (so no path
// separators, no "." or ".."). INVALID_ARGUMENT "<field>: ..." otherwise.
absl::Status ValidateModelId(absl::string_view id, absl::string_view field = "model_id");
// "m-<unix ms>-<16 hex digits>" (a valid id).
std::string GenerateModelId();

// Enum values known, limits on num_classes and class_names, wire defaults
// (depth 0 -> 1, weight_variance 0 -> 2). The values themselves are core's.
absl::StatusOr<ModelSpec> ModelSpecFromProto(const v1::ModelSpec& spec,
                                             const ServerOptions& limits);

// Limits on training shapes (RESOURCE_EXHAUSTED): features rows/cols,
// targets rows/cols, label count and label values (a label >= --max_classes
// implies too many classes). Rows are limited by --max_train_rows for exact
// models (the message suggests NYSTROM) and --max_nystrom_train_rows when
// spec.approximation.kind is NYSTROM. FitStream checks them as its rows
// accumulate.
absl::Status CheckTrainingShape(uint64_t rows, uint64_t cols, const v1::ModelSpec& spec,
                                const ServerOptions& limits);
absl::Status CheckTargetsShape(uint64_t rows, uint64_t cols, const v1::ModelSpec& spec,
                               const ServerOptions& limits);
absl::Status CheckLabelLimits(absl::Span<const int32_t> labels, size_t labels_before,
                              const v1::ModelSpec& spec, const ServerOptions& limits);

// Features, labels and targets of a Fit request: limits, then the matrices'
// wire facts, then copies into core's types.
absl::StatusOr<TrainingData> TrainingDataFromProto(const v1::FitRequest& request,
                                                   const ServerOptions& limits);

// Query features of Predict / PredictDistribution: --max_predict_rows,
// present (rows > 0), wire facts.
absl::StatusOr<Eigen::MatrixXd> QueryFeaturesFromProto(const v1::Matrix& features,
                                                       const ServerOptions& limits);

// Method a known value, num_samples within --max_num_samples.
absl::StatusOr<DistributionOptions> DistributionOptionsFromProto(
    const v1::PredictDistributionRequest& request, const ServerOptions& limits);

// The grid of FitRequest.selection (docs/api.md "Model selection"):
// lists copied (depths > INT_MAX become INT_MAX, which core refuses by
// name); the values themselves are core's (ValidateSelection,
// core/selection/selection.h).
SelectionOptions SelectionOptionsFromProto(const v1::ModelSelection& selection);
void SelectionReportToProto(const SelectionReport& report, v1::SelectionReport* out);

void ResolvedSpecToProto(const FittedModelInfo& resolved, v1::ModelSpec* out);
void ModelInfoToProto(const std::string& id, int64_t created_unix_ms,
                      const FittedModel& model, v1::ModelInfo* out);
// Matrices in `encoding` (the request features' answer encoding).
void PredictionToProto(const Prediction& p, MatrixEncoding encoding, v1::PredictResponse* out);
// `points`, or with `columnar` the DistributionBatch (M x C, M x C*C and
// M x 3 matrices in `encoding`, the request features' answer encoding).
void DistributionToProto(const DistributionResult& d, MatrixEncoding encoding, bool columnar,
                         v1::PredictDistributionResponse* out);
void DistributionBatchToProto(const DistributionResult& d, MatrixEncoding encoding,
                              v1::DistributionBatch* out);

}  // namespace ntk::server

#endif  // NTK_SERVER_CONVERT_H_
