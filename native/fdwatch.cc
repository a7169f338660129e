// File descriptors polled by this thread's event loop (uv_poll), each with
// a small native reaction, so that none needs a JS stream:
// - the wake socket (below): one-hop wake-ups for async waiters;
// - watchFd: readable -> a JS callback that reads the fd itself (the
//   forkserver's request pipe: a fork child closes it with one call, where a
//   net.Socket's destroy() cost ~5 ms of copy-on-write faults per child);
// - dieOnEof: EOF or error -> SIGKILL to this process, without JS (the
//   parent-death watchdog of every child).
//
// The wake socket: a wake-up that reaches a process's event loop in one hop,
// a datagram socket that the loop itself polls. An async waiter on a futex
// needs a waiter thread that is woken by the kernel and then wakes the loop
// (uv_async_send): two thread wake-ups in a row, ~120 us more than a direct
// futex wake on the 2-vCPU VMs this was measured on. A writer that knows a
// reader sleeps this way sends it a 4-byte datagram (the id of the channel
// to wake) instead, and the reader's epoll_wait returns.
//
// Where the OS cannot name such a socket without a file (platform.h:
// OpenWakeSocket returns -ENOSYS), TS keeps using futex waits.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <vector>

#include "platform.h"
#include "util.h"

namespace multiproc {

namespace {

int SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return errno;
  return 0;
}

struct Watcher;
using OnReadableFn = void (*)(Watcher*);

struct Watcher {
  uv_poll_t poll;
  int fd = -1;
  bool closed = false;
  OnReadableFn onReadable = nullptr;
  Napi::FunctionReference callback;
  napi_env env = nullptr;
  napi_async_context context = nullptr;
};

// The Watcher outlives its handle on purpose: JS may still hold the External
// (a closed watcher is inert). A few bytes per close; closes happen in forked
// children and at env teardown only.
void OnClosed(uv_handle_t* h) {}

// The async context is not destroyed: this also runs at env teardown, where
// that call is not safe; a few bytes per close, as for the Watcher itself.
void CloseWatcher(Watcher* w) {
  if (w->closed) return;
  w->closed = true;
  uv_poll_stop(&w->poll);
  close(w->fd);
  w->callback.Reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&w->poll), OnClosed);
}

void CleanupHook(void* arg) { CloseWatcher(static_cast<Watcher*>(arg)); }

void OnPoll(uv_poll_t* handle, int status, int events) {
  Watcher* w = static_cast<Watcher*>(handle->data);
  if (!w->closed) w->onReadable(w);
}

// Calls the watcher's JS callback with argv. Raw N-API with statuses
// checked, as in futex.cc: this can run while the env is being torn down
// (uv_run in Environment::CleanupHandles), where JS cannot run and
// node-addon-api would turn a failed call into a fatal error; the call is
// then dropped (nobody is left to tell).
void CallBack(Watcher* w, size_t argc, const napi_value* argv) {
  napi_env env = w->env;
  napi_value global, ret;
  if (napi_get_global(env, &global) != napi_ok) return;
  napi_make_callback(env, w->context, global, w->callback.Value(), argc, argv, &ret);
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value err;
    if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
  }
}

// Polls fd (owned from now on: closed with the watcher) from this thread's
// loop. Returns the External, or throws (and closes fd).
Napi::Value StartWatcher(Napi::Env env, int fd, OnReadableFn onReadable, const Napi::Value& callback, const char* resource, bool ref) {
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  Watcher* w = new Watcher();
  w->fd = fd;
  w->env = env;
  w->onReadable = onReadable;
  if (callback.IsFunction()) {
    w->callback = Napi::Persistent(callback.As<Napi::Function>());
    napi_value resource_name;
    if (napi_create_string_utf8(env, resource, NAPI_AUTO_LENGTH, &resource_name) == napi_ok) {
      napi_async_init(env, nullptr, resource_name, &w->context);
    }
  }
  w->poll.data = w;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r != 0) {
    close(fd);
    delete w;
    return ThrowErrno(env, "uv_poll_init", -r);
  }
  uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, OnPoll);
  if (!ref) uv_unref(reinterpret_cast<uv_handle_t*>(&w->poll));
  napi_add_env_cleanup_hook(env, CleanupHook, w);
  return Napi::External<Watcher>::New(env, w);
}

void DrainWakeIds(Watcher* w) {
  // Drain every datagram now (level-triggered poll): the ids go to JS in one call.
  std::vector<int32_t> ids;
  for (;;) {
    int32_t id = 0;
    ssize_t n = recv(w->fd, &id, sizeof id, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // EAGAIN: drained
    }
    if (n == static_cast<ssize_t>(sizeof id)) ids.push_back(id);
  }
  if (ids.empty() || w->callback.IsEmpty()) return;
  napi_env env = w->env;
  Napi::HandleScope scope{Napi::Env(env)};
  napi_value arr;
  bool ok = napi_create_array_with_length(env, ids.size(), &arr) == napi_ok;
  for (size_t i = 0; ok && i < ids.size(); i++) {
    napi_value v;
    ok = napi_create_int32(env, ids[i], &v) == napi_ok && napi_set_element(env, arr, static_cast<uint32_t>(i), v) == napi_ok;
  }
  if (ok) CallBack(w, 1, &arr);
}

void CallReadable(Watcher* w) {
  if (w->callback.IsEmpty()) return;
  Napi::HandleScope scope{Napi::Env(w->env)};
  CallBack(w, 0, nullptr);
}

// Any data is drained and ignored; EOF or an error means the peer is gone.
void KillOnEof(Watcher* w) {
  char buf[256];
  for (;;) {
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    kill(getpid(), SIGKILL);
    return;
  }
}

Watcher* Unwrap(const Napi::Value& v) {
  if (!v.IsExternal()) return nullptr;
  return v.As<Napi::External<Watcher>>().Data();
}

// wakeSocketOpen(name, callback(ids)) -> External | null (null: not on this OS).
// Binds a datagram socket to `name` and polls it from this thread's loop;
// the poll starts unreferenced (see wakeSocketRef).
Napi::Value WakeSocketOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsFunction()) return ThrowType(env, "wakeSocketOpen(name, callback)");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int fd = platform::OpenWakeSocket(name.c_str());
  if (fd == -ENOSYS) return env.Null();
  if (fd < 0) return ThrowErrno(env, "socket", -fd, name);
  return StartWatcher(env, fd, DrainWakeIds, info[1], "multiproc:wake", false);
}

// wakeSocketRef(watcher, on): whether the poll keeps the loop alive (a
// pending wait that wants the process kept alive refs it).
Napi::Value WakeSocketRef(const Napi::CallbackInfo& info) {
  Watcher* w = Unwrap(info[0]);
  if (w == nullptr || w->closed) return info.Env().Undefined();
  uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&w->poll);
  if (BoolArg(info[1])) uv_ref(h);
  else uv_unref(h);
  return info.Env().Undefined();
}

// watcherClose(watcher): stops polling and closes the fd (a wake socket's
// name is freed with it). Used in a forked child, whose inherited watchers
// are its parent's.
Napi::Value WatcherClose(const Napi::CallbackInfo& info) {
  Watcher* w = Unwrap(info[0]);
  if (w != nullptr && !w->closed) {
    napi_remove_env_cleanup_hook(info.Env(), CleanupHook, w);
    CloseWatcher(w);
  }
  return info.Env().Undefined();
}

// watchFd(fd, callback, ref): callback() each time fd is readable (or at
// EOF); it must read until EAGAIN (fd is made non-blocking). fd is owned by
// the watcher from now on.
Napi::Value WatchFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsFunction()) return ThrowType(env, "watchFd(fd, callback, ref)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int r = SetNonBlocking(fd);
  if (r != 0) return ThrowErrno(env, "fcntl", r);
  return StartWatcher(env, fd, CallReadable, info[1], "multiproc:fd", BoolArg(info[2]));
}

// dieOnEof(fd): this process SIGKILLs itself when fd reaches EOF (its write
// end, held by the parent only, was closed: the parent died). Unreferenced:
// it never keeps the loop alive.
Napi::Value DieOnEof(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) return ThrowType(env, "dieOnEof(fd)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int r = SetNonBlocking(fd);
  if (r != 0) return ThrowErrno(env, "fcntl", r);
  return StartWatcher(env, fd, KillOnEof, env.Undefined(), "multiproc:watchdog", false);
}

// wakeSend(name, id) -> 0 or -errno. Never blocks: a full receive buffer
// (EAGAIN) means wake-ups are already pending there; ECONNREFUSED/ENOENT
// mean nobody listens (the reader exited). Callers ignore both.
Napi::Value WakeSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsNumber()) return ThrowType(env, "wakeSend(name, id)");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int32_t id = info[1].As<Napi::Number>().Int32Value();
  return Napi::Number::New(env, platform::SendWake(name.c_str(), &id, sizeof id));
}

}  // namespace

void InitFdWatch(Napi::Env env, Napi::Object exports) {
  exports.Set("wakeSocketOpen", Napi::Function::New(env, WakeSocketOpen, "wakeSocketOpen"));
  exports.Set("wakeSocketRef", Napi::Function::New(env, WakeSocketRef, "wakeSocketRef"));
  exports.Set("watcherClose", Napi::Function::New(env, WatcherClose, "watcherClose"));
  exports.Set("watchFd", Napi::Function::New(env, WatchFd, "watchFd"));
  exports.Set("dieOnEof", Napi::Function::New(env, DieOnEof, "dieOnEof"));
  exports.Set("wakeSend", Napi::Function::New(env, WakeSend, "wakeSend"));
}

}  // namespace multiproc
