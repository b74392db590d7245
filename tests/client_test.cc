// Every RPC end to end through the client library against an in-process
// server (127.0.0.1, ephemeral port, temporary model directory).
#include "client/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/convert.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using ::testing::HasSubstr;
using testing::InProcessServer;
using testing::TempDir;

TEST(ClientWireTest, ToProtoIsRowMajorAndFromProtoInverts) {
  Eigen::MatrixXd m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  v1::Matrix p = Client::ToProto(m);
  EXPECT_EQ(p.rows(), 2u);
  EXPECT_EQ(p.cols(), 3u);
  ASSERT_EQ(p.values_size(), 6);
  for (int k = 0; k < 6; ++k) EXPECT_EQ(p.values(k), k + 1);
  absl::StatusOr<Eigen::MatrixXd> back = Client::FromProto(p);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
  p.mutable_values()->RemoveLast();
  EXPECT_EQ(Client::FromProto(p).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClientTest, ConnectRejectsBadOptions) {
  ClientOptions o;
  o.max_message_mb = 0;
  EXPECT_EQ(Client::Connect(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = ClientOptions();
  o.target = "";
  EXPECT_EQ(Client::Connect(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClientTest, EveryRpcEndToEnd) {
  TempDir dir;
  auto server = InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(server, nullptr);
  std::unique_ptr<Client> c = server->Connect();
  ASSERT_NE(c, nullptr);

  EXPECT_TRUE(c->Health().ok());
  EXPECT_TRUE(c->Health("ntk.v1.NtkService").ok());

  const testing::Blobs data = testing::MakeBlobs(60, 4, 3, 1);
  absl::StatusOr<v1::ModelInfo> info = c->Fit("blobs", testing::SmallSpec(0.5), data.x, data.y);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->model_id(), "blobs");
  EXPECT_EQ(info->num_train(), 60u);
  EXPECT_EQ(info->num_features(), 4u);
  EXPECT_EQ(info->spec().num_classes(), 3u);
  EXPECT_EQ(info->spec().kernel().depth(), 2u);
  EXPECT_EQ(info->spec().training().regularization(), 0.5);
  EXPECT_EQ(info->stats().regime(), "2a");
  EXPECT_GT(info->created_unix_ms(), 0);

  absl::StatusOr<v1::ModelInfo> got = c->GetModel("blobs");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->SerializeAsString(), info->SerializeAsString());

  absl::StatusOr<std::vector<v1::ModelInfo>> list = c->ListModels();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].model_id(), "blobs");

  absl::StatusOr<Client::PredictResult> p = c->Predict("blobs", data.x);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->probabilities.rows(), 60);
  ASSERT_EQ(p->probabilities.cols(), 3);
  ASSERT_EQ(p->logits.rows(), 60);
  ASSERT_EQ(p->labels.size(), 60u);
  int correct = 0;
  for (int i = 0; i < 60; ++i) {
    // Probabilities are a softmax: they sum to 1 up to a few ulps of the
    // three summands (1e-12 is far above that and far below any real error).
    EXPECT_NEAR(p->probabilities.row(i).sum(), 1.0, 1e-12);
    // Centered logits: the row mean is 0 up to rounding of 3 terms of size
    // |logit| (relative 1e-12).
    EXPECT_NEAR(p->logits.row(i).sum(), 0.0, 1e-12 * (1 + p->logits.row(i).cwiseAbs().sum()));
    Eigen::Index arg;
    p->probabilities.row(i).maxCoeff(&arg);
    EXPECT_EQ(p->labels[i], arg);
    correct += p->labels[i] == data.y[i] ? 1 : 0;
  }
  // Well separated blobs (center spread 2 per coordinate, unit noise): a
  // fitted classifier gets its own training points right.
  EXPECT_GE(correct, 54);

  absl::StatusOr<v1::PredictDistributionResponse> d =
      c->PredictDistribution("blobs", data.x.topRows(5));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->method(), v1::LINEARIZED);  // unspecified -> LINEARIZED for 2a
  ASSERT_EQ(d->points_size(), 5);
  for (const v1::PointDistribution& pt : d->points()) {
    EXPECT_EQ(pt.logit_mean_size(), 3);
    EXPECT_EQ(pt.logit_covariance_size(), 9);
    EXPECT_EQ(pt.probability_mean_size(), 3);
    EXPECT_EQ(pt.probability_covariance_size(), 9);
  }
  // Seeded Monte Carlo: the same request gives the same answer bit for bit.
  absl::StatusOr<v1::PredictDistributionResponse> mc1 =
      c->PredictDistribution("blobs", data.x.topRows(3), v1::MONTE_CARLO, 200, 7);
  absl::StatusOr<v1::PredictDistributionResponse> mc2 =
      c->PredictDistribution("blobs", data.x.topRows(3), v1::MONTE_CARLO, 200, 7);
  ASSERT_TRUE(mc1.ok()) << mc1.status();
  ASSERT_TRUE(mc2.ok()) << mc2.status();
  EXPECT_EQ(mc1->method(), v1::MONTE_CARLO);
  EXPECT_EQ(mc1->SerializeAsString(), mc2->SerializeAsString());

  // Server-assigned id.
  absl::StatusOr<v1::ModelInfo> anon = c->Fit("", testing::SmallSpec(0.5), data.x, data.y);
  ASSERT_TRUE(anon.ok()) << anon.status();
  EXPECT_THAT(anon->model_id(), ::testing::StartsWith("m-"));
  EXPECT_TRUE(server::ValidateModelId(anon->model_id()).ok());
  EXPECT_TRUE(c->GetModel(anon->model_id()).ok());

  // Soft targets instead of labels.
  absl::StatusOr<v1::ModelInfo> soft =
      c->Fit("soft", testing::SmallSpec(), data.x, {}, testing::SoftTargets(data.y, 3, 0.2));
  ASSERT_TRUE(soft.ok()) << soft.status();
  EXPECT_EQ(soft->stats().regime(), "2b");  // targets all > 0: lambda defaults to 0

  // Delete.
  EXPECT_TRUE(c->DeleteModel("blobs").ok());
  EXPECT_EQ(c->GetModel("blobs").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c->DeleteModel("blobs").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c->Predict("blobs", data.x).status().code(), absl::StatusCode::kNotFound);
  list = c->ListModels();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 2u);
}

// A request over 3/4 of the message limit goes in FitStream chunks and
// gives the model a single Fit gives; Fit's on_upload follows the chunks
// (increasing row counts ending at the total) and is never called for a
// request sent as one Fit.
TEST(ClientTest, LargeFitSwitchesToFitStreamWithSameResult) {
  TempDir dir;
  auto server = InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(server, nullptr);
  // 400 x 300 doubles = 960 KB > 3/4 of 1 MiB: this client must stream, in
  // chunks of about half a message (~217 rows), so at least two.
  ClientOptions small;
  small.max_message_mb = 1;
  std::unique_ptr<Client> streaming = server->Connect(small);
  std::unique_ptr<Client> unary = server->Connect();
  const testing::Blobs data = testing::MakeBlobs(400, 300, 2, 5);
  v1::FitRequest request;
  *request.mutable_spec() = testing::SmallSpec(1.0);
  *request.mutable_features() = Client::ToProto(data.x);
  request.mutable_labels()->Add(data.y.begin(), data.y.end());
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  auto record = [&calls](uint64_t sent, uint64_t total) { calls.emplace_back(sent, total); };
  request.set_model_id("streamed");
  auto a = streaming->Fit(request, record);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_GE(calls.size(), 2u);
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].second, 400u);
    if (i > 0) EXPECT_GT(calls[i].first, calls[i - 1].first);
  }
  EXPECT_EQ(calls.back().first, 400u);
  calls.clear();
  request.set_model_id("unary");
  auto b = unary->Fit(request, record);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(calls.empty());
  EXPECT_EQ(a->num_train(), 400u);
  // Same rows in the same order through the same code: identical models.
  auto pa = unary->Predict("streamed", data.x.topRows(20));
  auto pb = unary->Predict("unary", data.x.topRows(20));
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_EQ(pa->logits, pb->logits);
}

// A TCP front for one backend on a port the kernel picks (127.0.0.1:0).
// While closed it accepts each connection and closes it at once (a gRPC
// client sees UNAVAILABLE); once opened it relays connections to the
// backend. It counts the connections it refused, so a test can wait for an
// event instead of sleeping.
class GatedProxy {
 public:
  explicit GatedProxy(int backend_port) : backend_port_(backend_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = Loopback(0);
    socklen_t len = sizeof(addr);
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        ::pipe2(stop_pipe_, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "GatedProxy: cannot listen";
      return;
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~GatedProxy() {
    if (stop_pipe_[1] >= 0) ::close(stop_pipe_[1]);  // wakes every poll
    if (acceptor_.joinable()) acceptor_.join();  // no relays are added after this
    for (std::thread& t : relays_) t.join();
    if (stop_pipe_[0] >= 0) ::close(stop_pipe_[0]);
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  int port() const { return port_; }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  int refused() {
    absl::MutexLock lock(&mu_);
    return refused_;
  }
  // Blocks until more than `n` connections were refused; false if that does
  // not happen within 60 s (a failure bound, not a synchronization delay).
  bool WaitForMoreRefusalsThan(int n) {
    absl::MutexLock lock(&mu_);
    auto more = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return refused_ > n; };
    return mu_.AwaitWithTimeout(absl::Condition(&more), absl::Seconds(60));
  }

 private:
  static sockaddr_in Loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    return addr;
  }
  // Waits for `fd` readable or stop; false on stop.
  bool Readable(int fd) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    while (::poll(p, 2, -1) < 0) {
    }
    return (p[1].revents & (POLLIN | POLLHUP)) == 0;
  }
  void AcceptLoop() {
    while (Readable(listen_fd_)) {
      const int conn = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      absl::MutexLock lock(&mu_);
      if (!open_) {
        ::close(conn);
        ++refused_;
        continue;
      }
      relays_.emplace_back([this, conn] { Relay(conn); });
    }
  }
  void Relay(int client) {
    const int backend = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = Loopback(backend_port_);
    if (::connect(backend, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      char buf[16384];
      pollfd p[3] = {{client, POLLIN, 0}, {backend, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      for (bool live = true; live;) {
        if (::poll(p, 3, -1) < 0) continue;
        if (p[2].revents != 0) break;
        for (int k = 0; k < 2 && live; ++k) {
          if (p[k].revents == 0) continue;
          const ssize_t n = ::read(p[k].fd, buf, sizeof(buf));
          live = n > 0 && ::send(p[1 - k].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) == n;
        }
      }
    }
    ::close(backend);
    ::close(client);
  }

  const int backend_port_;
  int listen_fd_ = -1;
  int port_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::thread acceptor_;
  std::vector<std::thread> relays_;  // appended by the accept loop only
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  int refused_ ABSL_GUARDED_BY(mu_) = 0;
};

// The server is reached through a GatedProxy (one kernel-picked port held
// for the whole test, no port reuse). DeleteModel is not retried: it fails
// while the proxy refuses. ListModels is retried: the proxy opens only
// after it refused a connection made during the call, so the call's first
// attempt has failed and only a retry can succeed.
TEST(ClientTest, RetriesUnavailableForReadOnlyCallsOnly) {
  TempDir dir;
  auto server = InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(server, nullptr);
  GatedProxy proxy(server->server().port());
  ASSERT_GT(proxy.port(), 0);
  ClientOptions o;
  o.target = "127.0.0.1:" + std::to_string(proxy.port());
  o.max_retries = 7;  // backoff 100, 200, ..., 6400 ms: about 12 s in all
  o.initial_backoff = std::chrono::milliseconds(100);
  o.default_deadline = std::chrono::seconds(30);
  auto c = Client::Connect(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->DeleteModel("x").code(), absl::StatusCode::kUnavailable);
  const int refused_before = proxy.refused();
  EXPECT_GE(refused_before, 1);

  bool saw_refusal = false;
  std::thread opener([&] {
    saw_refusal = proxy.WaitForMoreRefusalsThan(refused_before);
    proxy.Open();
  });
  absl::StatusOr<std::vector<v1::ModelInfo>> list = (*c)->ListModels();
  opener.join();
  EXPECT_TRUE(saw_refusal) << "no connection attempt reached the proxy in 60 s";
  EXPECT_TRUE(list.ok()) << list.status();
}

TEST(ServerTest, ReflectionListsTheServices) {
  TempDir dir;
  auto server = InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(server, nullptr);
  auto channel = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  auto step = [&](int want) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  // ServerReflectionRequest{list_services: ""}: field 7, length 0.
  grpc::Slice request_slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&request_slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(step(2));
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(step(3));
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(4));
  ASSERT_TRUE(step(4));
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& sl : slices) {
    bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  }
  EXPECT_THAT(bytes, HasSubstr("ntk.v1.NtkService"));
  EXPECT_THAT(bytes, HasSubstr("grpc.health.v1.Health"));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_TRUE(status.ok()) << status.error_message();
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
}

}  // namespace
}  // namespace ntk
