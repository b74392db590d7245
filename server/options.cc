#include "server/options.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

namespace ntk::server {

int64_t PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<int64_t>(pages) * page_size;
}

int64_t MaxMessageBytes(const ServerOptions& options) {
  const int64_t mb = std::clamp<int64_t>(options.max_message_mb, 1, 2047);
  return mb << 20;
}

int64_t DistributionCacheBudgetBytes(const ServerOptions& options) {
  if (options.distribution_cache_mb > 0) return options.distribution_cache_mb << 20;
  const int64_t ram = PhysicalMemoryBytes();
  return ram > 0 ? ram / kDistributionCacheRamDivisor : kDistributionCacheFallbackBytes;
}

PredictBatcher::Options PredictBatching(const ServerOptions& options) {
  PredictBatcher::Options o;
  o.max_rows = options.predict_batch_max_rows;
  o.max_in_flight = options.predict_batch_in_flight > 0
                        ? options.predict_batch_in_flight
                        : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return o;
}

}  // namespace ntk::server
