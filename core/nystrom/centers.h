// ntk/core/nystrom/centers.h: the centers of a Nystrom model
// (docs/model-contract.md "6. Nystrom models"): m of the N training rows,
// drawn uniformly without replacement from a seed.
//
//   std::vector<Eigen::Index> rows = SelectCenters(n, m, seed);
//
// Reproducible on every build: std::mt19937_64 (fully specified by the
// standard) drives our own partial Fisher-Yates shuffle and our own
// unbiased bounded draw (std::shuffle and std::uniform_int_distribution
// are implementation-defined). m == N returns every row, 0 .. N-1, so a
// Nystrom model with m = N has Z = X exactly.
//
// Thread safety: a pure function.
#ifndef NTK_CORE_NYSTROM_CENTERS_H_
#define NTK_CORE_NYSTROM_CENTERS_H_

#include <cstdint>
#include <vector>

#include <Eigen/Dense>

namespace ntk {

// m distinct row indices of [0, n), ascending. REQUIRES: 1 <= m <= n.
std::vector<Eigen::Index> SelectCenters(Eigen::Index n, Eigen::Index m, uint64_t seed);

}  // namespace ntk

#endif  // NTK_CORE_NYSTROM_CENTERS_H_
