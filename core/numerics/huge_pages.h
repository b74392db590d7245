// ntk/core/numerics/huge_pages.h: back the large matrices with transparent
// huge pages (2 MiB) instead of 4 KiB pages.
//
// Why: the kernels, the factors and the distribution products are fresh
// N x N / N x q buffers, and every 4 KiB page of them costs a page fault on
// first touch. On the VMs we run on a page fault is expensive: `perf record`
// of a 2b Fit at N = 3000 (bench/fit_bench) spent ~28% of its cycles in
// page-fault handling (memset in TrainKernels, the copy before the
// Cholesky, the kernel tiles). Debian 12's kernel default is
// transparent_hugepage=madvise, so huge pages are used only for memory that
// malloc advises with MADV_HUGEPAGE, which glibc (>= 2.35) does when its
// tunable glibc.malloc.hugetlb=1 is set. Tunables are read once at process
// start, so the process re-executes itself with the tunable added.
// Measured in docs/performance.md "Huge pages".
//
// Thread safety: call first thing in main(), before any thread the program
// starts itself (threads that libraries started in constructors, such as
// OpenBLAS's pool, vanish with the exec).
#ifndef NTK_CORE_NUMERICS_HUGE_PAGES_H_
#define NTK_CORE_NUMERICS_HUGE_PAGES_H_

namespace ntk {

// The environment variable that turns the re-exec off ("0"); unset or any
// other value leaves it on.
inline constexpr char kHugePagesEnv[] = "NTK_HUGE_PAGES";

// When GLIBC_TUNABLES does not already set glibc.malloc.hugetlb and
// NTK_HUGE_PAGES is not "0": appends glibc.malloc.hugetlb=1 to
// GLIBC_TUNABLES and execv()s this binary (the target of /proc/self/exe) with
// the same argv (same pid,
// same arguments, same environment otherwise). Returns only when nothing
// was done or the exec failed (then the program simply runs with 4 KiB
// pages). Older glibc ignores the unknown tunable.
// REQUIRES: argv is main()'s argv (NULL-terminated).
void ReexecWithHugePageMalloc(char** argv);

}  // namespace ntk

#endif  // NTK_CORE_NUMERICS_HUGE_PAGES_H_
