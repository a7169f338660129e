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
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>

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

// ---------------------------------------------------------------------------
// A fork child's worker tasks.
//
// fork() copies only the calling thread: a child of the zygote has Node's
// platform, its task queue and its count of tasks in progress, but none of
// the threads that take tasks from it. V8 still posts to it (even single-
// threaded: a full GC's ClearNonLiveReferences posts a job's worker task,
// which its main thread then does itself), and each post stays counted for
// good. Node waits for that count to reach zero when a worker_threads Worker's
// event loop ends (NodePlatform::DrainTasks -> BlockingDrain), so after the
// child's first full GC every Worker that ended on its own hung for ever (a
// gdb backtrace: Worker::Run -> SpinEventLoopInternal -> DrainTasks ->
// uv_cond_wait). Node has no API to give its platform new threads; so the
// child's NodePlatform object gets a copy of its vtable in which the two
// entry points for worker tasks, CallOnWorkerThread and
// CallDelayedOnWorkerThread (CallBlockingTask/LowPriorityTask and the
// worker tasks of V8's jobs go through the first), hand tasks to a thread of
// ours. Node's queue is then never posted to again: it stays empty (the
// zygote forks with its workers parked, see ParkTask), and a drain returns.
// Only where the slots can be found and are where V8 posts: the headers'
// CallOnWorkerThread is a virtual taking just the task, and the V8 is one
// this was tested on (see kRedirectSupported), and the running Node is the
// one built for.

struct TaskPool {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<v8::Task>> ready;
  std::multimap<double, std::unique_ptr<v8::Task>> delayed;  // by due time (NowMs)
  bool running = false;
  // Held around a fork of this child (HoldWorkerTasks): no task starts, and
  // the fork waits for the one in progress, as ParkTask does for Node's.
  bool held = false;
  int active = 0;
  pid_t owner = 0;  // the process it serves
};
// Heap-allocated and replaced, never reused, in each new fork child: one
// forked while our thread held the mutex would inherit it locked. Swapped in
// by compare-and-swap: the main thread and a worker_threads thread of the
// same child may post their first tasks at once.
TaskPool* g_pool = nullptr;
bool g_redirected = false;

void TaskThread(TaskPool* pool) {
  for (;;) {
    std::unique_ptr<v8::Task> task;
    {
      std::unique_lock<std::mutex> lock(pool->mu);
      for (;;) {
        const double now = NowMs();
        while (!pool->delayed.empty() && pool->delayed.begin()->first <= now) {
          pool->ready.push_back(std::move(pool->delayed.begin()->second));
          pool->delayed.erase(pool->delayed.begin());
        }
        if (!pool->ready.empty() && !pool->held) break;
        if (pool->delayed.empty() || pool->held) {
          pool->cv.wait(lock);
        } else {
          pool->cv.wait_for(lock, std::chrono::duration<double, std::milli>(pool->delayed.begin()->first - now));
        }
      }
      task = std::move(pool->ready.front());
      pool->ready.pop_front();
      pool->active++;
    }
    task->Run();
    task.reset();
    {
      std::lock_guard<std::mutex> lock(pool->mu);
      pool->active--;
    }
    pool->cv.notify_all();
  }
}

void* TaskThreadMain(void* pool) {
  TaskThread(static_cast<TaskPool*>(pool));
  return nullptr;
}

TaskPool* PoolHere() {
  const pid_t me = getpid();
  TaskPool* seen = __atomic_load_n(&g_pool, __ATOMIC_ACQUIRE);
  if (seen != nullptr && seen->owner == me) return seen;
  TaskPool* fresh = new TaskPool();  // an inherited one is left as it is (see g_pool)
  fresh->owner = me;
  if (__atomic_compare_exchange_n(&g_pool, &seen, fresh, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return fresh;
  delete fresh;  // another thread of this process made one first: `seen` is it now
  return seen;
}

void Enqueue(std::unique_ptr<v8::Task> task, double delayMs) {
  TaskPool* pool = PoolHere();
  {
    std::lock_guard<std::mutex> lock(pool->mu);
    if (delayMs > 0) {
      pool->delayed.emplace(NowMs() + delayMs, std::move(task));
    } else {
      pool->ready.push_back(std::move(task));
    }
    if (!pool->running) {
      // Started on first use: a child that never posts pays for no thread.
      // (No thread to be had, EAGAIN: the task waits, as it did in Node's
      // queue, rather than an exception through V8's frames; the next post
      // tries again.)
      pthread_t thread;
      if (pthread_create(&thread, nullptr, TaskThreadMain, pool) == 0) {
        pthread_detach(thread);
        pool->running = true;
      }
    }
  }
  pool->cv.notify_all();
}

// The vtable entries. A member function called through the vtable receives
// `this` first; a by-value std::unique_ptr is passed as a pointer to the
// caller's temporary, which the caller destroys (Itanium C++ ABI), as it
// does for this free function's by-value parameter.
void CallOnWorker(v8::Platform*, std::unique_ptr<v8::Task> task) { Enqueue(std::move(task), 0); }
void CallDelayedOnWorker(v8::Platform*, std::unique_ptr<v8::Task> task, double delaySeconds) {
  Enqueue(std::move(task), delaySeconds * 1e3);
}

// The vtable slot a pointer to a virtual member function names (Itanium C++
// ABI; ARM's variant keeps the virtual bit in adj), or -1 if not virtual.
template <typename M>
long VirtualSlot(M member) {
  struct Rep {
    uintptr_t ptr;
    ptrdiff_t adj;
  } rep;
  static_assert(sizeof(M) == sizeof(Rep), "unexpected member function pointer layout");
  memcpy(&rep, &member, sizeof rep);
#if defined(__arm__) || defined(__aarch64__)
  if ((rep.adj & 1) == 0 || (rep.adj >> 1) != 0) return -1;
  return static_cast<long>(rep.ptr / sizeof(void*));
#else
  if ((rep.ptr & 1) == 0 || rep.adj != 0) return -1;
  return static_cast<long>((rep.ptr - 1) / sizeof(void*));
#endif
}

// V8 11.4 added PostTaskOnWorkerThreadImpl, and by 12.2 CallOnWorkerThread
// is a non-virtual wrapper of it (Node 22 has V8 12.4): there the two slots
// below are not where V8's posts go. Only the V8 this was tested with (Node
// 20, V8 11.3) is redirected; elsewhere the fork child's limit stands.
constexpr bool kRedirectSupported = V8_MAJOR_VERSION * 100 + V8_MINOR_VERSION < 1104;

using PlainCall = void (v8::Platform::*)(std::unique_ptr<v8::Task>);
using PlainDelayed = void (v8::Platform::*)(std::unique_ptr<v8::Task>, double);
template <typename P, typename = void>
struct HasPlainCalls : std::false_type {};
template <typename P>
struct HasPlainCalls<P, std::void_t<decltype(static_cast<PlainCall>(&P::CallOnWorkerThread)),
                                    decltype(static_cast<PlainDelayed>(&P::CallDelayedOnWorkerThread))>> : std::true_type {};

template <typename P>
bool Redirect(P* platform) {
  if constexpr (kRedirectSupported && HasPlainCalls<P>::value) {
    const long call = VirtualSlot(static_cast<PlainCall>(&P::CallOnWorkerThread));
    const long delayed = VirtualSlot(static_cast<PlainDelayed>(&P::CallDelayedOnWorkerThread));
    if (call < 0 || delayed < 0) return false;
    // Entries to copy: every virtual of MultiIsolatePlatform comes after
    // v8::Platform's; the last one named in node.h, plus a margin for any
    // NodePlatform adds (it adds none in Node 12-22). Two words before the
    // address point: offset-to-top and the type info.
    long last = call > delayed ? call : delayed;
    const long finished = VirtualSlot(&node::MultiIsolatePlatform::AddIsolateFinishedCallback);
    const long unreg = VirtualSlot(&node::MultiIsolatePlatform::UnregisterIsolate);
    if (finished > last) last = finished;
    if (unreg > last) last = unreg;
    const long entries = last + 1 + 16;
    void*** object = reinterpret_cast<void***>(static_cast<v8::Platform*>(platform));
    void** original = *object;
    void** copy = new void*[entries + 2];  // kept for the life of the process
    memcpy(copy, original - 2, sizeof(void*) * (entries + 2));
    copy[2 + call] = reinterpret_cast<void*>(&CallOnWorker);
    copy[2 + delayed] = reinterpret_cast<void*>(&CallDelayedOnWorker);
    *object = copy + 2;
    return true;
  } else {
    return false;
  }
}

}  // namespace

void MarkForkChild() { g_forkChild = true; }

static TaskPool* PoolIfMine() {
  TaskPool* pool = __atomic_load_n(&g_pool, __ATOMIC_ACQUIRE);
  return g_redirected && pool != nullptr && pool->owner == getpid() ? pool : nullptr;
}

void HoldWorkerTasks(double timeoutMs) {
  TaskPool* pool = PoolIfMine();
  if (pool == nullptr) return;
  std::unique_lock<std::mutex> lock(pool->mu);
  pool->held = true;
  pool->cv.wait_for(lock, std::chrono::duration<double, std::milli>(timeoutMs), [pool] { return pool->active == 0; });
}

void ReleaseWorkerTasks() {
  // In the child the pool is a fresh one on first use (PoolHere): this is the parent's.
  TaskPool* pool = PoolIfMine();
  if (pool == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(pool->mu);
    pool->held = false;
  }
  pool->cv.notify_all();
}

bool RedirectWorkerTasks(Napi::Env env) {
  if (g_redirected) return true;  // a child of a child: inherited (its pool is made afresh on first use)
  const napi_node_version* running = nullptr;
  if (napi_get_node_version(env, &running) != napi_ok || running == nullptr || running->major != NODE_MAJOR_VERSION) return false;
  node::MultiIsolatePlatform* p = CurrentPlatform(env);
  if (p == nullptr) return false;
  g_redirected = Redirect(p);
  return g_redirected;
}

void InitPark(Napi::Env env, Napi::Object exports) {
  exports.Set("parkPlatformWorkers", Napi::Function::New(env, Park, "parkPlatformWorkers"));
  exports.Set("unparkPlatformWorkers", Napi::Function::New(env, Unpark, "unparkPlatformWorkers"));
  exports.Set("postPlatformTasks", Napi::Function::New(env, PostTasks, "postPlatformTasks"));
  exports.Set("parkedPlatformWorkers", Napi::Function::New(env, Parked, "parkedPlatformWorkers"));
  exports.Set("nodeModuleVersion", Napi::Number::New(env, NODE_MODULE_VERSION));
  exports.Set("workerTasksRedirected", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), g_redirected);
  }, "workerTasksRedirected"));
  // Whether a fork child of this build, under this Node, gets its worker tasks redirected (see RedirectWorkerTasks).
  const napi_node_version* running = nullptr;
  const bool sameMajor = napi_get_node_version(env, &running) == napi_ok && running != nullptr && running->major == NODE_MAJOR_VERSION;
  exports.Set("workerTaskRedirectSupported", Napi::Boolean::New(env, kRedirectSupported && HasPlainCalls<v8::Platform>::value && sameMajor));
}

}  // namespace multiproc
