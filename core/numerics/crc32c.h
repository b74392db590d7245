// ntk/core/numerics/crc32c.h: CRC-32C (Castagnoli, reflected polynomial
// 0x82F63B78, init/xorout 0xFFFFFFFF), the one checksum of the tree: core's
// model format (core/model/serialize.h) and the server's model file
// container (server/model_store.h) use it.
//
//   uint32_t crc = Crc32c(bytes.data(), bytes.size());
//   crc = Crc32c(more.data(), more.size(), crc);  // continues: CRC of bytes + more
//
// Thread safety: pure functions (the tables are built once, thread-safely).
#ifndef NTK_CORE_NUMERICS_CRC32C_H_
#define NTK_CORE_NUMERICS_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace ntk {

// CRC-32C of `n` bytes; `crc` continues a previous value (0 to start).
// SSE4.2's crc32 instruction when the CPU has it (8 bytes per instruction),
// else slicing-by-8 tables; both compute the same function.
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);

namespace internal {
// Tests only: the portable (slicing-by-8) path, whatever the CPU.
uint32_t Crc32cPortableForTesting(const void* data, size_t n, uint32_t crc = 0);
}  // namespace internal

}  // namespace ntk

#endif  // NTK_CORE_NUMERICS_CRC32C_H_
