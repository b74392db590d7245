// ntk/core/distributed/process_grid.h: a BLACS process grid over an MPI
// communicator and block-cyclic matrices on it (the ScaLAPACK layout that
// core/distributed/direct_solve.h factors).
//
//   absl::StatusOr<std::unique_ptr<ProcessGrid>> g = ProcessGrid::Create(comm);
//   BlockCyclicMatrix a = BlockCyclicMatrix::Make(**g, n, n, nb);
//   // a.local is this rank's part: a.local(i, j) = A(a.rows[i], a.cols[j])
//
// Block-cyclic layout (ScaLAPACK Users' Guide, "The Two-dimensional
// Block-Cyclic Distribution"): blocks of nb x nb entries, block (I, J) on
// process (I mod nprow, J mod npcol), first block on process (0, 0). Within
// a rank the owned rows and columns keep their global order, so the local
// array is exactly A restricted to (rows, cols): one rectangular submatrix,
// which is what lets each rank compute its whole part with one call of
// CrossKernels (core/kernels/kernel.h).
//
// Thread safety: a ProcessGrid is used by one thread at a time (BLACS
// contexts are not thread safe); BlockCyclicMatrix is a plain value.
// Ownership: ProcessGrid owns its BLACS context and system handle and
// releases both in its destructor (collective: every rank must destroy its
// grid, in the same order relative to other collective calls).
#ifndef NTK_CORE_DISTRIBUTED_PROCESS_GRID_H_
#define NTK_CORE_DISTRIBUTED_PROCESS_GRID_H_

#include <array>
#include <memory>
#include <utility>
#include <vector>

#include <Eigen/Dense>
#include <mpi.h>

#include "absl/status/statusor.h"
#include "core/distributed/scalapack.h"

namespace ntk {

class ProcessGrid {
 public:
  // Collective over `comm`: a row-major grid of nprow x npcol = size(comm)
  // processes, nprow the largest divisor of the size <= sqrt(size) (K = 2:
  // 1 x 2, K = 4: 2 x 2, K = 6: 2 x 3). INTERNAL if BLACS refuses.
  static absl::StatusOr<std::unique_ptr<ProcessGrid>> Create(MPI_Comm comm);
  ~ProcessGrid();
  ProcessGrid(const ProcessGrid&) = delete;
  ProcessGrid& operator=(const ProcessGrid&) = delete;

  int context() const { return context_; }
  int nprow() const { return nprow_; }
  int npcol() const { return npcol_; }
  int myrow() const { return myrow_; }
  int mycol() const { return mycol_; }

 private:
  ProcessGrid() = default;
  int system_handle_ = -1;
  int context_ = -1;
  int nprow_ = 0, npcol_ = 0, myrow_ = -1, mycol_ = -1;
};

// The global indices (0-based, increasing) that process `iproc` of
// `nprocs` owns when n indices are dealt in blocks of nb, first block to
// process 0. Its size is ScaLAPACK's numroc(n, nb, iproc, 0, nprocs).
// REQUIRES: n >= 0, nb >= 1, 0 <= iproc < nprocs.
std::vector<Eigen::Index> BlockCyclicIndices(int n, int nb, int iproc, int nprocs);

// This rank's part of an m x n matrix distributed block-cyclically (mb x nb
// blocks) on a grid: the local column-major array and its descriptor.
struct BlockCyclicMatrix {
  std::array<int, scalapack::kDescSize> desc{};
  std::vector<Eigen::Index> rows;  // global rows held here, increasing
  std::vector<Eigen::Index> cols;  // global columns held here, increasing
  Eigen::MatrixXd local;           // rows.size() x cols.size(), uninitialized

  // REQUIRES: m, n >= 0; mb, nb >= 1. The leading dimension is
  // max(1, rows.size()) (descinit's requirement).
  static BlockCyclicMatrix Make(const ProcessGrid& grid, int m, int n, int mb, int nb);

  // The local positions (i, j) of the global diagonal entries held here
  // (rows[i] == cols[j]).
  std::vector<std::pair<Eigen::Index, Eigen::Index>> LocalDiagonal() const;
};

}  // namespace ntk

#endif  // NTK_CORE_DISTRIBUTED_PROCESS_GRID_H_
