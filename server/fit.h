// ntk/server/fit.h: one fit, as Fit and FitStream run it: the model id, the
// spec from the wire, core's FittedModel::Fit with the call's
// deadline/cancellation and progress log lines, then persist and publish.
//
//   absl::StatusOr<TrainingData> data = TrainingDataFromProto(request, options);
//   FitJob job{request.model_id(), request.replace(), &request.spec(), &request.selection(),
//              request.background(), *std::move(data)};
//   absl::Status s = RunFit(runner, registry, call, std::move(job), response);
//
// Long fits write progress lines (when options.log_rpcs):
//   <UTC time> fit model=<id> phase=<phase> progress=<pct>% elapsed_ms=<ms>
// and, once published, one accounting line:
//   <UTC time> fit model=<id> phase=done generation=<g> model_bytes=<b> cache_bytes=<b> models=<n>
//
// Before core allocates anything, the fit reserves its estimated working
// memory (core/model/cost.h FitCostUpperBound) from `budget`; over it:
// RESOURCE_EXHAUSTED with the estimate and the limit (server/memory_budget.h).
//
// Selection (job.selection with folds != 0, docs/api.md "Model
// selection"): the grid is checked first (ValidateSelection,
// core/selection/selection.h: INVALID_ARGUMENT naming the field), the
// reservation is the larger of SelectionCost and the fit's estimate, and
// the job runs FitWithSelection: progress phase "selection" over
// candidates x folds, then the chosen candidate's Fit; the report is kept
// in the model and returned as ModelInfo.selection (also after a restart:
// the model file keeps it).
//
// A fit honors the call's deadline and cancellation: core's ProgressFn
// returns false once the call is cancelled or past its deadline; the fit
// then ends with DEADLINE_EXCEEDED or CANCELLED and leaves no model and no
// file. DeleteModel cancels it the same way (its FitRecord's cancel flag).
//
// State and progress: from the registry's Reserve until the end, the fit
// has a FitRecord in registry->fits() (server/fit_tracker.h): GetModel,
// ListModels and WatchModel show it as FITTING with core's progress, then
// READY (the published model) or FAILED (the status message).
//
// Background (job.background, FitRequest.background): everything that can
// be refused at once is checked synchronously (spec, memory budget, id
// reservation: ALREADY_EXISTS, ABORTED, RESOURCE_EXHAUSTED), then RunFit
// answers ModelInfo with state FITTING and schedules the fit on the fit
// pool; it keeps the call's fit slot (RpcCall::DetachFitSlot) and memory
// reservation until it ends. It has no deadline; a failure leaves a FAILED
// record (error = the status message) and no file. Shutdown cancels it.
//
// Thread safety: RunFit may run concurrently for different calls (the
// registry serializes publishing). Runs on the fit pool.
#ifndef NTK_SERVER_FIT_H_
#define NTK_SERVER_FIT_H_

#include <string>

#include "absl/status/status.h"
#include "core/training/spec.h"
#include "proto/ntk/v1/ntk.pb.h"
#include "server/handler.h"
#include "server/memory_budget.h"
#include "server/model_registry.h"
#include "server/options.h"

namespace ntk::server {

struct FitJob {
  std::string model_id;                 // empty: the server assigns one
  bool replace = false;
  const v1::ModelSpec* spec = nullptr;  // not owned; must outlive RunFit
  const v1::ModelSelection* selection = nullptr;  // not owned; null: no selection
  bool background = false;              // FitRequest.background
  TrainingData data;                    // wire facts and limits already checked
};

// REQUIRES: runs on the fit pool holding a fit slot (Where::kFit); `runner`
// and `registry` outlive every background fit (the server drains the fit
// pool before destroying them).
absl::Status RunFit(RpcRunner* runner, ModelRegistry* registry, RpcCall& call, FitJob job,
                    v1::FitResponse* response);

}  // namespace ntk::server

#endif  // NTK_SERVER_FIT_H_
