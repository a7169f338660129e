/**
 * One-hop wake-ups for async waits: each process that sleeps on a pipe
 * asynchronously owns one datagram socket, bound to a name without a file
 * (Linux's abstract namespace) and polled by its own event loop. A writer
 * that finds such a reader asleep sends it a 4-byte id, and the reader's
 * epoll_wait returns. The futex path (wait.ts waitAsync) needs a waiter
 * thread that the kernel wakes and that then wakes the loop: two wake-ups in
 * a row, measured here at ~160 µs from commit to the reader's JS vs ~40 µs
 * for a thread blocked on the futex itself.
 *
 * The name is derived from the owner's pid and a random 32-bit token, both
 * published in the ring, so a writer in any process can reach it; anyone
 * else who guesses it can only cause a spurious wake-up (readers re-check).
 * Where the OS has no file-less socket names (macOS), available() is false
 * and callers keep the futex path.
 *
 * Exports: wakeTarget, waitWake, sendWake, newWakeId, resetAfterFork, wakeStats, rehearseWake.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { onAbort } from './abort';
import { native, WaitResult, type FdWatcher } from './native';
import { myPid } from './synchronize/common';
import { dropWaiter, type Waiter } from './wait';

interface SocketWaiter extends Waiter {
  /** Keeps the process alive while pending. */
  ref: boolean;
}

let socket: FdWatcher | null = null;
let ownerPid = 0;
let token = 0;
/** The OS cannot name a socket without a file (macOS): every wait takes the futex path. */
let unsupported = false;
/**
 * The process (pid) whose attempt to open its socket failed for another
 * reason (EMFILE, a sandbox): it takes the futex path; its fork children,
 * the zygote's above all, try again for themselves.
 */
let failedIn = 0;
let nextId = 1;
let refs = 0;
/** For tests and stats: datagrams taken from the socket, waits begun, waits that ran out their time. */
let received = 0;
let waits = 0;
let timeouts = 0;
const waiters = new Map<number, SocketWaiter>();

function nameOf(pid: number, tok: number): string {
  return `multiproc-wake-${pid}-${(tok >>> 0).toString(16)}`;
}

/**
 * How many datagrams a unix datagram socket queues before senders get
 * EAGAIN (Linux: net.unix.max_dgram_qlen, 10 by default). A writer that gets
 * EAGAIN has lost its datagram; the queue it found full is drained here in
 * one batch of at least this many, so such a batch wakes every waiter of
 * this thread (each re-checks its ring; a spurious wake costs one look).
 */
const kQueueLimit = ((): number => {
  try {
    const n = Number(readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8'));
    return Number.isInteger(n) && n > 0 ? n : 10;
  } catch {
    return 10;
  }
})();

function onIds(ids: number[]): void {
  received += ids.length;
  if (ids.length >= kQueueLimit) {
    for (const [id, w] of waiters) settle(id, w, WaitResult.Woken);
    return;
  }
  for (const id of ids) {
    const w = waiters.get(id);
    if (w !== undefined) settle(id, w, WaitResult.Woken);
  }
}

function settle(id: number, w: SocketWaiter, r: WaitResult | { error: unknown }): void {
  if (waiters.get(id) !== w) return;
  waiters.delete(id);
  if (w.timer !== undefined) clearTimeout(w.timer);
  w.offAbort?.();
  if (w.ref && --refs === 0 && socket !== null) native.wakeSocketRef(socket, false);
  if (r === WaitResult.TimedOut) timeouts++;
  if (typeof r === 'number') w.resolve(r);
  else w.reject(r.error);
}

/** This thread's wake address ({pid, token}), opening the socket on first use; null where unsupported. */
export function wakeTarget(): { pid: number; token: number } | null {
  const pid = myPid();
  if (unsupported || failedIn === pid) return null;
  if (socket !== null && ownerPid === pid) return { pid, token };
  if (socket !== null) resetAfterFork(); // our parent's, inherited through fork()
  for (let attempt = 0; attempt < 3; attempt++) {
    const tok = randomBytes(4).readInt32LE(0) | 1;
    let opened: FdWatcher | null;
    try {
      opened = native.wakeSocketOpen(nameOf(pid, tok), onIds);
    } catch (e) {
      if (String((e as Error).message).includes('in use')) continue; // EADDRINUSE: another token
      break; // no sockets here (EMFILE, a sandbox...)
    }
    if (opened === null) {
      unsupported = true; // no file-less names on this OS
      return null;
    }
    socket = opened;
    token = tok;
    ownerPid = pid;
    return { pid, token };
  }
  failedIn = pid; // the futex path serves this process's waits instead
  return null;
}

/** An id for one sleeping channel of this process (sent back by its writer). */
export function newWakeId(): number {
  nextId = (nextId % 0x7fffffff) + 1;
  return nextId;
}

/**
 * Resolves Woken when a datagram with `id` arrives, TimedOut after
 * timeoutMs; rejects with signal.reason on abort. One waiter per id.
 */
export function waitWake(id: number, timeoutMs: number, signal: AbortSignal | undefined, ref: boolean): Promise<WaitResult> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<WaitResult>((resolve, reject) => {
    waits++;
    const w: SocketWaiter = { resolve, reject, ref };
    const old = waiters.get(id);
    if (old !== undefined) settle(id, old, WaitResult.Woken);
    waiters.set(id, w);
    if (ref && refs++ === 0) native.wakeSocketRef(socket!, true);
    if (timeoutMs !== Infinity) {
      w.timer = setTimeout(() => settle(id, w, WaitResult.TimedOut), Math.max(0, timeoutMs));
      if (!ref) w.timer.unref();
    }
    if (signal !== undefined) w.offAbort = onAbort(signal, () => settle(id, w, { error: signal.reason }));
  });
}

const kEAGAIN = 11;

/**
 * Wakes the channel `id` of the process whose wake address is (pid, token).
 * Never blocks, never throws. Returns false when the datagram could not be
 * delivered for a reason other than a full buffer (the reader is gone, or
 * lives where this process cannot reach its name, e.g. another network
 * namespace): the caller then tells that reader to stop sleeping this way.
 */
export function sendWake(pid: number, tok: number, id: number): boolean {
  if (tok === token && pid === ownerPid && socket !== null && pid === myPid()) {
    // The reader is this very thread: wake it directly (no system call, no
    // datagram for the queue limit to drop).
    const w = waiters.get(id);
    if (w !== undefined) settle(id, w, WaitResult.Woken);
    return true;
  }
  const r = native.wakeSend(nameOf(pid, tok), id);
  return r === 0 || r === -kEAGAIN;
}

/**
 * In a child right after fork(): the socket (and the loop's poll of it) came
 * from the parent; reading it would steal the parent's wake-ups. Close our
 * copy (the parent's stays bound) and open a new one when needed.
 */
export function resetAfterFork(): void {
  if (socket !== null) native.watcherClose(socket);
  socket = null;
  // The waits pending here are the parent's calls, copied mid-wait: dropped,
  // never settled. Settled, they ran the parent's code on in the child, whose
  // channels then took the parent's items (see wait.ts forgetInheritedWaits).
  waiters.forEach(dropWaiter);
  waiters.clear();
  refs = 0;
}

/** What this thread's socket has done so far, and whether it is open (internal: tests). */
export function wakeStats(): { received: number; waits: number; timeouts: number; open: boolean } {
  return { received, waits, timeouts, open: socket !== null && ownerPid === myPid() };
}

/**
 * For the forkserver's warm-up (bootstrap.ts): one wait on this process's
 * socket, ended by a datagram it sends itself. The zygote and each spare
 * then have the receive path compiled (the watcher's callback, onIds,
 * settle), and a spare has its own socket open, before any request: a
 * pool worker used to pay for both on its first wait for a job (~0.4 ms of
 * CPU each, at the moment the other workers start too).
 */
export async function rehearseWake(): Promise<void> {
  const target = wakeTarget();
  if (target === null) return;
  const id = newWakeId();
  const woken = waitWake(id, 1000, undefined, true);
  if (native.wakeSend(nameOf(target.pid, target.token), id) !== 0) {
    settle(id, waiters.get(id)!, WaitResult.Woken);
  }
  await woken;
}
