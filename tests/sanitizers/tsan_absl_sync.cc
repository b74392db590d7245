// tests/sanitizers/tsan_absl_sync.cc: makes Debian's prebuilt (not
// TSan-instrumented) absl::Mutex, absl::CondVar and absl::Notification
// visible to ThreadSanitizer. TSan builds only (NTK_SANITIZE=thread, see
// tests/sanitizers/sanitizers.cmake and docs/testing.md "Sanitizers").
//
// Why: libabsl_synchronization.so is compiled without -fsanitize=thread, so
// TSan never sees its lock/unlock: every access our code makes under an
// absl::Mutex looks unsynchronized. The first TSan run of the cache tests
// gave 107 such reports, all in DistributionCache, none real.
//
// How: every executable and shared library of the TSan build is linked with
// `-Wl,--wrap=SYMBOL` for each SYMBOL listed below in an NTK_TSAN_WRAP line
// (sanitizers.cmake reads them from this file: one list). Our calls then go
// to __wrap_SYMBOL here, which calls the real absl function (__real_SYMBOL)
// and tells TSan what the call means for memory ordering:
//   acquiring a mutex (or returning from a wait on it)  -> __tsan_acquire(mu)
//   releasing it (or starting a wait that releases it) -> __tsan_release(mu)
//   Notification::Notify -> release; WaitForNotification* -> acquire.
// Reader locks are treated like writer locks: readers that really overlap
// still get no order between them, so a write under a reader lock is still
// reported. Calls made inside absl itself are not wrapped (and need not be).
//
// The symbols are those of Debian 12's absl 20220623 (inline namespace
// debian3); with another absl the link fails on an undefined __real_ symbol.
#include <sanitizer/tsan_interface.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

using absl::Condition;
using absl::CondVar;
using absl::Duration;
using absl::Mutex;
using absl::Notification;
using absl::Time;

namespace {
void Acquired(const void* mu) { __tsan_acquire(const_cast<void*>(mu)); }
void Releasing(const void* mu) { __tsan_release(const_cast<void*>(mu)); }
}  // namespace

// NTK_TSAN_WRAP(symbol, return type, parameters, arguments, before, after):
// declares __real_symbol and defines __wrap_symbol as
//   before; result = __real_symbol(arguments); after; return result.
#define NTK_TSAN_WRAP(sym, R, params, args, before, after) \
  extern "C" R __real_##sym params;                        \
  extern "C" R __wrap_##sym params {                       \
    before;                                                \
    R r = __real_##sym args;                               \
    after;                                                 \
    return r;                                              \
  }
#define NTK_TSAN_WRAP_VOID(sym, params, args, before, after) \
  extern "C" void __real_##sym params;                       \
  extern "C" void __wrap_##sym params {                      \
    before;                                                  \
    __real_##sym args;                                       \
    after;                                                   \
  }

// Mutex: lock, unlock, try-lock (writer and reader).
NTK_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex4LockEv, (Mutex* mu), (mu), , Acquired(mu))
NTK_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex10ReaderLockEv, (Mutex* mu), (mu), , Acquired(mu))
NTK_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex6UnlockEv, (Mutex* mu), (mu), Releasing(mu), )
NTK_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex12ReaderUnlockEv, (Mutex* mu), (mu), Releasing(mu), )
NTK_TSAN_WRAP(_ZN4absl7debian35Mutex7TryLockEv, bool, (Mutex* mu), (mu), , if (r) Acquired(mu))
NTK_TSAN_WRAP(_ZN4absl7debian35Mutex13ReaderTryLockEv, bool, (Mutex* mu), (mu), ,
              if (r) Acquired(mu))
// Mutex: lock when a condition holds (the lock is held on return, also
// after a timeout).
NTK_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE,
                   (Mutex* mu, const Condition& c), (mu, c), , Acquired(mu))
NTK_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE,
                   (Mutex* mu, const Condition& c), (mu, c), , Acquired(mu))
NTK_TSAN_WRAP(_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE, bool,
              (Mutex* mu, const Condition& c, Duration d), (mu, c, d), , Acquired(mu))
NTK_TSAN_WRAP(_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE,
              bool, (Mutex* mu, const Condition& c, Duration d), (mu, c, d), , Acquired(mu))
// Mutex: wait for a condition with the lock held (released while waiting).
NTK_TSAN_WRAP_VOID(_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE,
                   (Mutex* mu, const Condition& c), (mu, c), Releasing(mu), Acquired(mu))
NTK_TSAN_WRAP(_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE, bool,
              (Mutex* mu, const Condition& c, Duration d), (mu, c, d), Releasing(mu),
              Acquired(mu))
// CondVar: waits release and reacquire the mutex.
NTK_TSAN_WRAP_VOID(_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE, (CondVar* cv, Mutex* mu),
                   (cv, mu), Releasing(mu), Acquired(mu))
NTK_TSAN_WRAP(_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE, bool,
              (CondVar* cv, Mutex* mu, Duration d), (cv, mu, d), Releasing(mu), Acquired(mu))
NTK_TSAN_WRAP(_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE, bool,
              (CondVar* cv, Mutex* mu, Time t), (cv, mu, t), Releasing(mu), Acquired(mu))
// Notification: Notify happens before every wait that returns notified.
NTK_TSAN_WRAP_VOID(_ZN4absl7debian312Notification6NotifyEv, (Notification* n), (n),
                   Releasing(n), )
NTK_TSAN_WRAP_VOID(_ZNK4absl7debian312Notification19WaitForNotificationEv,
                   (const Notification* n), (n), , Acquired(n))
NTK_TSAN_WRAP(_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE,
              bool, (const Notification* n, Duration d), (n, d), , if (r) Acquired(n))
