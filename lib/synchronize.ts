/**
 * Process-shared synchronization (CPython's multiprocessing.synchronize):
 * Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier.
 *
 * Each object is a small segment of shared memory (lib/segment.ts, kinds in
 * lib/layout.ts) and crosses to other processes as a handle (put it in
 * Process args, queue items, or `toHandle()` it). The layout of each one is
 * drawn at the top of its module in lib/synchronize/:
 *
 *   lock.ts       Lock, RLock (and the Mutex that Barrier embeds)
 *   semaphore.ts  Semaphore, BoundedSemaphore
 *   condition.ts  Condition
 *   event.ts      Event
 *   barrier.ts    Barrier
 *   common.ts     owner identity, WaitOptions, guards, withLock
 *
 * Common design:
 * - Uncontended paths are Atomics on an Int32Array over the mapped segment:
 *   no call into the addon. Only a waiter goes native, through lib/wait.ts
 *   (futex), and a releaser wakes only when a sleeper is counted beside the word.
 * - `acquire()`/`wait()` never block the event loop (wait.ts's waiter
 *   threads, one per waited word per process, never libuv's pool); `*Sync`
 *   methods block the calling thread. AbortSignal rejects with
 *   signal.reason and leaves the object as it was; a timeout resolves false.
 * - Owner = process + thread (pid in the lock word, worker_threads threadId
 *   beside it). A lock whose holder dies is taken over by the next waiter
 *   within one wait slice (kSliceMs = 200 ms) after the death; that acquirer
 *   sees `lock.ownerDied === true`. See lock.ts for the reasoning.
 *
 * Idioms (docs/synchronize.md):
 *
 *     await lock.withLock(async () => { ... });
 *     { using g = lock.lockSync(); ... }
 *     { await using g = await lock.lock({ timeout: 1000 }); ... }
 *
 * Loading this module installs RLock as the default lock of Value and
 * SharedArray (sharedctypes.ts cannot import it: that would be a cycle).
 *
 * Exports: Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event,
 * Barrier and their option/guard types.
 */
import { setDefaultLockFactory } from './sharedctypes';
import { RLock } from './synchronize/lock';

export { Lock, RLock } from './synchronize/lock';
export { Semaphore, BoundedSemaphore, type SemaphoreOptions } from './synchronize/semaphore';
export { Condition, type ConditionOptions } from './synchronize/condition';
export { Event, type WaitOptions } from './synchronize/event';
export { Barrier, type BarrierAction } from './synchronize/barrier';
export type { AcquireOptions, LockGuard } from './synchronize/common';

setDefaultLockFactory(() => new RLock());
