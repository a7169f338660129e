// The one seam between operating systems. Each function has one definition
// per OS, in platform_linux.cc or platform_darwin.cc (chosen by binding.gyp).
#ifndef MULTIPROC_NATIVE_PLATFORM_H_
#define MULTIPROC_NATIVE_PLATFORM_H_

#include <cstddef>
#include <cstdint>

namespace multiproc {
namespace platform {

// Blocks while *addr == expected, until woken or timeout_ms passes
// (timeout_ms < 0: no timeout). The word may be shared between processes.
// Returns 0 when woken (or spuriously), 1 on timeout, 2 if *addr != expected,
// -errno on other failure.
int WaitOnAddress(int32_t* addr, int32_t expected, double timeout_ms);

// Wakes up to count waiters (count < 0: all). Returns how many, or -errno.
int WakeAddress(int32_t* addr, int count);

// Reserves the backing store of a fresh segment so that running out of space
// fails here (ENOSPC) and never later as SIGBUS. Returns 0 or an errno.
int ReserveSegment(int fd, size_t size);

// Asks the kernel to signal this process when its parent dies; false where
// the OS has no such thing (the pipe watchdog in TS covers that case).
bool SetParentDeathSignal(int sig);

// True if pid exists and is not a zombie.
bool ProcessAlive(int pid);

// Makes every mapping of this process inheritable again before fork():
// V8 marks its heap MADV_DONTFORK (see NATIVE-NOTES.md). Returns 0 or errno.
int PrepareFork();

// In a fork child, before it starts any thread: fork() leaves the stacks of
// the parent's other threads free for the child's new threads, while what
// the parent had queued to join them (Node's Worker::JoinThread, queued by a
// worker thread that ended just before the fork) still runs in the child.
// Each such stack is taken here by a thread that ends at once and is never
// joined, so that a copied join finds an ended thread, never one the child
// started on that stack. Returns how many stacks were taken (0 where the
// thread library gives a child no such stacks, or was not measured).
int ClaimCopiedThreadStacks();

// Whether the calling thread is the process's main thread and its stack, from
// the caller's frame up, holds a word that points into the exported function
// `symbol` (a return address: that function is running below the caller).
// Stale words in live frames can make it true for nothing, never false while
// the function runs. False where not known (symbol or its size not found,
// not glibc, not the main thread).
bool MainStackReturnsInto(const char* symbol);

// Copies the executable's code (the 2 MB-aligned part of its text mapping
// that holds `inside`) to anonymous memory on transparent huge pages and
// swaps it in place with one mremap(), so that fork() children inherit it
// mapped (see lib/popen/forkserver.ts). The content never changes, so other
// threads may run that code meanwhile. Returns 0 or an errno (ENOSYS where
// the OS has no such thing).
int MoveCodeToHugePages(const void* inside);

// The calling thread's current CPU as a word the kernel keeps up to date in
// the thread's own memory (Linux: the cpu_id of the rseq area glibc >= 2.35
// registers for every thread), so JS can read it with no call at all; nullptr
// where there is no such word. The word lives as long as the thread.
const int32_t* CurrentCpuWord();

// A datagram socket bound to `name` without a file (Linux: the abstract
// namespace), non-blocking and close-on-exec. Returns the fd, -ENOSYS where
// the OS has no such names, or -errno.
int OpenWakeSocket(const char* name);

// Sends len bytes to the socket bound to `name`, never blocking. Returns 0
// or -errno (-ENOSYS where OpenWakeSocket is not supported).
int SendWake(const char* name, const void* buf, size_t len);

}  // namespace platform
}  // namespace multiproc

#endif  // MULTIPROC_NATIVE_PLATFORM_H_
