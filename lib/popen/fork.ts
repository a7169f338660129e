/**
 * fork: a real fork() of the calling process, running the very closure.
 *
 * Offered only where it is safe (see forkUnavailableReason): a Node process
 * forks cleanly only when V8 runs without platform worker threads, i.e. the
 * process was started with `node --single-threaded` (NATIVE-NOTES.md: with
 * default flags 65% of GC-heavy fork children hung), and only from the main
 * thread (a fork from a Worker would copy a thread that is not the process's
 * main one, and PR_SET_PDEATHSIG would follow that Worker's thread).
 *
 * The child never returns to the caller's code the normal way: a
 * synchronous target runs inside start() and the child exits there; for an
 * async target start() throws a ForkChildExit in the child (see
 * process.ts) so that the parent's code after start() does not run in it,
 * and the child exits as soon as the target settles.
 */
import { isMainThread } from 'node:worker_threads';
import { native } from '../native';
import { parkWorkers, unparkWorkers, warnIfUnparkable } from './park';
import { BasePopen, exitCodeOf } from './popen';
import { kStartedSingleThreaded } from '../wait';

/** Why fork is not offered here, or null when it is. */
export function forkUnavailableReason(): string | null {
  if (process.platform === 'win32') return 'fork() does not exist on Windows';
  if (!kStartedSingleThreaded) {
    return 'this process was not started with `node --single-threaded`, and forking a Node process whose V8 has ' +
      'worker threads leaves the child without them (GC hangs or crashes). Use the \'forkserver\' start method, which ' +
      'forks from a single-threaded zygote, or start this program with `node --single-threaded`';
  }
  if (!isMainThread) return 'fork() is only safe from the main thread, not from a worker thread; use \'forkserver\'';
  return null;
}

// Our fork children are not libuv's: we reap them on SIGCHLD by pid.
const live = new Map<number, ForkPopen>();
let reaping = false;
function reapForkChildren(): void {
  for (const [pid, p] of live) {
    let st;
    try {
      st = native.waitpid(pid, false);
    } catch {
      st = { pid, code: null, signal: 9 }; // ECHILD: someone else reaped it
    }
    if (st !== null) {
      live.delete(pid);
      p.finish(exitCodeOf(st.code, st.signal));
    }
  }
}

// The portable watchdog: one pipe for all fork children; only this process
// holds the write end (each child closes its copy first thing).
let watchdog: [number, number] | null = null;
export function forkWatchdog(): [number, number] {
  watchdog ??= native.pipe();
  return watchdog;
}

/** In a fork child: drop the parent's bookkeeping (its children are not ours). */
export function forgetForkState(): void {
  for (const [, p] of live) p.orphan();
  live.clear();
  if (watchdog !== null) {
    native.closeFd(watchdog[1]);
    watchdog = null; // the read end stays open: it is our own watchdog
  }
}

export class ForkPopen extends BasePopen {
  readonly method = 'fork' as const;
  readonly pid: number;
  #keepAlive: NodeJS.Timeout | null = null;

  /** Forks; in the child, `inChild` runs and never returns normally. */
  constructor(inChild: (watchdogRead: number) => never) {
    super();
    const [r] = forkWatchdog();
    // V8's worker threads are held for the fork only (see park.ts).
    warnIfUnparkable();
    parkWorkers(1000);
    let pid: number;
    try {
      pid = native.fork();
    } finally {
      unparkWorkers(); // even if the park timed out; the child's copy does nothing (native MarkForkChild)
    }
    if (pid === 0) inChild(r);
    this.pid = pid;
    // Installed once and never removed: closing a signal handle with a caught,
    // undispatched signal spins forever in a fork child (see forkserver-main.ts).
    if (!reaping) {
      reaping = true;
      process.on('SIGCHLD', reapForkChildren);
    }
    live.set(pid, this);
    // SIGCHLD may already have come and gone.
    setImmediate(reapForkChildren);
  }

  /** In a fork child, copies of the parent's children are nobody's business. */
  orphan(): void {
    this.setRef(false);
  }

  protected check(): void {
    const st = native.waitpid(this.pid, false);
    if (st !== null) {
      live.delete(this.pid);
      this.finish(exitCodeOf(st.code, st.signal));
    }
  }

  setRef(ref: boolean): void {
    // A SIGCHLD listener does not keep the loop alive; a long timer does.
    if (ref && this.#keepAlive === null && this.returncode === null) {
      this.#keepAlive = setInterval(() => {}, 1 << 30);
    } else if (!ref && this.#keepAlive !== null) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = null;
    }
  }
}
