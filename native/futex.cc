// Wait/wake on a 32-bit word in (shared) memory, synchronously and
// asynchronously.
//
// Async waits never run on libuv's thread pool: a handful of blocked waits
// would starve fs and dns (NATIVE-NOTES.md measured a 1 s readFile with five).
// Each env owns a small pool of dedicated waiter threads that grows on
// demand; a finished wait is queued and the loop is woken with uv_async_send,
// so completions are delivered in batches to one JS callback. The TS side
// coalesces waiters (one native wait per word per process), so the number of
// threads tracks the number of distinct words being waited on, not the number
// of pending promises: one thread per such word, parked in the kernel.
//
// A pending wait costs its thread nothing but a wake-up every kRearmMs: the
// thread sleeps in slices and re-arms the same wait itself until the word
// changes, it is woken, its deadline passes or JS cancels it (futexWaitCancel).
// Reporting each slice back to JS made every idle wait end and start again:
// with many distinct words, a thread exit and a pthread_create per word per
// slice (2000 idle waits on 1 s slices cost a quarter of a CPU here). For the
// same reason a thread whose wait ended stays idle for kIdleLinger before it
// exits, so that waits that end and start again find their threads there.
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <vector>

#include "platform.h"
#include "util.h"

namespace multiproc {

namespace {

struct Job {
  double id;
  int32_t* addr;
  int32_t expected;
  double deadline;  // NowMs() at which the wait times out; < 0: never
  int result;
  bool ref;        // keeps the event loop alive while pending
  bool cancelled;  // JS gave up on it (futexWaitCancel): report, do not re-arm
};

double NowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// State shared with waiter threads. Heap-allocated and never freed while a
// thread may still touch it (threads hold a pointer; see Shutdown).
struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> queue;          // jobs not yet taken by a thread
  std::vector<Job> done;          // finished, not yet delivered
  std::vector<Job*> running;      // jobs being waited on right now
  int idle = 0;
  int threads = 0;
  bool stopping = false;
  uv_async_t* async = nullptr;
};

// Idle threads kept however long they have been idle.
constexpr int kMaxIdleThreads = 4;
// How long a thread beyond those stays idle before it exits.
constexpr auto kIdleLinger = std::chrono::seconds(10);
// Longest single sleep of a waiter thread. A wake that changes nothing
// (a cancel's, a local close's) can come between the thread's last look and
// its sleep and be lost: this bounds how long the thread then sleeps on.
// Otherwise only costs each pending wait one wake-up per slice.
constexpr double kRearmMs = 5000;

void* WaiterMain(void* arg) {
  Shared* s = static_cast<Shared*>(arg);
  std::unique_lock<std::mutex> lock(s->mu);
  for (;;) {
    bool expired = false;
    while (s->queue.empty() && !s->stopping && !expired) {
      s->idle++;
      expired = s->cv.wait_for(lock, kIdleLinger) == std::cv_status::timeout && s->queue.empty() &&
                s->idle > kMaxIdleThreads;  // counts this thread
      s->idle--;
    }
    if (s->stopping || expired) break;
    Job job = s->queue.front();
    s->queue.pop_front();
    s->running.push_back(&job);
    for (;;) {
      if (job.cancelled) {
        job.result = 0;
        break;
      }
      double slice = kRearmMs;
      if (job.deadline >= 0) {
        double left = job.deadline - NowMs();
        if (left <= 0) {
          job.result = 1;
          break;
        }
        if (left < slice) slice = left;
      }
      lock.unlock();
      job.result = platform::WaitOnAddress(job.addr, job.expected, slice);
      lock.lock();
      if (job.result != 1 || s->stopping) break;  // woken, changed or failed: report it
    }
    for (size_t i = 0; i < s->running.size(); i++) {
      if (s->running[i] == &job) {
        s->running.erase(s->running.begin() + i);
        break;
      }
    }
    if (s->stopping) break;
    s->done.push_back(job);
    uv_async_send(s->async);
  }
  s->threads--;
  return nullptr;
}

class WaitService;
std::vector<WaitService*>& Services() {
  static std::vector<WaitService*> services;
  return services;
}
std::mutex& servicesMu() {
  static std::mutex mu;
  return mu;
}

class WaitService {
 public:
  explicit WaitService(Napi::Env env) : env_(env), shared_(new Shared()), context_(env, "multiproc:wait") {
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    shared_->async = new uv_async_t;
    shared_->async->data = this;
    uv_async_init(loop, shared_->async, OnAsync);
    uv_unref(reinterpret_cast<uv_handle_t*>(shared_->async));
  }

  ~WaitService() {
    {
      std::lock_guard<std::mutex> lock(servicesMu());
      auto& v = Services();
      for (size_t i = 0; i < v.size(); i++)
        if (v[i] == this) { v.erase(v.begin() + i); break; }
    }
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->stopping = true;
      // Blocked threads only notice after their wait returns; wake them.
      for (Job* j : shared_->running) platform::WakeAddress(j->addr, -1);
    }
    shared_->cv.notify_all();
    uv_close(reinterpret_cast<uv_handle_t*>(shared_->async),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
    // shared_ is intentionally leaked: a thread may still be returning from a
    // wait and must find its mutex alive.
  }

  void SetCallback(Napi::Function fn) { callback_ = Napi::Persistent(fn); }

  void Submit(const Job& job, Napi::Value keepAlive) {
    keepAlive_.emplace_back(job.id, Napi::Persistent(keepAlive.As<Napi::Object>()));
    if (job.ref && refs_++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(shared_->async));
    bool spawn;
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->queue.push_back(job);
      spawn = shared_->idle < static_cast<int>(shared_->queue.size());
      if (spawn) shared_->threads++;
    }
    if (spawn) {
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstacksize(&attr, 256 * 1024);
      pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      pthread_t t;
      if (pthread_create(&t, &attr, WaiterMain, shared_) != 0) {
        std::lock_guard<std::mutex> lock(shared_->mu);
        shared_->threads--;
      }
      pthread_attr_destroy(&attr);
    }
    shared_->cv.notify_one();
  }

  // Ends a pending wait (its result is reported, and ignored): from the
  // queue, or wakes the thread sleeping on it. The wait stops keeping the
  // loop alive now, whenever its thread gets to report it.
  void Cancel(double id) {
    bool unref = false;
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      Job* job = nullptr;
      for (Job& j : shared_->queue)
        if (j.id == id) { job = &j; break; }
      if (job == nullptr) {
        for (Job* j : shared_->running)
          if (j->id == id) { job = j; break; }
        // Other waiters of the word (in other processes too) see a spurious wake.
        if (job != nullptr && !job->cancelled) platform::WakeAddress(job->addr, -1);
      }
      if (job == nullptr) {
        // Already over, not yet delivered. If a wake ended it, that wake was
        // meant for some waiter of the word (a release(), perhaps for a waiter
        // in another process) and nobody here wants it any more: pass it on,
        // or it is lost (its mapping is kept until the job is delivered).
        for (Job& j : shared_->done)
          if (j.id == id) { job = &j; break; }
        if (job != nullptr && !job->cancelled && job->result == 0) platform::WakeAddress(job->addr, -1);
      }
      if (job == nullptr || job->cancelled) return;
      job->cancelled = true;
      unref = job->ref;
      job->ref = false;
    }
    if (unref && --refs_ == 0) uv_unref(reinterpret_cast<uv_handle_t*>(shared_->async));
  }

  int Threads() {
    std::lock_guard<std::mutex> lock(shared_->mu);
    return shared_->threads;
  }

  // After fork() only the calling thread exists: forget the others.
  void AfterForkChild() {
    new (&shared_->mu) std::mutex();
    new (&shared_->cv) std::condition_variable();
    shared_->threads = 0;
    shared_->idle = 0;
    shared_->running.clear();
    // The parent's waits are not the child's (lib/wait.ts forgets them too):
    // one still queued would be the first job of the child's first thread,
    // with no deadline, and the child's own wait would queue behind it.
    shared_->queue.clear();
    shared_->done.clear();
    if (refs_ > 0) {
      refs_ = 0;
      uv_unref(reinterpret_cast<uv_handle_t*>(shared_->async));
    }
  }

 private:
  static void OnAsync(uv_async_t* handle) {
    static_cast<WaitService*>(handle->data)->Deliver();
  }

  void Deliver() {
    std::vector<Job> done;
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      done.swap(shared_->done);
    }
    if (done.empty()) return;
    Napi::HandleScope scope(env_);
    // Raw N-API with statuses checked: while a worker thread is being
    // terminated JS cannot run, and node-addon-api would make a failed call
    // fatal. Then the results are dropped (nobody is left to receive them).
    napi_env env = env_;
    napi_value ids, results;
    bool ok = napi_create_array_with_length(env, done.size(), &ids) == napi_ok &&
              napi_create_array_with_length(env, done.size(), &results) == napi_ok;
    for (size_t i = 0; i < done.size(); i++) {
      napi_value id, result;
      ok = ok && napi_create_double(env, done[i].id, &id) == napi_ok &&
           napi_create_int32(env, done[i].result, &result) == napi_ok &&
           napi_set_element(env, ids, static_cast<uint32_t>(i), id) == napi_ok &&
           napi_set_element(env, results, static_cast<uint32_t>(i), result) == napi_ok;
      for (size_t k = 0; k < keepAlive_.size(); k++) {
        if (keepAlive_[k].first == done[i].id) {
          keepAlive_.erase(keepAlive_.begin() + k);
          break;
        }
      }
    }
    int refs = 0;
    for (const Job& j : done) refs += j.ref ? 1 : 0;
    if (refs > 0 && (refs_ -= refs) == 0) uv_unref(reinterpret_cast<uv_handle_t*>(shared_->async));
    if (callback_.IsEmpty()) return;
    napi_value global, ret, argv[2] = {ids, results};
    if (!ok || napi_get_global(env, &global) != napi_ok) return;
    napi_make_callback(env, context_, global, callback_.Value(), 2, argv, &ret);
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }

  Napi::Env env_;
  Shared* shared_;
  Napi::AsyncContext context_;
  Napi::FunctionReference callback_;
  // Keeps each waited-on ArrayBuffer alive (so not unmapped) until its wait ends.
  std::vector<std::pair<double, Napi::ObjectReference>> keepAlive_;
  int refs_ = 0;  // pending waits that keep the loop alive
};

// This process's pid where JS reads it without a call (lock words hold the
// owner's pid, read on every acquire). The atfork child handler refreshes it,
// so a child made by fork() never sees its parent's pid.
int32_t g_pid = 0;

void AtForkChild() {
  g_pid = static_cast<int32_t>(getpid());
  for (WaitService* s : Services()) s->AfterForkChild();
}

// pidCell() -> ArrayBuffer of 4 bytes over g_pid (process-wide, never freed).
Napi::Value PidCell(const Napi::CallbackInfo& info) {
  if (g_pid == 0) g_pid = static_cast<int32_t>(getpid());
  return Napi::ArrayBuffer::New(info.Env(), &g_pid, sizeof g_pid, [](Napi::Env, void*) {});
}

WaitService* ServiceOf(Napi::Env env) {
  WaitService* s = env.GetInstanceData<WaitService>();
  if (s == nullptr) {
    s = new WaitService(env);
    env.SetInstanceData<WaitService>(s);
    std::lock_guard<std::mutex> lock(servicesMu());
    Services().push_back(s);
  }
  return s;
}

double TimeoutArg(const Napi::Value& v) {
  if (!v.IsNumber()) return -1;
  double t = v.As<Napi::Number>().DoubleValue();
  return t != t ? -1 : t;  // NaN: wait forever
}

// futexWait(buf, byteOffset, expected, timeoutMs) -> 0 woken, 1 timeout, 2 value differed
Napi::Value FutexWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t* addr = WordAt(env, info[0], info[1]);
  if (addr == nullptr) return env.Undefined();
  MP_REQUIRE(info[2].IsNumber(), "expected must be a number");
  int r = platform::WaitOnAddress(addr, info[2].As<Napi::Number>().Int32Value(), TimeoutArg(info[3]));
  if (r < 0) return ThrowErrno(env, "futex_wait", -r);
  return Napi::Number::New(env, r);
}

// futexWake(buf, byteOffset, count) -> number woken (count < 0: all)
Napi::Value FutexWake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t* addr = WordAt(env, info[0], info[1]);
  if (addr == nullptr) return env.Undefined();
  int count = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : -1;
  int r = platform::WakeAddress(addr, count);
  if (r < 0) return ThrowErrno(env, "futex_wake", -r);
  return Napi::Number::New(env, r);
}

// futexWaitAsync(buf, byteOffset, expected, timeoutMs, id, ref = true): the
// result comes to the callback set by setWaitCallback as (ids[], results[]).
// An unref'd wait does not keep the event loop alive (like timer.unref()).
Napi::Value FutexWaitAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t* addr = WordAt(env, info[0], info[1]);
  if (addr == nullptr) return env.Undefined();
  MP_REQUIRE(info[2].IsNumber() && info[4].IsNumber(), "futexWaitAsync(buf, off, expected, timeoutMs, id)");
  double timeout = TimeoutArg(info[3]);
  Job job{info[4].As<Napi::Number>().DoubleValue(), addr, info[2].As<Napi::Number>().Int32Value(),
          timeout < 0 ? -1 : NowMs() + timeout, 0, info.Length() < 6 || BoolArg(info[5]), false};
  ServiceOf(env)->Submit(job, info[0]);
  return env.Undefined();
}

// futexWaitCancel(id): ends the pending futexWaitAsync `id` (no-op if it has
// ended). Its result still comes to the callback, once its thread has let go
// of the word; until then the waited-on buffer is kept.
Napi::Value FutexWaitCancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsNumber(), "futexWaitCancel(id)");
  ServiceOf(env)->Cancel(info[0].As<Napi::Number>().DoubleValue());
  return env.Undefined();
}

Napi::Value SetWaitCallback(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MP_REQUIRE(info.Length() >= 1 && info[0].IsFunction(), "setWaitCallback(fn)");
  ServiceOf(env)->SetCallback(info[0].As<Napi::Function>());
  return env.Undefined();
}

// schedYield(): gives this CPU to another runnable thread, if any (a poller
// between checks, so that on oversubscribed CPUs it does not hold off the
// very process it waits for). Costs one cheap system call when nobody waits.
Napi::Value SchedYield(const Napi::CallbackInfo& info) {
  sched_yield();
  return info.Env().Undefined();
}

// cpuWord(): an ArrayBuffer over the calling thread's current-CPU word
// (Int32 at index 0, see platform.h), or null where there is none. Read it
// with Atomics.load: the kernel writes it behind the JIT's back.
Napi::Value CpuWord(const Napi::CallbackInfo& info) {
  const int32_t* w = platform::CurrentCpuWord();
  if (w == nullptr) return info.Env().Null();
  return Napi::ArrayBuffer::New(info.Env(), const_cast<int32_t*>(w), sizeof *w, [](Napi::Env, void*) {});
}

Napi::Value WaiterThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ServiceOf(info.Env())->Threads());
}

}  // namespace

void InitFutex(Napi::Env env, Napi::Object exports) {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(nullptr, nullptr, AtForkChild); });
  exports.Set("futexWait", Napi::Function::New(env, FutexWait, "futexWait"));
  exports.Set("futexWake", Napi::Function::New(env, FutexWake, "futexWake"));
  exports.Set("futexWaitAsync", Napi::Function::New(env, FutexWaitAsync, "futexWaitAsync"));
  exports.Set("futexWaitCancel", Napi::Function::New(env, FutexWaitCancel, "futexWaitCancel"));
  exports.Set("setWaitCallback", Napi::Function::New(env, SetWaitCallback, "setWaitCallback"));
  exports.Set("waiterThreads", Napi::Function::New(env, WaiterThreads, "waiterThreads"));
  exports.Set("schedYield", Napi::Function::New(env, SchedYield, "schedYield"));
  exports.Set("cpuWord", Napi::Function::New(env, CpuWord, "cpuWord"));
  exports.Set("pidCell", Napi::Function::New(env, PidCell, "pidCell"));
}

}  // namespace multiproc
