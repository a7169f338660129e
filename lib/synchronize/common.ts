/**
 * What every synchronization primitive shares: who "I" am (owner identity),
 * the wait options' type (parsed by validate.ts's parseWait), how an object adopts an attached segment, and the
 * acquire/release idioms (guards, withLock) built on acquire/release.
 */
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { isMainThread, threadId } from 'node:worker_threads';
import { onAbort } from '../abort';
import { ClosedError, TimeoutError } from '../errors';
import type { Kind } from '../layout';
import { native } from '../native';
import { Segment } from '../segment';
import { describeValue } from '../validate';
import { endWaitsOn, forkGeneration, kInheritedCall, waitAsync, waitSync, wake, type WaitResult } from '../wait';

/** Owner pid bits of a lock word; Linux pids fit in 22 bits, macOS's in 17. */
export const kPidMask = 0x3fffffff;
/**
 * Longest single sleep of a waiter whose wake-up depends on another party
 * (a lock owner, a semaphore releaser): after each slice the waiter re-checks
 * the word and whether the owner still lives. Bounds the time to recover
 * from a dead holder or a wake-up lost with a killed waiter.
 */
export const kSliceMs = 200;

/**
 * This thread's id in owner words: worker_threads' threadId + 1, so that 0
 * means "no owner thread". Constant for the life of the module instance
 * (each worker thread loads its own copy).
 */
export const kTid = threadId + 1;

/**
 * This process's pid. Not a cached number: a child made by fork() inherits
 * this module's state. The addon keeps the pid in a cell that its atfork
 * handler refreshes, and reading it is a typed-array load (reading
 * `process.pid` costs ~10 ns, as much as the whole lock fast path).
 */
const pidCell: Int32Array | null = typeof native.pidCell === 'function' ? new Int32Array(native.pidCell()) : null;
export const myPid: () => number = pidCell !== null
  ? () => pidCell[0]
  : () => process.pid; // an addon built before pidCell existed: slower, still right after fork (the fork code patches process.pid)

/**
 * Who holds a ring's lock or writes its uncommitted record (ring-buffer.ts),
 * owns a Lock/RLock (lock.ts), waits in a Condition slot or a Barrier party
 * slot: this process's pid on its main thread,
 * and on Linux a worker thread's kernel thread id. Others tell a dead holder
 * by asking whether that id still runs, and a worker_threads thread ended
 * by `worker.terminate()` runs no code: inside a put or get it left the
 * ring's lock (or its record) under its live process's pid, and every other
 * producer or consumer of that queue waited until its timeout, for good
 * (review helper-111); a Lock it held stayed held. A kernel thread id is in
 * the pids' number space (kill(tid, 0), /proc/TID/maps and /proc/TID/stat
 * answer for the thread) and ends with its thread. Not on macOS, whose
 * thread ids are not pids: there a thread keeps its process's pid, as
 * before. A worker thread never forks, so its id is read once.
 */
export const myOwnerId: () => number = isMainThread ? myPid : ((tid) => () => tid)(kernelThreadId() ?? process.pid);

/** Whether an id from myOwnerId() names a thread of this process (its main thread, or on Linux another of its threads). */
export function ofThisProcess(id: number): boolean {
  if (id === myPid()) return true;
  if (process.platform !== 'linux') return false;
  try {
    return statSync(`/proc/self/task/${id}`, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}

/**
 * Names the holder an id from myOwnerId() stands for, for messages and
 * toString(): "process PID", or on Linux, where the id is a worker thread's
 * kernel thread id, "thread TID of process PID" (its thread group, from
 * /proc/ID/status). Before, a thread id was printed as a pid: a number that
 * ps and kill do not list as a process.
 */
export function describeOwnerId(id: number): string {
  if (process.platform === 'linux' && id !== myPid()) {
    try {
      const m = /^Tgid:\s*(\d+)/m.exec(readFileSync(`/proc/${id}/status`, 'latin1'));
      const tgid = m === null ? 0 : Number(m[1]);
      if (tgid > 0 && tgid !== id) return `thread ${id} of process ${tgid}`;
    } catch {
      // gone, or not ours to read: the number as it is
    }
  }
  return `process ${id}`;
}

function kernelThreadId(): number | null {
  if (process.platform !== 'linux') return null;
  try {
    const [pid, , id] = readlinkSync('/proc/thread-self').split('/'); // "PID/task/TID"
    // A /proc of another pid namespace (unshare --pid without --mount-proc):
    // its numbers are not the ones kill() and /proc/PID answer to here, and
    // the main thread of this very process took the lock this thread held
    // for a dead one's (queue-thread-pidns.mjs). The pid, as before, then.
    if (Number(pid) !== process.pid) return null;
    const tid = Number(id);
    return Number.isInteger(tid) && tid > 0 && tid <= kPidMask ? tid : null;
  } catch {
    return null; // a /proc without thread-self (Linux before 3.17): the pid, as before
  }
}

interface Turn {
  prev: Turn | undefined;
  next: Turn | undefined;
  resolve: ((ready: boolean) => void) | undefined;
}

/**
 * A FIFO of this process's async waiters on one object. Only the head sleeps
 * on the shared word; the others wait for their turn here. Without it, a
 * wake-up of the word would wake every async waiter of the process (they
 * share one native wait) and all but one would go back to sleep: O(n) work
 * per hand-over, O(n^2) for n waiters. It also makes hand-overs between the
 * async waiters of one process first come, first served.
 */
export class LocalQueue {
  #head: Turn | undefined;
  #tail: Turn | undefined;
  /** The fork generation the turns belong to: a fork child drops the parent's (see wait.ts forkGeneration). */
  #gen = forkGeneration();

  get empty(): boolean {
    this.#checkFork();
    return this.#head === undefined;
  }

  #checkFork(): void {
    const gen = forkGeneration();
    if (this.#gen === gen) return;
    this.#gen = gen;
    this.#head = undefined;
    this.#tail = undefined;
  }

  /**
   * Joins the queue. `ready` resolves true once this turn is at the head,
   * false if the deadline passes first, and rejects with signal.reason on
   * abort. The caller must leave(turn) whatever happens.
   */
  enter(deadline: number, signal: AbortSignal | undefined): { turn: Turn; ready: Promise<boolean> } {
    this.#checkFork();
    const turn: Turn = { prev: this.#tail, next: undefined, resolve: undefined };
    if (this.#tail !== undefined) this.#tail.next = turn;
    else this.#head = turn;
    this.#tail = turn;
    if (this.#head === turn) return { turn, ready: Promise.resolve(true) };
    const ready = new Promise<boolean>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let off = (): void => {};
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        off();
        turn.resolve = undefined;
      };
      turn.resolve = (v) => {
        done();
        resolve(v);
      };
      if (deadline !== Infinity) timer = setTimeout(() => turn.resolve?.(false), Math.max(0, deadline - performance.now()));
      if (signal !== undefined) {
        off = onAbort(signal, () => {
          done();
          reject(signal.reason);
        });
      }
    });
    return { turn, ready };
  }

  /** Leaves the queue; if `turn` was the head, the next waiter's turn comes. */
  leave(turn: Turn): void {
    const wasHead = this.#head === turn;
    if (turn.prev !== undefined) turn.prev.next = turn.next;
    else if (wasHead) this.#head = turn.next;
    else return; // already left
    if (turn.next !== undefined) turn.next.prev = turn.prev;
    else this.#tail = turn.prev;
    turn.prev = turn.next = undefined;
    if (wasHead) this.#head?.resolve?.(true);
  }
}

/** Internal methods Condition needs from its lock. */
export const kIsMine: unique symbol = Symbol('multiproc.sync.isMine');
export const kReleaseSave: unique symbol = Symbol('multiproc.sync.releaseSave');
export const kAcquireRestore: unique symbol = Symbol('multiproc.sync.acquireRestore');

export interface AcquireOptions {
  /** Milliseconds to wait at most (undefined or Infinity: no limit; 0: just try). */
  timeout?: number | undefined;
  /** Aborting rejects the pending call with `signal.reason`; the object is left as it was. */
  signal?: AbortSignal | undefined;
}

/** What every wait takes: a number of milliseconds or { timeout, signal } (validate.ts's parseWait). */
export type WaitOptions = number | AcquireOptions;

/** The one segment a constructor should adopt instead of creating (set while attaching a handle). */
let adopting: Segment | undefined;

/** Runs `make` (a constructor call) so that it adopts `segment` instead of creating one. */
export function adopt<T>(segment: Segment, make: () => T): T {
  adopting = segment;
  try {
    return make();
  } finally {
    adopting = undefined;
  }
}

/** Whether the constructor now running attaches an existing segment (skip argument checks and initialization). */
export function isAdopting(): boolean {
  return adopting !== undefined;
}

/** For constructors: the segment being attached, or a fresh one. */
export function segmentFor(kind: Kind, payloadBytes: number, params: [number, number] = [0, 0]): { segment: Segment; fresh: boolean } {
  const s = adopting;
  if (s !== undefined) {
    adopting = undefined;
    return { segment: s, fresh: false };
  }
  return { segment: Segment.create(kind, payloadBytes, params), fresh: true };
}

/**
 * Closes `segment` after waking every sleeper on the given payload words, so
 * that waits pending in this process end (rejecting with closedError) instead
 * of sleeping on memory that is no longer mapped. Sleepers in other processes
 * see a spurious wake-up and sleep again.
 */
export function closeWaking(segment: Segment, words: number[]): void {
  if (segment.closed) return;
  for (const i of words) wake(segment.buffer, segment.payloadOffset + i * 4, -1);
  endWaitsOn(segment.buffer);
  segment.close();
}

export function closedError(what: string, name: string): Error {
  return new ClosedError(`This ${what} (segment '${name}') is closed`);
}

/**
 * One contended acquire, written once for both forms: the generator does the
 * protocol and yields each sleep it needs as [expected word value, ms]; a
 * driver performs the sleep (blocking or not) and sends back the result, or
 * throws into the generator what the sleep threw (an abort).
 */
export type AcquireSteps = Generator<[number, number], boolean, WaitResult>;

/** Runs the steps with blocking sleeps on the word at byteOffset (acquireSync). */
export function acquireBlocking(steps: AcquireSteps, buffer: ArrayBuffer, byteOffset: number): boolean {
  let step = steps.next();
  while (!step.done) step = steps.next(waitSync(buffer, byteOffset, step.value[0], step.value[1]));
  return step.value;
}

/** Runs the steps with async sleeps (the event loop runs meanwhile); an abort is thrown into them. */
export async function acquireAsync(steps: AcquireSteps, buffer: ArrayBuffer, byteOffset: number, signal: AbortSignal | undefined): Promise<boolean> {
  const gen = forkGeneration();
  let step = steps.next();
  while (!step.done) {
    let r: WaitResult;
    try {
      r = await waitAsync(buffer, byteOffset, step.value[0], step.value[1], signal);
      if (forkGeneration() !== gen) await kInheritedCall;
    } catch (e) {
      step = steps.throw(e);
      continue;
    }
    step = steps.next(r);
  }
  return step.value;
}

/**
 * Returned by `lock()` / `lockSync()`: releases once, by `release()`,
 * `using` (Symbol.dispose) or `await using` (Symbol.asyncDispose).
 */
export interface LockGuard {
  release(): void;
  [Symbol.dispose](): void;
  [Symbol.asyncDispose](): Promise<void>;
}

function makeGuard(target: { release(): void }): LockGuard {
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    target.release();
  };
  return {
    release,
    [Symbol.dispose]: release,
    [Symbol.asyncDispose]: () => {
      release();
      return Promise.resolve();
    },
  };
}

/**
 * The acquire/release family (Lock, RLock, Semaphore, BoundedSemaphore,
 * Condition) and the idioms built on it:
 *
 *     await lock.withLock(async () => { ... });
 *     { using g = lock.lockSync(); ... }          // released at block end
 *     { await using g = await lock.lock(); ... }
 */
export abstract class Acquirable {
  abstract acquire(options?: WaitOptions): Promise<boolean>;
  /** Blocks the calling thread (and so the event loop) until acquired or timed out. */
  abstract acquireSync(timeoutMs?: number): boolean;
  abstract tryAcquire(): boolean;
  abstract release(): void;

  /** Acquires and returns a guard that releases on dispose; rejects with TimeoutError if `timeout` passes. */
  async lock(options?: WaitOptions): Promise<LockGuard> {
    if (!(await this.acquire(options))) {
      const ms = typeof options === 'number' ? options : options?.timeout;
      throw new TimeoutError(`${this.constructor.name}.lock(): not acquired within ${ms} ms`);
    }
    return makeGuard(this);
  }

  /** As lock(), blocking; throws TimeoutError if `timeoutMs` passes. */
  lockSync(timeoutMs?: number): LockGuard {
    if (!this.acquireSync(timeoutMs)) {
      throw new TimeoutError(`${this.constructor.name}.lockSync(): not acquired within ${timeoutMs} ms`);
    }
    return makeGuard(this);
  }

  /** Runs `fn` holding this object and releases afterwards, whatever `fn` does. */
  async withLock<T>(fn: () => T | PromiseLike<T>, options?: WaitOptions): Promise<T> {
    if (typeof fn !== 'function') throw new TypeError(`Expected withLock's argument to be a function, got ${describeValue(fn)}`);
    const guard = await this.lock(options);
    try {
      return await fn();
    } finally {
      guard.release();
    }
  }

  /** console.log shows what toString() says (a Lock printed Lock {}; review helper-70). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

/**
 * For the constructors that take nothing (Lock, RLock, Event): an argument
 * would otherwise be ignored without a word (new Lock({ timeout: 5 }),
 * new RLock(5) from habit).
 */
export function noArguments(given: number, what: string, hint: string): void {
  if (given > 0) throw new TypeError(`new ${what}() takes no arguments (got ${given}): ${hint}`);
}
