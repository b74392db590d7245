// ntk/server/model_store.h: the model directory (persistence).
//
// One file per model, "<model_id>.ntkm":
//   "NTKMFILE" | u32 format version (2) | u32 id length | id bytes |
//   i64 created_unix_ms | u64 payload length | payload (FittedModel::Serialize()) |
//   u32 CRC-32C of every byte before it                  (little-endian)
// core's payload carries its own checksum as well. The CRC-32C is core's
// (core/numerics/crc32c.h, hardware-accelerated). Version 1 files (the same
// layout with a CRC-32, ISO-HDLC) are still read; only version 2 is written.
//
// Save is atomic: it writes ".<id>.ntkm.tmp-<random>" in the same directory,
// fsyncs it, renames it over "<id>.ntkm" and fsyncs the directory, so after a
// crash at any point the directory holds either the old file or the new one,
// never a mix. Ids never start with '.', so temporary names never collide
// with model files; Open() removes leftover temporaries.
//
// The directory belongs to one server at a time: Open() takes an exclusive
// flock on "<dir>/.lock" (kLockFileName), held until the ModelStore is
// destroyed (the process exits); a second Open() on the same directory, in
// this or another process, fails with FAILED_PRECONDITION naming the
// directory.
//
// Errors of Save/Remove: disk full or over quota -> RESOURCE_EXHAUSTED;
// read-only, missing or forbidden directory -> FAILED_PRECONDITION; others
// INTERNAL. Their messages name the file, never the directory (they reach
// clients); the log line "store: ..." has the full path.
//
// Thread safety: Save/Remove for the same id must not run concurrently (the
// ModelRegistry serializes them); otherwise all methods are thread-safe.
#ifndef NTK_SERVER_MODEL_STORE_H_
#define NTK_SERVER_MODEL_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ntk::server {

// The lock file in the model directory (not a model: no ".ntkm" suffix).
inline constexpr char kLockFileName[] = ".lock";

struct StoredModel {
  std::string id;
  int64_t created_unix_ms = 0;
  std::string payload;  // FittedModel::Serialize() bytes
};

class ModelStore {
 public:
  explicit ModelStore(std::string dir);
  ~ModelStore();
  ModelStore(const ModelStore&) = delete;
  ModelStore& operator=(const ModelStore&) = delete;

  // Creates the directory if missing, takes its lock (FAILED_PRECONDITION
  // "model_dir <dir> is in use by another ntk_server ..." when another
  // holder has it; an Open() again keeps this store's lock) and removes
  // leftover temporary files (each logged).
  absl::Status Open();

  // Reads every "<id>.ntkm". A damaged or unreadable file is logged, listed
  // in *errors (may be null) and skipped.
  std::vector<StoredModel> LoadAll(std::vector<std::string>* errors) const;

  // Atomically writes (or replaces) the file of model.id; durable on return.
  absl::Status Save(const StoredModel& model) const;
  // Removes the file of `id` (OK when absent) and fsyncs the directory.
  absl::Status Remove(const std::string& id) const;

  std::string PathFor(const std::string& id) const;
  const std::string& dir() const { return dir_; }

  // The file format, exposed for tests.
  static std::string Encode(const StoredModel& model);
  static absl::StatusOr<StoredModel> Decode(const std::string& bytes);
  static bool IsTemporaryName(const std::string& file_name);

 private:
  absl::Status Lock();
  absl::Status SyncDir() const;
  std::string dir_;
  int lock_fd_ = -1;  // flock held on <dir>/.lock after Open()
};

}  // namespace ntk::server

#endif  // NTK_SERVER_MODEL_STORE_H_
