// macOS side of platform.h. __ulock_wait/__ulock_wake with the SHARED
// operation are what libc++'s std::atomic::wait uses for process-shared
// words. There is no parent-death signal: a thread of our own waits for the
// parent's exit with kqueue (EVFILT_PROC, NOTE_EXIT) and sends the signal.
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/event.h>
#include <sys/sysctl.h>
#include <unistd.h>

#include <cstdint>

#include "platform.h"

extern "C" int __ulock_wait(uint32_t operation, void* addr, uint64_t value, uint32_t timeout_us);
extern "C" int __ulock_wake(uint32_t operation, void* addr, uint64_t wake_value);

namespace multiproc {
namespace platform {

namespace {
constexpr uint32_t kUlCompareAndWaitShared = 3;
constexpr uint32_t kUlfWakeAll = 0x00000100;
}  // namespace

int WaitOnAddress(int32_t* addr, int32_t expected, double timeout_ms) {
  if (__atomic_load_n(addr, __ATOMIC_SEQ_CST) != expected) return 2;
  uint32_t us = 0;  // 0 = no timeout for __ulock_wait
  if (timeout_ms >= 0) {
    double t = timeout_ms * 1000.0;
    us = t >= 4294967295.0 ? 4294967295u : (t < 1 ? 1 : static_cast<uint32_t>(t));
  }
  int r = __ulock_wait(kUlCompareAndWaitShared, addr, static_cast<uint32_t>(expected), us);
  if (r >= 0) return 0;
  if (errno == ETIMEDOUT) return 1;
  if (errno == EINTR || errno == EFAULT) return 0;
  return -errno;
}

int WakeAddress(int32_t* addr, int count) {
  uint32_t op = kUlCompareAndWaitShared | (count == 1 ? 0 : kUlfWakeAll);
  int r = __ulock_wake(op, addr, 0);
  if (r < 0 && errno == ENOENT) return 0;  // nobody waiting
  return r < 0 ? -errno : 1;
}

int ReserveSegment(int fd, size_t size) { return 0; }  // macOS shm is not sparse-backed

namespace {
struct DeathWatch {
  int kq;
  int sig;
};

void* WatchParent(void* arg) {
  DeathWatch w = *static_cast<DeathWatch*>(arg);
  delete static_cast<DeathWatch*>(arg);
  struct kevent ev;
  for (;;) {
    int n = kevent(w.kq, nullptr, 0, &ev, 1, nullptr);
    if (n > 0) break;
    if (n < 0 && errno != EINTR) return nullptr;  // the pipe watchdog in TS remains
  }
  kill(getpid(), w.sig);
  return nullptr;
}
}  // namespace

// The kernel-side equivalent of PR_SET_PDEATHSIG, which the pipe watchdog
// (fdwatch.cc) cannot be: that one needs the event loop to turn, and a child
// busy in a CPU loop or blocked in a *Sync call would outlive its parent.
// Threads do not survive fork(), and kqueues are not inherited: every child
// calls this itself (lib/entry/bootstrap.ts dieWithParent). The parent is
// registered before this returns, so the caller's getppid() re-check covers
// a parent that died earlier.
bool SetParentDeathSignal(int sig) {
  pid_t parent = getppid();
  if (parent <= 1) return false;
  int kq = kqueue();
  if (kq < 0) return false;
  fcntl(kq, F_SETFD, FD_CLOEXEC);
  struct kevent ev;
  EV_SET(&ev, parent, EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT, 0, nullptr);
  if (kevent(kq, &ev, 1, nullptr, 0, nullptr) < 0) {
    int e = errno;
    close(kq);
    if (e == ESRCH) kill(getpid(), sig);  // already gone
    return false;
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  DeathWatch* w = new DeathWatch{kq, sig};
  int r = pthread_create(&t, &attr, WatchParent, w);
  pthread_attr_destroy(&attr);
  if (r != 0) {
    delete w;
    close(kq);
    return false;
  }
  return true;
}

bool ProcessAlive(int pid) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  struct kinfo_proc kp;
  size_t len = sizeof kp;
  int mib[4] = {CTL_KERN, KERN_PROC, KERN_PROC_PID, pid};
  if (sysctl(mib, 4, &kp, &len, nullptr, 0) != 0 || len == 0) return true;
  return kp.kp_proc.p_stat != SZOMB;
}

int PrepareFork() { return 0; }

// Not measured on macOS (what its libpthread does with the stacks of threads a fork left behind): nothing done.
int ClaimCopiedThreadStacks() { return 0; }

bool MainStackReturnsInto(const char* symbol) { return false; }  // only ClaimCopiedThreadStacks needs it

int MoveCodeToHugePages(const void* inside) { return ENOSYS; }

// No abstract socket names on macOS (a socket file would need unlinking
// after crashes): async waits stay on the futex-style waiter threads there.
int OpenWakeSocket(const char* name) { return -ENOSYS; }

int SendWake(const char* name, const void* buf, size_t n) { return -ENOSYS; }

const int32_t* CurrentCpuWord() { return nullptr; }

}  // namespace platform
}  // namespace multiproc
