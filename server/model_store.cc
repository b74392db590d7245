#include "server/model_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/numerics/crc32c.h"
#include "server/convert.h"
#include "server/log.h"

namespace ntk::server {
namespace {

constexpr char kMagic[8] = {'N', 'T', 'K', 'M', 'F', 'I', 'L', 'E'};
// 2: the trailing checksum is CRC-32C (core/numerics/crc32c.h). 1 (CRC-32)
// is still read (LegacyCrc32).
constexpr uint32_t kFormatVersion = 2;
constexpr uint32_t kLegacyCrc32Version = 1;
constexpr char kSuffix[] = ".ntkm";
constexpr char kTmpMarker[] = ".ntkm.tmp-";

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

class Reader {
 public:
  explicit Reader(const std::string& b) : b_(b) {}
  bool U32(uint32_t* v) {
    if (b_.size() - pos_ < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i)
      *v |= static_cast<uint32_t>(static_cast<unsigned char>(b_[pos_ + i])) << (8 * i);
    pos_ += 4;
    return true;
  }
  bool U64(uint64_t* v) {
    if (b_.size() - pos_ < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i)
      *v |= static_cast<uint64_t>(static_cast<unsigned char>(b_[pos_ + i])) << (8 * i);
    pos_ += 8;
    return true;
  }
  bool Bytes(uint64_t n, std::string* out) {
    if (b_.size() - pos_ < n) return false;
    out->assign(b_, pos_, n);
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }

 private:
  const std::string& b_;
  size_t pos_ = 0;
};

// The status of a failed file operation on `path` (errno set by it): disk
// full or quota -> RESOURCE_EXHAUSTED; read-only, missing or forbidden
// directory -> FAILED_PRECONDITION; else INTERNAL. Clients see only the file
// name (never the server's directory); the log line has the full path.
absl::Status ErrnoStatus(absl::string_view what, const std::string& path) {
  const int err = errno;
  Logf("store: %s %s: %s", what, path, std::strerror(err));
  const size_t slash = path.rfind('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string message =
      absl::StrFormat("model_dir: %s %s: %s", what, name.empty() ? "(directory)" : name,
                      std::strerror(err));
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    case EROFS:
    case EACCES:
    case EPERM:
    case ENOENT:
    case ENOTDIR:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", path);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = ErrnoStatus("read", path);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// Format version 1's checksum, CRC-32 (ISO-HDLC: reflected polynomial
// 0xEDB88320, init/xorout 0xFFFFFFFF), kept only to read files written
// before version 2; nothing writes it. Byte-wise table, as version 1 was
// written (a bitwise loop would read a 19 MB file 3x slower,
// bench/model_store_bench BM_DecodeVersion1).
uint32_t LegacyCrc32(const char* data, size_t size) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    c = table[(c ^ static_cast<unsigned char>(data[i])) & 0xff] ^ (c >> 8);
  }
  return c ^ 0xFFFFFFFFu;
}

std::string RandomHex() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat("%016x", rng());
}

}  // namespace

ModelStore::ModelStore(std::string dir) : dir_(std::move(dir)) {}

ModelStore::~ModelStore() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

absl::Status ModelStore::Lock() {
  if (lock_fd_ >= 0) return absl::OkStatus();  // Open() again: still ours
  const std::string path = absl::StrCat(dir_, "/", kLockFileName);
  lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "model_dir %s: cannot open the lock file %s: %s", dir_, path, std::strerror(errno)));
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "model_dir %s is in use by another ntk_server (it holds the lock on %s)", dir_,
          path));
    }
    return absl::FailedPreconditionError(
        absl::StrFormat("model_dir %s: cannot lock %s: %s", dir_, path, std::strerror(err)));
  }
  return absl::OkStatus();
}

std::string ModelStore::PathFor(const std::string& id) const {
  return absl::StrCat(dir_, "/", id, kSuffix);
}

bool ModelStore::IsTemporaryName(const std::string& name) {
  return !name.empty() && name[0] == '.' && absl::StrContains(name, kTmpMarker);
}

std::string ModelStore::Encode(const StoredModel& m) {
  std::string out;
  out.reserve(m.payload.size() + m.id.size() + 64);
  out.append(kMagic, sizeof(kMagic));
  PutU32(&out, kFormatVersion);
  PutU32(&out, static_cast<uint32_t>(m.id.size()));
  out.append(m.id);
  PutU64(&out, static_cast<uint64_t>(m.created_unix_ms));
  PutU64(&out, m.payload.size());
  out.append(m.payload);
  PutU32(&out, Crc32c(out.data(), out.size()));
  return out;
}

absl::StatusOr<StoredModel> ModelStore::Decode(const std::string& bytes) {
  if (bytes.size() < sizeof(kMagic) + 4 ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError("not an ntk model file (bad magic)");
  }
  Reader r(bytes);
  std::string magic;
  r.Bytes(sizeof(kMagic), &magic);
  uint32_t version = 0, id_len = 0;
  r.U32(&version);
  if (version != kFormatVersion && version != kLegacyCrc32Version) {
    return absl::UnimplementedError(
        absl::StrFormat("model file format version %d is not supported", version));
  }
  StoredModel m;
  uint64_t created = 0, payload_len = 0;
  if (!r.U32(&id_len) || id_len > 1024 || !r.Bytes(id_len, &m.id) ||
      !r.U64(&created) || !r.U64(&payload_len) ||
      !r.Bytes(payload_len, &m.payload)) {
    return absl::DataLossError("model file is truncated");
  }
  const size_t body = r.pos();
  uint32_t crc = 0;
  if (!r.U32(&crc)) return absl::DataLossError("model file is truncated");
  if (r.pos() != bytes.size()) {
    return absl::DataLossError("model file has trailing bytes");
  }
  const uint32_t want = version == kLegacyCrc32Version ? LegacyCrc32(bytes.data(), body)
                                                       : Crc32c(bytes.data(), body);
  if (want != crc) {
    return absl::DataLossError("model file checksum mismatch");
  }
  m.created_unix_ms = static_cast<int64_t>(created);
  return m;
}

absl::Status ModelStore::Open() {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrFormat("model_dir %s: cannot create: %s", dir_, ec.message()));
  }
  if (absl::Status s = Lock(); !s.ok()) return s;
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrFormat("model_dir %s: cannot open: %s", dir_, std::strerror(errno)));
  }
  std::vector<std::string> tmp;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (IsTemporaryName(name)) tmp.push_back(name);
  }
  ::closedir(d);
  for (const std::string& name : tmp) {
    const std::string path = absl::StrCat(dir_, "/", name);
    if (::unlink(path.c_str()) == 0) {
      Logf("store: removed leftover temporary file %s", path);
    } else {
      Logf("store: cannot remove temporary file %s: %s", path, std::strerror(errno));
    }
  }
  if (!tmp.empty()) return SyncDir();
  return absl::OkStatus();
}

std::vector<StoredModel> ModelStore::LoadAll(std::vector<std::string>* errors) const {
  std::vector<StoredModel> out;
  std::vector<std::string> names;
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) {
    std::string msg = absl::StrFormat("store: cannot open %s: %s", dir_, std::strerror(errno));
    LogLine(msg);
    if (errors) errors->push_back(msg);
    return out;
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (!absl::EndsWith(name, kSuffix) || IsTemporaryName(name)) continue;
    names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(dir_, "/", name);
    const std::string stem = name.substr(0, name.size() - std::strlen(kSuffix));
    auto fail = [&](const absl::Status& s) {
      std::string msg = absl::StrFormat("store: skipping damaged model file %s: %s", path,
                                        s.ToString());
      LogLine(msg);
      if (errors) errors->push_back(msg);
    };
    if (absl::Status s = ValidateModelId(stem, "file name"); !s.ok()) {
      fail(s);
      continue;
    }
    absl::StatusOr<std::string> bytes = ReadWholeFile(path);
    if (!bytes.ok()) {
      fail(bytes.status());
      continue;
    }
    absl::StatusOr<StoredModel> m = Decode(*bytes);
    if (!m.ok()) {
      fail(m.status());
      continue;
    }
    if (m->id != stem) {
      fail(absl::DataLossError(
          absl::StrFormat("file holds model id \"%s\", not \"%s\"", m->id, stem)));
      continue;
    }
    out.push_back(*std::move(m));
  }
  return out;
}

absl::Status ModelStore::SyncDir() const {
  int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open directory", dir_ + "/");
  int rc = ::fsync(fd);
  absl::Status s = rc == 0 ? absl::OkStatus() : ErrnoStatus("fsync directory", dir_ + "/");
  ::close(fd);
  return s;
}

absl::Status ModelStore::Save(const StoredModel& model) const {
  const std::string bytes = Encode(model);
  const std::string tmp = absl::StrCat(dir_, "/.", model.id, kTmpMarker, RandomHex());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("create", tmp);
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = ErrnoStatus("write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = ErrnoStatus("fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  if (::close(fd) != 0) {
    absl::Status s = ErrnoStatus("close", tmp);
    ::unlink(tmp.c_str());
    return s;
  }
  const std::string path = PathFor(model.id);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = ErrnoStatus("rename to", path);
    ::unlink(tmp.c_str());
    return s;
  }
  return SyncDir();
}

absl::Status ModelStore::Remove(const std::string& id) const {
  const std::string path = PathFor(id);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus("unlink", path);
  }
  return SyncDir();
}

}  // namespace ntk::server
