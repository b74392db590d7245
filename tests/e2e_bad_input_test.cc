// A table of bad requests, each with the status code API.md names and the
// field its message must name; the server keeps serving (and answers
// exactly as before) afterwards.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/matrix_convert.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using testing::InProcessServer;
using testing::TempDir;
using Stub = v1::NtkService::Stub;

struct Case {
  std::string name;
  std::function<grpc::Status(Stub*)> call;
  grpc::StatusCode code;
  std::string field;  // the message must contain this
};

std::unique_ptr<grpc::ClientContext> Ctx() { return testing::CallContext(std::chrono::seconds(30)); }

v1::FitRequest GoodFit(const std::string& id, int n = 30, int d = 4, int classes = 3) {
  testing::Blobs b = testing::MakeBlobs(n, d, classes, 11);
  v1::FitRequest r;
  r.set_model_id(id);
  *r.mutable_spec() = testing::SmallSpec(1.0);
  *r.mutable_features() = Client::ToProto(b.x);
  r.mutable_labels()->Add(b.y.begin(), b.y.end());
  return r;
}

grpc::Status DoFit(Stub* s, const v1::FitRequest& r) {
  v1::FitResponse resp;
  return s->Fit(Ctx().get(), r, &resp);
}

grpc::Status DoFitStream(Stub* s, const std::vector<v1::FitRequest>& msgs) {
  v1::FitResponse resp;
  auto ctx = Ctx();
  auto w = s->FitStream(ctx.get(), &resp);
  for (const auto& m : msgs) {
    if (!w->Write(m)) break;
  }
  w->WritesDone();
  return w->Finish();
}

v1::PredictRequest GoodPredict(const std::string& id, int rows = 3, int d = 4) {
  v1::PredictRequest r;
  r.set_model_id(id);
  *r.mutable_features() = Client::ToProto(testing::MakeBlobs(rows, d, 1, 3).x);
  return r;
}

grpc::Status DoPredict(Stub* s, const v1::PredictRequest& r) {
  v1::PredictResponse resp;
  return s->Predict(Ctx().get(), r, &resp);
}

grpc::Status DoDistribution(Stub* s, const v1::PredictDistributionRequest& r) {
  v1::PredictDistributionResponse resp;
  return s->PredictDistribution(Ctx().get(), r, &resp);
}

v1::PredictDistributionRequest Dist(const std::string& id, int method, uint32_t samples = 0) {
  v1::PredictDistributionRequest r;
  r.set_model_id(id);
  *r.mutable_features() = GoodPredict(id).features();
  r.set_method(static_cast<v1::DistributionMethod>(method));
  r.set_num_samples(samples);
  return r;
}

grpc::Status DoGet(Stub* s, const std::string& id) {
  v1::GetModelRequest r;
  r.set_model_id(id);
  v1::ModelInfo resp;
  return s->GetModel(Ctx().get(), r, &resp);
}

grpc::Status DoDelete(Stub* s, const std::string& id) {
  v1::DeleteModelRequest r;
  r.set_model_id(id);
  v1::DeleteModelResponse resp;
  return s->DeleteModel(Ctx().get(), r, &resp);
}

template <typename F>
v1::FitRequest FitWith(F&& mutate) {
  v1::FitRequest r = GoodFit("bad");
  mutate(&r);
  return r;
}

template <typename F>
v1::PredictRequest PredictWith(F&& mutate) {
  v1::PredictRequest r = GoodPredict("base");
  mutate(&r);
  return r;
}

TEST(BadInputTest, EveryCaseGetsItsCodeAndTheServerKeepsServing) {
  TempDir dir;
  server::ServerOptions o = testing::TestServerOptions(dir.path());
  o.max_train_rows = 200;
  o.max_features = 16;
  o.max_classes = 5;
  o.max_models = 4;
  o.max_message_mb = 1;
  o.max_predict_rows = 100;
  o.max_num_samples = 1000;
  auto server = InProcessServer::Start(o);
  ASSERT_NE(server, nullptr);
  auto stub = server->RawStub();

  ASSERT_TRUE(DoFit(stub.get(), GoodFit("base")).ok());
  v1::FitRequest sq = GoodFit("sq");
  sq.mutable_spec()->mutable_training()->set_loss(v1::SQUARED);
  ASSERT_TRUE(DoFit(stub.get(), sq).ok());
  v1::PredictResponse before;
  ASSERT_TRUE(stub->Predict(Ctx().get(), GoodPredict("base"), &before).ok());

  using C = grpc::StatusCode;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<Case> cases = {
      {"fit values size != rows*cols",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_features()->mutable_values()->RemoveLast();
                     })); },
       C::INVALID_ARGUMENT, "features.values: size 119 != rows*cols = 120"},
      {"fit NaN feature",
       [nan](Stub* s) { return DoFit(s, FitWith([nan](v1::FitRequest* r) {
                          r->mutable_features()->set_values(7, nan);
                        })); },
       C::INVALID_ARGUMENT, "features: row 1 column 3 is NaN"},
      {"fit infinite feature",
       [inf](Stub* s) { return DoFit(s, FitWith([inf](v1::FitRequest* r) {
                          r->mutable_features()->set_values(0, -inf);
                        })); },
       C::INVALID_ARGUMENT, "features: row 0 column 0 is -Inf"},
      {"fit zero rows",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_features()->set_rows(0);
                       r->mutable_features()->clear_values();
                       r->clear_labels();
                     })); },
       C::INVALID_ARGUMENT, "features.rows"},
      {"fit label out of range",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_spec()->set_num_classes(3);
                       r->set_labels(4, 3);
                     })); },
       C::INVALID_ARGUMENT, "labels"},
      {"fit negative label",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) { r->set_labels(2, -1); })); },
       C::INVALID_ARGUMENT, "labels"},
      {"fit label count != rows",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_labels()->RemoveLast();
                     })); },
       C::INVALID_ARGUMENT, "labels: expected 30 labels"},
      {"fit soft targets off the simplex",
       [](Stub* s) {
         return DoFit(s, FitWith([](v1::FitRequest* r) {
           r->clear_labels();
           Eigen::MatrixXd t = Eigen::MatrixXd::Constant(30, 3, 0.5);  // rows sum to 1.5
           *r->mutable_targets() = Client::ToProto(t);
         }));
       },
       C::INVALID_ARGUMENT, "targets"},
      {"fit negative soft target",
       [](Stub* s) {
         return DoFit(s, FitWith([](v1::FitRequest* r) {
           r->clear_labels();
           Eigen::MatrixXd t = Eigen::MatrixXd::Constant(30, 3, 1.0 / 3);
           t(4, 0) = -0.2;
           t(4, 1) = 0.2 + 2.0 / 3;
           *r->mutable_targets() = Client::ToProto(t);
         }));
       },
       C::INVALID_ARGUMENT, "targets"},
      {"fit negative lambda",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_spec()->mutable_training()->set_regularization(-1);
                     })); },
       C::INVALID_ARGUMENT, "spec.training.regularization"},
      {"fit eps >= 1",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_spec()->mutable_training()->set_label_smoothing(1.0);
                     })); },
       C::INVALID_ARGUMENT, "spec.training.label_smoothing"},
      {"fit depth 101",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_spec()->mutable_kernel()->set_depth(101);
                     })); },
       C::INVALID_ARGUMENT, "spec.kernel.depth"},
      {"fit depth 10^6",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_spec()->mutable_kernel()->set_depth(1000000);
                     })); },
       C::INVALID_ARGUMENT, "spec.kernel.depth"},
      {"fit unknown activation",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_spec()->mutable_kernel()->set_activation(
                           static_cast<v1::Activation>(7));
                     })); },
       C::INVALID_ARGUMENT, "spec.kernel.activation: unknown value 7"},
      {"fit unknown loss",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_spec()->mutable_training()->set_loss(static_cast<v1::Loss>(9));
                     })); },
       C::INVALID_ARGUMENT, "spec.training.loss: unknown value 9"},
      {"fit negative weight variance",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_spec()->mutable_kernel()->set_weight_variance(-2);
                     })); },
       C::INVALID_ARGUMENT, "spec.kernel.weight_variance"},
      {"fit lambda 0 eps 0 hard labels",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_spec()->mutable_training()->set_regularization(0);
                       r->mutable_spec()->mutable_training()->set_label_smoothing(0);
                     })); },
       C::INVALID_ARGUMENT, "spec.training"},
      {"fit labels and targets",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       *r->mutable_targets() =
                           Client::ToProto(Eigen::MatrixXd::Constant(30, 3, 1.0 / 3));
                     })); },
       C::INVALID_ARGUMENT, "targets"},
      {"fit neither labels nor targets",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) { r->clear_labels(); })); },
       C::INVALID_ARGUMENT, "labels"},
      {"fit class_names count mismatch",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_spec()->add_class_names("only-one");
                     })); },
       C::INVALID_ARGUMENT, "spec.class_names"},
      {"fit duplicate id without replace", [](Stub* s) { return DoFit(s, GoodFit("base")); },
       C::ALREADY_EXISTS, "model_id"},
      {"fit id ../x", [](Stub* s) { return DoFit(s, GoodFit("../x")); }, C::INVALID_ARGUMENT,
       "model_id"},
      {"fit id a/b", [](Stub* s) { return DoFit(s, GoodFit("a/b")); }, C::INVALID_ARGUMENT,
       "model_id"},
      {"fit id .hidden", [](Stub* s) { return DoFit(s, GoodFit(".hidden")); },
       C::INVALID_ARGUMENT, "model_id"},
      {"fit id 129 chars", [](Stub* s) { return DoFit(s, GoodFit(std::string(129, 'a'))); },
       C::INVALID_ARGUMENT, "model_id"},
      {"get empty id", [](Stub* s) { return DoGet(s, ""); }, C::INVALID_ARGUMENT, "model_id"},
      {"get ../x", [](Stub* s) { return DoGet(s, "../x"); }, C::INVALID_ARGUMENT, "model_id"},
      {"get unknown", [](Stub* s) { return DoGet(s, "nope"); }, C::NOT_FOUND, "model_id"},
      {"delete unknown", [](Stub* s) { return DoDelete(s, "nope"); }, C::NOT_FOUND, "model_id"},
      {"delete a/b", [](Stub* s) { return DoDelete(s, "a/b"); }, C::INVALID_ARGUMENT,
       "model_id"},
      {"predict unknown model", [](Stub* s) { return DoPredict(s, GoodPredict("nope")); },
       C::NOT_FOUND, "model_id"},
      {"predict feature count mismatch",
       [](Stub* s) { return DoPredict(s, GoodPredict("base", 3, 5)); }, C::INVALID_ARGUMENT,
       "features: expected 4 columns, got 5"},
      {"predict NaN",
       [nan](Stub* s) { return DoPredict(s, PredictWith([nan](v1::PredictRequest* r) {
                          r->mutable_features()->set_values(5, nan);
                        })); },
       C::INVALID_ARGUMENT, "features: row 1 column 1 is NaN"},
      {"predict zero rows",
       [](Stub* s) { return DoPredict(s, PredictWith([](v1::PredictRequest* r) {
                       r->mutable_features()->set_rows(0);
                       r->mutable_features()->clear_values();
                     })); },
       C::INVALID_ARGUMENT, "features.rows"},
      {"predict values size mismatch",
       [](Stub* s) { return DoPredict(s, PredictWith([](v1::PredictRequest* r) {
                       r->mutable_features()->add_values(1.0);
                     })); },
       C::INVALID_ARGUMENT, "features.values: size 13 != rows*cols = 12"},
      {"predict values and data both set",
       [](Stub* s) { return DoPredict(s, PredictWith([](v1::PredictRequest* r) {
                       r->mutable_features()->set_data(std::string(96, '\0'));
                     })); },
       C::INVALID_ARGUMENT, "features.data: set values or data, never both"},
      {"predict data length != rows*cols*8",
       [](Stub* s) { return DoPredict(s, PredictWith([](v1::PredictRequest* r) {
                       r->mutable_features()->clear_values();
                       r->mutable_features()->set_data(std::string(95, '\0'));
                     })); },
       C::INVALID_ARGUMENT, "features.data: 95 bytes != rows*cols*8 = 12*8"},
      {"predict FLOAT32 data length != rows*cols*4",
       [](Stub* s) { return DoPredict(s, PredictWith([](v1::PredictRequest* r) {
                       r->mutable_features()->clear_values();
                       r->mutable_features()->set_dtype(v1::FLOAT32);
                       r->mutable_features()->set_data(std::string(96, '\0'));
                     })); },
       C::INVALID_ARGUMENT, "features.data: 96 bytes != rows*cols*4 = 12*4"},
      {"predict unknown dtype",
       [](Stub* s) { return DoPredict(s, PredictWith([](v1::PredictRequest* r) {
                       r->mutable_features()->clear_values();
                       r->mutable_features()->set_dtype(static_cast<v1::DType>(9));
                       r->mutable_features()->set_data(std::string(96, '\0'));
                     })); },
       C::INVALID_ARGUMENT, "features.dtype: unknown value 9"},
      {"fit targets data length wrong",
       [](Stub* s) {
         return DoFit(s, FitWith([](v1::FitRequest* r) {
           r->clear_labels();
           *r->mutable_targets() = MatrixToProto(Eigen::MatrixXd::Constant(30, 3, 1.0 / 3),
                                                 MatrixEncoding::kFloat64);
           r->mutable_targets()->mutable_data()->resize(30 * 3 * 8 - 1);
         }));
       },
       C::INVALID_ARGUMENT, "targets.data"},
      {"fitstream data chunk length wrong",
       [](Stub* s) {
         v1::FitRequest a = GoodFit("st"), b = GoodFit("");
         b.clear_spec();
         *b.mutable_features() =
             MatrixToProto(*MatrixFromProto(b.features(), "f"), MatrixEncoding::kFloat64);
         b.mutable_features()->mutable_data()->append("x");
         return DoFitStream(s, {a, b});
       },
       C::INVALID_ARGUMENT, "features.data: 961 bytes != rows*cols*8 = 120*8"},
      {"distribution unknown method", [](Stub* s) { return DoDistribution(s, Dist("base", 99)); },
       C::INVALID_ARGUMENT, "method: unknown value 99"},
      {"distribution EXACT on lambda > 0",
       [](Stub* s) { return DoDistribution(s, Dist("base", v1::EXACT)); },
       C::FAILED_PRECONDITION, ""},
      {"distribution LAPLACE_POSTERIOR on SQUARED",
       [](Stub* s) { return DoDistribution(s, Dist("sq", v1::LAPLACE_POSTERIOR)); },
       C::FAILED_PRECONDITION, ""},
      {"distribution unknown model", [](Stub* s) { return DoDistribution(s, Dist("nope", 0)); },
       C::NOT_FOUND, "model_id"},
      {"distribution num_samples over limit",
       [](Stub* s) { return DoDistribution(s, Dist("base", v1::MONTE_CARLO, 1001)); },
       C::RESOURCE_EXHAUSTED, "num_samples"},
      {"fit rows over limit", [](Stub* s) { return DoFit(s, GoodFit("big", 201)); },
       C::RESOURCE_EXHAUSTED, "features.rows: 201 exceeds --max_train_rows = 200"},
      {"fit features over limit", [](Stub* s) { return DoFit(s, GoodFit("wide", 30, 17)); },
       C::RESOURCE_EXHAUSTED, "features.cols: 17 exceeds --max_features = 16"},
      {"fit num_classes over limit",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) {
                       r->mutable_spec()->set_num_classes(6);
                     })); },
       C::RESOURCE_EXHAUSTED, "spec.num_classes"},
      {"fit labels imply too many classes",
       [](Stub* s) { return DoFit(s, FitWith([](v1::FitRequest* r) { r->set_labels(0, 5); })); },
       C::RESOURCE_EXHAUSTED, "labels"},
      {"predict rows over limit", [](Stub* s) { return DoPredict(s, GoodPredict("base", 101)); },
       C::RESOURCE_EXHAUSTED, "features.rows"},
      {"message over --max_message_mb",
       [](Stub* s) {  // 100 x 1400 doubles = 1.1 MB > 1 MiB (rows within limit)
         return DoPredict(s, GoodPredict("base", 100, 1400));
       },
       C::RESOURCE_EXHAUSTED, ""},
      {"fitstream different spec later",
       [](Stub* s) {
         v1::FitRequest a = GoodFit("st"), b = GoodFit("");
         b.mutable_spec()->mutable_kernel()->set_depth(3);
         return DoFitStream(s, {a, b});
       },
       C::INVALID_ARGUMENT, "spec: FitStream message 1"},
      {"fitstream different id later",
       [](Stub* s) {
         v1::FitRequest a = GoodFit("st"), b = GoodFit("other");
         b.clear_spec();
         return DoFitStream(s, {a, b});
       },
       C::INVALID_ARGUMENT, "model_id: FitStream message 1"},
      {"fitstream column count changes",
       [](Stub* s) {
         v1::FitRequest a = GoodFit("st"), b = GoodFit("", 30, 5);
         b.clear_spec();
         return DoFitStream(s, {a, b});
       },
       C::INVALID_ARGUMENT, "features.cols: FitStream message 1"},
      {"fitstream rows over limit",
       [](Stub* s) {
         std::vector<v1::FitRequest> msgs;
         for (int k = 0; k < 7; ++k) {  // 7 x 30 = 210 > 200 rows
           v1::FitRequest m = GoodFit(k == 0 ? "st" : "");
           if (k > 0) m.clear_spec();
           msgs.push_back(m);
         }
         return DoFitStream(s, msgs);
       },
       C::RESOURCE_EXHAUSTED, "--max_train_rows = 200"},
      {"fitstream with no messages", [](Stub* s) { return DoFitStream(s, {}); },
       C::INVALID_ARGUMENT, "FitStream"},
  };
  ASSERT_GE(cases.size(), 25u);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    grpc::Status s = c.call(stub.get());
    EXPECT_EQ(s.error_code(), c.code) << s.error_message();
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr(c.field));
  }

  // Over --max_models (4): base and sq exist; two more fit, the fifth is refused.
  EXPECT_TRUE(DoFit(stub.get(), GoodFit("third")).ok());
  EXPECT_TRUE(DoFit(stub.get(), GoodFit("fourth")).ok());
  grpc::Status fifth = DoFit(stub.get(), GoodFit("fifth"));
  EXPECT_EQ(fifth.error_code(), C::RESOURCE_EXHAUSTED) << fifth.error_message();
  // Replacing an existing model is not a new model.
  v1::FitRequest again = GoodFit("third");
  again.set_replace(true);
  EXPECT_TRUE(DoFit(stub.get(), again).ok());

  // Nothing bad was kept: only the five good models are listed and on disk.
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub->ListModels(Ctx().get(), v1::ListModelsRequest(), &list).ok());
  std::vector<std::string> ids;
  for (const auto& m : list.models()) ids.push_back(m.model_id());
  EXPECT_THAT(ids, ::testing::ElementsAre("base", "fourth", "sq", "third"));
  EXPECT_THAT(dir.List(), ::testing::ElementsAre("base.ntkm", "fourth.ntkm", "sq.ntkm",
                                                 "third.ntkm"));

  // Still serving, with the same answer bit for bit.
  v1::PredictResponse after;
  ASSERT_TRUE(stub->Predict(Ctx().get(), GoodPredict("base"), &after).ok());
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
}

}  // namespace
}  // namespace ntk
