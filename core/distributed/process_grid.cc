// ntk/core/distributed/process_grid.cc: BLACS grids and block-cyclic
// layouts (process_grid.h).
#include "core/distributed/process_grid.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace ntk {

absl::StatusOr<std::unique_ptr<ProcessGrid>> ProcessGrid::Create(MPI_Comm comm) {
  int size = 0;
  MPI_Comm_size(comm, &size);
  int nprow = static_cast<int>(std::sqrt(static_cast<double>(size)));
  while (nprow > 1 && size % nprow != 0) --nprow;
  if (nprow < 1) nprow = 1;
  std::unique_ptr<ProcessGrid> g(new ProcessGrid);
  // BLACS initializes itself from MPI on its first call (Cblacs_pinfo).
  int me = 0, nprocs = 0;
  Cblacs_pinfo(&me, &nprocs);
  g->system_handle_ = Csys2blacs_handle(comm);
  g->context_ = g->system_handle_;
  Cblacs_gridinit(&g->context_, "Row", nprow, size / nprow);
  Cblacs_gridinfo(g->context_, &g->nprow_, &g->npcol_, &g->myrow_, &g->mycol_);
  if (g->nprow_ != nprow || g->npcol_ != size / nprow || g->myrow_ < 0 || g->mycol_ < 0) {
    return absl::InternalError(absl::StrCat("BLACS: could not make a ", nprow, " x ",
                                            size / nprow, " process grid"));
  }
  return g;
}

ProcessGrid::~ProcessGrid() {
  if (context_ >= 0 && myrow_ >= 0) Cblacs_gridexit(context_);
  if (system_handle_ >= 0) Cfree_blacs_system_handle(system_handle_);
}

std::vector<Eigen::Index> BlockCyclicIndices(int n, int nb, int iproc, int nprocs) {
  std::vector<Eigen::Index> out;
  for (Eigen::Index start = static_cast<Eigen::Index>(iproc) * nb; start < n;
       start += static_cast<Eigen::Index>(nprocs) * nb) {
    const Eigen::Index end = std::min<Eigen::Index>(start + nb, n);
    for (Eigen::Index i = start; i < end; ++i) out.push_back(i);
  }
  return out;
}

BlockCyclicMatrix BlockCyclicMatrix::Make(const ProcessGrid& grid, int m, int n, int mb,
                                          int nb) {
  BlockCyclicMatrix a;
  a.rows = BlockCyclicIndices(m, mb, grid.myrow(), grid.nprow());
  a.cols = BlockCyclicIndices(n, nb, grid.mycol(), grid.npcol());
  a.local.resize(static_cast<Eigen::Index>(a.rows.size()),
                 static_cast<Eigen::Index>(a.cols.size()));
  const int zero = 0;
  const int context = grid.context();
  const int lld = std::max<int>(1, static_cast<int>(a.rows.size()));
  int info = 0;
  descinit_(a.desc.data(), &m, &n, &mb, &nb, &zero, &zero, &context, &lld, &info);
  return a;
}

std::vector<std::pair<Eigen::Index, Eigen::Index>> BlockCyclicMatrix::LocalDiagonal() const {
  // Both index lists increase: one merge pass.
  std::vector<std::pair<Eigen::Index, Eigen::Index>> out;
  for (size_t i = 0, j = 0; i < rows.size() && j < cols.size();) {
    if (rows[i] == cols[j]) {
      out.emplace_back(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j));
      ++i, ++j;
    } else if (rows[i] < cols[j]) {
      ++i;
    } else {
      ++j;
    }
  }
  return out;
}

}  // namespace ntk
