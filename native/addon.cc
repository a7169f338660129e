// Entry point: registers the flat functions of each native file.
#include <dlfcn.h>
#include <napi.h>

#include <mutex>

#include "util.h"

// Keeps this library mapped until the process ends. Node unloads an addon
// when the last environment that loaded it goes away, e.g. a worker thread
// that was the only one to import multiproc. Our waiter threads and the
// close callbacks of our libuv handles (which run after the env's cleanup,
// while Node tears the worker's loop down) would then jump into unmapped
// code: a crash we measured on every such worker exit.
static void PinLibrary() {
  static std::once_flag once;
  std::call_once(once, [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&PinLibrary), &info) != 0 && info.dli_fname != nullptr) {
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    }
  });
}

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  PinLibrary();
  multiproc::InitShm(env, exports);
  multiproc::InitFutex(env, exports);
  multiproc::InitProcess(env, exports);
  multiproc::InitFdWatch(env, exports);
  multiproc::InitPark(env, exports);
  return exports;
}

NODE_API_MODULE(multiproc, InitAll)
