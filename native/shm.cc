// POSIX shared memory segments exposed as external ArrayBuffers.
//
// The mapping is unmapped by the ArrayBuffer's finalizer (when V8 frees its
// backing store): a JS view that outlives close() would otherwise touch
// unmapped memory, and a futex wait may still sleep on it. close() detaches
// the buffer instead, which makes every view zero-length at once. unmap()
// also unmaps at once, for buffers nobody can wait on. Mapped bytes are
// reported to V8 as external memory, so that views kept only by garbage (big
// queue items received without a copy) are collected before the mappings
// exhaust /dev/shm or the process's map count.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>

#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

#include "platform.h"
#include "util.h"

namespace multiproc {

namespace {

struct Mapping {
  void* addr;  // nullptr once detach() unmapped it
  size_t len;
};

// Live mappings by address, so detach() can unmap the one behind a buffer.
// Finalizers may run off the JS thread: guard with a mutex.
std::mutex g_mutex;
std::unordered_map<void*, Mapping*> g_live;

// The mapping being wrapped by MapFd on this thread. Node may run the
// finalizer inside a napi_create_external_arraybuffer that then fails (a
// length V8 refuses): MapFd must know whether it still owns the mapping.
thread_local Mapping* t_wrapping = nullptr;
thread_local bool t_wrapping_finalized = false;

void FinalizeMapping(napi_env, void*, void* hint) {
  Mapping* m = static_cast<Mapping*>(hint);
  if (m == t_wrapping) t_wrapping_finalized = true;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (m->addr != nullptr) {
      g_live.erase(m->addr);
      munmap(m->addr, m->len);
    }
  }
  delete m;
}

Napi::Value MapFd(Napi::Env env, int fd, size_t size, const std::string& name) {
  void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (addr == MAP_FAILED) return ThrowErrno(env, "mmap", err, name);
  Mapping* m = new Mapping{addr, size};
  napi_value result;
  t_wrapping = m;
  t_wrapping_finalized = false;
  napi_status st = napi_create_external_arraybuffer(env, addr, size, FinalizeMapping, m, &result);
  t_wrapping = nullptr;
  if (st != napi_ok) {
    if (!t_wrapping_finalized) {  // else the finalizer unmapped it and freed m (a double free before)
      munmap(addr, size);
      delete m;
    }
    if (st == 22 /* napi_no_external_buffers_allowed */) {
      Napi::Error e = Napi::Error::New(
          env,
          "This Node.js build refuses externally backed ArrayBuffers (V8 sandbox, e.g. Electron), "
          "so shared memory cannot be mapped into JavaScript here. Use a plain Node.js build.");
      e.Set("code", Napi::String::New(env, "ERR_MULTIPROC_NO_EXTERNAL_BUFFERS"));
      e.ThrowAsJavaScriptException();
      return env.Undefined();
    }
    // V8 refuses the length (Node 20: above 4 GiB) and has thrown: say what to do instead.
    std::string why = "napi_create_external_arraybuffer failed";
    if (env.IsExceptionPending()) why = env.GetAndClearPendingException().Message();
    Napi::RangeError e = Napi::RangeError::New(
        env, "Cannot map " + std::to_string(size) + " bytes of shared memory '" + name +
                 "' into JavaScript: this Node.js does not allow an ArrayBuffer that large (" + why +
                 "). Use several smaller segments.");
    e.Set("code", Napi::String::New(env, "ERR_MULTIPROC_MAPPING_TOO_LARGE"));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_live[addr] = m;
  }
  int64_t total = 0;
  napi_adjust_external_memory(env, static_cast<int64_t>(size), &total);
  return Napi::Value(env, result);
}

// shmCreate(name, size): O_CREAT|O_EXCL, mode 0600, space reserved up front.
Napi::Value ShmCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 2 && info[0].IsString() && info[1].IsNumber(), "shmCreate(name, size)");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  double dsize = info[1].As<Napi::Number>().DoubleValue();
  MP_REQUIRE(dsize > 0 && dsize <= 9007199254740991.0, "size must be a positive integer");
  size_t size = static_cast<size_t>(dsize);
  int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, S_IRUSR | S_IWUSR);
  if (fd < 0) return ThrowErrno(env, "shm_open", errno, name);
  fchmod(fd, S_IRUSR | S_IWUSR);  // umask may only narrow; make 0600 explicit
  int err = 0;
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) err = errno;
  if (!err) err = platform::ReserveSegment(fd, size);
  if (err) {
    close(fd);
    shm_unlink(name.c_str());
    return ThrowErrno(env, err == ENOSPC ? "posix_fallocate" : "ftruncate", err, name);
  }
  Napi::Value buf = MapFd(env, fd, size, name);
  if (env.IsExceptionPending()) shm_unlink(name.c_str());
  return buf;
}

// shmAttach(name): maps an existing segment at its full size.
Napi::Value ShmAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsString(), "shmAttach(name)");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int fd = shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) return ThrowErrno(env, "shm_open", errno, name);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "fstat", err, name);
  }
  if (st.st_size <= 0) {
    close(fd);
    return ThrowErrno(env, "mmap", EINVAL, name);
  }
  return MapFd(env, fd, static_cast<size_t>(st.st_size), name);
}

// shmUnlink(name) -> true if removed, false if it did not exist.
Napi::Value ShmUnlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsString(), "shmUnlink(name)");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (shm_unlink(name.c_str()) == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  return ThrowErrno(env, "shm_unlink", errno, name);
}

// detach(arrayBuffer): every view over it becomes empty; unmapped at GC
// (a futex wait may still sleep on it: see unmap()).
Napi::Value Detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsArrayBuffer(), "detach(arrayBuffer)");
  bool detached = false;
  napi_is_detached_arraybuffer(env, info[0], &detached);
  if (!detached) napi_detach_arraybuffer(env, info[0]);
  return env.Undefined();
}

// unmap(arrayBuffer): detach, and unmap a mapping made here right away rather
// than at GC. Only for buffers nobody waits on (a queue's big-item segments):
// a futex wait sleeping on unmapped memory would never be woken.
Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsArrayBuffer(), "unmap(arrayBuffer)");
  bool detached = false;
  napi_is_detached_arraybuffer(env, info[0], &detached);
  if (detached) return env.Undefined();
  void* data = nullptr;
  size_t len = 0;
  napi_get_arraybuffer_info(env, info[0], &data, &len);
  napi_detach_arraybuffer(env, info[0]);
  size_t unmapped = 0;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = data != nullptr ? g_live.find(data) : g_live.end();
    if (it != g_live.end()) {
      Mapping* m = it->second;
      munmap(m->addr, m->len);
      unmapped = m->len;
      m->addr = nullptr;
      g_live.erase(it);
    }
  }
  if (unmapped > 0) {
    int64_t total = 0;
    napi_adjust_external_memory(env, -static_cast<int64_t>(unmapped), &total);
  }
  return env.Undefined();
}

// Counts shared by every thread of the process, worker_threads included:
// holders of a pipe end are processes, and only a process-wide count tells
// whether another thread still has an object for the end (connection.ts).
// Keys are the JS side's. Never freed (a thread may call during exit). The
// atfork handlers keep the mutex whole across fork(); a child starts with no
// counts, and its JS counts again what it inherited.
std::mutex g_countsMu;
std::unordered_map<std::string, int64_t>* g_counts = new std::unordered_map<std::string, int64_t>();

void CountsPrepare() { g_countsMu.lock(); }
void CountsParent() { g_countsMu.unlock(); }
void CountsChild() {
  new (&g_countsMu) std::mutex();  // the parent's thread that locked it does not exist here
  g_counts->clear();
}

// processCount(key, delta) -> the count after adding delta (0 reads it); never below 0.
Napi::Value ProcessCount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "processCount(key: string, delta: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string key = info[0].As<Napi::String>().Utf8Value();
  int64_t delta = info[1].As<Napi::Number>().Int64Value();
  int64_t v;
  {
    std::lock_guard<std::mutex> lock(g_countsMu);
    auto it = g_counts->find(key);
    v = (it == g_counts->end() ? 0 : it->second) + delta;
    if (v <= 0) {
      v = 0;
      if (it != g_counts->end()) g_counts->erase(it);
    } else if (it != g_counts->end()) {
      it->second = v;
    } else {
      g_counts->emplace(std::move(key), v);
    }
  }
  return Napi::Number::New(env, static_cast<double>(v));
}

// processIdentity(json?) -> the identity last stored (a string) or null;
// with an argument, stores it. One per process, shared by its threads: a
// child's worker threads are that child (named as it, numbering under it).
// Kept across fork(): the child stores its own as it starts.
std::string* g_identity = nullptr;

Napi::Value ProcessIdentity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::lock_guard<std::mutex> lock(g_countsMu);
  if (info.Length() >= 1 && info[0].IsString()) {
    if (g_identity == nullptr) g_identity = new std::string();
    *g_identity = info[0].As<Napi::String>().Utf8Value();
    return env.Undefined();
  }
  if (g_identity == nullptr) return env.Null();
  return Napi::String::New(env, *g_identity);
}

}  // namespace

void InitShm(Napi::Env env, Napi::Object exports) {
  exports.Set("processIdentity", Napi::Function::New(env, ProcessIdentity, "processIdentity"));
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(CountsPrepare, CountsParent, CountsChild); });
  exports.Set("processCount", Napi::Function::New(env, ProcessCount, "processCount"));
  exports.Set("shmCreate", Napi::Function::New(env, ShmCreate, "shmCreate"));
  exports.Set("shmAttach", Napi::Function::New(env, ShmAttach, "shmAttach"));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink, "shmUnlink"));
  exports.Set("detach", Napi::Function::New(env, Detach, "detach"));
  exports.Set("unmap", Napi::Function::New(env, Unmap, "unmap"));
}

}  // namespace multiproc
