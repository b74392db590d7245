// ntk/core/nystrom/centers.cc: SelectCenters (centers.h).
#include "core/nystrom/centers.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "core/numerics/random.h"

namespace ntk {

namespace {

// Uniform in [0, bound) by rejection (no modulo bias). REQUIRES: bound >= 1.
uint64_t Bounded(std::mt19937_64& gen, uint64_t bound) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t v;
  do {
    v = gen();
  } while (v >= limit);
  return v % bound;
}

// Stream tag of the center selection (a different stream from the
// PredictDistribution ones for the same seed).
constexpr uint64_t kTagCenters = 0x4e797374;  // "Nyst"

}  // namespace

std::vector<Eigen::Index> SelectCenters(Eigen::Index n, Eigen::Index m, uint64_t seed) {
  std::vector<Eigen::Index> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), Eigen::Index{0});
  if (m >= n) return rows;
  std::mt19937_64 gen(IndexSeed(seed, kTagCenters, 0));
  // Partial Fisher-Yates: the first m slots become a uniform m-subset.
  for (Eigen::Index i = 0; i < m; ++i) {
    const Eigen::Index j =
        i + static_cast<Eigen::Index>(Bounded(gen, static_cast<uint64_t>(n - i)));
    std::swap(rows[static_cast<size_t>(i)], rows[static_cast<size_t>(j)]);
  }
  rows.resize(static_cast<size_t>(m));
  std::sort(rows.begin(), rows.end());
  return rows;
}

}  // namespace ntk
