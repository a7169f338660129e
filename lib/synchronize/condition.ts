/**
 * Condition: a condition variable over a process-shared Lock or RLock.
 *
 * Its default lock is a new Lock, where Python's is an RLock: an RLock's
 * owner is a process + thread, and the async tasks of one thread are all
 * that one owner, so with an RLock two async tasks of a process would not
 * exclude each other inside `await cond.acquire()`. Pass an RLock to get
 * Python's re-entrant behaviour (wait() then releases every level and
 * restores the depth).
 *
 * Payload (Int32 words from the segment's payload offset):
 *
 *   word        byte        field    meaning
 *   0           0           SEQ      bumped by every notify that marked someone; waiters sleep on it
 *   1           4           NEXT     ticket counter: waiters are served first come, first served
 *   2           8           USED     slots not FREE (lets notify return at once when nobody waits)
 *   3           12          HIGH     1 + highest slot index ever claimed (bounds notify's scan)
 *   4-15        16          reserved
 *   16 + 4k     64 + 16k    slot k   STATE (FREE 0 | WAITING 1 | NOTIFIED 2 | CLAIMING 3),
 *                                    TICKET, PID, TID of the waiter using it (PID: its
 *                                    common.ts myOwnerId, the pid or on Linux a worker
 *                                    thread's kernel thread id: a thread terminated in
 *                                    its wait is a dead waiter, as a killed process is)
 *
 * maxWaiters slots (segment param 0, default 1024) bound how many waits may
 * be pending at once over all processes.
 *
 * wait(): with the lock held, claim a slot (WAITING, next ticket), release
 * the lock fully (an RLock's depth is saved), then sleep on SEQ until the
 * slot reads NOTIFIED. notify(n), also with the lock held, marks the n
 * WAITING slots with the lowest tickets NOTIFIED, bumps SEQ and wakes the
 * sleepers on SEQ; those not marked go back to sleep. A per-waiter slot,
 * rather than a bare sequence number, is what makes notify(1) wake exactly
 * one waiter even though the waiters of one process share one native wait.
 *
 * A waiter that times out or is aborted CASes its slot WAITING -> FREE. If
 * that fails, a notify picked it in the meantime: a timeout then reports
 * true (it was notified); an abort hands the notification on to the next
 * waiter, so that an abort leaves the condition as it was. Either way the
 * lock is re-acquired before wait() settles, as Python's `with cond:`
 * expects. A waiter whose process died leaves a WAITING slot behind:
 * notify checks the pid of a slot it is about to mark and frees the slot
 * of a dead process instead of spending the notification on it (a "yes"
 * is trusted for kSliceMs, as the check reads /proc: a waiter that died in
 * the last 200 ms can still absorb one notification). A waiter that died
 * after being notified, before it freed its slot, leaves it NOTIFIED for
 * good: when no slot is free, wait() takes back the slots of dead
 * processes (an uncached check) before it gives up with a RangeError, and
 * a slot left CLAIMING by a waiter killed inside its claim (claims are made
 * holding the lock, so none can be in progress then).
 */
import { holderAlive, recentlyAlive } from '../liveness';
import { misuseError } from '../errors';
import { Kind } from '../layout';
import { isHandle, registerKind, toHandle, type Handle } from '../reduction';
import { attachWithLock, type Segment } from '../segment';
import { kHandleTag, kToHandle } from '../symbols';
import { checkInteger, checkOptionNames, describeValue, parseWait, remaining } from '../validate';
import { forkGeneration, kInheritedCall, waitAsync, wake } from '../wait';
import {
  Acquirable, adopt, closedError, closeWaking, isAdopting, kAcquireRestore, kIsMine, kReleaseSave, kTid, myOwnerId, segmentFor,
  type WaitOptions,
} from './common';
import { Lock, RLock } from './lock';

/** True while a Condition is built from a handle: its lock came with it, privately attached, and is its own. */
let receivedLock = false;

const SEQ = 0;
const NEXT = 1;
const USED = 2;
const HIGH = 3;
const kSlotsAt = 16;
const kSlotWords = 4;
const FREE = 0;
const WAITING = 1;
const NOTIFIED = 2;
const CLAIMING = 3;
const S_STATE = 0;
const S_TICKET = 1;
const S_PID = 2;
const S_TID = 3;

export interface ConditionOptions {
  /** Most waits that may be pending at once over all processes (default 1024). */
  maxWaiters?: number | undefined;
}

export class Condition extends Acquirable {
  readonly #segment: Segment;
  readonly #w: Int32Array;
  readonly #buf: ArrayBuffer;
  readonly #off: number;
  readonly #lock: Lock | RLock;
  readonly #ownsLock: boolean;
  readonly #maxWaiters: number;

  /** `lock`: a multiproc Lock or RLock to use (default: a new Lock; see the module comment). */
  constructor(lock?: Lock | RLock, options: ConditionOptions = {}) {
    super();
    if (lock !== undefined && lock !== null && !(lock instanceof Lock) && !(lock instanceof RLock)) {
      throw new TypeError(`Expected the Condition's lock to be a multiproc Lock or RLock, got ${describeValue(lock)}`);
    }
    let max = 1024;
    if (!isAdopting() && options !== undefined && options !== null) {
      if (typeof options !== 'object') throw new TypeError(`Expected the Condition options to be an object like { maxWaiters }, got ${describeValue(options)}`);
      checkOptionNames(options, ['maxWaiters'], 'Condition()');
      if (options.maxWaiters !== undefined) max = checkInteger('maxWaiters', options.maxWaiters, 1, 1 << 20);
    }
    const { segment, fresh } = segmentFor(Kind.Condition, (kSlotsAt + max * kSlotWords) * 4, [max, 0]);
    this.#segment = segment;
    this.#maxWaiters = fresh ? max : segment.param(0);
    this.#buf = segment.buffer;
    this.#off = segment.payloadOffset;
    this.#w = new Int32Array(segment.buffer, segment.payloadOffset, kSlotsAt + this.#maxWaiters * kSlotWords);
    this.#ownsLock = lock === undefined || lock === null || receivedLock;
    this.#lock = lock ?? new Lock();
    segment.bindTo(this);
  }

  #words(): Int32Array {
    const w = this.#w;
    if (w.length === 0) throw closedError('Condition', this.#segment.name);
    return w;
  }

  /** The lock this condition uses. */
  getLock(): Lock | RLock {
    return this.#lock;
  }

  acquire(options?: WaitOptions): Promise<boolean> {
    return this.#lock.acquire(options);
  }

  acquireSync(timeoutMs?: number): boolean {
    return this.#lock.acquireSync(timeoutMs);
  }

  tryAcquire(): boolean {
    return this.#lock.tryAcquire();
  }

  release(): void {
    this.#lock.release();
  }

  #mustHold(method: string): void {
    if (!this.#lock[kIsMine]()) {
      throw misuseError(`Condition.${method}(): the condition's lock is not held by this thread; acquire it first`, 'ERR_MULTIPROC_NOT_HELD');
    }
  }

  #claim(w: Int32Array): number {
    const at = this.#claimFree(w);
    if (at >= 0) return at;
    // All taken: a slot left WAITING or NOTIFIED by a waiter whose process
    // died is only freed by a later notify (WAITING) or never (NOTIFIED:
    // its waiter died between being notified and freeing it). Take those back.
    if (this.#reclaimDead(w) > 0) {
      const again = this.#claimFree(w);
      if (again >= 0) return again;
    }
    throw new RangeError(`Condition.wait(): ${this.#maxWaiters} waits are already pending (over all processes); create the Condition with a larger { maxWaiters }`);
  }

  #reclaimDead(w: Int32Array): number {
    const me = myOwnerId();
    // Uncached (recentlyAlive trusts a "yes" for 200 ms, and a notify has
    // just asked about these very pids), once per pid.
    const alive = new Map<number, boolean>();
    const isAlive = (pid: number): boolean => {
      let a = alive.get(pid);
      if (a === undefined) alive.set(pid, (a = holderAlive(pid, this.#segment.name)));
      return a;
    };
    let freed = 0;
    for (let k = 0; k < this.#maxWaiters; k++) {
      const at = kSlotsAt + k * kSlotWords;
      const state = Atomics.load(w, at + S_STATE);
      if (state === CLAIMING) {
        // Slots are claimed only by wait(), holding the lock, as we do now:
        // a slot still CLAIMING was left by a waiter that died inside its
        // claim, holding the lock we took over. Freed, but USED left as it
        // is: the claim may not have counted it yet, and a USED too high
        // only costs notify() a scan, where one too low would skip a waiter.
        if (Atomics.compareExchange(w, at + S_STATE, CLAIMING, FREE) === CLAIMING) freed++;
        continue;
      }
      if (state !== WAITING && state !== NOTIFIED) continue;
      const pid = w[at + S_PID];
      if (pid === me || isAlive(pid)) continue;
      if (Atomics.compareExchange(w, at + S_STATE, state, FREE) === state) {
        Atomics.sub(w, USED, 1);
        freed++;
      }
    }
    return freed;
  }

  #claimFree(w: Int32Array): number {
    const max = this.#maxWaiters;
    for (let k = 0; k < max; k++) {
      const at = kSlotsAt + k * kSlotWords;
      if (Atomics.load(w, at + S_STATE) !== FREE) continue;
      if (Atomics.compareExchange(w, at + S_STATE, FREE, CLAIMING) !== FREE) continue;
      w[at + S_TICKET] = Atomics.add(w, NEXT, 1);
      w[at + S_PID] = myOwnerId();
      w[at + S_TID] = kTid;
      Atomics.add(w, USED, 1);
      let high = Atomics.load(w, HIGH);
      while (high < k + 1) {
        const seen = Atomics.compareExchange(w, HIGH, high, k + 1);
        if (seen === high) break;
        high = seen;
      }
      Atomics.store(w, at + S_STATE, WAITING);
      return at;
    }
    return -1;
  }

  #free(w: Int32Array, at: number): void {
    Atomics.store(w, at + S_STATE, FREE);
    Atomics.sub(w, USED, 1);
  }

  /**
   * Releases the lock, waits to be notified, re-acquires the lock. Resolves
   * true if notified, false if the timeout passed; with { signal }, aborting
   * rejects with signal.reason (after re-acquiring the lock). Never blocks
   * the event loop. The lock must be held.
   */
  async wait(options?: WaitOptions): Promise<boolean> {
    const { deadline, signal } = parseWait(options, 'Condition.wait()');
    const w = this.#words();
    this.#mustHold('wait');
    if (signal?.aborted) throw signal.reason;
    const at = this.#claim(w);
    this.#pending.add(at);
    const depth = this.#lock[kReleaseSave]();
    // After each await: a fork child's copy of this call stops there (see kInheritedCall).
    const gen = forkGeneration();
    let notified = false;
    let failure: { error: unknown } | undefined;
    try {
      for (;;) {
        const seq = Atomics.load(w, SEQ);
        if (Atomics.load(w, at + S_STATE) === NOTIFIED) {
          notified = true;
          break;
        }
        const left = remaining(deadline);
        if (left === 0) break;
        await waitAsync(this.#buf, this.#off + SEQ * 4, seq, left, signal);
        if (forkGeneration() !== gen) await kInheritedCall;
        if (w.length === 0) throw closedError('Condition', this.#segment.name);
      }
    } catch (error) {
      failure = { error };
    }
    this.#pending.delete(at);
    if (w.length === 0) {
      await this.#lock[kAcquireRestore](depth);
      throw closedError('Condition', this.#segment.name);
    }
    if (!notified && Atomics.compareExchange(w, at + S_STATE, WAITING, FREE) === WAITING) {
      Atomics.sub(w, USED, 1);
    } else {
      notified = true;
      this.#free(w, at);
    }
    await this.#lock[kAcquireRestore](depth);
    if (forkGeneration() !== gen) await kInheritedCall;
    if (failure !== undefined) {
      if (notified) this.#notify(w, 1);
      throw failure.error;
    }
    return notified;
  }

  /**
   * Waits until `predicate()` (which may be async) returns a truthy value,
   * and returns that value (falsy if the timeout passed first). The lock
   * must be held; the predicate runs with the lock held.
   */
  async waitFor<T>(predicate: () => T | PromiseLike<T>, options?: WaitOptions): Promise<T> {
    if (typeof predicate !== 'function') throw new TypeError(`Expected waitFor's predicate to be a function, got ${describeValue(predicate)}`);
    const { deadline, signal } = parseWait(options, 'Condition.waitFor()');
    let result = await predicate();
    while (!result) {
      const left = remaining(deadline);
      if (left === 0) break;
      await this.wait({ timeout: left, signal });
      result = await predicate();
    }
    return result;
  }

  /** Wakes up to `n` waiters (the longest waiting first). The lock must be held. */
  notify(n = 1): void {
    checkInteger('n', n, 0);
    const w = this.#words();
    this.#mustHold('notify');
    this.#notify(w, n);
  }

  /** Wakes every waiter. The lock must be held. */
  notifyAll(): void {
    const w = this.#words();
    this.#mustHold('notifyAll');
    this.#notify(w, Infinity);
  }

  #notify(w: Int32Array, n: number): void {
    if (n === 0 || Atomics.load(w, USED) === 0) return;
    const next = Atomics.load(w, NEXT);
    const high = Math.min(Atomics.load(w, HIGH), this.#maxWaiters);
    const waiting: { at: number; age: number }[] = [];
    for (let k = 0; k < high; k++) {
      const at = kSlotsAt + k * kSlotWords;
      if (Atomics.load(w, at + S_STATE) === WAITING) waiting.push({ at, age: (w[at + S_TICKET] - next) | 0 });
    }
    if (n < waiting.length) waiting.sort((a, b) => a.age - b.age);
    const me = myOwnerId();
    let marked = 0;
    for (const { at } of waiting) {
      if (marked >= n) break;
      const pid = w[at + S_PID];
      if (pid !== me && !recentlyAlive(pid, this.#segment.name)) {
        if (Atomics.compareExchange(w, at + S_STATE, WAITING, FREE) === WAITING) Atomics.sub(w, USED, 1);
        continue;
      }
      // SEQ moves before each mark, not once after them all: a notifier
      // killed after a mark (the liveness checks above may read /proc, so
      // the loop can take a while) leaves SEQ changed, which the waiter's
      // sleeping thread sees when it re-arms (within 5 s). A bump whose mark
      // then fails only wakes the waiters to sleep again.
      Atomics.add(w, SEQ, 1);
      if (Atomics.compareExchange(w, at + S_STATE, WAITING, NOTIFIED) === WAITING) marked++;
    }
    // And once more after the marks: a waiter that read SEQ after a bump above
    // and its slot before that bump's mark would sleep on that very value, and
    // if it got to sleep only after the wake below, nothing moved SEQ again.
    if (marked > 0) {
      Atomics.add(w, SEQ, 1);
      wake(this.#buf, this.#off + SEQ * 4, -1);
    }
  }

  get segmentName(): string {
    return this.#segment.name;
  }

  /** Slots of this object's wait() calls still pending (see close()). */
  readonly #pending = new Set<number>();

  /** Releases this process's mapping (and of the lock, if the condition made its own). */
  close(): void {
    if (!this.#segment.closed) {
      // The slots of this object's pending waits are freed first: left
      // WAITING under a live pid, each took a later notify() for good, and
      // another process's waiter slept on (review helper-101). The waits
      // reject with ClosedError.
      const w = this.#w;
      for (const at of this.#pending) {
        const st = Atomics.load(w, at + S_STATE);
        if ((st === WAITING || st === NOTIFIED) && Atomics.compareExchange(w, at + S_STATE, st, FREE) === st) Atomics.sub(w, USED, 1);
      }
      this.#pending.clear();
    }
    closeWaking(this.#segment, [SEQ]);
    if (this.#ownsLock) this.#lock.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [kToHandle](): Handle {
    // Our own segment first (see SharedCtype.handle): it throws once closed.
    this.#segment.retain();
    let lock: Handle;
    try {
      lock = toHandle(this.#lock);
    } catch (e) {
      this.#segment.unretain();
      throw e;
    }
    return { [kHandleTag]: 'Condition', name: this.#segment.name, lock };
  }

  override toString(): string {
    return this.#w.length === 0 ? 'Condition(closed)' : `Condition(${this.#lock.toString()}, waiting=${Atomics.load(this.#w, USED)})`;
  }
}

registerKind('Condition', (h) => {
  const l = h.lock;
  if (!isHandle(l)) throw new TypeError(`Malformed Condition handle: bad lock ${describeValue(l)}`);
  // Attached as the lock, anything else would be closed with the Condition (a Queue's close() closes it for everyone).
  if (l[kHandleTag] !== 'Lock' && l[kHandleTag] !== 'RLock') throw new TypeError(`Malformed Condition handle: its lock is a ${l[kHandleTag]} handle, not a Lock or RLock`);
  // The lock as a mapping of the Condition's own, closed with it (see attachWithLock).
  return attachWithLock<Condition, Lock | RLock>(h.name, Kind.Condition, l, (seg, lock) =>
    adopt(seg, () => {
      receivedLock = true;
      try {
        return new Condition(lock!);
      } finally {
        receivedLock = false;
      }
    }),
  );
});
