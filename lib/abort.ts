/**
 * One 'abort' listener per AbortSignal, however many calls watch it. A
 * signal shared by many calls (a map's worth of apply() calls, the puts of
 * a producer) is the normal case, and Node warns past 10 listeners on one
 * signal (MaxListenersExceededWarning: "Possible EventTarget memory leak").
 */
const watchers = new WeakMap<AbortSignal, { set: Set<() => void>; listener: () => void }>();

export const noop = (): void => {};

/**
 * Runs `cb` once when `signal` aborts (in watch order, as listeners would).
 * Returns the function that stops watching. A signal that is aborted
 * already runs `cb` on a microtask (callers check `aborted` first).
 */
export function onAbort(signal: AbortSignal, cb: () => void): () => void {
  if (signal.aborted) {
    queueMicrotask(cb);
    return noop;
  }
  let w = watchers.get(signal);
  if (w === undefined) {
    const set = new Set<() => void>();
    const listener = (): void => {
      watchers.delete(signal);
      for (const f of set) {
        try {
          f();
        } catch (e) {
          queueMicrotask(() => {
            throw e; // the others still run; this one is reported as uncaught
          });
        }
      }
      set.clear();
    };
    w = { set, listener };
    watchers.set(signal, w);
    signal.addEventListener('abort', listener, { once: true });
  }
  const mine = w;
  // A fresh function per watch: the same cb may watch twice and stop once.
  const entry = (): void => cb();
  mine.set.add(entry);
  return () => {
    if (!mine.set.delete(entry) || mine.set.size > 0) return;
    // The last watch ended: a signal with a listener is kept alive by Node
    // (AbortSignal.any(), AbortSignal.timeout()), so the listener goes too.
    signal.removeEventListener('abort', mine.listener);
    if (watchers.get(signal) === mine) watchers.delete(signal);
  };
}
