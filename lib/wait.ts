/**
 * Waiting for a 32-bit word in shared memory to change, from any process.
 *
 * - `waitSync` blocks the calling thread in the kernel (futex / ulock).
 * - `waitAsync` never blocks the event loop and never uses libuv's thread
 *   pool: the addon parks the wait on one of its own waiter threads.
 *   Waiters in this process on the same (word, expected value) share one
 *   native wait, so 500 pending `acquire()`s on one lock cost one thread.
 * - `wake` wakes waiters in every process that maps the word.
 *
 * Both waits may return early (spurious wake-ups): callers always re-check
 * their condition in a loop, as with any futex.
 */
import { native, WaitResult } from './native';

export { WaitResult };

interface Waiter {
  resolve(r: WaitResult): void;
  reject(e: unknown): void;
  timer?: NodeJS.Timeout;
  signal?: AbortSignal;
  onAbort?: () => void;
}

interface NativeWait {
  id: number;
  buffer: ArrayBuffer;
  byteOffset: number;
  key: string;
  waiters: Set<Waiter>;
}

let nextId = 1;
/** Longest a native async wait sleeps before its thread re-checks (a spurious wake for the waiters). */
const kNativeSliceMs = 1000;
const byId = new Map<number, NativeWait>();
// Per buffer, per "offset:expected": the native wait now in flight.
const byWord = new WeakMap<ArrayBuffer, Map<string, NativeWait>>();

native.setWaitCallback((ids, results) => {
  for (let i = 0; i < ids.length; i++) {
    const w = byId.get(ids[i]);
    if (w === undefined) continue;
    byId.delete(w.id);
    const words = byWord.get(w.buffer);
    if (words?.get(w.key) === w) words.delete(w.key);
    for (const waiter of w.waiters) settle(waiter, results[i] === WaitResult.TimedOut ? WaitResult.Woken : results[i]);
    w.waiters.clear();
  }
});

function settle(waiter: Waiter, r: WaitResult): void {
  if (waiter.timer !== undefined) clearTimeout(waiter.timer);
  if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener('abort', waiter.onAbort);
  waiter.resolve(r);
}

function leave(w: NativeWait, waiter: Waiter): void {
  w.waiters.delete(waiter);
  if (w.waiters.size === 0 && byId.has(w.id)) {
    // Nobody in this process wants this wait any more: free the native thread.
    // Other waiters of the word (other processes) see a spurious wake and re-wait.
    byId.delete(w.id);
    byWord.get(w.buffer)?.delete(w.key);
    // A detached buffer: its segment was closed, and closing woke the word's waiters.
    if (w.buffer.byteLength !== 0) native.futexWake(w.buffer, w.byteOffset, -1);
  }
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
      // Bounded, so that a cancel wake that comes before the thread sleeps
      // (leave() below) is never lost for good: the wait then ends by itself.
      native.futexWaitAsync(buffer, byteOffset, expected, kNativeSliceMs, w.id, ref);
    }
    const nw = w;
    const waiter: Waiter = { resolve, reject };
    nw.waiters.add(waiter);
    if (timeoutMs !== Infinity) {
      waiter.timer = setTimeout(() => {
        if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener('abort', waiter.onAbort);
        leave(nw, waiter);
        resolve(WaitResult.TimedOut);
      }, timeoutMs);
      if (!ref) waiter.timer.unref();
    }
    if (signal !== undefined) {
      waiter.signal = signal;
      waiter.onAbort = () => {
        if (waiter.timer !== undefined) clearTimeout(waiter.timer);
        leave(nw, waiter);
        reject(signal.reason);
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
    }
  });
}

/** Wakes up to `count` waiters on the word (all when count is omitted). */
export function wake(buffer: ArrayBuffer, byteOffset: number, count = -1): number {
  return native.futexWake(buffer, byteOffset, count);
}

/** Number of native waiter threads alive in this process (for tests and stats). */
export function waiterThreads(): number {
  return native.waiterThreads();
}
