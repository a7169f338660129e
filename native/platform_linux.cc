// Linux side of platform.h: futex without FUTEX_PRIVATE_FLAG (so waiters in
// other processes mapping the same page are found), posix_fallocate,
// PR_SET_PDEATHSIG and /proc.
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <cstdint>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <vector>

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
  // kill() said the pid exists: a /proc we cannot read it in (hidepid=2 for
  // another user's process, or it exited just now) is no proof of death.
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = fopen(path, "re");
  if (f == nullptr) return true;
  char buf[512];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char* rp = strrchr(buf, ')');  // comm may contain spaces and ')'
  if (rp == nullptr || rp[1] == 0) return true;
  char state = rp[2];
  return state != 'Z' && state != 'X';
}

int MoveCodeToHugePages(const void* inside) {
  constexpr uintptr_t kHuge = 2u << 20;
  uintptr_t at = reinterpret_cast<uintptr_t>(inside);
  uintptr_t from = 0, to = 0;
  FILE* f = fopen("/proc/self/maps", "re");
  if (f == nullptr) return errno;
  char line[4096];
  while (fgets(line, sizeof line, f) != nullptr) {
    unsigned long start, end;
    char perms[5];
    if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) != 3) continue;
    if (at < start || at >= end) continue;
    // Private, executable and file-backed (a text segment), as it was loaded.
    if (strcmp(perms, "r-xp") == 0 && strchr(line, '/') != nullptr) {
      from = (start + kHuge - 1) & ~(kHuge - 1);
      to = end & ~(kHuge - 1);
    }
    break;
  }
  fclose(f);
  if (from == 0 || to <= from) return ENOENT;
  size_t size = to - from;
  // A 2 MB-aligned staging area: mremap moves whole huge-page entries only
  // between aligned addresses.
  void* raw = mmap(nullptr, size + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return errno;
  uintptr_t stage = (reinterpret_cast<uintptr_t>(raw) + kHuge - 1) & ~(kHuge - 1);
  uintptr_t rawEnd = reinterpret_cast<uintptr_t>(raw) + size + kHuge;
  if (stage > reinterpret_cast<uintptr_t>(raw)) munmap(raw, stage - reinterpret_cast<uintptr_t>(raw));
  if (rawEnd > stage + size) munmap(reinterpret_cast<void*>(stage + size), rawEnd - (stage + size));
  void* s = reinterpret_cast<void*>(stage);
  madvise(s, size, MADV_HUGEPAGE);
  memcpy(s, reinterpret_cast<const void*>(from), size);
  int err = 0;
  if (mprotect(s, size, PROT_READ | PROT_EXEC) != 0) {
    err = errno;
  } else if (mremap(s, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, reinterpret_cast<void*>(from)) == MAP_FAILED) {
    err = errno;
  } else {
    return 0;
  }
  munmap(s, size);
  return err;
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

// glibc's fork() puts every other thread's stack in its cache of free stacks
// in the child (__reclaim_stacks), the thread's descriptor at its top as it
// was. A pthread_join there of one of those threads finds it ended and
// returns 0 while its stack stays in the cache; but the next thread the child
// starts with a stack of that size is given it, and the join then waits for
// that thread and frees its stack, whose own join then fails with ESRCH
// (measured: a 'fork' child that started a Worker while the join of its
// parent's ending Worker was queued aborted in Node's JoinThread assertion;
// test/fixtures/fork-worker-ending.mjs). A thread that takes such a stack and
// ends at once, never joined, leaves it as any ended joinable thread's: out
// of the cache, neither given out again nor unmapped when the cache is
// trimmed, and a join finds it ended. The cache gives the smallest free stack
// at least the size asked for (up to four times it), so asking for sizes four
// times apart, from the smallest stack there can be up to the largest
// anonymous rw-p mapping, each until a fresh stack comes back, takes every
// cached stack. Not the sizes of the stacks /proc/self/maps shows: glibc 2.42
// on Linux 6.13 and later guards a stack with MADV_GUARD_INSTALL inside its
// own rw-p mapping, without the ---p mapping below it that told a stack from
// other memory (review helper-113: such a stack was not taken, and the
// child's thread got it, as before 1d88d87).
#if defined(__GLIBC__)
namespace {

void* EndAtOnce(void*) { return nullptr; }

struct Mapping {
  uintptr_t start, end;
};

bool InAny(const std::vector<Mapping>& maps, uintptr_t at) {
  for (const Mapping& m : maps) {
    if (at >= m.start && at < m.end) return true;
  }
  return false;
}

// Asked for at most (a cached stack up to four times it is taken): thread
// stacks of 256 MB and more are left to chance.
constexpr size_t kLargestAsked = size_t{64} << 20;

}  // namespace

int ClaimCopiedThreadStacks() {
  std::vector<Mapping> maps;
  size_t largest = 0;
  FILE* f = fopen("/proc/self/maps", "re");
  if (f == nullptr) return 0;
  char line[4096];
  while (fgets(line, sizeof line, f) != nullptr) {
    unsigned long start, end;
    char perms[5];
    if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) != 3) continue;
    maps.push_back({start, end});
    // Not file-backed (a stack may be named, "[anon: glibc: pthread stack: ...]").
    if (strcmp(perms, "rw-p") == 0 && strchr(line, '/') == nullptr && end - start > largest) largest = end - start;
  }
  fclose(f);
  if (largest > kLargestAsked) largest = kLargestAsked;
  // Signals blocked in these threads: a process-directed one must find a thread that lives on.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int claimed = 0;
  std::vector<pthread_t> fresh;
  bool complete = true;  // every size asked for until a fresh stack came back
  for (size_t size = static_cast<size_t>(PTHREAD_STACK_MIN); size > 0; size *= 4) {
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
      complete = false;
      break;
    }
    bool ok = pthread_attr_setstacksize(&attr, size) == 0;
    complete = complete && ok;
    // Bounded by the mappings there are: each round takes a cached stack or ends the size.
    for (size_t i = 0; ok && i <= maps.size(); i++) {
      pthread_t t;
      if (pthread_create(&t, &attr, EndAtOnce, nullptr) != 0) {
        complete = false;  // EAGAIN: RLIMIT_NPROC, or no memory for a fresh stack
        break;
      }
      // pthread_t is the descriptor, inside the stack: a fresh stack is a new
      // mapping. A claimed one is left unjoined; a fresh one is joined once
      // every size was asked for: joined earlier, its stack would go to the
      // cache, whose trimming (past 40 MB) could unmap a cached stack not yet
      // taken, under its copied descriptor.
      if (!InAny(maps, static_cast<uintptr_t>(t))) {
        fresh.push_back(t);
        break;
      }
      claimed++;
    }
    pthread_attr_destroy(&attr);
    if (size >= largest) break;
  }
  // Not when a size was left (a thread could not be made): copied stacks may still be in the cache.
  if (complete) {
    for (pthread_t t : fresh) pthread_join(t, nullptr);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return claimed;
}

// The main thread's stack ends (at its top) just above __libc_stack_end, the
// stack pointer glibc saw at start-up: every frame lies below it.
extern "C" void* __libc_stack_end;

bool MainStackReturnsInto(const char* symbol) {
  // One symbol per process (the caller names a constant): looked up once.
  static const char* looked = nullptr;
  static uintptr_t from = 0, size = 0;
  if (looked != symbol) {
    looked = symbol;
    from = size = 0;
    void* at = dlsym(RTLD_DEFAULT, symbol);
    Dl_info info;
    void* entry = nullptr;
    if (at != nullptr && dladdr1(at, &info, &entry, RTLD_DL_SYMENT) != 0 && entry != nullptr) {
      from = reinterpret_cast<uintptr_t>(at);
      size = static_cast<const ElfW(Sym)*>(entry)->st_size;
    }
  }
  if (size == 0) return false;
  // Another thread's stack is a mapping of its own, below: the walk up to
  // __libc_stack_end would cross unmapped memory.
  if (getpid() != static_cast<pid_t>(syscall(SYS_gettid))) return false;
  uintptr_t here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0)) & ~(sizeof(uintptr_t) - 1);
  uintptr_t end = reinterpret_cast<uintptr_t>(__libc_stack_end);
  // On another stack (a coroutine's, a stack switched to), maybe below
  // unmapped memory: the kernel puts mappings at least 128 MB below the
  // main stack's top, so a frame within 64 MB of it is on that stack.
  if (here >= end || end - here > (uintptr_t{64} << 20)) return false;
  for (uintptr_t at = here; at < end; at += sizeof(uintptr_t)) {
    if (*reinterpret_cast<const uintptr_t*>(at) - from < size) return true;
  }
  return false;
}
#else
int ClaimCopiedThreadStacks() { return 0; }  // musl and others: no stack cache of glibc's kind (not measured)
bool MainStackReturnsInto(const char* symbol) { return false; }
#endif

namespace {

socklen_t AbstractAddress(const char* name, struct sockaddr_un* addr) {
  size_t len = strlen(name);
  if (len + 1 > sizeof addr->sun_path) return 0;
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path + 1, name, len);  // sun_path[0] == 0: abstract, no file to unlink
  return static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + 1 + len);
}

}  // namespace

int OpenWakeSocket(const char* name) {
  struct sockaddr_un addr;
  socklen_t len = AbstractAddress(name, &addr);
  if (len == 0) return -ENAMETOOLONG;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), len) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

int SendWake(const char* name, const void* buf, size_t n) {
  // One unbound sending socket per process, shared by every thread.
  static std::atomic<int> sender{-1};
  int fd = sender.load();
  if (fd < 0) {
    int mine = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (mine < 0) return -errno;
    int expected = -1;
    if (sender.compare_exchange_strong(expected, mine)) fd = mine;
    else {
      close(mine);
      fd = expected;
    }
  }
  struct sockaddr_un addr;
  socklen_t len = AbstractAddress(name, &addr);
  if (len == 0) return -ENAMETOOLONG;
  ssize_t r = sendto(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&addr), len);
  return r < 0 ? -errno : 0;
}

// The thread pointer, which __rseq_offset is relative to: %fs base on x86-64
// (its first word points to itself), tpidr_el0 on arm64.
static const char* ThreadPointer() {
#if defined(__x86_64__)
  const char* tp;
  asm("mov %%fs:0, %0" : "=r"(tp));
  return tp;
#elif defined(__aarch64__)
  const char* tp;
  asm("mrs %0, tpidr_el0" : "=r"(tp));
  return tp;
#else
  return static_cast<const char*>(__builtin_thread_pointer());
#endif
}

// glibc >= 2.35 registers an rseq area per thread at thread pointer +
// __rseq_offset (looked up at run time so that the addon also loads on an
// older glibc, where there is none). __rseq_size is 0 when registration is
// off (GLIBC_TUNABLES=glibc.pthread.rseq=0, or another library owns rseq).
// struct rseq: u32 cpu_id_start, u32 cpu_id (-1 until registered), ...
const int32_t* CurrentCpuWord() {
  static const ptrdiff_t* offset = static_cast<const ptrdiff_t*>(dlsym(RTLD_DEFAULT, "__rseq_offset"));
  static const unsigned int* size = static_cast<const unsigned int*>(dlsym(RTLD_DEFAULT, "__rseq_size"));
  if (offset == nullptr || size == nullptr || *size < 8) return nullptr;
  const char* area = ThreadPointer() + *offset;
  const int32_t* cpu = reinterpret_cast<const int32_t*>(area + 4);
  return *cpu >= 0 ? cpu : nullptr;
}

}  // namespace platform
}  // namespace multiproc
