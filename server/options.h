// ntk/server/options.h: everything that configures one ntk_server, each
// setting and its default defined once, here.
//
// server/flags.cc fills a ServerOptions from absl flags whose defaults are
// these (each flag also settable from the environment as NTK_<FLAG>); tests
// fill one directly. Plain value; no thread-safety concerns.
//
// Limits (max_*) are the server's configured limits: a request over one is
// RESOURCE_EXHAUSTED naming the field and the flag (server/convert.h). A
// limit <= 0 means "no limit".
#ifndef NTK_SERVER_OPTIONS_H_
#define NTK_SERVER_OPTIONS_H_

#include <cstdint>
#include <string>

#include "server/predict_batcher.h"

namespace ntk::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks one
  std::string model_dir = "./models";      // created when missing
  // host:port of the HTTP listener (Open Inference Protocol REST, /metrics,
  // server/http/http_server.h); port 0 picks one; empty: no HTTP.
  std::string http_listen;
  int threads = 0;          // compute threads (OpenMP; OpenBLAS too when blas_threads == 0); 0: library defaults
  // OpenBLAS threads. 1 (default): OpenBLAS's shared thread pool is not used,
  // so concurrent small Predicts do not queue for it (measured with
  // bench/ntk_loadgen at concurrency 64: ~2900 vs ~1300 Predict/s, see
  // server/README.md). 0: the same as `threads`.
  int blas_threads = 1;
  int worker_threads = 0;   // pool for PredictDistribution / large Predict / Delete; 0: max(2, cores)
  int max_message_mb = 64;  // gRPC max send/receive message size (MaxMessageBytes)
  int max_train_rows = 10000;  // exact models (N^2 kernel)
  // Nystrom models (docs/model-contract.md "6. Nystrom models": N m kernel);
  // the memory budget is the second guard (core/model/cost.h FitCost).
  int max_nystrom_train_rows = 100000;
  int max_predict_rows = 100000;
  int max_features = 65536;
  int max_classes = 1000;
  int max_models = 1000;
  int max_concurrent_fits = 2;
  // Predicts waiting for the same model are answered by one computation on
  // their stacked rows (server/predict_batcher.h) of at most this many rows;
  // <= 1: no batching.
  int64_t predict_batch_max_rows = 256;
  // Computations at once per model before Predicts queue for a batch; 0: the
  // number of cores.
  int predict_batch_in_flight = 0;
  // Threads of the Predict pool: Predicts of fewer than
  // predict_batch_max_rows rows too large to run inline wait there for a
  // batch, so this bounds how large batches can grow.
  int predict_threads = 32;
  int max_num_samples = 100000;  // PredictDistribution.num_samples
  // Byte budget of the server's DistributionCache (factors PredictDistribution
  // keeps across calls, core/distribution/cache.h), MiB. 0: a quarter of the
  // machine's physical memory (DistributionCacheBudgetBytes below).
  int64_t distribution_cache_mb = 0;
  std::string tls_cert_pem;      // PEM contents (not paths); both or neither
  std::string tls_key_pem;
  std::string auth_token;        // non-empty: every RPC needs "authorization: Bearer <token>"
  int shutdown_grace_seconds = 30;
  // Under mpirun: rank 0 serves, the other ranks work for its exact 2b/2c
  // fits (docs/distributed.md). Needs a build with NTK_MPI.
  bool distributed = false;
  // With --distributed: how long rank 0 waits for every rank to acknowledge
  // a command before it fails the fit UNAVAILABLE and ends the job
  // (docs/distributed.md "Faults"). > 0.
  double distributed_timeout_seconds = 10;
  // A FitStream that sends no message for this long is ended with
  // DEADLINE_EXCEEDED (it holds no fit slot while it streams; the slot is
  // taken once its data is complete). <= 0: no limit.
  double stream_idle_seconds = 30;
  // A call without a deadline whose work runs longer than this (wall time
  // since its work started, not CPU time: the work's OpenMP threads are not
  // the calling thread) is stopped at its next progress check and answered
  // RESOURCE_EXHAUSTED naming the flag (server/handler.h). Calls with a
  // deadline are bounded by it instead. <= 0: no limit.
  double max_request_seconds = 0;
  bool log_rpcs = true;          // one stderr line per RPC
  // Working memory all requests together may reserve, MiB
  // (server/memory_budget.h). 0: the default, the smallest of 3/4 of
  // physical memory, the cgroup limit and half the RLIMIT_AS headroom.
  int64_t memory_budget_mb = 0;
  // Predicts whose work, rows * num_train * (cols + classes) multiply-adds,
  // is at most this run inline on the gRPC thread (no hand-off: cheaper);
  // larger ones on the worker pool. 4e6 is about 1-2 ms on one core here.
  double inline_predict_max_work = 4e6;
};

// Physical memory of this machine in bytes (sysconf), 0 when unknown.
int64_t PhysicalMemoryBytes();

// The default DistributionCache budget is this fraction of PhysicalMemoryBytes().
inline constexpr int64_t kDistributionCacheRamDivisor = 4;
// Used when physical memory is unknown: 1 GiB.
inline constexpr int64_t kDistributionCacheFallbackBytes = int64_t{1} << 30;

// The largest gRPC message either way: max_message_mb in bytes, clamped to
// [1 MiB, 2047 MiB] (gRPC takes an int).
int64_t MaxMessageBytes(const ServerOptions& options);

// options.distribution_cache_mb in bytes, or its default when <= 0.
int64_t DistributionCacheBudgetBytes(const ServerOptions& options);

// The PredictBatcher options of --predict_batch_max_rows and
// --predict_batch_in_flight (0: the number of cores).
PredictBatcher::Options PredictBatching(const ServerOptions& options);

}  // namespace ntk::server

#endif  // NTK_SERVER_OPTIONS_H_
