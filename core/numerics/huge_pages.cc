// ntk/core/numerics/huge_pages.cc: see huge_pages.h.
#include "core/numerics/huge_pages.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace ntk {

void ReexecWithHugePageMalloc(char** argv) {
  const char* off = std::getenv(kHugePagesEnv);
  if (off != nullptr && std::strcmp(off, "0") == 0) return;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  std::string value = tunables == nullptr ? "" : tunables;
  // Already set, by us before the exec or by the user: respect it.
  if (value.find("glibc.malloc.hugetlb") != std::string::npos) return;
  value += value.empty() ? "" : ":";
  value += "glibc.malloc.hugetlb=1";
  if (::setenv("GLIBC_TUNABLES", value.c_str(), 1) != 0) return;
  // Exec the binary by its real path, not /proc/self/exe: the kernel names
  // the process (comm: ps, top, perf) after the path's last component.
  char self[4096];
  const ssize_t len = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len > 0) {
    self[len] = '\0';
    ::execv(self, argv);
  }
  // The exec failed (no /proc, say): go on with 4 KiB pages, and do not
  // leave a tunable behind that claims otherwise to child processes.
  if (tunables == nullptr) {
    ::unsetenv("GLIBC_TUNABLES");
  } else {
    ::setenv("GLIBC_TUNABLES", tunables, 1);
  }
}

}  // namespace ntk
