// Entry point: registers the flat functions of each native file.
#include <napi.h>
#include "util.h"

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  multiproc::InitShm(env, exports);
  multiproc::InitFutex(env, exports);
  multiproc::InitProcess(env, exports);
  multiproc::InitFdWatch(env, exports);
  return exports;
}

NODE_API_MODULE(multiproc, InitAll)
