// ntk/server/convert.h: translation between the wire (ntk.v1 protos) and
// core/, with the validation the server does before calling core.
//
// Every error names the field by its wire name first, e.g.
//   INVALID_ARGUMENT "features.values: size 10 != rows*cols = 12"
//   INVALID_ARGUMENT "spec.kernel.activation: unknown value 7"
//   RESOURCE_EXHAUSTED "features.rows: 20000 exceeds --max_train_rows = 10000"
// Rows and columns in messages are 0-based.
//
// Thread safety: pure functions.
#ifndef NTK_SERVER_CONVERT_H_
#define NTK_SERVER_CONVERT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include <Eigen/Dense>
#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model/model.h"
#include "core/training/spec.h"
#include "proto/ntk/v1/ntk.pb.h"
#include "server/options.h"

namespace ntk::server {

// 1-128 characters of [A-Za-z0-9._-], not starting with '.' (so no path
// separators, no "." or ".."). INVALID_ARGUMENT "<field>: ..." otherwise.
absl::Status ValidateModelId(absl::string_view id, absl::string_view field = "model_id");
// "m-<unix ms>-<16 hex digits>" (a valid id).
std::string GenerateModelId();

// absl and gRPC status codes have the same numbers; translated 1:1.
grpc::Status ToGrpcStatus(const absl::Status& status);

// A row-major matrix held elsewhere (a proto, or FitStream's buffers).
struct MatrixView {
  uint64_t rows = 0;
  uint64_t cols = 0;
  const double* values = nullptr;
  size_t size = 0;  // number of values
  bool empty() const { return rows == 0 && cols == 0 && size == 0; }
};
MatrixView ViewOf(const v1::Matrix& m);

// Checks size == rows*cols (INVALID_ARGUMENT "<field>.values: ...") and that
// every value is finite ("<field>: row r column c is NaN"), then copies.
absl::StatusOr<Eigen::MatrixXd> MatrixFromView(const MatrixView& m, absl::string_view field);
void MatrixToProto(const Eigen::MatrixXd& m, v1::Matrix* out);

// Enum checks (proto3 keeps unknown numeric values), limits on num_classes
// and class_names, wire defaults (depth 0 -> 1, weight_variance 0 -> 2).
// Range checks of the values themselves are core's (ResolveSpec).
absl::StatusOr<ModelSpec> ModelSpecFromProto(const v1::ModelSpec& spec,
                                             const ServerOptions& limits);

// Limits on the training feature matrix shape (RESOURCE_EXHAUSTED); also
// used while FitStream accumulates rows.
absl::Status CheckTrainingShape(uint64_t rows, uint64_t cols, const ServerOptions& limits);

// Features plus exactly one of labels / targets (sizes, limits, finiteness,
// label ranges). core's ResolveSpec checks the rest (simplex, ...).
absl::StatusOr<TrainingData> TrainingDataFromViews(const MatrixView& features,
                                                   const int32_t* labels, size_t num_labels,
                                                   const MatrixView& targets,
                                                   const ModelSpec& spec,
                                                   const ServerOptions& limits);

// Query features for Predict / PredictDistribution against `model`.
absl::StatusOr<Eigen::MatrixXd> QueryFeaturesFromProto(const v1::Matrix& features,
                                                       const FittedModel& model,
                                                       const ServerOptions& limits);

absl::StatusOr<DistributionOptions> DistributionOptionsFromProto(
    const v1::PredictDistributionRequest& request, const ServerOptions& limits);

void ResolvedSpecToProto(const FittedModelInfo& resolved, v1::ModelSpec* out);
void ModelInfoToProto(const std::string& id, int64_t created_unix_ms,
                      const FittedModel& model, v1::ModelInfo* out);
void PredictionToProto(const Prediction& p, v1::PredictResponse* out);
void DistributionToProto(const DistributionResult& d,
                         v1::PredictDistributionResponse* out);

}  // namespace ntk::server

#endif  // NTK_SERVER_CONVERT_H_
