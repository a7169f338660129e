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

/**
 * The AbortErrors a SIGINT/SIGTERM made a busy pool's pending calls reject
 * with, and the signal (pool.ts #onSignal). Such an error left unhandled, in
 * a script or in a child's target, ends the process as the signal would
 * have (before: a stack into the pool's code and exit code 1, or a child's
 * terminate() that read as a failure with code 1 instead of -15).
 */
const signalAborts = new WeakMap<object, NodeJS.Signals>();

export function markSignalAbort(err: Error, sig: NodeJS.Signals): void {
  signalAborts.set(err, sig);
}

export function signalOfAbort(err: unknown): NodeJS.Signals | undefined {
  return typeof err === 'object' && err !== null ? signalAborts.get(err) : undefined;
}

/**
 * Dies of `sig` as Node does with no listener for it (the pool's own are
 * removed by then), so that no exit hook runs: exiting normally instead
 * joined every non-daemon child first, for ever if one waited on this
 * process. With a listener of the program's own, the signal is left to it.
 */
export function reraise(sig: NodeJS.Signals): void {
  // A pool's handler is the library's, not the program's. One of another
  // pool of this process has the signal to handle still (the last pool
  // re-raises: an idle pool made first killed the process before a busy
  // one's calls could reject, helper-63). One inherited through fork() does
  // nothing here (helper-62: the signal was swallowed): removed, so that
  // the signal kills.
  const me = process.pid;
  const listeners = process.listeners(sig);
  for (const l of listeners) {
    const owner = libraryHandlers.get(l);
    if (owner === undefined || owner === me) return;
  }
  for (const l of listeners) process.removeListener(sig, l as (...args: unknown[]) => void);
  process.kill(process.pid, sig);
}

/** Signal listeners of the library's own (a Pool's SIGINT/SIGTERM handler), with the pid that installed each: not the program's own handling. */
export const libraryHandlers = new WeakMap<(...args: never[]) => unknown, number>();
