#include "client/client.h"

#include <algorithm>
#include <thread>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_format.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace ntk {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(static_cast<int>(s.error_code())),
                      s.error_message());
}

}  // namespace

struct Client::Impl {
  ClientOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::NtkService::Stub> stub;
  std::unique_ptr<grpc::health::v1::Health::Stub> health;

  void Prepare(grpc::ClientContext* ctx, std::chrono::system_clock::time_point deadline) const {
    ctx->set_deadline(deadline);
    if (!options.auth_token.empty()) {
      ctx->AddMetadata("authorization", "Bearer " + options.auth_token);
    }
  }

  // One call, no retry.
  template <typename Call>
  grpc::Status Once(Call&& call) const {
    grpc::ClientContext ctx;
    Prepare(&ctx, std::chrono::system_clock::now() + options.default_deadline);
    return call(&ctx);
  }

  // Read-only calls: UNAVAILABLE is retried with exponential backoff
  // (initial_backoff, doubling, at most max_retries times) within the deadline.
  template <typename Call>
  grpc::Status WithRetry(Call&& call) const {
    const auto deadline = std::chrono::system_clock::now() + options.default_deadline;
    auto backoff = options.initial_backoff;
    for (int attempt = 0;; ++attempt) {
      grpc::ClientContext ctx;
      Prepare(&ctx, deadline);
      grpc::Status s = call(&ctx);
      if (s.error_code() != grpc::StatusCode::UNAVAILABLE || attempt >= options.max_retries ||
          std::chrono::system_clock::now() + backoff >= deadline) {
        return s;
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(10));
    }
  }

  // A read-only unary RPC of NtkService with retries (WithRetry); the
  // response is cleared before each attempt.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Read(grpc::Status (v1::NtkService::Stub::*rpc)(
                                    grpc::ClientContext*, const Request&, Response*),
                                const Request& request) const {
    Response response;
    grpc::Status s = WithRetry([&](grpc::ClientContext* ctx) {
      response.Clear();
      return (stub.get()->*rpc)(ctx, request, &response);
    });
    if (!s.ok()) return FromGrpc(s);
    return response;
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("target: must not be empty");
  if (options.max_message_mb <= 0 || options.max_message_mb > 2047) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_message_mb: must be in [1, 2047], got %d", options.max_message_mb));
  }
  if (options.default_deadline.count() <= 0) {
    return absl::InvalidArgumentError("default_deadline: must be positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (impl->options.max_retries < 0) impl->options.max_retries = 0;
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.use_tls || !options.root_cert_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.root_cert_pem;
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  const int max_bytes = options.max_message_mb * 1024 * 1024;
  args.SetMaxReceiveMessageSize(max_bytes);
  args.SetMaxSendMessageSize(max_bytes);
  impl->channel = grpc::CreateCustomChannel(options.target, creds, args);
  if (impl->channel == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("target: cannot create a channel to %s", options.target));
  }
  impl->stub = v1::NtkService::NewStub(impl->channel);
  impl->health = grpc::health::v1::Health::NewStub(impl->channel);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

v1::Matrix Client::ToProto(const Eigen::MatrixXd& m, MatrixEncoding encoding) {
  return MatrixToProto(m, encoding);
}

absl::StatusOr<Eigen::MatrixXd> Client::FromProto(const v1::Matrix& m) {
  return MatrixFromProto(m, "matrix");
}

absl::StatusOr<v1::ModelInfo> Client::Fit(const v1::FitRequest& request,
                                          const FitUploadProgress& on_upload) {
  const size_t max_bytes = static_cast<size_t>(impl_->options.max_message_mb) * 1024 * 1024;
  v1::FitResponse response;
  if (request.ByteSizeLong() <= max_bytes / 4 * 3) {
    grpc::Status s = impl_->Once([&](grpc::ClientContext* ctx) {
      return impl_->stub->Fit(ctx, request, &response);
    });
    if (!s.ok()) return FromGrpc(s);
    return response.model();
  }
  // FitStream in row chunks of about half a message each.
  const uint64_t rows = request.features().rows();
  const uint64_t cols = request.features().cols();
  const uint64_t tcols = request.targets().cols();
  const bool has_labels = request.labels_size() > 0;
  const bool has_targets = request.targets().rows() > 0;
  const uint64_t bytes_per_row = 8 * cols + (has_labels ? 10 : 0) + 8 * tcols + 1;
  const uint64_t chunk = std::max<uint64_t>(1, (max_bytes / 2) / bytes_per_row);
  // A malformed request (sizes that do not agree) is sent as is so the server
  // names the field; we only split well-formed ones.
  const bool well_formed =
      CheckMatrix(request.features(), "features").ok() &&
      (!has_labels || static_cast<uint64_t>(request.labels_size()) == rows) &&
      (!has_targets ||
       (request.targets().rows() == rows && CheckMatrix(request.targets(), "targets").ok()));
  if (!well_formed) {
    grpc::Status s = impl_->Once([&](grpc::ClientContext* ctx) {
      return impl_->stub->Fit(ctx, request, &response);
    });
    if (!s.ok()) return FromGrpc(s);
    return response.model();
  }
  grpc::Status s = impl_->Once([&](grpc::ClientContext* ctx) {
    std::unique_ptr<grpc::ClientWriter<v1::FitRequest>> writer =
        impl_->stub->FitStream(ctx, &response);
    for (uint64_t begin = 0; begin < rows || begin == 0; begin += chunk) {
      const uint64_t end = std::min(rows, begin + chunk);
      v1::FitRequest m;
      if (begin == 0) {
        m.set_model_id(request.model_id());
        *m.mutable_spec() = request.spec();
        m.set_replace(request.replace());
        m.set_background(request.background());
        if (request.has_selection()) *m.mutable_selection() = request.selection();
      }
      *m.mutable_features() = SliceMatrixRows(request.features(), begin, end);
      if (has_labels) {
        m.mutable_labels()->Add(request.labels().begin() + begin,
                                request.labels().begin() + end);
      }
      if (has_targets) *m.mutable_targets() = SliceMatrixRows(request.targets(), begin, end);
      if (!writer->Write(m)) break;  // the server ended the call; Finish says why
      if (on_upload) on_upload(end, rows);
      if (end >= rows) break;
    }
    writer->WritesDone();
    return writer->Finish();
  });
  if (!s.ok()) return FromGrpc(s);
  return response.model();
}

absl::StatusOr<v1::ModelInfo> Client::Fit(const std::string& model_id,
                                          const v1::ModelSpec& spec,
                                          const Eigen::MatrixXd& features,
                                          const std::vector<int>& labels,
                                          const Eigen::MatrixXd& targets, bool replace) {
  v1::FitRequest request;
  request.set_model_id(model_id);
  *request.mutable_spec() = spec;
  *request.mutable_features() = ToProto(features, impl_->options.encoding);
  request.mutable_labels()->Add(labels.begin(), labels.end());
  if (targets.size() > 0) *request.mutable_targets() = ToProto(targets, impl_->options.encoding);
  request.set_replace(replace);
  return Fit(request);
}

absl::StatusOr<Client::PredictResult> Client::Predict(const std::string& model_id,
                                                      const Eigen::MatrixXd& features) {
  v1::PredictRequest request;
  request.set_model_id(model_id);
  *request.mutable_features() = ToProto(features, impl_->options.encoding);
  absl::StatusOr<v1::PredictResponse> got = impl_->Read(&v1::NtkService::Stub::Predict, request);
  if (!got.ok()) return got.status();
  const v1::PredictResponse& response = *got;
  PredictResult out;
  absl::StatusOr<Eigen::MatrixXd> p = MatrixFromProto(response.probabilities(), "probabilities");
  if (!p.ok()) return absl::InternalError(p.status().message());
  absl::StatusOr<Eigen::MatrixXd> l = MatrixFromProto(response.logits(), "logits");
  if (!l.ok()) return absl::InternalError(l.status().message());
  out.probabilities = *std::move(p);
  out.logits = *std::move(l);
  out.labels.assign(response.labels().begin(), response.labels().end());
  return out;
}

absl::StatusOr<v1::PredictDistributionResponse> Client::PredictDistribution(
    const std::string& model_id, const Eigen::MatrixXd& features,
    v1::DistributionMethod method, uint32_t num_samples, uint64_t seed) {
  v1::PredictDistributionRequest request;
  request.set_model_id(model_id);
  *request.mutable_features() = ToProto(features, impl_->options.encoding);
  request.set_method(method);
  request.set_num_samples(num_samples);
  request.set_seed(seed);
  return impl_->Read(&v1::NtkService::Stub::PredictDistribution, request);
}

absl::StatusOr<v1::ModelInfo> Client::GetModel(const std::string& model_id) {
  v1::GetModelRequest request;
  request.set_model_id(model_id);
  return impl_->Read(&v1::NtkService::Stub::GetModel, request);
}

absl::StatusOr<std::vector<v1::ModelInfo>> Client::ListModels() {
  v1::ListModelsRequest request;
  absl::StatusOr<v1::ListModelsResponse> response =
      impl_->Read(&v1::NtkService::Stub::ListModels, request);
  if (!response.ok()) return response.status();
  return std::vector<v1::ModelInfo>(response->models().begin(), response->models().end());
}

absl::Status Client::DeleteModel(const std::string& model_id) {
  v1::DeleteModelRequest request;
  request.set_model_id(model_id);
  v1::DeleteModelResponse response;
  return FromGrpc(impl_->Once([&](grpc::ClientContext* ctx) {
    return impl_->stub->DeleteModel(ctx, request, &response);
  }));
}

absl::StatusOr<v1::ModelInfo> Client::WatchModel(
    const std::string& model_id, const std::function<bool(const v1::ModelInfo&)>& on_update) {
  v1::GetModelRequest request;
  request.set_model_id(model_id);
  grpc::ClientContext ctx;
  impl_->Prepare(&ctx, std::chrono::system_clock::now() + impl_->options.default_deadline);
  std::unique_ptr<grpc::ClientReader<v1::ModelInfo>> reader =
      impl_->stub->WatchModel(&ctx, request);
  v1::ModelInfo info, last;
  bool any = false;
  while (reader->Read(&info)) {
    any = true;
    last = info;
    if (on_update && !on_update(info)) {
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpc(s);
  if (!any) return absl::InternalError("WatchModel: the stream ended without a ModelInfo");
  return last;
}

absl::Status Client::Health(const std::string& service) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = impl_->WithRetry([&](grpc::ClientContext* ctx) {
    return impl_->health->Check(ctx, request, &response);
  });
  if (!s.ok()) return FromGrpc(s);
  if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError(absl::StrFormat(
        "health: service \"%s\" is %s", service,
        grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())));
  }
  return absl::OkStatus();
}

}  // namespace ntk
