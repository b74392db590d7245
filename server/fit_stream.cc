#include "server/fit_stream.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/str_format.h"
#include "proto/matrix_convert.h"
#include "server/convert.h"
#include "server/fit.h"
#include "server/log.h"
#include "server/stream_idle.h"

namespace ntk::server {
namespace {

bool HasMatrix(const v1::Matrix& m) {
  return m.rows() > 0 || m.cols() > 0 || m.values_size() > 0 || !m.data().empty();
}

// The rows of one matrix field (features or targets) gathered so far, row-major.
struct Rows {
  uint64_t rows = 0, cols = 0;
  std::vector<double> values;

  // Appends one message's chunk: same column count as earlier chunks, wire
  // facts of the chunk (proto/matrix_convert.h).
  absl::Status Append(const char* field, const v1::Matrix& m, int index) {
    if (cols != 0 && m.cols() != cols) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s.cols: FitStream message %d has %d columns, earlier messages %d",
                          field, index, m.cols(), cols));
    }
    if (absl::Status s = AppendMatrixRows(m, field, &values); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrFormat("%s (FitStream message %d)", s.message(), index));
    }
    cols = m.cols();
    rows += m.rows();
    return absl::OkStatus();
  }
  Eigen::MatrixXd TakeMatrix() {
    Eigen::MatrixXd out = Eigen::Map<const RowMajorMatrixXd>(
        values.data(), static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
    std::vector<double>().swap(values);
    return out;
  }
};

class FitStreamReactor final : public grpc::ServerReadReactor<v1::FitRequest> {
 public:
  FitStreamReactor(RpcRunner* runner, ModelRegistry* registry, grpc::CallbackServerContext* ctx,
                   v1::FitResponse* response)
      : runner_(runner), registry_(registry), response_(response),
        call_(ctx, CallLog("FitStream")), activity_(std::make_shared<StreamActivity>()) {
    runner_->inflight()->Enter();  // left in OnDone
    // Auth only: the fit slot is taken once the data is complete, so a slow
    // or idle client never holds one (issue 11 finding 2).
    absl::Status s = runner_->Admit(*ctx, Where::kInline);
    if (!s.ok()) {
      // A local reference: Finish may delete `this` (OnDone) before the unlock.
      const std::shared_ptr<StreamActivity> activity = activity_;
      std::lock_guard<std::mutex> lock(activity->mu);
      Finished(std::move(s));
      return;
    }
    const double idle = runner_->stream_watchdog()->idle_seconds();
    activity_->on_idle = [this, idle] {
      Done(absl::DeadlineExceededError(absl::StrFormat(
          "FitStream: no message for %g s (--stream_idle_seconds = %g); the stream was ended",
          idle, idle)));
    };
    runner_->stream_watchdog()->Watch(activity_);
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    {
      // A local reference: Finish may delete `this` (OnDone) before the unlock.
      const std::shared_ptr<StreamActivity> activity = activity_;
      std::lock_guard<std::mutex> lock(activity->mu);
      // The watchdog ended an idle stream: this is its read failing.
      if (activity_->phase != StreamActivity::Phase::kReading) return;
      if (!ok) {  // end of the stream (or cancelled: RunFit sees it)
        if (num_messages_ == 0) {
          Finished(absl::InvalidArgumentError("FitStream: the stream carried no messages"));
          return;
        }
        if (absl::Status slot = runner_->TakeSlot(Where::kFit); !slot.ok()) {
          Finished(std::move(slot));
          return;
        }
        admitted_ = true;
        activity_->phase = StreamActivity::Phase::kBusy;
        runner_->Schedule(Where::kFit, [this] { RunFitAndFinish(); });
        return;
      }
      absl::Status s = RpcRunner::NoThrow([&] { return Append(); });
      if (!s.ok()) {
        Finished(std::move(s));
        return;
      }
      activity_->last_message = std::chrono::steady_clock::now();
    }
    StartRead(&message_);
  }

  void OnDone() override {
    InflightCalls* const inflight = runner_->inflight();
    delete this;
    inflight->Exit();
  }

 private:
  void Done(absl::Status s) {
    Finish(runner_->Complete(call_, Where::kFit, admitted_, std::move(s)));
  }
  // Done while reading. REQUIRES: activity_->mu held.
  void Finished(absl::Status s) {
    activity_->phase = StreamActivity::Phase::kFinished;
    Done(std::move(s));
  }

  // Only the first message sets model_id, spec, replace, selection and background.
  absl::Status CheckHeader(const v1::FitRequest& m, int index) const {
    if (!m.model_id().empty() && m.model_id() != model_id_) {
      return absl::InvalidArgumentError(
          absl::StrFormat("model_id: FitStream message %d has \"%s\", the first had \"%s\"; "
                          "only the first message sets it",
                          index, m.model_id(), model_id_));
    }
    if (m.has_spec() && !google::protobuf::util::MessageDifferencer::Equals(m.spec(), spec_)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "spec: FitStream message %d carries a different spec; only the first message sets it",
          index));
    }
    if (m.replace() && !replace_) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "replace: FitStream message %d sets replace; only the first message sets it", index));
    }
    if (m.has_selection() &&
        !google::protobuf::util::MessageDifferencer::Equals(m.selection(), selection_)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "selection: FitStream message %d carries a different selection; only the first "
          "message sets it",
          index));
    }
    if (m.background() && !background_) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "background: FitStream message %d sets background; only the first message sets it",
          index));
    }
    return absl::OkStatus();
  }

  absl::Status Append() {
    const v1::FitRequest& m = message_;
    const int index = num_messages_++;
    const ServerOptions& limits = runner_->options();
    if (index == 0) {
      model_id_ = m.model_id();
      replace_ = m.replace();
      spec_ = m.spec();
      selection_ = m.selection();
      background_ = m.background();
      call_.log().model_id = model_id_;
      // The stream is now a call in flight (shutdown waits for it); the line
      // tells operators (and tests) that its data has started to arrive.
      if (limits.log_rpcs) Logf("fit_stream model=%s phase=receiving", LogfmtValue(model_id_));
    } else if (absl::Status s = CheckHeader(m, index); !s.ok()) {
      return s;
    }
    if (HasMatrix(m.features())) {
      if (absl::Status s = features_.Append("features", m.features(), index); !s.ok()) return s;
      if (absl::Status s = CheckTrainingShape(features_.rows, features_.cols, spec_, limits); !s.ok()) {
        return s;
      }
    }
    call_.log().rows = static_cast<int64_t>(features_.rows);
    if (absl::Status s = CheckLabelLimits(m.labels(), labels_.size(), spec_, limits); !s.ok()) return s;
    labels_.insert(labels_.end(), m.labels().begin(), m.labels().end());
    if (HasMatrix(m.targets())) {
      if (absl::Status s = targets_.Append("targets", m.targets(), index); !s.ok()) return s;
      if (absl::Status s = CheckTargetsShape(targets_.rows, targets_.cols, spec_, limits); !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

  void RunFitAndFinish() {
    call_.StartTimeCeiling(runner_->options().max_request_seconds);
    absl::Status s = RpcRunner::NoThrow([&] {
      FitJob job;
      job.model_id = model_id_;
      job.replace = replace_;
      job.spec = &spec_;
      job.selection = &selection_;
      job.background = background_;
      job.data.features = features_.TakeMatrix();
      job.data.labels.assign(labels_.begin(), labels_.end());
      std::vector<int32_t>().swap(labels_);
      if (targets_.rows > 0 || targets_.cols > 0) job.data.targets = targets_.TakeMatrix();
      return RunFit(runner_, registry_, call_, std::move(job), response_);
    });
    Done(std::move(s));
  }

  RpcRunner* const runner_;
  ModelRegistry* const registry_;
  v1::FitResponse* const response_;
  RpcCall call_;
  const std::shared_ptr<StreamActivity> activity_;  // phase: server/stream_idle.h
  bool admitted_ = false;  // holds a fit slot
  v1::FitRequest message_;
  int num_messages_ = 0;
  std::string model_id_;
  bool replace_ = false;
  v1::ModelSpec spec_;
  v1::ModelSelection selection_;
  bool background_ = false;
  Rows features_, targets_;
  std::vector<int32_t> labels_;
};

}  // namespace

grpc::ServerReadReactor<v1::FitRequest>* NewFitStreamReactor(RpcRunner* runner,
                                                             ModelRegistry* registry,
                                                             grpc::CallbackServerContext* ctx,
                                                             v1::FitResponse* response) {
  return new FitStreamReactor(runner, registry, ctx, response);
}

}  // namespace ntk::server
