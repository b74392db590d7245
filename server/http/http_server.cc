#include "server/http/http_server.h"

#include <sys/socket.h>

#include <httplib.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/log.h"
#include "server/oip/calls.h"
#include "server/oip/infer.h"
#include "server/oip/rest_json.h"

namespace ntk::server {
namespace {

constexpr char kJson[] = "application/json";
// A model path: /v2/models/{name} with an optional /versions/{version}.
constexpr char kModel[] = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";

// The Authorization header, or null.
std::unique_ptr<std::string> Authorization(const httplib::Request& req) {
  if (!req.has_header("Authorization")) return nullptr;
  return std::make_unique<std::string>(req.get_header_value("Authorization"));
}

void Reply(const absl::Status& status, const std::string& body, httplib::Response& res) {
  if (status.ok()) {
    res.status = 200;
    res.set_content(body, kJson);
  } else {
    res.status = oip::HttpStatusFor(status.code());
    res.set_content(oip::ErrorToJson(status.message()), kJson);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, RpcRunner* runner, const Inference* inference,
    std::function<ServerState()> state) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--http_listen: \"%s\" is not host:port", listen));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->runner_ = runner;
  s->inference_ = inference;
  s->state_ = std::move(state);
  s->http_ = std::make_unique<httplib::Server>();
  // cpp-httplib sets SO_REUSEPORT by default: a second server on the port
  // would share it. SO_REUSEADDR only: a taken port fails to bind.
  s->http_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  s->http_->set_payload_max_length(static_cast<size_t>(MaxMessageBytes(runner->options())));
  s->Route();
  const int bound = port == 0 ? s->http_->bind_to_any_port(host) : port;
  if (bound < 0 || (port != 0 && !s->http_->bind_to_port(host, port))) {
    return absl::UnavailableError(absl::StrFormat(
        "--http_listen: cannot listen on %s (is the port in use by another process?)", listen));
  }
  s->address_ = absl::StrCat(listen.substr(0, colon), ":", bound);
  httplib::Server* http = s->http_.get();
  s->thread_ = std::thread([http] { http->listen_after_bind(); });
  Logf("server: serving HTTP (Open Inference Protocol REST, /metrics) on %s", s->address_);
  return s;
}

void HttpServer::Route() {
  httplib::Server& h = *http_;
  h.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(oip::BoolToJson("live", true), kJson);
  });
  h.Get("/v2/health/ready", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(oip::BoolToJson("ready", true), kJson);
  });
  h.Get("/v2", [this](const httplib::Request& req, httplib::Response& res) {
    std::string body;
    Reply(runner_->Blocking(Authorization(req).get(), CallLog("http.ServerMetadata"),
                            Where::kInline,
                            [&](RpcCall&) {
                              inference::ServerMetadataResponse m;
                              oip::ServerMetadataFor(&m);
                              body = oip::ServerMetadataToJson(m);
                              return absl::OkStatus();
                            }),
          body, res);
  });
  h.Get(kModel, [this](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1], version = req.matches[2];
    std::string body;
    Reply(runner_->Blocking(Authorization(req).get(), CallLog("http.ModelMetadata", name),
                            Where::kInline,
                            [&](RpcCall&) {
                              inference::ModelMetadataResponse m;
                              absl::Status s = oip::ModelMetadata(*inference_, name, version, &m);
                              if (s.ok()) body = oip::ModelMetadataToJson(m);
                              return s;
                            }),
          body, res);
  });
  h.Get(absl::StrCat(kModel, "/ready"), [this](const httplib::Request& req,
                                               httplib::Response& res) {
    const std::string name = req.matches[1], version = req.matches[2];
    std::string body;
    Reply(runner_->Blocking(Authorization(req).get(), CallLog("http.ModelReady", name),
                            Where::kInline,
                            [&](RpcCall&) {
                              bool ready = false;
                              absl::Status s = oip::ModelReady(*inference_, name, version, &ready);
                              if (!s.ok()) return s;
                              // REST: the status code is the answer (KServe).
                              if (!ready) {
                                return absl::NotFoundError(
                                    absl::StrFormat("name: model \"%s\" is not ready", name));
                              }
                              body = oip::BoolToJson("ready", true);
                              return absl::OkStatus();
                            }),
          body, res);
  });
  h.Post(absl::StrCat(kModel, "/infer"), [this](const httplib::Request& req,
                                                httplib::Response& res) {
    const std::string name = req.matches[1], version = req.matches[2];
    absl::StatusOr<inference::ModelInferRequest> request =
        oip::InferRequestFromJson(req.body, name, version);
    std::string body;
    Reply(runner_->Blocking(
              Authorization(req).get(), CallLog("http.ModelInfer", name),
              [&] { return request.ok() ? oip::InferPlace(*inference_, *request) : Where::kInline; },
              [&](RpcCall& call) {
                if (!request.ok()) return request.status();
                inference::ModelInferResponse response;
                absl::Status s = oip::ModelInfer(*inference_, call, *request, &response);
                if (s.ok()) body = oip::InferResponseToJson(response);
                return s;
              }),
          body, res);
  });
  h.Post("/v2/repository/index", [this](const httplib::Request& req, httplib::Response& res) {
    std::string body;
    Reply(runner_->Blocking(Authorization(req).get(), CallLog("http.RepositoryIndex"),
                            Where::kInline,
                            [&](RpcCall& call) {
                              std::vector<std::string> names;
                              for (const auto& e : inference_->registry()->List()) {
                                names.push_back(e->id);
                              }
                              call.log().rows = static_cast<int64_t>(names.size());
                              body = oip::RepositoryIndexToJson(names);
                              return absl::OkStatus();
                            }),
          body, res);
  });
  h.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    std::string body;
    absl::Status s = runner_->Blocking(Authorization(req).get(), CallLog("http.Metrics"),
                                       Where::kInline, [&](RpcCall&) {
                                         body = runner_->metrics()->Scrape(state_());
                                         return absl::OkStatus();
                                       });
    if (!s.ok()) return Reply(s, body, res);
    res.set_content(body, "text/plain; version=0.0.4");
  });
}

void HttpServer::Stop() {
  if (http_ == nullptr) return;
  http_->stop();
  if (thread_.joinable()) thread_.join();
}

HttpServer::~HttpServer() { Stop(); }

}  // namespace ntk::server
