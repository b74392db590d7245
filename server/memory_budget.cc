#include "server/memory_budget.h"

#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "server/options.h"

namespace ntk::server {
namespace {

// The first integer in `path`, or 0 when it is missing, "max" or not a number.
int64_t ReadLimitFile(const char* path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word)) return 0;
  try {
    size_t used = 0;
    const long long v = std::stoll(word, &used);
    return used == word.size() && v > 0 ? static_cast<int64_t>(v) : 0;
  } catch (...) {
    return 0;
  }
}

// This process's address space now (VmSize), bytes; 0 when unknown.
int64_t AddressSpaceInUse() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmSize:", 0) == 0) {
      std::istringstream s(line.substr(7));
      int64_t kib = 0;
      s >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

}  // namespace

MemoryBudget::Reservation& MemoryBudget::Reservation::operator=(Reservation&& o) noexcept {
  if (this != &o) {
    if (budget_ != nullptr) budget_->Release(bytes_);
    budget_ = o.budget_;
    bytes_ = o.bytes_;
    o.budget_ = nullptr;
  }
  return *this;
}

MemoryBudget::Reservation::~Reservation() {
  if (budget_ != nullptr) budget_->Release(bytes_);
}

absl::StatusOr<MemoryBudget::Reservation> MemoryBudget::Reserve(int64_t bytes,
                                                                const std::string& what) {
  bytes = std::max<int64_t>(0, bytes);
  if (limit_ <= 0) return Reservation(nullptr, bytes);
  absl::MutexLock lock(&mu_);
  if (bytes > limit_ - used_) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s: needs an estimated %d bytes (%d MiB), over the memory budget: %d of %d bytes "
        "(%d MiB) in use (--memory_budget_mb)",
        what, bytes, bytes >> 20, used_, limit_, limit_ >> 20));
  }
  used_ += bytes;
  return Reservation(this, bytes);
}

int64_t MemoryBudget::used() const {
  absl::MutexLock lock(&mu_);
  return used_;
}

void MemoryBudget::Release(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  used_ -= bytes;
}

int64_t MemoryBudgetBytes(const ServerOptions& options) {
  return options.memory_budget_mb > 0 ? options.memory_budget_mb << 20
                                      : DefaultMemoryBudgetBytes();
}

absl::Status CheckResponseSize(int64_t bytes, const ServerOptions& options, const char* method) {
  const int64_t limit = MaxMessageBytes(options);
  if (bytes <= limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "response: %s would answer with %d bytes, over --max_message_mb = %d (%d bytes); "
      "ask for fewer rows per call",
      method, bytes, options.max_message_mb, limit));
}

absl::StatusOr<MemoryBudget::Reservation> AdmitRequest(MemoryBudget* budget,
                                                       const ServerOptions& options,
                                                       const char* method,
                                                       int64_t response_bytes,
                                                       int64_t working_bytes) {
  if (absl::Status s = CheckResponseSize(response_bytes, options, method); !s.ok()) return s;
  return budget->Reserve(working_bytes, method);
}

int64_t DefaultMemoryBudgetBytes() {
  int64_t budget = PhysicalMemoryBytes() / 4 * 3;
  auto take = [&budget](int64_t limit) {
    if (limit > 0 && (budget <= 0 || limit < budget)) budget = limit;
  };
  // cgroup v2, then v1 (v1 reports "no limit" as a huge number: ignored
  // when above physical memory by the min).
  take(ReadLimitFile("/sys/fs/cgroup/memory.max"));
  take(ReadLimitFile("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
  struct rlimit as {};
  if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    const int64_t left = static_cast<int64_t>(as.rlim_cur) - AddressSpaceInUse();
    take(std::max<int64_t>(1, left / 2));
  }
  return budget;
}

}  // namespace ntk::server
