/**
 * Waiting for a 32-bit word in shared memory to change, from any process.
 *
 * - `waitSync` blocks the calling thread in the kernel (futex / ulock).
 * - `waitAsync` never blocks the event loop and never uses libuv's thread
 *   pool: the addon parks the wait on one of its own waiter threads.
 *   Waiters in this process on the same (word, expected value) share one
 *   native wait, so 500 pending `acquire()`s on one lock cost one thread;
 *   waits on 500 different words cost 500 threads, each asleep in the
 *   kernel (the thread re-arms its wait itself: an idle wait costs no JS).
 * - `wake` wakes waiters in every process that maps the word.
 *
 * - `pollAsync` checks a condition from the event loop (once per turn, or
 *   for a few µs per turn if asked) for a short window, without sleeping:
 *   what a waiter uses when the change it waits for is probably a few µs
 *   away (see below).
 *
 * Both waits may return early (spurious wake-ups): callers always re-check
 * their condition in a loop, as with any futex.
 */
import { isMainThread } from 'node:worker_threads';
import { onAbort } from './abort';
import { native, WaitResult } from './native';

export { WaitResult };

/** A pending async wait (also used by wake-socket.ts). */
export interface Waiter {
  resolve(r: WaitResult): void;
  reject(e: unknown): void;
  timer?: NodeJS.Timeout;
  /** Stops watching the call's AbortSignal. */
  offAbort?: () => void;
}

interface NativeWait {
  id: number;
  buffer: ArrayBuffer;
  byteOffset: number;
  key: string;
  waiters: Set<Waiter>;
}

let nextId = 1;
/**
 * Whether the addon can cancel a native wait. Then a native wait lasts until
 * the word changes, it is woken or cancelled: its thread re-arms it by
 * itself. An addon built before futexWaitCancel existed can only be woken
 * (a wake its thread may miss just before it sleeps), so its waits are cut
 * at kNativeSliceMs and submitted again (a spurious wake for the waiters).
 */
const canCancel = typeof native.futexWaitCancel === 'function';
const kNativeSliceMs = 1000;
const byId = new Map<number, NativeWait>();
// Per buffer, per "offset:expected": the native wait now in flight.
let byWord = new WeakMap<ArrayBuffer, Map<string, NativeWait>>();

/**
 * Native jobs submitted and not yet reported back, by id, and their count
 * per buffer: a job that cancelIdle() gave up on may not have reached its
 * futex call yet, and must not find the mapping gone (see nativeWaitsOn).
 */
let nativeJobs = new Map<number, ArrayBuffer>();
let jobsOn = new WeakMap<ArrayBuffer, number>();

native.setWaitCallback((ids, results) => {
  for (let i = 0; i < ids.length; i++) {
    const buffer = nativeJobs.get(ids[i]);
    if (buffer !== undefined) {
      nativeJobs.delete(ids[i]);
      const n = jobsOn.get(buffer)! - 1;
      if (n > 0) jobsOn.set(buffer, n);
      else jobsOn.delete(buffer);
    }
    const w = byId.get(ids[i]);
    if (w === undefined) continue;
    byId.delete(w.id);
    const words = byWord.get(w.buffer);
    if (words?.get(w.key) === w) words.delete(w.key);
    if (w.waiters.size === 0 && idle.delete(w) && results[i] === WaitResult.Woken && w.buffer.byteLength !== 0) {
      // Its last waiter left during the loop turn it was kept for (leave()),
      // and a wake meant for some waiter of the word, perhaps in another
      // process, came to this thread: pass it on (a spurious wake for the rest).
      native.futexWake(w.buffer, w.byteOffset, -1);
    }
    for (const waiter of w.waiters) settle(waiter, results[i] === WaitResult.TimedOut ? WaitResult.Woken : results[i]);
    w.waiters.clear();
  }
});

/** Forgets a waiter without settling it: its timer and abort listener go (a fork child's copy of the parent's). */
export function dropWaiter(waiter: Waiter): void {
  if (waiter.timer !== undefined) clearTimeout(waiter.timer);
  waiter.offAbort?.();
}

function settle(waiter: Waiter, r: WaitResult): void {
  if (waiter.timer !== undefined) clearTimeout(waiter.timer);
  waiter.offAbort?.();
  waiter.resolve(r);
}

function leave(w: NativeWait, waiter: Waiter): void {
  w.waiters.delete(waiter);
  if (w.waiters.size === 0 && byId.has(w.id) && !idle.has(w)) {
    // Nobody in this process wants this wait any more. Usually someone does
    // again at once: a waiter whose slice ran out (a Channel checking that
    // its peer lives) waits anew on the same word and value. Keep the native
    // wait for one loop turn so that it is reused instead of cancelled and
    // re-submitted (three thread wake-ups per slice per idle reader).
    idle.add(w);
    if (idle.size === 1) setImmediate(cancelIdle);
  }
}

/** Native waits that lost their last waiter during the last loop turn. */
const idle = new Set<NativeWait>();

function cancelIdle(): void {
  for (const w of idle) {
    if (w.waiters.size !== 0 || !byId.has(w.id)) continue;
    byId.delete(w.id);
    byWord.get(w.buffer)?.delete(w.key);
    cancelNative(w);
  }
  idle.clear();
}

/** Frees the native thread of a wait nobody here wants any more (other waiters of the word, in other processes too, see a spurious wake). */
function cancelNative(w: NativeWait): void {
  if (canCancel) native.futexWaitCancel(w.id);
  // A detached buffer: its segment was closed, and closing woke the word's waiters.
  else if (w.buffer.byteLength !== 0) native.futexWake(w.buffer, w.byteOffset, -1);
}

/**
 * This process is closing the segment of `buffer`: its pending async waits
 * on the buffer end now, as Woken (their callers then find the object
 * closed). A wake alone could be missed by a waiter thread on its way to
 * sleep, and that thread re-arms its wait: the caller would wait for good.
 */
export function endWaitsOn(buffer: ArrayBuffer): void {
  const words = byWord.get(buffer);
  if (words === undefined) return;
  byWord.delete(buffer);
  for (const w of words.values()) {
    byId.delete(w.id);
    idle.delete(w);
    cancelNative(w);
    for (const waiter of w.waiters) settle(waiter, WaitResult.Woken);
    w.waiters.clear();
  }
}

let generation = 0;

/**
 * Changes in a child made by fork() (forgetInheritedWaits): objects that
 * keep a process-local line of pending calls (a Channel's gets and puts, a
 * Lock's async acquirers) drop it when they see a new value, since those
 * calls were the parent's and will never settle here.
 */
export function forkGeneration(): number {
  return generation;
}

/**
 * Awaited by a call of the library (an acquire, a Barrier wait, a queue
 * get) that finds, on resuming, that it began before a fork(): the parent
 * made it, and this is the child's copy, resumed because its continuation
 * was already queued when fork() copied the process (a wait that had just
 * ended, a lock that was free). It never settles, and so never touches the
 * shared state on the parent's behalf (a Semaphore's permit, a Barrier's
 * count: helper-72's trial) nor runs the finally blocks that would.
 */
export const kInheritedCall: Promise<never> = new Promise<never>(() => {});

/**
 * Whether this process may fork() itself (the 'fork' start method: `node
 * --single-threaded`, main thread only). A forkserver zygote and its
 * children run that way for the zygote's own forks, not for the user's:
 * there it turns on only once 'fork' is named (checkStartMethod), so the
 * pool workers' and children's puts and gets pay nothing for it.
 */
/** Whether this process was started with `node --single-threaded` (in execArgv, or NODE_OPTIONS). */
export const kStartedSingleThreaded = process.execArgv.includes('--single-threaded') || /(^|\s)--single-threaded(\s|$)/.test(process.env.NODE_OPTIONS ?? '');
const kSingleThreaded = process.platform !== 'win32' && isMainThread && kStartedSingleThreaded;
let canFork = kSingleThreaded && process.env.MULTIPROC_FORKSERVER_BOARD === undefined;

/** See canFork: false in the forkserver zygote (and so its children), true once 'fork' is named where it can start. */
export function mayForkSelf(yes: boolean): void {
  canFork = yes && kSingleThreaded;
}

/**
 * What a call whose fast path took shared state at once (a free lock, a
 * ready item) resolves with: the value itself, except in a process that can
 * fork() itself, where a promise of it resolved a microtask later, and only
 * if no fork() came in between. A `.then` the caller attached to an already-resolved promise is
 * queued at once, and a fork() in the same tick copied it: the child ran
 * the parent's critical section with the parent's lock, or handled its
 * item (helper-72's trial). Attached to a pending one, it is queued only
 * when the check passes, in the parent.
 */
export function parentOnly<T>(v: T): T | Promise<T> {
  if (!canFork) return v;
  const gen = generation;
  return new Promise<T>((resolve) => queueMicrotask(() => {
    if (generation === gen) resolve(v);
  }));
}

/**
 * In a child made by fork(): the waits and polls pending here are the
 * parent's calls, copied in the middle of waiting (a pool's result readers,
 * a queue get the parent awaits). Dropped, never settled: settled, each ran
 * the parent's code on in the child, and its channel took the item it
 * waited for, from the parent's queue or pipe (a fork pool's worker took its
 * sibling's results, and that call never ended). The native side forgot its
 * threads' jobs already (futex.cc AfterForkChild).
 */
export function forgetInheritedWaits(): void {
  generation++;
  for (const w of byId.values()) w.waiters.forEach(dropWaiter);
  byId.clear();
  byWord = new WeakMap();
  nativeJobs = new Map();
  jobsOn = new WeakMap();
  idle.clear();
  polls = [];
  if (pollImmediate !== undefined) clearImmediate(pollImmediate);
  pollImmediate = undefined;
}

/**
 * Whether a native async wait of this process may still be on a word of
 * `buffer` (one of its threads may be about to sleep on it): then the
 * mapping must outlive the buffer's close (see Segment.close()).
 */
export function nativeWaitsOn(buffer: ArrayBuffer): boolean {
  return jobsOn.has(buffer);
}

/** Blocks until the word at byteOffset is no longer `expected`, it is woken, or timeoutMs passes. */
export function waitSync(buffer: ArrayBuffer, byteOffset: number, expected: number, timeoutMs = Infinity): WaitResult {
  return native.futexWait(buffer, byteOffset, expected, timeoutMs === Infinity ? -1 : timeoutMs);
}

/**
 * Resolves when the word may have changed (Woken / NotEqual) or when
 * timeoutMs passes (TimedOut). Rejects with signal.reason if signal fires.
 * With ref = false the wait does not keep the process alive (like
 * timer.unref()): for background readers such as a pool's result loop.
 */
export function waitAsync(
  buffer: ArrayBuffer,
  byteOffset: number,
  expected: number,
  timeoutMs = Infinity,
  signal?: AbortSignal,
  ref = true,
): Promise<WaitResult> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  const view = new Int32Array(buffer, byteOffset, 1);
  if (Atomics.load(view, 0) !== expected) return Promise.resolve(WaitResult.NotEqual);
  if (timeoutMs <= 0) return Promise.resolve(WaitResult.TimedOut);
  return new Promise<WaitResult>((resolve, reject) => {
    let words = byWord.get(buffer);
    if (words === undefined) byWord.set(buffer, (words = new Map()));
    const key = `${byteOffset}:${expected}:${ref ? 1 : 0}`;
    let w = words.get(key);
    if (w === undefined) {
      w = { id: nextId++, buffer, byteOffset, key, waiters: new Set() };
      words.set(key, w);
      byId.set(w.id, w);
      // No deadline: the waiters' own timers end their waits, and the last
      // one to leave cancels this one (cancelIdle).
      native.futexWaitAsync(buffer, byteOffset, expected, canCancel ? -1 : kNativeSliceMs, w.id, ref);
      nativeJobs.set(w.id, buffer);
      jobsOn.set(buffer, (jobsOn.get(buffer) ?? 0) + 1);
    }
    const nw = w;
    const waiter: Waiter = { resolve, reject };
    nw.waiters.add(waiter);
    if (timeoutMs !== Infinity) {
      waiter.timer = setTimeout(() => {
        waiter.offAbort?.();
        leave(nw, waiter);
        resolve(WaitResult.TimedOut);
      }, timeoutMs);
      if (!ref) waiter.timer.unref();
    }
    if (signal !== undefined) {
      waiter.offAbort = onAbort(signal, () => {
        if (waiter.timer !== undefined) clearTimeout(waiter.timer);
        leave(nw, waiter);
        reject(signal.reason);
      });
    }
  });
}

// ---- polling -----------------------------------------------------------------
//
// Waking a waitAsync takes two kernel wake-ups in a row (the peer's futex wake
// of our waiter thread, then that thread's uv_async_send to the event loop):
// 20-50 µs on a 2-vCPU VM, more than a whole round trip through a pipe takes
// when both processes are running. When the other side is expected to answer
// within tens of µs, watching the shared memory from the event loop is faster
// and costs the peer no system call (its commit sees nobody armed).
//
// Every pending poll in the process is checked by one setImmediate chain, each
// poll ending at its own deadline; the chain stops when no poll is left, so
// nothing runs while nothing is polled. Timers, I/O and other immediates run
// between turns, so the loop is never starved. A turn checks once, or keeps
// re-checking for up to the smallest `spinMs` of the pending polls (a caller
// passes one only when the answer comes from another process: anything this
// loop would run meanwhile is only delayed, by at most that long).

/** What a poll knows of the thread that must answer it, by CPU (see pollAsync). */
export interface PollPeer {
  /** Whether that thread was last seen on this thread's CPU (never throws: it runs inside pollTick). */
  here(): boolean;
  /** Tells that thread which CPU this thread runs on now. */
  tell(): void;
}

interface Poll {
  ready: () => boolean;
  peer: PollPeer | undefined;
  spin: number;
  start: number;
  until: number;
  resolve: (ok: boolean) => void;
}

/**
 * Once a poll has run this long (ms), each check first yields the CPU: the
 * answer is later than a running peer would give it, so the peer may be
 * waiting for a CPU, perhaps this one. Costs a cheap system call when no
 * other thread wants the CPU.
 */
const kYieldAfterMs = 0.01;

let polls: Poll[] = [];
let pollImmediate: NodeJS.Immediate | undefined;

function pollTick(): void {
  pollImmediate = undefined;
  let now = performance.now();
  // Spin only if every poll allows it: a poll whose answer may come from this
  // very event loop would only be delayed by it.
  let spin = Infinity;
  let here = false;
  for (const p of polls) {
    spin = Math.min(spin, p.spin);
    if (p.peer?.here() === true) here = true;
  }
  const tickEnd = now + spin;
  for (;;) {
    if (here || now - polls[0]!.start >= kYieldAfterMs) {
      native.schedYield();
      now = performance.now();
    }
    const current = polls;
    polls = [];
    let found = false;
    for (const p of current) {
      let ok: boolean;
      try {
        ok = p.ready();
      } catch {
        ok = true; // let the caller's own re-check meet the error
      }
      if (ok) {
        found = true;
        p.resolve(true);
      } else if (now >= p.until) p.resolve(false);
      else polls.push(p);
    }
    if (found || polls.length === 0) break;
    now = performance.now();
    if (now >= tickEnd) break;
  }
  if (polls.length > 0) pollImmediate = setImmediate(pollTick);
}

/**
 * Resolves true as soon as `ready()` returns true, false once windowMs has
 * passed. ready() runs once per event-loop turn (a few µs apart on an idle
 * loop), or repeatedly for up to spinMs per turn; it must be cheap. Keep
 * windows short: a pending poll keeps the process busy (and alive) until it
 * ends.
 *
 * peer, if given, says whether the thread that must make ready() true was
 * last seen on this thread's CPU: then every check first yields the CPU, as
 * spinning would only keep that thread from running. On a 2-vCPU VM the
 * scheduler now and then puts both ends of a pipe on one CPU for a while
 * (it moves a woken reader next to its writer); a round trip there cost
 * ~40 µs of spinning instead of ~5 (bench/rtt-distribution.mjs).
 */
export function pollAsync(ready: () => boolean, windowMs: number, spinMs = 0, peer?: PollPeer): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const now = performance.now();
    polls.push({ ready, peer, spin: spinMs, start: now, until: now + windowMs, resolve });
    if (pollImmediate === undefined) pollImmediate = setImmediate(pollTick);
  });
}

/**
 * Checks ready() for up to spinMs right now, on the caller's stack: true as
 * soon as it holds. What pollAsync's first turn would do, minus the trip
 * through the event loop to get there, which costs a system call
 * (epoll_wait) of a few µs on a VM: more than a pipe's whole round trip
 * when the peer is running. Only when no poll is pending (one spin checks
 * them all in pollTick; here they would wait behind this one), and not when
 * the peer is on this CPU (it could not answer meanwhile).
 */
export function spinUntil(ready: () => boolean, spinMs: number, peer?: PollPeer): boolean {
  if (polls.length > 0 || peer?.here() === true) return false;
  const until = performance.now() + spinMs;
  do {
    if (ready()) return true;
  } while (performance.now() < until);
  return false;
}

const cpuWord: Int32Array | null = ((): Int32Array | null => {
  const b = typeof native.cpuWord === 'function' ? native.cpuWord() : null;
  return b === null ? null : new Int32Array(b);
})();

/**
 * The CPU this thread runs on, or -1 where the OS does not say: a load from
 * a word the kernel updates whenever the thread moves (no system call).
 */
export function currentCpu(): number {
  return cpuWord === null ? -1 : Atomics.load(cpuWord, 0);
}

/** Wakes up to `count` waiters on the word (all when count is omitted). */
export function wake(buffer: ArrayBuffer, byteOffset: number, count = -1): number {
  return native.futexWake(buffer, byteOffset, count);
}

/** Number of native waiter threads alive in this process (for tests and stats). */
export function waiterThreads(): number {
  return native.waiterThreads();
}
