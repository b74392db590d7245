// ntk/server/http/http_server.h: the HTTP listener (--http_listen): the Open
// Inference Protocol's REST binding, the repository extension's model index
// and Prometheus metrics. cpp-httplib serves it (no HTTP parsing of ours);
// plain HTTP (put TLS in front of it, or bind it to localhost).
//
//   GET  /v2/health/live, /v2/health/ready      200 {"live"|"ready": true}; no token
//   GET  /v2                                    server metadata
//   GET  /v2/models/{name}[/versions/{v}]       model metadata
//   GET  /v2/models/{name}[/versions/{v}]/ready 200 {"name", "ready": true}; 404 when not
//   POST /v2/models/{name}[/versions/{v}]/infer ModelInfer (server/oip/rest_json.h)
//   POST /v2/repository/index                   [{"name", "version", "state"}]
//   GET  /metrics                               Prometheus text (server/metrics.h)
//
// Every route but the health probes runs through the server's RpcRunner
// (server/handler.h): the same bearer token as gRPC (the Authorization
// header, scheme in any case), the log line and the metrics (as rpc
// "http.<Call>"). Errors are KServe's {"error": "..."} with
// HttpStatusFor(code) (server/oip/rest_json.h). The listening socket has no
// SO_REUSEPORT: a taken port fails Start.
//
// Thread safety: Start and Stop from one thread; requests are served on
// cpp-httplib's threads. The runner, inference and state function must
// outlive Stop().
#ifndef NTK_SERVER_HTTP_HTTP_SERVER_H_
#define NTK_SERVER_HTTP_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/handler.h"
#include "server/inference.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}

namespace ntk::server {

class HttpServer {
 public:
  // Binds `listen` (host:port; port 0 picks one) and starts serving.
  // UNAVAILABLE naming --http_listen when it cannot bind.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, RpcRunner* runner, const Inference* inference,
      std::function<ServerState()> state);
  ~HttpServer();  // Stop()

  // host:port with the bound port.
  const std::string& address() const { return address_; }
  // Stops listening and waits for the requests being served.
  void Stop();

 private:
  HttpServer() = default;
  void Route();

  RpcRunner* runner_ = nullptr;
  const Inference* inference_ = nullptr;
  std::function<ServerState()> state_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  std::string address_;
};

}  // namespace ntk::server

#endif  // NTK_SERVER_HTTP_HTTP_SERVER_H_
