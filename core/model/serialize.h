// ntk/core/model/serialize.h (internal to core/): the on-disk / in-memory byte
// format of a FittedModel (FittedModel::Serialize / Deserialize).
//
// Layout, all integers little-endian, doubles as IEEE-754 binary64 bit
// patterns (little-endian), so a round trip is bit-exact:
//
//   offset  size  field
//   0       8     magic "NTKMODEL"
//   8       4     u32 format version (kModelFormatVersion)
//   12      8     u64 payload length P
//   20      P     payload (below)
//   20+P    4     u32 CRC-32C (Castagnoli, reflected poly 0x82F63B78,
//                 init/xorout 0xFFFFFFFF) of bytes [0, 20 + P)
//
// Every future version keeps this 20-byte header and the trailing CRC, so
// a reader checks length and CRC first (damage -> DATA_LOSS) and only then
// the version (newer -> UNIMPLEMENTED).
//
// Payload of version 1, in order (str = u32 length + bytes,
// mat = u64 rows + u64 cols + rows*cols f64 in row-major order,
// vec = u64 length + f64s):
//   kernel:        u32 activation, i32 depth, f64 weight_variance, f64 bias_variance
//   training:      u32 loss, f64 regularization, f64 label_smoothing
//   preprocessing: u8 standardize, u8 normalize_rows
//   i32 num_classes, u32 number of class names, that many str
//   u32 regime (0 = 2a, 1 = 2b, 2 = 2c), f64 lambda, f64 label_smoothing
//   preprocessor:  u8 standardize, u8 normalize_rows, vec mean, vec scale
//   mat x_train (N x d, preprocessed), mat targets (N x C),
//   mat initial_train_outputs (N x C or 0 x 0), mat train_logits (N x C),
//   mat dual (N x C)
//   stats: f64 fit_seconds, i32 solver_iterations, i32 cg_iterations,
//          f64 fixed_point_residual, f64 train_accuracy, f64 train_nll,
//          f64 jitter, f64 condition_estimate
//   i64 created_unix_ms
// Version 2 (Nystrom models only; exact models are still written as
// version 1): the version-1 payload with x_train, targets,
// initial_train_outputs, train_logits and dual all 0 x 0 (a Nystrom model
// keeps no training set, docs/model-contract.md "6. Nystrom models"), then
//   u32 approximation kind (2 = NYSTROM), i32 num_centers m, u64 seed,
//   i64 num_train N, mat centers (m x d, preprocessed), mat beta (m x C)
// Version 3 (Nystrom models): version 2, then the PredictDistribution
// summaries of 2b/2c (docs/model-contract.md "6. Nystrom models"; 0 x 0
// for 2a): mat gram = Theta_mn Theta_nm (m x m), mat nngp_theta =
// K_mn Theta_nm (m x m), mat mean_rhs = Theta_mn T (m x C, or 0 x 0 when
// the fit used F0 = 0). Version-2 files load without them (their
// distribution methods are refused: refit).
// Version 4 (models whose spec was chosen by model selection,
// docs/model-contract.md "7. Model selection"; others keep 1 or 3): the
// version-3 payload (for an exact model its approximation block reads
// kind 1, m and seed of the spec, N = 0, five 0 x 0 matrices), then
//   u32 folds, u32 chosen, f64 seconds, u32 number of rows R, R rows of
//   u32 activation, i32 depth, f64 weight_variance, f64 bias_variance,
//   u32 loss, f64 regularization, f64 label_smoothing,
//   f64 mean_nll, f64 std_nll, f64 mean_accuracy, f64 mean_ece
// Version 5 (Nystrom models of regime 2a; others keep 1, 3 or 4): the
// version-3 payload, then u8 has_selection (1: the version-4 selection
// block follows), then the 2a PredictDistribution summaries
// (docs/model-contract.md "6. Nystrom models", "PredictDistribution of a
// Nystrom model"): u8 summary state (0 kept, 1 an older file saved again,
// 2 over the cap, 3 the fit used F0 != 0), i64 the cap in bytes
// the fit used, mat newton_hessian and mat newton_cross ((m C) x (m C)
// each when kept, else 0 x 0). 2a Nystrom files of versions 3 and 4 load
// without them (their LINEARIZED and LAPLACE_POSTERIOR are refused: refit).
// Version 6 (models chosen by the Laplace evidence, selection criterion
// LAPLACE_EVIDENCE; exact models only, as selection is): the version-5
// layout, its selection block extended after the R rows by
//   u32 criterion (0 cross-validation, 1 Laplace evidence), R x f64 log_evidence
// (an exact model writes summary state 0, cap 0 and two 0 x 0 matrices).
// The reader also checks that the shapes agree with each other and that
// the enums are known (DATA_LOSS otherwise).
//
// Thread safety: pure functions.
#ifndef NTK_CORE_MODEL_SERIALIZE_H_
#define NTK_CORE_MODEL_SERIALIZE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/numerics/crc32c.h"  // Crc32c, the trailing checksum

namespace ntk {

inline constexpr char kModelMagic[8] = {'N', 'T', 'K', 'M', 'O', 'D', 'E', 'L'};
inline constexpr uint32_t kModelFormatVersion = 6;
inline constexpr size_t kModelHeaderBytes = 20;

}  // namespace ntk

#endif  // NTK_CORE_MODEL_SERIALIZE_H_
