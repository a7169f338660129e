// Process primitives: pids, liveness, parent-death signal, pipes, fork.
// Which of them to use, and when, is decided in lib/ (popen/*, process.ts).
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "platform.h"
#include "util.h"

namespace multiproc {

namespace {

Napi::Value GetPid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), getpid()); }
Napi::Value GetPpid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), getppid()); }

Napi::Value IsAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsNumber(), "isAlive(pid)");
  return Napi::Boolean::New(env, platform::ProcessAlive(info[0].As<Napi::Number>().Int32Value()));
}

// setParentDeathSignal(sig) -> false where the OS has no such feature.
Napi::Value SetPdeathsig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsNumber(), "setParentDeathSignal(signal)");
  return Napi::Boolean::New(env, platform::SetParentDeathSignal(info[0].As<Napi::Number>().Int32Value()));
}

// exitNow(code): _exit without running Node's shutdown (needed in forked
// children, whose platform threads do not exist; see NATIVE-NOTES.md).
Napi::Value ExitNow(const Napi::CallbackInfo& info) {
  int code = info.Length() >= 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  _exit(code);
}

// pipe() -> [readFd, writeFd], both close-on-exec.
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (pipe(fds) != 0) return ThrowErrno(env, "pipe", errno);
  for (int& fd : fds) {
    // Never 0-2: a parent that closed its stdin would lend fd 0 to a fork
    // child's watchdog, which the child then took for the parent's stdin and
    // replaced, and died at once of a false EOF (review helper-104).
    if (fd <= 2) {
      int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (moved >= 0) {
        close(fd);
        fd = moved;
      }
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, fds[0]));
  a.Set(1u, Napi::Number::New(env, fds[1]));
  return a;
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsNumber(), "closeFd(fd)");
  close(info[0].As<Napi::Number>().Int32Value());
  return env.Undefined();
}

// quietFd(fd, eof): in place of fd, one end of a fresh socket pair,
// non-blocking (what libuv expects), so that this process's copy no longer
// reads what another process's copy of fd should. eof: its other end is
// closed, and reads give end-of-file (a fork child's stdin: Python's gets
// /dev/null, but epoll refuses /dev/null, and libuv aborted when the
// target read process.stdin); else it stays open here, and reads find
// nothing (a fork child's copy of the parent's IPC channel, whose watcher
// its event loop keeps). Writes go nowhere. Returns whether it was done.
Napi::Value QuietFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 2 && info[0].IsNumber() && info[1].IsBoolean(), "quietFd(fd, eof)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool eof = info[1].As<Napi::Boolean>().Value();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return Napi::Boolean::New(env, false);
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  if (eof) {
    close(sv[1]);
    sv[1] = -1;
  } else {
    fcntl(sv[1], F_SETFD, FD_CLOEXEC);
  }
  // dup2 clears close-on-exec: keep the flag the fd had (libuv's sockets and
  // the IPC channel have it; stdin has not), or every program the child
  // spawned inherited the quiet socket.
  int fdFlags = fcntl(fd, F_GETFD);
  bool ok = dup2(sv[0], fd) >= 0;
  if (ok && fdFlags >= 0 && (fdFlags & FD_CLOEXEC) != 0) fcntl(fd, F_SETFD, FD_CLOEXEC);
  close(sv[0]);
  if (!ok && sv[1] >= 0) close(sv[1]);
  return Napi::Boolean::New(env, ok);
}

// eofFd() -> a new fd (3 or above, close-on-exec, non-blocking) whose reads
// give end-of-file: a 'fork' child's stdin when its fd 0 is the parent's
// and must stay (review helper-106). -1 if it could not be made.
Napi::Value EofFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return Napi::Number::New(env, -1);
  close(sv[1]);
  int fd = fcntl(sv[0], F_DUPFD_CLOEXEC, 3);
  close(sv[0]);
  if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return Napi::Number::New(env, fd);
}

// setCloexec(fd, on)
Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 2 && info[0].IsNumber(), "setCloexec(fd, on)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) return ThrowErrno(env, "fcntl", errno);
  flags = BoolArg(info[1]) ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  fcntl(fd, F_SETFD, flags);
  return env.Undefined();
}

// The signals a terminal, `timeout`, systemd or `kill -- -PGID` send to a
// whole process group. The zygote ignores them (it ends with its parent: EOF
// on its request pipe, and its parent-death signal); had it died of one, every
// forkserver child would have been killed with it (their parent-death signal
// is SIGKILL), before their own handlers could run. Its children restore the
// dispositions it had, so a child sees Ctrl-C as a spawned one does.
const int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};
struct sigaction g_savedStop[3];
bool g_stopSaved = false;

// ignoreStopSignals(): saves the current dispositions (once) and ignores them.
Napi::Value IgnoreStopSignals(const Napi::CallbackInfo& info) {
  struct sigaction ign = {};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  for (int i = 0; i < 3; i++) sigaction(kStopSignals[i], &ign, g_stopSaved ? nullptr : &g_savedStop[i]);
  g_stopSaved = true;
  return info.Env().Undefined();
}

void RestoreStop() {
  if (!g_stopSaved) return;
  for (int i = 0; i < 3; i++) sigaction(kStopSignals[i], &g_savedStop[i], nullptr);
  g_stopSaved = false;
}

// restoreStopSignals(): in a child of the zygote, the dispositions it had
// before (fork() below already does it; kept for a child forked otherwise).
Napi::Value RestoreStopSignals(const Napi::CallbackInfo& info) {
  RestoreStop();
  return info.Env().Undefined();
}


// A worker_threads Worker's thread that ends queues its join for the main
// thread (Worker::JoinThread, a native immediate) and wakes it through the
// Environment's task_queues_async_, both under one lock. A process forked
// before the main thread took that up copies the queue, and the child runs
// the join in its first check phase, on a thread the child does not have:
// its stack must not be given to a thread of the child first (see
// platform::ClaimCopiedThreadStacks, ~20-40 us a thread, so only when that
// async is pending). It is the UV_ASYNC handle Node embeds right after the
// immediate check handle (whose callback, Environment::CheckImmediate, Node
// exports; 480 bytes apart in Node 20). Not found (another build of Node):
// any pending async counts, MessagePorts' too, which costs the same work
// for nothing now and then.
const uv_async_t* g_taskQueuesAsync = nullptr;
const uv_loop_t* g_taskQueuesLoop = nullptr;
constexpr uintptr_t kTaskQueuesAsyncWithin = 1024;

// Reads the loop's handle list without uv_walk, which relinks every handle
// as it goes: in a fork child that wrote to every page holding one (~50 us
// of copy-on-write faults measured).
// The queue is two pointers, next first, whether libuv declares it as
// struct uv__queue (1.46 on) or void* [2] (QUEUE, Node 20 before 20.5).
template <typename Fn>
void ForEachHandle(uv_loop_t* loop, Fn fn) {
  void* const* head = reinterpret_cast<void* const*>(&loop->handle_queue);
  for (void* const* q = static_cast<void* const*>(head[0]); q != head; q = static_cast<void* const*>(q[0])) {
    fn(reinterpret_cast<uv_handle_t*>(reinterpret_cast<char*>(const_cast<void**>(q)) - offsetof(uv_handle_t, handle_queue)));
  }
}

// In the parent, before fork(): where the main thread's task_queues_async_ is (once per loop).
void FindTaskQueuesAsync(uv_loop_t* loop) {
  if (g_taskQueuesLoop == loop) return;
  g_taskQueuesLoop = loop;
  g_taskQueuesAsync = nullptr;
  void* checkImmediate = dlsym(RTLD_DEFAULT, "_ZN4node11Environment14CheckImmediateEP10uv_check_s");
  if (checkImmediate == nullptr) return;
  uintptr_t check = 0;
  ForEachHandle(loop, [&](const uv_handle_t* h) {
    if (h->type == UV_CHECK && reinterpret_cast<void*>(reinterpret_cast<const uv_check_t*>(h)->check_cb) == checkImmediate) {
      check = reinterpret_cast<uintptr_t>(h);
    }
  });
  if (check == 0) return;
  uintptr_t best = 0;
  ForEachHandle(loop, [&](const uv_handle_t* h) {
    uintptr_t at = reinterpret_cast<uintptr_t>(h);
    if (h->type == UV_ASYNC && at > check && at - check < kTaskQueuesAsyncWithin && (best == 0 || at < best)) best = at;
  });
  g_taskQueuesAsync = reinterpret_cast<const uv_async_t*>(best);
}

bool Pending(const uv_async_t* a) { return __atomic_load_n(&a->pending, __ATOMIC_ACQUIRE) != 0; }

// In the parent, before fork(): whether this fork is made from inside a
// Worker's join (its 'exit' listeners run there, from Node's drain of its
// immediates). That drain took every join queued with it off the queue
// before the first ran, task_queues_async_ no longer pending; the ones after
// this Worker's run when the listener returns, in the child too (a 'fork'
// child started from an 'exit' listener while a second Worker's join was
// queued aborted in Node's JoinThread assertion, every time:
// test/fixtures/fork-worker-exit-listener.mjs). A scan of the main thread's
// stack for a return address into Worker::JoinThread, a few us; only ever
// true in a process that has joined a Worker.
bool InsideWorkerJoin() { return platform::MainStackReturnsInto("_ZN4node6worker6Worker10JoinThreadEv"); }

// In the child, before uv_loop_fork (which may clear it): whether a join of the parent's may be queued.
bool JoinMayBeQueued(uv_loop_t* loop) {
  if (g_taskQueuesAsync != nullptr) return Pending(g_taskQueuesAsync);
  bool any = false;
  ForEachHandle(loop, [&](const uv_handle_t* h) {
    if (h->type == UV_ASYNC && Pending(reinterpret_cast<const uv_async_t*>(h))) any = true;
  });
  return any;
}

// fork(board?, pidOffset?, seqOffset?, seq?) -> pid in the parent, 0 in the
// child. Only safe in a process whose V8 runs single-threaded (the forkserver
// zygote); see lib/popen/fork.ts.
// With a board, the parent also publishes the reply here, before it returns
// to JS: the pid at pidOffset, then seq at seqOffset (release), then a wake.
// Right after a fork every page of the parent's heap is copy-on-write, and
// the JS that would publish it pays those faults first (measured: ~5 ms from
// fork() returning to the requester waking; the board is shared memory and
// faults nothing).
Napi::Value Fork(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t* pidWord = nullptr;
  int32_t* seqWord = nullptr;
  int32_t seq = 0;
  if (info.Length() >= 4) {
    pidWord = WordAt(env, info[0], info[1]);
    if (pidWord == nullptr) return env.Undefined();
    seqWord = WordAt(env, info[0], info[2]);
    if (seqWord == nullptr) return env.Undefined();
    MP_REQUIRE(info[3].IsNumber(), "fork(board, pidOffset, seqOffset, seq): seq must be a number");
    seq = info[3].As<Napi::Number>().Int32Value();
  }
  uv_loop_t* parentLoop = nullptr;
  napi_get_uv_event_loop(env, &parentLoop);
  if (parentLoop != nullptr) FindTaskQueuesAsync(parentLoop);
  const bool insideJoin = InsideWorkerJoin();
  int err = platform::PrepareFork();
  // (Reading /proc/self/maps: EMFILE under a small ulimit -n was reported as "madvise failed".)
  if (err) return ThrowErrno(env, "fork: open /proc/self/maps", err);
  // In the zygote (its stop signals ignored, see ignoreStopSignals): a
  // SIGTERM sent to the child right after fork(), before it restored its
  // dispositions, was discarded, and terminate() did nothing. Blocked over
  // the fork, it stays pending in the child (Linux never discards a blocked
  // signal as ignored) until the dispositions are back and the mask opens.
  bool shield = g_stopSaved;
  sigset_t stop, mask;
  if (shield) {
    sigemptyset(&stop);
    for (int sig : kStopSignals) sigaddset(&stop, sig);
    pthread_sigmask(SIG_BLOCK, &stop, &mask);
  }
  HoldWorkerTasks(100);
  pid_t pid = fork();
  int forkErr = errno;
  if (pid != 0) ReleaseWorkerTasks();
  if (pid == 0) RestoreStop();
  if (shield) pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  if (pid < 0) return ThrowErrno(env, "fork", forkErr);
  if (pid > 0 && seqWord != nullptr) {
    __atomic_store_n(pidWord, pid, __ATOMIC_SEQ_CST);
    __atomic_store_n(seqWord, seq, __ATOMIC_SEQ_CST);
    platform::WakeAddress(seqWord, -1);
  }
  if (pid == 0) {
    MarkForkChild();
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    // Before anything here starts a thread.
    if (insideJoin || (loop != nullptr && JoinMayBeQueued(loop))) platform::ClaimCopiedThreadStacks();
    RedirectWorkerTasks(env);
    if (loop != nullptr) uv_loop_fork(loop);
  }
  return Napi::Number::New(env, pid);
}

// waitpid(pid, block) -> null while running, else { code, signal }.
Napi::Value WaitPid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsNumber(), "waitpid(pid, block)");
  int status = 0;
  pid_t r;
  do {
    r = waitpid(info[0].As<Napi::Number>().Int32Value(), &status, BoolArg(info[1]) ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return ThrowErrno(env, "waitpid", errno);
  if (r == 0) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, r));
  o.Set("code", WIFEXITED(status) ? Napi::Number::New(env, WEXITSTATUS(status)) : env.Null());
  o.Set("signal", WIFSIGNALED(status) ? Napi::Number::New(env, WTERMSIG(status)) : env.Null());
  return o;
}

// peekExitStatus(pid) -> null while running, else { code, signal }, without
// reaping: libuv (or whoever owns the child) still gets its waitpid. Lets a
// blocking join read a spawned child's status while the event loop is parked.
Napi::Value PeekExitStatus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsNumber(), "peekExitStatus(pid)");
  siginfo_t si;
  si.si_pid = 0;
  int r;
  do {
    r = waitid(P_PID, static_cast<id_t>(info[0].As<Napi::Number>().Int32Value()), &si, WEXITED | WNOHANG | WNOWAIT);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return ThrowErrno(env, "waitid", errno);
  // Only an end counts: macOS also reports a stopped child under WEXITED.
  if (si.si_pid == 0 || (si.si_code != CLD_EXITED && si.si_code != CLD_KILLED && si.si_code != CLD_DUMPED)) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, si.si_pid));
  bool exited = si.si_code == CLD_EXITED;
  o.Set("code", exited ? Napi::Number::New(env, si.si_status) : env.Null());
  o.Set("signal", exited ? env.Null() : Napi::Number::New(env, si.si_status));
  return o;
}

// moveCodeToHugePages(): starts platform::MoveCodeToHugePages for node's own
// code (napi_* are defined in node itself) on a detached thread of its own:
// it takes ~0.1-0.2 s of page allocation and copying on the VMs measured
// here, and the event loop goes on meanwhile. Not a libuv work request: a
// child forked meanwhile would inherit it pending forever, and never exit.
// The outcome is read with moveCodeStatus(): -1 running, else 0 or an errno.
std::atomic<int> g_moveStatus{-2};

Napi::Value MoveCodeToHugePages(const Napi::CallbackInfo& info) {
  int idle = -2;
  if (g_moveStatus.compare_exchange_strong(idle, -1)) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    auto run = [](void*) -> void* {
      g_moveStatus = platform::MoveCodeToHugePages(reinterpret_cast<const void*>(&napi_create_object));
      return nullptr;
    };
    if (pthread_create(&t, &attr, run, nullptr) != 0) g_moveStatus = EAGAIN;
    pthread_attr_destroy(&attr);
  }
  return info.Env().Undefined();
}

Napi::Value MoveCodeStatus(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), g_moveStatus.load()); }

// loopAlive(ignoreIdle = false) -> whether this thread's libuv loop has
// anything keeping it alive. A forked child uses it to end itself before the
// loop drains for real (see lib/entry/bootstrap.ts exitWhenIdle). With
// ignoreIdle, idle handles do not count: Node keeps its one idle handle
// active while any immediate is queued, including the one running now, so a
// check made from setImmediate always saw a live loop and a forked child
// spent ~2 ms in more loop turns before it could exit; the caller counts
// pending immediates itself.
Napi::Value LoopAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  if (loop == nullptr) return Napi::Boolean::New(env, false);
  if (!BoolArg(info[0])) return Napi::Boolean::New(env, uv_loop_alive(loop) != 0);
  bool alive = loop->active_reqs.count != 0;
  uv_walk(loop, [](uv_handle_t* h, void* arg) {
    if (h->type == UV_IDLE) return;
    if (uv_is_closing(h) || (uv_is_active(h) && uv_has_ref(h))) *static_cast<bool*>(arg) = true;
  }, &alive);
  return Napi::Boolean::New(env, alive);
}

// refSockets(on): on, refs every unref'd TCP, UDP and pipe handle of this
// loop (not closing), so that process._getActiveHandles(), which lists only
// ref'd ones, lists them too; off, unrefs again those it ref'd. A 'fork'
// child looks for the parent's sockets that way (lib/entry/bootstrap.ts
// detachInheritedHandles): an unref'd one (an HTTP agent's free keep-alive
// socket, a server or UDP socket the parent unref'd) was not seen, and the
// child's loop read from it (review helper-112).
std::vector<uv_handle_t*> g_refSockets;
Napi::Value RefSockets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  if (!BoolArg(info[0])) {
    for (uv_handle_t* h : g_refSockets) if (!uv_is_closing(h)) uv_unref(h);
    g_refSockets.clear();
    return env.Undefined();
  }
  if (loop == nullptr) return env.Undefined();
  // ForEachHandle, not uv_walk: this runs in every 'fork' child, and uv_walk
  // relinks each handle (copy-on-write faults on every page holding one).
  ForEachHandle(loop, [](uv_handle_t* h) {
    if ((h->type == UV_TCP || h->type == UV_UDP || h->type == UV_NAMED_PIPE) && !uv_is_closing(h) && !uv_has_ref(h)) {
      uv_ref(h);
      g_refSockets.push_back(h);
    }
  });
  return env.Undefined();
}

}  // namespace

void InitProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("ignoreStopSignals", Napi::Function::New(env, IgnoreStopSignals, "ignoreStopSignals"));
  exports.Set("restoreStopSignals", Napi::Function::New(env, RestoreStopSignals, "restoreStopSignals"));
  exports.Set("getpid", Napi::Function::New(env, GetPid, "getpid"));
  exports.Set("moveCodeToHugePages", Napi::Function::New(env, MoveCodeToHugePages, "moveCodeToHugePages"));
  exports.Set("moveCodeStatus", Napi::Function::New(env, MoveCodeStatus, "moveCodeStatus"));
  exports.Set("getppid", Napi::Function::New(env, GetPpid, "getppid"));
  exports.Set("isAlive", Napi::Function::New(env, IsAlive, "isAlive"));
  exports.Set("setParentDeathSignal", Napi::Function::New(env, SetPdeathsig, "setParentDeathSignal"));
  exports.Set("exitNow", Napi::Function::New(env, ExitNow, "exitNow"));
  exports.Set("pipe", Napi::Function::New(env, Pipe, "pipe"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("quietFd", Napi::Function::New(env, QuietFd, "quietFd"));
  exports.Set("eofFd", Napi::Function::New(env, EofFd, "eofFd"));
  exports.Set("refSockets", Napi::Function::New(env, RefSockets, "refSockets"));
  exports.Set("setCloexec", Napi::Function::New(env, SetCloexec, "setCloexec"));
  exports.Set("fork", Napi::Function::New(env, Fork, "fork"));
  exports.Set("waitpid", Napi::Function::New(env, WaitPid, "waitpid"));
  exports.Set("loopAlive", Napi::Function::New(env, LoopAlive, "loopAlive"));
  exports.Set("peekExitStatus", Napi::Function::New(env, PeekExitStatus, "peekExitStatus"));
}

}  // namespace multiproc
