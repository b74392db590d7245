// ntk/core/numerics/random.h: the one seeded Gaussian sampler of ntk-serve
// and the seed hashing built on it.
//
// Randomness: std::mt19937_64 plus our own Box-Muller transform (not
// std::normal_distribution, whose algorithm is implementation-defined, nor
// absl random, whose streams are not stable across versions), so a seed
// gives the same stream on every build. Seeds of derived streams go through
// a splitmix64 hash.
//
// Thread safety: NormalStream is a value type (one per thread); the free
// functions are pure.
#ifndef NTK_CORE_NUMERICS_RANDOM_H_
#define NTK_CORE_NUMERICS_RANDOM_H_

#include <cstdint>
#include <random>

#include <Eigen/Dense>

namespace ntk {

// splitmix64 finalizer: a bijective 64-bit mixer.
uint64_t Mix64(uint64_t x);

// Seed for the randomness that belongs to one query point: a hash of the
// request seed, a stream tag and the bits of the point's preprocessed row
// (-0.0 hashed as +0.0). Independent of the point's position in the batch.
// REQUIRES: 0 <= row < x.rows().
uint64_t PointSeed(uint64_t seed, uint64_t tag, const Eigen::MatrixXd& x,
                   Eigen::Index row);

// Seed of an indexed stream that depends on the request seed only (used for
// the Monte Carlo F0 samples: one stream per sample index s).
uint64_t IndexSeed(uint64_t seed, uint64_t tag, uint64_t index);

// How Box-Muller's first uniform u1 in (0, 1] (log(u1) finite) is made
// from k = the top 53 bits of one mt19937_64 draw. The variants exist so
// that every caller keeps the exact stream it had before they shared this
// sampler (their results are pinned by tests).
enum class BoxMullerU1 {
  kPlusOne,     // (k + 1) / 2^53  (PredictDistribution, test fixtures)
  kOneMinus,    // 1 - k / 2^53    (finite-width networks, tools/validate data)
  kRejectZero,  // k / 2^53, redrawn while 0 (tests/kernel_monte_carlo_test.cc)
};

// Standard normal variates: mt19937_64 + Box-Muller on 53-bit uniforms,
// u2 = k' / 2^53 from the next draw; Next() returns r cos(2 pi u2) and then
// r sin(2 pi u2) of each pair, NextCosineOnly() only the cosine (a pair per
// variate).
class NormalStream {
 public:
  explicit NormalStream(uint64_t seed, BoxMullerU1 u1 = BoxMullerU1::kPlusOne)
      : gen_(seed), u1_(u1) {}
  double Next();
  double NextCosineOnly();

 private:
  // One Box-Muller pair: *cosine, *sine.
  void Pair(double* cosine, double* sine);

  std::mt19937_64 gen_;
  BoxMullerU1 u1_;
  bool has_spare_ = false;
  double spare_ = 0;
};

// Fills `out` (any shape) with standard normals in storage order.
void FillNormal(NormalStream& stream, double* out, Eigen::Index n);

}  // namespace ntk

#endif  // NTK_CORE_NUMERICS_RANDOM_H_
