// ntk/core/numerics/random.cc: see random.h.
#include "core/numerics/random.h"

#include <cmath>
#include <cstring>

namespace ntk {

uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t PointSeed(uint64_t seed, uint64_t tag, const Eigen::MatrixXd& x,
                   Eigen::Index row) {
  uint64_t h = Mix64(seed ^ Mix64(tag));
  h = Mix64(h ^ static_cast<uint64_t>(x.cols()));
  for (Eigen::Index j = 0; j < x.cols(); ++j) {
    double v = x(row, j);
    if (v == 0) v = 0;  // -0.0 -> +0.0
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    h = Mix64(h ^ bits);
  }
  return h;
}

uint64_t IndexSeed(uint64_t seed, uint64_t tag, uint64_t index) {
  return Mix64(Mix64(seed ^ Mix64(tag)) ^ Mix64(index + 0x632be59bd9b4e019ULL));
}

void NormalStream::Pair(double* cosine, double* sine) {
  constexpr double kTwoPow53 = 1.0 / 9007199254740992.0;  // 2^-53
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  // u1 in (0, 1], u2 in [0, 1): log(u1) is finite.
  double u1;
  switch (u1_) {
    case BoxMullerU1::kPlusOne:
      u1 = (static_cast<double>(gen_() >> 11) + 1.0) * kTwoPow53;
      break;
    case BoxMullerU1::kOneMinus:
      u1 = 1.0 - static_cast<double>(gen_() >> 11) * kTwoPow53;
      break;
    case BoxMullerU1::kRejectZero:
    default:
      do {
        u1 = static_cast<double>(gen_() >> 11) * kTwoPow53;
      } while (u1 <= 0.0);
      break;
  }
  const double u2 = static_cast<double>(gen_() >> 11) * kTwoPow53;
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double t = kTwoPi * u2;
  *cosine = r * std::cos(t);
  if (sine != nullptr) *sine = r * std::sin(t);
}

double NormalStream::Next() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double cosine;
  Pair(&cosine, &spare_);
  has_spare_ = true;
  return cosine;
}

double NormalStream::NextCosineOnly() {
  double cosine;
  Pair(&cosine, nullptr);
  return cosine;
}

void FillNormal(NormalStream& stream, double* out, Eigen::Index n) {
  for (Eigen::Index i = 0; i < n; ++i) out[i] = stream.Next();
}

}  // namespace ntk
