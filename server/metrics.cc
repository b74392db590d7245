#include "server/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <string>
#include <utility>

namespace ntk::server {
namespace {

using prometheus::Histogram;

// Latency buckets: 100 us (a small inline Predict) to 10 min (a large fit).
Histogram::BucketBoundaries SecondsBuckets() {
  return {1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5,
          1,    2.5,    5,    10,   30,     60,   120,  300,    600};
}

// Rows per call: powers of 4 up to the default --max_predict_rows.
Histogram::BucketBoundaries RowBuckets() {
  return {1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144};
}

// Every family here is made the same way: a name and a help text, in `r`.
template <typename Builder>
auto& Family(Builder builder, const char* name, const char* help, prometheus::Registry& r) {
  return builder.Name(name).Help(help).Register(r);
}

// A gauge without labels (one series), set from ServerState at each scrape.
prometheus::Gauge* Gauge(const char* name, const char* help, prometheus::Registry& r) {
  return &Family(prometheus::BuildGauge(), name, help, r).Add({});
}

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::Registry& r = *registry_;
  requests_ = &Family(prometheus::BuildCounter(), "ntk_requests_total",
                      "Calls finished, by RPC (ntk.v1 and Open Inference Protocol) and status code",
                      r);
  duration_ = &Family(prometheus::BuildHistogram(), "ntk_request_duration_seconds",
                      "Call latency from handler entry to status, by RPC", r);
  rows_ = &Family(prometheus::BuildHistogram(), "ntk_request_rows",
                  "Rows per call (batch size): query rows, training rows for fits", r);
  rows_processed_ = &Family(prometheus::BuildCounter(), "ntk_rows_processed_total",
                            "Rows of successful calls, by RPC", r);
  queue_wait_ = &Family(prometheus::BuildHistogram(), "ntk_queue_wait_seconds",
                        "Time a call waited in a worker pool's queue before it ran", r);
  fit_duration_ = &Family(prometheus::BuildHistogram(), "ntk_fit_duration_seconds",
                          "Duration of successful Fit and FitStream calls", r)
                       .Add({}, SecondsBuckets());
  fits_in_flight_ =
      Gauge("ntk_fits_in_flight", "Fits holding a --max_concurrent_fits slot now", r);
  models_ = Gauge("ntk_models_loaded", "Models being served", r);
  model_bytes_ =
      Gauge("ntk_model_bytes", "Memory the served models hold (FittedModel::MemoryBytes)", r);
  cache_bytes_ = Gauge("ntk_distribution_cache_bytes",
                       "PredictDistribution factors held by the DistributionCache", r);
  cache_budget_bytes_ = Gauge("ntk_distribution_cache_budget_bytes",
                              "The DistributionCache's budget (--distribution_cache_mb)", r);
}

Metrics::~Metrics() = default;

void Metrics::ObserveCall(absl::string_view rpc, absl::StatusCode code, double seconds,
                          int64_t rows, bool fit) {
  const std::string method(rpc);
  requests_->Add({{"rpc", method}, {"code", absl::StatusCodeToString(code)}}).Increment();
  duration_->Add({{"rpc", method}}, SecondsBuckets()).Observe(seconds);
  rows_->Add({{"rpc", method}}, RowBuckets()).Observe(static_cast<double>(rows));
  if (code == absl::StatusCode::kOk) {
    rows_processed_->Add({{"rpc", method}}).Increment(static_cast<double>(rows));
    if (fit) fit_duration_->Observe(seconds);
  }
}

void Metrics::ObserveQueueWait(absl::string_view pool, double seconds) {
  queue_wait_->Add({{"pool", std::string(pool)}}, SecondsBuckets()).Observe(seconds);
}

std::string Metrics::Scrape(const ServerState& state) {
  models_->Set(static_cast<double>(state.models));
  model_bytes_->Set(static_cast<double>(state.model_bytes));
  cache_bytes_->Set(static_cast<double>(state.cache_bytes));
  cache_budget_bytes_->Set(static_cast<double>(state.cache_budget_bytes));
  fits_in_flight_->Set(static_cast<double>(state.fits_in_flight));
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace ntk::server
