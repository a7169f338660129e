// Linux side of platform.h: futex without FUTEX_PRIVATE_FLAG (so waiters in
// other processes mapping the same page are found), posix_fallocate,
// PR_SET_PDEATHSIG and /proc.
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "platform.h"

namespace multiproc {
namespace platform {

int WaitOnAddress(int32_t* addr, int32_t expected, double timeout_ms) {
  struct timespec ts;
  struct timespec* tsp = nullptr;
  if (timeout_ms >= 0) {
    double secs = timeout_ms / 1000.0;
    if (secs > 1e9) secs = 1e9;
    ts.tv_sec = static_cast<time_t>(secs);
    ts.tv_nsec = static_cast<long>((secs - static_cast<double>(ts.tv_sec)) * 1e9);
    tsp = &ts;
  }
  long r = syscall(SYS_futex, addr, FUTEX_WAIT, expected, tsp, nullptr, 0);
  if (r == 0) return 0;
  switch (errno) {
    case EAGAIN: return 2;
    case ETIMEDOUT: return 1;
    case EINTR: return 0;  // callers re-check their condition anyway
    default: return -errno;
  }
}

int WakeAddress(int32_t* addr, int count) {
  long r = syscall(SYS_futex, addr, FUTEX_WAKE, count < 0 ? INT_MAX : count, nullptr, nullptr, 0);
  return r < 0 ? -errno : static_cast<int>(r);
}

int ReserveSegment(int fd, size_t size) {
  int err = posix_fallocate(fd, 0, static_cast<off_t>(size));
  // Filesystems without fallocate support: keep the sparse segment.
  if (err == EOPNOTSUPP || err == ENOSYS || err == EINVAL) return 0;
  return err;
}

bool SetParentDeathSignal(int sig) { return prctl(PR_SET_PDEATHSIG, sig) == 0; }

bool ProcessAlive(int pid) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A killed child that nobody has reaped yet is a zombie: dead for us.
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = fopen(path, "re");
  if (f == nullptr) return errno != ENOENT;
  char buf[512];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char* rp = strrchr(buf, ')');  // comm may contain spaces and ')'
  if (rp == nullptr || rp[1] == 0) return true;
  char state = rp[2];
  return state != 'Z' && state != 'X';
}

int PrepareFork() {
  FILE* f = fopen("/proc/self/maps", "re");
  if (f == nullptr) return errno;
  char line[4096];
  while (fgets(line, sizeof line, f) != nullptr) {
    unsigned long start, end;
    if (sscanf(line, "%lx-%lx", &start, &end) != 2) continue;
    madvise(reinterpret_cast<void*>(start), end - start, MADV_DOFORK);
  }
  fclose(f);
  return 0;
}

}  // namespace platform
}  // namespace multiproc
