// tests/preload/enospc_preload.c: an LD_PRELOAD library that makes a
// server's model-file writes fail with ENOSPC ("No space left on device")
// while a switch file exists, so tests can fill the disk without a mount
// (tests/e2e_disk_full_test.cc; issue 11 finding 8).
//
// Environment of the process it is preloaded into:
//   NTK_ENOSPC_MATCH   substring of the paths whose writes may fail
//                      (the store's temporary files: ".ntkm.tmp-")
//   NTK_ENOSPC_SWITCH  path of the switch file: while it exists, write()
//                      on a descriptor opened with a matching path returns
//                      -1 with errno ENOSPC, as a full file system does.
// Only open/open64/write/close are wrapped; everything else is libc's.
//
// Thread safety: descriptors are marked in an array of atomic flags, so
// concurrent opens and writes on different threads are safe.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { kMaxFd = 65536 };
static atomic_bool g_marked[kMaxFd];

static int Matches(const char* path) {
  const char* match = getenv("NTK_ENOSPC_MATCH");
  return path != NULL && match != NULL && *match != '\0' && strstr(path, match) != NULL;
}

static int SwitchOn(void) {
  const char* sw = getenv("NTK_ENOSPC_SWITCH");
  struct stat st;
  return sw != NULL && stat(sw, &st) == 0;
}

static void Mark(int fd, int on) {
  if (fd >= 0 && fd < kMaxFd) atomic_store(&g_marked[fd], on ? 1 : 0);
}

static int OpenWith(const char* name, const char* path, int flags, va_list ap) {
  mode_t mode = 0;
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) mode = va_arg(ap, mode_t);
  int (*real)(const char*, int, ...) = (int (*)(const char*, int, ...))dlsym(RTLD_NEXT, name);
  const int fd = real(path, flags, mode);
  Mark(fd, Matches(path));
  return fd;
}

int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const int fd = OpenWith("open", path, flags, ap);
  va_end(ap);
  return fd;
}

int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const int fd = OpenWith("open64", path, flags, ap);
  va_end(ap);
  return fd;
}

ssize_t write(int fd, const void* buf, size_t count) {
  static ssize_t (*real)(int, const void*, size_t);
  if (real == NULL) real = (ssize_t(*)(int, const void*, size_t))dlsym(RTLD_NEXT, "write");
  if (fd >= 0 && fd < kMaxFd && atomic_load(&g_marked[fd]) && SwitchOn()) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, buf, count);
}

int close(int fd) {
  static int (*real)(int);
  if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "close");
  Mark(fd, 0);
  return real(fd);
}
