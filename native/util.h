// Argument checks and errno -> JS error helpers shared by every native file.
// Validation with friendly messages happens in TypeScript; these macros only
// guard against crashes when the binding is called directly with bad types.
#ifndef MULTIPROC_NATIVE_UTIL_H_
#define MULTIPROC_NATIVE_UTIL_H_

#include <napi.h>
#include <cerrno>
#include <cstring>
#include <string>

namespace multiproc {

// Throws an Error whose .code is the errno name (ENOENT, EEXIST, ...) and
// whose .syscall names the failing call, so TS can map it to a typed error.
inline Napi::Value ThrowErrno(Napi::Env env, const char* syscall, int err, const std::string& path = "") {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + " failed: " + strerror(err) +
                                            (path.empty() ? "" : " (" + path + ")"));
  const char* code = "EUNKNOWN";
  switch (err) {
#define MP_ERRNO_CASE(x) case x: code = #x; break;
    MP_ERRNO_CASE(ENOENT) MP_ERRNO_CASE(EEXIST) MP_ERRNO_CASE(EACCES) MP_ERRNO_CASE(EINVAL)
    MP_ERRNO_CASE(ENOMEM) MP_ERRNO_CASE(ENOSPC) MP_ERRNO_CASE(ENAMETOOLONG) MP_ERRNO_CASE(EMFILE)
    MP_ERRNO_CASE(ENFILE) MP_ERRNO_CASE(EPERM) MP_ERRNO_CASE(EAGAIN) MP_ERRNO_CASE(EINTR)
    MP_ERRNO_CASE(ESRCH) MP_ERRNO_CASE(ECHILD) MP_ERRNO_CASE(EFAULT) MP_ERRNO_CASE(EBADF)
    MP_ERRNO_CASE(EFBIG) MP_ERRNO_CASE(ENOSYS) MP_ERRNO_CASE(EPIPE)
#undef MP_ERRNO_CASE
    default: break;
  }
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) e.Set("path", Napi::String::New(env, path));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

// A boolean argument read without napi_coerce_to_bool (Value::ToBoolean): that
// call must be able to run JS, so in a worker thread being terminated it
// fails, and node-addon-api's throw of that failure aborts the process
// (seen: wakeSocketRef from a timer while worker.terminate() ran). Callers
// pass booleans; anything else reads as false.
inline bool BoolArg(const Napi::Value& v) {
  return v.IsBoolean() && v.As<Napi::Boolean>().Value();
}

inline Napi::Value ThrowType(Napi::Env env, const char* msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

#define MP_REQUIRE(cond, msg)                 \
  do {                                        \
    if (!(cond)) return ThrowType(env, msg);  \
  } while (0)

// Resolves (arraybuffer, byteOffset) to an aligned int32 address inside it.
inline int32_t* WordAt(Napi::Env env, const Napi::Value& buf, const Napi::Value& off) {
  if (!buf.IsArrayBuffer() || !off.IsNumber()) {
    ThrowType(env, "Expected (ArrayBuffer, byteOffset)");
    return nullptr;
  }
  Napi::ArrayBuffer ab = buf.As<Napi::ArrayBuffer>();
  int64_t o = off.As<Napi::Number>().Int64Value();
  if (o < 0 || (o & 3) != 0 || static_cast<size_t>(o) + 4 > ab.ByteLength()) {
    ThrowType(env, "byteOffset must be 4-aligned and inside the buffer");
    return nullptr;
  }
  return reinterpret_cast<int32_t*>(static_cast<char*>(ab.Data()) + o);
}

// Exported by each file, called from addon.cc.
void InitShm(Napi::Env env, Napi::Object exports);
void InitFutex(Napi::Env env, Napi::Object exports);
void InitProcess(Napi::Env env, Napi::Object exports);
void InitFdWatch(Napi::Env env, Napi::Object exports);
void InitPark(Napi::Env env, Napi::Object exports);
// In a fork child: its V8 platform has no worker threads, so park.cc must not touch its task queue.
void MarkForkChild();
// In a fork child, right after MarkForkChild: V8's worker tasks go to a thread of the addon's (park.cc). False where that cannot be done.
bool RedirectWorkerTasks(Napi::Env env);
// Around a fork of a fork child: no redirected task runs while it forks (waits up to timeoutMs for one in progress).
void HoldWorkerTasks(double timeoutMs);
void ReleaseWorkerTasks();

}  // namespace multiproc

#endif  // MULTIPROC_NATIVE_UTIL_H_
