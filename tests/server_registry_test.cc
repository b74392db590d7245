// The model registry (server/model_registry.h) and the DistributionCache it
// is given: every publish gets a new generation, and a replaced or deleted
// model's cached factors are dropped.
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "core/distribution/cache.h"
#include "core/model/model.h"
#include "server/model_registry.h"
#include "tests/testing/server_fixture.h"

namespace ntk::server {
namespace {

// A cache entry of a given size (stands in for a factor).
class SizedEntry final : public CacheEntry {
 public:
  explicit SizedEntry(int64_t n) : n_(n) {}
  int64_t Bytes() const override { return n_; }

 private:
  int64_t n_;
};

std::shared_ptr<const FittedModel> TinyModel() {
  testing::Blobs b = testing::MakeBlobs(12, 2, 2, 5);
  TrainingData data;
  data.features = b.x;
  data.labels = b.y;
  ModelSpec spec;
  spec.training.regularization = 1.0;
  absl::StatusOr<std::unique_ptr<FittedModel>> m = FittedModel::Fit(spec, data);
  EXPECT_TRUE(m.ok()) << m.status();
  return std::shared_ptr<const FittedModel>(std::move(*m));
}

TEST(ModelRegistryTest, GenerationsGrowAndReplacedOrDeletedModelsLeaveTheCache) {
  DistributionCache::Options options;
  options.budget_bytes = 1 << 20;
  DistributionCache cache(options);
  ModelRegistry registry(nullptr, 0, &cache);
  std::shared_ptr<const FittedModel> model = TinyModel();
  ASSERT_NE(model, nullptr);

  auto publish = [&](const std::string& id, bool replace) {
    EXPECT_TRUE(registry.Reserve(id, replace).ok());
    absl::StatusOr<std::shared_ptr<const ModelEntry>> e =
        registry.Commit(id, 1, model, model->Serialize());
    EXPECT_TRUE(e.ok()) << e.status();
    return *e;
  };
  std::shared_ptr<const ModelEntry> a1 = publish("a", false);
  std::shared_ptr<const ModelEntry> b1 = publish("b", false);
  EXPECT_GT(b1->generation, a1->generation);
  EXPECT_EQ(a1->model_bytes, model->MemoryBytes());  // what the model holds in memory
  DistributionCache::Scope scope = a1->CacheScope(&cache);
  EXPECT_EQ(scope.cache, &cache);
  EXPECT_EQ(scope.model_id, "a");
  EXPECT_EQ(scope.generation, a1->generation);

  cache.Put({"a", a1->generation, "exact"}, std::make_shared<SizedEntry>(100));
  cache.Put({"b", b1->generation, "exact"}, std::make_shared<SizedEntry>(30));
  ASSERT_EQ(cache.ModelBytes("a"), 100);

  // Replacing "a": a new generation, and its old factors are gone.
  std::shared_ptr<const ModelEntry> a2 = publish("a", true);
  EXPECT_GT(a2->generation, b1->generation);
  EXPECT_EQ(registry.Get("a"), a2);
  EXPECT_EQ(cache.ModelBytes("a"), 0);
  EXPECT_EQ(cache.Lookup({"a", a1->generation, "exact"}), nullptr);
  EXPECT_EQ(cache.ModelBytes("b"), 30);  // other models keep theirs

  // Deleting "b" drops its factors too.
  ASSERT_TRUE(registry.Delete("b").ok());
  EXPECT_EQ(cache.ModelBytes("b"), 0);
  EXPECT_EQ(cache.stats().bytes, 0);

  // A model loaded at start gets a generation of its own as well.
  registry.InsertLoaded("c", 1, model, 123);
  EXPECT_GT(registry.Get("c")->generation, a2->generation);
  EXPECT_EQ(registry.Get("c")->model_bytes, model->MemoryBytes());
}

}  // namespace
}  // namespace ntk::server
