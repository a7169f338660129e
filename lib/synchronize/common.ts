/**
 * What every synchronization primitive shares: who "I" am (owner identity),
 * argument parsing, how an object adopts an attached segment, and the
 * acquire/release idioms (guards, withLock) built on acquire/release.
 */
import { threadId } from 'node:worker_threads';
import { TimeoutError } from '../errors';
import type { Kind } from '../layout';
import { native } from '../native';
import { Segment } from '../segment';
import { checkSignal, deadlineFrom, describeValue } from '../validate';
import { wake } from '../wait';

/** Owner pid bits of a lock word; Linux pids fit in 22 bits, macOS's in 17. */
export const kPidMask = 0x3fffffff;
/** Set in a lock word when some process may be sleeping on it. */
export const kWaitersBit = 0x40000000;
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
const pidCell = new Int32Array(native.pidCell());
export function myPid(): number {
  return pidCell[0];
}

/** Internal methods Condition needs from its lock. */
export const kIsMine: unique symbol = Symbol('multiproc.sync.isMine');
export const kReleaseSave: unique symbol = Symbol('multiproc.sync.releaseSave');
export const kAcquireRestore: unique symbol = Symbol('multiproc.sync.acquireRestore');

export interface AcquireOptions {
  /** Milliseconds to wait at most (undefined or Infinity: no limit; 0: just try). */
  timeout?: number;
  /** Aborting rejects the pending call with `signal.reason`; the object is left as it was. */
  signal?: AbortSignal;
}

export interface ParsedWait {
  deadline: number;
  signal: AbortSignal | undefined;
}

export function parseAcquireOptions(options: unknown): ParsedWait {
  if (options === undefined || options === null) return { deadline: Infinity, signal: undefined };
  if (typeof options !== 'object') {
    throw new TypeError(`Expected the options to be an object like { timeout, signal }, got ${describeValue(options)}`);
  }
  const o = options as AcquireOptions;
  return { deadline: deadlineFrom('timeout', o.timeout), signal: checkSignal(o.signal) };
}

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
  segment.close();
}

export function closedError(what: string, name: string): Error {
  return new Error(`This ${what} (segment '${name}') is closed`);
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
  abstract acquire(options?: AcquireOptions): Promise<boolean>;
  /** Blocks the calling thread (and so the event loop) until acquired or timed out. */
  abstract acquireSync(timeoutMs?: number): boolean;
  abstract tryAcquire(): boolean;
  abstract release(): void;

  /** Acquires and returns a guard that releases on dispose; rejects with TimeoutError if `timeout` passes. */
  async lock(options?: AcquireOptions): Promise<LockGuard> {
    if (!(await this.acquire(options))) {
      throw new TimeoutError(`${this.constructor.name}.lock(): not acquired within ${options?.timeout} ms`);
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
  async withLock<T>(fn: () => T | PromiseLike<T>, options?: AcquireOptions): Promise<T> {
    if (typeof fn !== 'function') throw new TypeError(`Expected withLock's argument to be a function, got ${describeValue(fn)}`);
    const guard = await this.lock(options);
    try {
      return await fn();
    } finally {
      guard.release();
    }
  }
}
