// ntk/server/metrics.h: the server's Prometheus metrics (prometheus-cpp),
// served as text at /metrics on the HTTP listener (server/http/).
//
// Every call, ntk.v1 and Open Inference Protocol alike, is counted in one
// place: RpcRunner::Finish (server/handler.h) calls ObserveCall. The gauges
// for what the server holds are set from a ServerState when scraped.
//
//   ntk_requests_total{rpc,code}              calls finished, by method and status code
//   ntk_request_duration_seconds{rpc}         latency, handler entry to status (histogram)
//   ntk_request_rows{rpc}                     rows per call: the batch sizes (histogram)
//   ntk_rows_processed_total{rpc}             rows of successful calls
//   ntk_queue_wait_seconds{pool}              time a call waited for a worker (histogram)
//   ntk_fit_duration_seconds                  successful Fit / FitStream calls (histogram)
//   ntk_fits_in_flight                        fit slots held now
//   ntk_models_loaded                         models being served
//   ntk_model_bytes                           memory the served models hold
//   ntk_distribution_cache_bytes              PredictDistribution factors cached
//   ntk_distribution_cache_budget_bytes       the cache's budget
//
// Thread safety: all methods are thread-safe (prometheus-cpp's families lock
// internally). Ownership: owned by the server; outlives every call.
#ifndef NTK_SERVER_METRICS_H_
#define NTK_SERVER_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace ntk::server {

// What the server holds, read when /metrics is scraped.
struct ServerState {
  int64_t models = 0;
  int64_t model_bytes = 0;
  int64_t cache_bytes = 0;
  int64_t cache_budget_bytes = 0;
  int64_t fits_in_flight = 0;
};

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // One finished call: `rpc` its method ("Predict", "ModelInfer", ...),
  // `seconds` from handler entry to its status, `rows` its rows (CallLog),
  // `fit` whether it held a fit slot.
  void ObserveCall(absl::string_view rpc, absl::StatusCode code, double seconds, int64_t rows,
                   bool fit);
  // A call waited `seconds` in `pool`'s queue ("compute", "fit").
  void ObserveQueueWait(absl::string_view pool, double seconds);

  // The Prometheus text exposition format (version 0.0.4) of every metric,
  // the gauges first set from `state`.
  std::string Scrape(const ServerState& state);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* duration_;
  prometheus::Family<prometheus::Histogram>* rows_;
  prometheus::Family<prometheus::Counter>* rows_processed_;
  prometheus::Family<prometheus::Histogram>* queue_wait_;
  prometheus::Histogram* fit_duration_;
  prometheus::Gauge* fits_in_flight_;
  prometheus::Gauge* models_;
  prometheus::Gauge* model_bytes_;
  prometheus::Gauge* cache_bytes_;
  prometheus::Gauge* cache_budget_bytes_;
};

}  // namespace ntk::server

#endif  // NTK_SERVER_METRICS_H_
