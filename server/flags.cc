#include "server/flags.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace {
const ntk::server::ServerOptions kDefaults;
}  // namespace

ABSL_FLAG(std::string, listen, kDefaults.listen,
          "host:port to listen on; port 0 picks a free port (printed as \"listening on ...\")");
ABSL_FLAG(std::string, http_listen, kDefaults.http_listen,
          "host:port of the HTTP listener: Open Inference Protocol REST (/v2/...) and "
          "Prometheus /metrics; port 0 picks a free port (printed as \"http listening on "
          "...\"); empty: no HTTP");
ABSL_FLAG(std::string, model_dir, kDefaults.model_dir,
          "directory holding one <model_id>.ntkm file per model; created if missing");
ABSL_FLAG(int, threads, kDefaults.threads,
          "compute threads: omp_set_num_threads, and openblas_set_num_threads when "
          "--blas_threads=0 (0: the libraries' defaults, all cores)");
ABSL_FLAG(int, blas_threads, kDefaults.blas_threads,
          "OpenBLAS threads (0: --threads). 1 keeps concurrent small Predicts from queueing for "
          "OpenBLAS's shared thread pool (about 2x more Predict/s at concurrency 64 here, see "
          "server/README.md); fits then use OpenMP for the kernels and one core for BLAS");
ABSL_FLAG(int, worker_threads, kDefaults.worker_threads,
          "threads running PredictDistribution, large Predict and DeleteModel (0: max(2, cores))");
ABSL_FLAG(int, max_message_mb, kDefaults.max_message_mb,
          "largest gRPC message in either direction, MiB");
ABSL_FLAG(int, max_train_rows, kDefaults.max_train_rows,
          "most training rows per Fit of an exact model (RESOURCE_EXHAUSTED above; 0: no limit)");
ABSL_FLAG(int, max_nystrom_train_rows, kDefaults.max_nystrom_train_rows,
          "most training rows per Fit of a Nystrom model (spec.approximation.kind = NYSTROM; "
          "RESOURCE_EXHAUSTED above; 0: no limit)");
ABSL_FLAG(int, max_predict_rows, kDefaults.max_predict_rows,
          "most query rows per Predict/PredictDistribution (0: no limit)");
ABSL_FLAG(int, max_features, kDefaults.max_features,
          "most feature columns (RESOURCE_EXHAUSTED above; 0: no limit)");
ABSL_FLAG(int, max_classes, kDefaults.max_classes,
          "most classes per model (RESOURCE_EXHAUSTED above; 0: no limit)");
ABSL_FLAG(int, max_models, kDefaults.max_models,
          "most models held at once (RESOURCE_EXHAUSTED above; 0: no limit)");
ABSL_FLAG(int, max_concurrent_fits, kDefaults.max_concurrent_fits,
          "most Fit/FitStream calls running at once; more are RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, predict_batch_max_rows, kDefaults.predict_batch_max_rows,
          "Predicts (ntk.v1 and ModelInfer) that wait for the same model are answered by one "
          "computation on their stacked rows, at most this many (a lone request never waits: "
          "batches form only while computations run); <= 1: no batching");
ABSL_FLAG(int, predict_batch_in_flight, kDefaults.predict_batch_in_flight,
          "Predict computations at once per model before requests queue for a batch; 0: the "
          "number of cores");
ABSL_FLAG(int, predict_threads, kDefaults.predict_threads,
          "threads of the Predict pool, where Predicts of fewer than --predict_batch_max_rows "
          "rows too large to run inline wait for a batch (mostly waiting; bounds the batch)");
ABSL_FLAG(int, max_num_samples, kDefaults.max_num_samples,
          "largest PredictDistribution num_samples (0: no limit beyond core's)");
ABSL_FLAG(int64_t, distribution_cache_mb, kDefaults.distribution_cache_mb,
          "MiB of PredictDistribution factors (Cholesky factors, Monte Carlo sample sets) kept "
          "across calls for all models, least recently used evicted first (0: a quarter of "
          "physical memory)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain file; with --tls_key enables TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key file for --tls_cert");
ABSL_FLAG(std::string, auth_token_file, "",
          "file holding a bearer token; then every RPC except grpc.health.v1 needs "
          "\"authorization: Bearer <token>\" (else UNAUTHENTICATED)");
ABSL_FLAG(bool, distributed, kDefaults.distributed,
          "run under mpirun: rank 0 serves, ranks 1..K-1 compute exact 2b/2c fits with it "
          "(MPI + ScaLAPACK, docs/distributed.md); needs a build with NTK_MPI");
ABSL_FLAG(double, distributed_timeout_seconds, kDefaults.distributed_timeout_seconds,
          "with --distributed: seconds rank 0 waits for every rank to acknowledge a command; "
          "a rank that does not fails the fit UNAVAILABLE and the job exits non-zero "
          "(docs/distributed.md \"Faults\")");
ABSL_FLAG(int, shutdown_grace_seconds, kDefaults.shutdown_grace_seconds,
          "on SIGTERM/SIGINT, seconds in-flight RPCs may take before they are cancelled");
ABSL_FLAG(double, stream_idle_seconds, kDefaults.stream_idle_seconds,
          "a FitStream that sends no message for this many seconds is ended with "
          "DEADLINE_EXCEEDED; 0: no limit");
ABSL_FLAG(double, max_request_seconds, kDefaults.max_request_seconds,
          "a call without a deadline whose work runs longer than this many seconds (wall "
          "time) is stopped and answered RESOURCE_EXHAUSTED; 0: no limit");
ABSL_FLAG(int64_t, memory_budget_mb, kDefaults.memory_budget_mb,
          "MiB of working memory all requests together may reserve (estimated before "
          "they run; over it: RESOURCE_EXHAUSTED); 0: the smallest of 3/4 of physical "
          "memory, the cgroup limit and half the RLIMIT_AS headroom");
ABSL_FLAG(bool, log_rpcs, kDefaults.log_rpcs,
          "write one stderr line per RPC and progress lines for fits");

namespace ntk::server {
namespace {

// The flags of this file are the server's (absl lists by default only flags
// defined in <program>.cc or <program>_main.cc under --help).
bool IsServerFlagFile(absl::string_view filename) {
  return absl::EndsWith(filename, "server/flags.cc");
}

// NTK_<NAME> environment variables set the defaults of this file's flags.
absl::Status ApplyEnvironment() {
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!IsServerFlagFile(flag->Filename())) continue;
    const std::string env = "NTK_" + absl::AsciiStrToUpper(name);
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(absl::StrFormat("%s=%s: %s", env, value, error));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadFile(const std::string& flag, const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrFormat("--%s: cannot read %s", flag, path));
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ServerOptions> ParseServerFlags(int argc, char** argv) {
  absl::FlagsUsageConfig usage;
  usage.contains_helpshort_flags = IsServerFlagFile;
  usage.contains_help_flags = IsServerFlagFile;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "fits infinite-width NTK classifiers and serves predictions over gRPC "
      "(ntk.v1.NtkService, Open Inference Protocol V2) and optionally HTTP (--http_listen).\nEvery flag may also be set as environment variable "
      "NTK_<FLAG IN CAPITALS>; the command line wins.");
  if (absl::Status s = ApplyEnvironment(); !s.ok()) return s;
  absl::ParseCommandLine(argc, argv);

  ServerOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.model_dir = absl::GetFlag(FLAGS_model_dir);
  o.http_listen = absl::GetFlag(FLAGS_http_listen);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.blas_threads = absl::GetFlag(FLAGS_blas_threads);
  o.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  o.max_message_mb = absl::GetFlag(FLAGS_max_message_mb);
  o.max_train_rows = absl::GetFlag(FLAGS_max_train_rows);
  o.max_nystrom_train_rows = absl::GetFlag(FLAGS_max_nystrom_train_rows);
  o.max_predict_rows = absl::GetFlag(FLAGS_max_predict_rows);
  o.max_features = absl::GetFlag(FLAGS_max_features);
  o.max_classes = absl::GetFlag(FLAGS_max_classes);
  o.max_models = absl::GetFlag(FLAGS_max_models);
  o.max_concurrent_fits = absl::GetFlag(FLAGS_max_concurrent_fits);
  o.max_num_samples = absl::GetFlag(FLAGS_max_num_samples);
  o.predict_batch_max_rows = absl::GetFlag(FLAGS_predict_batch_max_rows);
  o.predict_batch_in_flight = absl::GetFlag(FLAGS_predict_batch_in_flight);
  o.predict_threads = absl::GetFlag(FLAGS_predict_threads);
  o.distribution_cache_mb = absl::GetFlag(FLAGS_distribution_cache_mb);
  o.shutdown_grace_seconds = absl::GetFlag(FLAGS_shutdown_grace_seconds);
  o.distributed = absl::GetFlag(FLAGS_distributed);
  o.distributed_timeout_seconds = absl::GetFlag(FLAGS_distributed_timeout_seconds);
  o.stream_idle_seconds = absl::GetFlag(FLAGS_stream_idle_seconds);
  o.max_request_seconds = absl::GetFlag(FLAGS_max_request_seconds);
  o.log_rpcs = absl::GetFlag(FLAGS_log_rpcs);
  o.memory_budget_mb = absl::GetFlag(FLAGS_memory_budget_mb);
  if (o.predict_batch_in_flight < 0) {
    return absl::InvalidArgumentError("--predict_batch_in_flight: must be >= 0");
  }
  if (!(o.distributed_timeout_seconds > 0)) {
    return absl::InvalidArgumentError("--distributed_timeout_seconds: must be > 0");
  }
  if (o.memory_budget_mb < 0) return absl::InvalidArgumentError("--memory_budget_mb: must be >= 0");
  if (o.distribution_cache_mb < 0) {
    return absl::InvalidArgumentError("--distribution_cache_mb: must be >= 0");
  }

  const std::string cert = absl::GetFlag(FLAGS_tls_cert), key = absl::GetFlag(FLAGS_tls_key);
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  if (!cert.empty()) {
    if (absl::Status s = ReadFile("tls_cert", cert, &o.tls_cert_pem); !s.ok()) return s;
    if (absl::Status s = ReadFile("tls_key", key, &o.tls_key_pem); !s.ok()) return s;
  }
  const std::string token_file = absl::GetFlag(FLAGS_auth_token_file);
  if (!token_file.empty()) {
    std::string token;
    if (absl::Status s = ReadFile("auth_token_file", token_file, &token); !s.ok()) return s;
    o.auth_token = std::string(absl::StripAsciiWhitespace(token));
    if (o.auth_token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--auth_token_file: %s is empty", token_file));
    }
  }
  return o;
}

}  // namespace ntk::server
