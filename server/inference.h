// ntk/server/inference.h: the core calls behind every prediction the server
// answers, shared by ntk.v1 Predict / PredictDistribution (server/service.cc)
// and the Open Inference Protocol's ModelInfer over gRPC and HTTP
// (server/oip/): the model lookup, where the work runs, the working-memory
// admission (server/memory_budget.h) and the call into core.
//
//   absl::StatusOr<std::shared_ptr<const ModelEntry>> e = inference.FindModel(id);
//   absl::StatusOr<Prediction> p = inference.Predict(**e, x);
//
// Thread safety: all methods are thread-safe. Ownership: the registry and
// runner are not owned and must outlive this object.
#ifndef NTK_SERVER_INFERENCE_H_
#define NTK_SERVER_INFERENCE_H_

#include <cstdint>
#include <memory>
#include <string>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model/model.h"
#include "server/handler.h"
#include "server/model_registry.h"

namespace ntk::server {

class Inference {
 public:
  // REQUIRES: both non-null.
  Inference(ModelRegistry* registry, RpcRunner* runner) : registry_(registry), runner_(runner) {}

  // The model `model_id`: INVALID_ARGUMENT for a malformed id, NOT_FOUND
  // "<field>: no model \"<id>\"" when there is none, FAILED_PRECONDITION
  // naming the state when the id has only a fit in progress (FITTING) or a
  // failed one (FAILED; server/fit_tracker.h). `field` names the id's wire
  // field ("model_id", "model_name").
  absl::StatusOr<std::shared_ptr<const ModelEntry>> FindModel(
      const std::string& model_id, absl::string_view field = "model_id") const;

  // Where a Predict of rows x cols runs: inline when its work, rows *
  // num_train * (cols + classes), is at most inline_predict_max_work
  // (ServerOptions; or there is no such model: answered at once), else the
  // Predict pool (fewer than --predict_batch_max_rows rows: it may join a
  // batch) or the compute pool.
  // Predicts of fewer than --predict_batch_max_rows rows that do not run
  // inline go to the Predict pool and through the model's PredictBatcher.
  Where PredictPlace(const std::string& model_id, int64_t rows, int64_t cols) const;

  // docs/model-contract.md "3. Predict" of `x` on `entry`, after reserving
  // its working memory (RESOURCE_EXHAUSTED naming `method` when over the
  // budget or the message limit). Joins the model's batch when the runner
  // placed `call` on the Predict pool (call.where(), decided once by
  // PredictPlace). CANCELLED without computing when `call` is Stopped()
  // before the work starts (its client left or its deadline passed while it
  // waited for a thread: nobody would read the answer).
  absl::StatusOr<Prediction> Predict(const char* method, const RpcCall& call,
                                     const ModelEntry& entry, const Eigen::MatrixXd& x) const;

  // docs/model-contract.md "4. PredictDistribution" of `x` on `entry` with
  // `options` (progress and the DistributionCache scope are set here: the
  // work stops once `call` is Stopped(), and does not start when it already
  // is), after the memory admission. Logs
  // the model's and the cache's bytes in the call's log line.
  absl::StatusOr<DistributionResult> PredictDistribution(const char* method, RpcCall& call,
                                                         const ModelEntry& entry,
                                                         const Eigen::MatrixXd& x,
                                                         DistributionOptions options) const;

  ModelRegistry* registry() const { return registry_; }
  // PredictPlace for a model with `info`.
  Where PlaceFor(const FittedModelInfo& info, int64_t rows, int64_t cols) const;
  const ServerOptions& options() const { return runner_->options(); }

 private:
  ModelRegistry* const registry_;
  RpcRunner* const runner_;
};

}  // namespace ntk::server

#endif  // NTK_SERVER_INFERENCE_H_
