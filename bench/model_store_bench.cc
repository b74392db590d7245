// ntk/bench/model_store_bench.cc: the model file container of
// server/model_store.h on a 19 MB payload (about an exact model of
// N = 1500, d = 784, C = 10: x_train and the dual, FittedModel::Serialize).
// The container's checksum is what this measures; the payload is random
// bytes (the checksum does not depend on them).
//
//   BM_Encode   ModelStore::Encode: framing + checksum of every byte
//   BM_Decode   ModelStore::Decode: parsing + checksum check
//   BM_DecodeVersion1  Decode of a format-1 file (CRC-32 trailer, read by
//               the bitwise legacy CRC-32; the file made with zlib's crc32)
//   BM_Save     ModelStore::Save: Encode, write, fsync, rename, fsync dir
//   BM_LoadAll  ModelStore::LoadAll of a directory holding that one file
//
//   ./model_store_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <zlib.h>

#include "server/model_store.h"

namespace {

constexpr size_t kPayloadBytes = size_t{19} << 20;

const ntk::server::StoredModel& Model() {
  static const ntk::server::StoredModel* m = [] {
    auto* out = new ntk::server::StoredModel;
    out->id = "bench-model";
    out->created_unix_ms = 1700000000000;
    std::mt19937_64 rng(1);
    out->payload.resize(kPayloadBytes);
    for (size_t i = 0; i + 8 <= kPayloadBytes; i += 8) {
      const uint64_t v = rng();
      for (int k = 0; k < 8; ++k) out->payload[i + k] = static_cast<char>(v >> (8 * k));
    }
    return out;
  }();
  return *m;
}

// A fresh directory under $TMPDIR (or /tmp), opened as a ModelStore.
std::string MakeDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/model_store_bench.XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) std::abort();
  return std::string(buf.data());
}

void SetBytes(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kPayloadBytes));
}

void BM_Encode(benchmark::State& state) {
  for (auto _ : state) {
    std::string bytes = ntk::server::ModelStore::Encode(Model());
    benchmark::DoNotOptimize(bytes.data());
  }
  SetBytes(state);
}

// Decodes `bytes` (an encoding of Model()) in every iteration.
void DecodeLoop(benchmark::State& state, const std::string& bytes) {
  for (auto _ : state) {
    absl::StatusOr<ntk::server::StoredModel> m = ntk::server::ModelStore::Decode(bytes);
    if (!m.ok()) {
      state.SkipWithError(m.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(m->payload.data());
  }
  SetBytes(state);
}

void BM_Decode(benchmark::State& state) {
  DecodeLoop(state, ntk::server::ModelStore::Encode(Model()));
}

void BM_DecodeVersion1(benchmark::State& state) {
  std::string bytes = ntk::server::ModelStore::Encode(Model());
  bytes[8] = 1;  // u32 format version, little-endian: 1
  const size_t body = bytes.size() - 4;
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(body)));
  for (int k = 0; k < 4; ++k) bytes[body + k] = static_cast<char>(crc >> (8 * k));
  DecodeLoop(state, bytes);
}

void BM_Save(benchmark::State& state) {
  ntk::server::ModelStore store(MakeDir());
  if (absl::Status s = store.Open(); !s.ok()) std::abort();
  for (auto _ : state) {
    if (absl::Status s = store.Save(Model()); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  SetBytes(state);
  std::filesystem::remove_all(store.dir());
}

void BM_LoadAll(benchmark::State& state) {
  ntk::server::ModelStore store(MakeDir());
  if (absl::Status s = store.Open(); !s.ok()) std::abort();
  if (absl::Status s = store.Save(Model()); !s.ok()) std::abort();
  for (auto _ : state) {
    std::vector<std::string> errors;
    std::vector<ntk::server::StoredModel> models = store.LoadAll(&errors);
    if (models.size() != 1 || !errors.empty()) {
      state.SkipWithError("LoadAll did not return the one model");
      break;
    }
    benchmark::DoNotOptimize(models[0].payload.data());
  }
  SetBytes(state);
  std::filesystem::remove_all(store.dir());
}

BENCHMARK(BM_Encode)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeVersion1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Save)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LoadAll)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
