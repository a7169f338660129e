/**
 * One 'abort' listener per AbortSignal, however many calls watch it. A
 * signal shared by many calls (a map's worth of apply() calls, the puts of
 * a producer) is the normal case, and Node warns past 10 listeners on one
 * signal (MaxListenersExceededWarning: "Possible EventTarget memory leak").
 */
const watchers = new WeakMap<AbortSignal, Set<() => void>>();

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
  let set = watchers.get(signal);
  if (set === undefined) {
    const s = new Set<() => void>();
    watchers.set(signal, s);
    signal.addEventListener('abort', () => {
      watchers.delete(signal);
      for (const f of s) f();
      s.clear();
    }, { once: true });
    set = s;
  }
  const mine = set;
  // A fresh function per watch: the same cb may watch twice and stop once.
  const entry = (): void => cb();
  mine.add(entry);
  return () => {
    mine.delete(entry);
  };
}
