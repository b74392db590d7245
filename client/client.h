// ntk/client/client.h: a thin C++ client for the ntk.v1.NtkService.
//
//   absl::StatusOr<std::unique_ptr<ntk::Client>> c =
//       ntk::Client::Connect({.target = "127.0.0.1:50051"});
//   ntk::v1::FitResponse r = *(*c)->Fit(request);   // FitStream when large
//   absl::StatusOr<ntk::Client::PredictResult> p = (*c)->Predict("digits", x);
//   request.set_background(true); (*c)->Fit(request); (*c)->WatchModel(id, print);
//
// Matrices go in and out as Eigen (row-major on the wire, converted by
// proto/matrix_convert.h in ClientOptions::encoding); results are
// absl::StatusOr with the server's status code and message.
//
// Thread safety: a Client may be used from many threads at once (gRPC
// channels and stubs are thread-safe). Depends only on the generated stubs
// and the shared matrix conversion.
#ifndef NTK_CLIENT_CLIENT_H_
#define NTK_CLIENT_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/matrix_convert.h"
#include "proto/ntk/v1/ntk.grpc.pb.h"

namespace ntk {

struct ClientOptions {
  std::string target = "127.0.0.1:50051";
  // TLS: when root_cert_pem is non-empty the channel uses TLS with it as
  // trust anchor; use_tls with an empty root uses the system roots.
  bool use_tls = false;
  std::string root_cert_pem;
  std::string auth_token;            // sent as "authorization: Bearer <token>"
  std::chrono::milliseconds default_deadline{std::chrono::minutes(10)};
  int max_message_mb = 64;           // per message, both directions
  int max_retries = 4;               // UNAVAILABLE retries, read-only calls only
  std::chrono::milliseconds initial_backoff{100};
  // How request matrices built from Eigen go on the wire: values (default)
  // or raw bytes (kFloat64 / kFloat32, fewer bytes and faster to encode).
  MatrixEncoding encoding = MatrixEncoding::kValues;
};

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const ClientOptions& options);

  // Called by Fit on its calling thread after each FitStream message has
  // been written: the rows sent so far (increasing, the last call equal to
  // the total) and the total. Not called for a request sent as one Fit.
  using FitUploadProgress = std::function<void(uint64_t rows_sent, uint64_t rows_total)>;

  // Fits a model. The request's features/labels/targets are sent as one
  // Fit call when the request fits in one message, else split into rows
  // and sent with FitStream (on_upload, when set, follows the chunks). Not
  // retried.
  absl::StatusOr<v1::ModelInfo> Fit(const v1::FitRequest& request,
                                    const FitUploadProgress& on_upload = {});
  // Convenience: build the request from Eigen data (hard labels or targets).
  absl::StatusOr<v1::ModelInfo> Fit(const std::string& model_id,
                                    const v1::ModelSpec& spec,
                                    const Eigen::MatrixXd& features,
                                    const std::vector<int>& labels,
                                    const Eigen::MatrixXd& targets = {},
                                    bool replace = false);

  struct PredictResult {
    Eigen::MatrixXd probabilities;  // M x C
    std::vector<int> labels;
    Eigen::MatrixXd logits;         // M x C, centered
  };
  absl::StatusOr<PredictResult> Predict(const std::string& model_id,
                                        const Eigen::MatrixXd& features);

  absl::StatusOr<v1::PredictDistributionResponse> PredictDistribution(
      const std::string& model_id, const Eigen::MatrixXd& features,
      v1::DistributionMethod method = v1::METHOD_UNSPECIFIED,
      uint32_t num_samples = 0, uint64_t seed = 0);

  absl::StatusOr<v1::ModelInfo> GetModel(const std::string& model_id);
  absl::StatusOr<std::vector<v1::ModelInfo>> ListModels();
  // DeleteModel on a FITTING model cancels its fit (docs/api.md "Long fits").
  absl::Status DeleteModel(const std::string& model_id);
  // WatchModel: calls on_update with each ModelInfo the server streams
  // (FITTING with progress, then READY or FAILED) and returns the last one
  // once the stream ends OK. on_update returning false cancels the watch
  // (then CANCELLED). Not retried; default_deadline applies.
  absl::StatusOr<v1::ModelInfo> WatchModel(
      const std::string& model_id,
      const std::function<bool(const v1::ModelInfo&)>& on_update = {});
  // grpc.health.v1 Check for `service` ("" = the whole server). OK when
  // SERVING, UNAVAILABLE otherwise.
  absl::Status Health(const std::string& service = "");

  // Wire helpers (public for tests and tools): proto/matrix_convert.h.
  static v1::Matrix ToProto(const Eigen::MatrixXd& m,
                            MatrixEncoding encoding = MatrixEncoding::kValues);
  static absl::StatusOr<Eigen::MatrixXd> FromProto(const v1::Matrix& m);

  ~Client();

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ntk

#endif  // NTK_CLIENT_CLIENT_H_
