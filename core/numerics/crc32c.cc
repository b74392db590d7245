// ntk/core/numerics/crc32c.cc: the CRC-32C of crc32c.h.
#include "core/numerics/crc32c.h"

#include <array>
#include <cstring>

namespace ntk {
namespace {

// Slicing-by-8 tables: t[0] is the byte-wise table of the reflected
// polynomial 0x82F63B78; t[k][b] advances t[k-1][b] by one more zero byte.
using CrcTables = std::array<std::array<uint32_t, 256>, 8>;
CrcTables MakeCrcTables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
  }
  return t;
}

// Portable: 8 bytes per step (slicing-by-8), then byte-wise.
uint32_t Crc32cSlicing(const unsigned char* p, size_t n, uint32_t crc) {
  static const CrcTables t = MakeCrcTables();
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    v ^= crc;
    crc = t[7][v & 0xFF] ^ t[6][(v >> 8) & 0xFF] ^ t[5][(v >> 16) & 0xFF] ^
          t[4][(v >> 24) & 0xFF] ^ t[3][(v >> 32) & 0xFF] ^ t[2][(v >> 40) & 0xFF] ^
          t[1][(v >> 48) & 0xFF] ^ t[0][v >> 56];
  }
  for (; n > 0; --n, ++p) crc = t[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
// SSE4.2's crc32 instruction computes exactly this CRC (Castagnoli).
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(const unsigned char* p, size_t n,
                                                          uint32_t crc) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = __builtin_ia32_crc32qi(c32, *p);
  return c32;
}
#endif

}  // namespace

uint32_t Crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware) return ~Crc32cHardware(p, n, ~crc);
#endif
  return ~Crc32cSlicing(p, n, ~crc);
}

namespace internal {
uint32_t Crc32cPortableForTesting(const void* data, size_t n, uint32_t crc) {
  return ~Crc32cSlicing(static_cast<const unsigned char*>(data), n, ~crc);
}
}  // namespace internal


}  // namespace ntk
