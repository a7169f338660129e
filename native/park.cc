// Parks the V8 platform's worker threads around a fork.
//
// Node starts its platform worker threads even under --single-threaded (4 by
// default, at least 1), and each idles in pthread_cond_wait on the
// platform's task queue. A child forked from such a process inherits that
// condition variable with waiters that do not exist in it. Forked while one
// of them was being woken (the parent's own GC had just posted a job), the
// child hung for ever in pthread_cond_signal the first time its GC posted one
// (ClearNonLiveReferences -> NotifyConcurrencyIncrease -> TaskQueue::Push):
// glibc waits for the woken waiter. A helper's fuzzer found 1 GC-heavy child
// in 50-80, test/fixtures/platform-posts.mjs 4-6 in 10. Each worker is given
// a task that holds its thread on a futex word of ours until unparked (see
// ParkTask), so at the fork the queue's condition variable has no waiters,
// its mutex is free and no task is in progress: every signal in the child
// returns at once, and a drain (a worker thread of the child ending) finds
// nothing to wait for.
//
// This uses Node's C++ embedder API (node.h, v8-platform.h), unlike the rest
// of the addon: it is only called where the binary was built for the running
// Node's ABI (lib/popen/park.ts compares NODE_MODULE_VERSION).
// node_version.h defines NAPI_VERSION as the runtime's; the addon keeps its own.
#pragma push_macro("NAPI_VERSION")
#undef NAPI_VERSION
#include <node.h>
#include <node_version.h>
#pragma pop_macro("NAPI_VERSION")
#include <time.h>
#include <unistd.h>

#include <memory>

#include "platform.h"
#include "util.h"

namespace multiproc {

namespace {

// Plain words (no std::atomic, no pthread objects): a fork child inherits
// them, and WaitOnAddress needs an int32_t*.
// Parked threads, by the parity of their generation: right after an unpark
// the last generation's threads are still leaving (on their way back to the
// queue, through its mutex), and must not count as parked for the next.
int32_t g_parked[2] = {0, 0};
int32_t g_posted = 0;      // park tasks posted and not yet released
int32_t g_generation = 0;  // bumped by unpark: tasks of an older generation return
pid_t g_owner = 0;         // the process whose workers were parked
bool g_forkChild = false;  // set in a fork child, whose platform has no worker threads

// Blocks in its destructor, not in Run(): Node's worker loop is
//   while (task = queue.BlockingPop()) { task->Run(); queue.NotifyOfCompletion(); }
// and `task` is destroyed at the end of each turn, after the completion was
// counted and before the next BlockingPop. Parked there, a worker holds no
// lock, waits on no condition variable, and is not counted among the tasks
// in progress: a child forked then inherits a quiet queue (blocked in Run(),
// the count stayed above zero in every child, and a worker thread of the
// child waited for it for ever when its event loop ended, in DrainTasks).
class ParkTask : public v8::Task {
 public:
  explicit ParkTask(int32_t generation) : generation_(generation) {}
  void Run() override { ran_ = true; }
  ~ParkTask() override {
    if (!ran_) return;  // dropped unrun (a queue cleared at exit): nothing to hold
    // Released before it ran (a park that timed out, then unparked): go.
    if (__atomic_load_n(&g_generation, __ATOMIC_SEQ_CST) != generation_) return;
    int32_t* count = &g_parked[generation_ & 1];
    __atomic_add_fetch(count, 1, __ATOMIC_SEQ_CST);
    platform::WakeAddress(count, -1);
    while (__atomic_load_n(&g_generation, __ATOMIC_SEQ_CST) == generation_) {
      platform::WaitOnAddress(&g_generation, generation_, -1);
    }
    __atomic_sub_fetch(count, 1, __ATOMIC_SEQ_CST);
  }

 private:
  int32_t generation_;
  bool ran_ = false;
};

node::MultiIsolatePlatform* CurrentPlatform(Napi::Env env) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr) return nullptr;
  v8::HandleScope scope(isolate);
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  if (context.IsEmpty()) return nullptr;
  node::Environment* environment = node::GetCurrentEnvironment(context);
  return environment == nullptr ? nullptr : node::GetMultiIsolatePlatform(environment);
}

double NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// parkPlatformWorkers(timeoutMs) -> true once every platform worker thread
// runs a park task (false: not within timeoutMs, or not possible here: a fork
// child, whose queue must not be touched, or no platform found).
Napi::Value Park(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsNumber(), "parkPlatformWorkers(timeoutMs)");
  if (g_forkChild) return Napi::Boolean::New(env, false);
  node::MultiIsolatePlatform* p = CurrentPlatform(env);
  if (p == nullptr) return Napi::Boolean::New(env, false);
  // Node counts its delayed-task scheduler among the worker threads
  // (WorkerThreadsTaskRunner::NumberOfWorkerThreads is threads_.size(),
  // Node 12 to 24), and that thread takes no tasks: n - 1 of them park.
  const int threads = p->NumberOfWorkerThreads();
  const int n = threads > 1 ? threads - 1 : 1;
  if (g_owner != getpid()) {
    g_owner = getpid();
    g_posted = 0;
  }
  const int32_t generation = __atomic_load_n(&g_generation, __ATOMIC_SEQ_CST);
  // Exactly one task per worker: one left in the queue would count as in
  // progress in every child for good.
  for (; g_posted < n; g_posted++) p->CallOnWorkerThread(std::make_unique<ParkTask>(generation));
  const double deadline = NowMs() + info[0].As<Napi::Number>().DoubleValue();
  int32_t* count = &g_parked[generation & 1];
  for (;;) {
    int32_t parked = __atomic_load_n(count, __ATOMIC_SEQ_CST);
    if (parked >= n) return Napi::Boolean::New(env, true);
    double left = deadline - NowMs();
    if (left <= 0) return Napi::Boolean::New(env, false);
    platform::WaitOnAddress(count, parked, left < 10 ? left : 10);
  }
}

// unparkPlatformWorkers(): lets the park tasks return (the workers go back to
// their queue); also releases the tasks of a park that timed out, whenever
// they are taken.
Napi::Value Unpark(const Napi::CallbackInfo& info) {
  if (!g_forkChild && g_owner == getpid() && g_posted > 0) {
    __atomic_add_fetch(&g_generation, 1, __ATOMIC_SEQ_CST);
    platform::WakeAddress(&g_generation, -1);
    g_posted = 0;
  }
  return info.Env().Undefined();
}

class NoopTask : public v8::Task {
 public:
  void Run() override {}
};

// postPlatformTasks(n): posts n empty tasks to the platform's worker queue,
// as V8's GC does (for tests: in a fork child they wait in the queue for
// ever, and each post signals the queue's condition variable).
Napi::Value PostTasks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsNumber(), "postPlatformTasks(n)");
  node::MultiIsolatePlatform* p = CurrentPlatform(env);
  if (p == nullptr) return Napi::Boolean::New(env, false);
  for (int i = info[0].As<Napi::Number>().Int32Value(); i > 0; i--) p->CallOnWorkerThread(std::make_unique<NoopTask>());
  return Napi::Boolean::New(env, true);
}

// parkedPlatformWorkers() -> [parked now, worker threads]
Napi::Value Parked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  node::MultiIsolatePlatform* p = g_forkChild ? nullptr : CurrentPlatform(env);
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, __atomic_load_n(&g_parked[0], __ATOMIC_SEQ_CST) + __atomic_load_n(&g_parked[1], __ATOMIC_SEQ_CST)));
  a.Set(1u, Napi::Number::New(env, p == nullptr ? 0 : p->NumberOfWorkerThreads()));
  return a;
}

}  // namespace

void MarkForkChild() { g_forkChild = true; }

void InitPark(Napi::Env env, Napi::Object exports) {
  exports.Set("parkPlatformWorkers", Napi::Function::New(env, Park, "parkPlatformWorkers"));
  exports.Set("unparkPlatformWorkers", Napi::Function::New(env, Unpark, "unparkPlatformWorkers"));
  exports.Set("postPlatformTasks", Napi::Function::New(env, PostTasks, "postPlatformTasks"));
  exports.Set("parkedPlatformWorkers", Napi::Function::New(env, Parked, "parkedPlatformWorkers"));
  exports.Set("nodeModuleVersion", Napi::Number::New(env, NODE_MODULE_VERSION));
}

}  // namespace multiproc
