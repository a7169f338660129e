/**
 * Semaphore and BoundedSemaphore: a counter of permits in shared memory.
 *
 * Payload (Int32 words from the segment's payload offset):
 *
 *   word      byte      field      meaning
 *   0         0         VALUE      permits available (>= 0); waiters sleep on this word while it is 0
 *   1         4         WAITERS    threads sleeping or about to sleep on VALUE
 *   2         8         MAX        BoundedSemaphore: the initial value, the most VALUE may reach; -1 unbounded
 *   3         12        FLAGS      bit 0: holders are tracked (the trackHolders option)
 *   4         16        NSLOTS     holder slots that follow (0 unless tracked)
 *   5         20        RECOVERED  permits given back from holders that died
 *   6-15      24        reserved
 *   16 + 2k   64 + 8k   slot k     PID of a process holding permits (0 free, -1 being reclaimed), COUNT it holds
 *
 * Acquire: CAS VALUE v -> v-1 while v > 0 (no native call). Otherwise
 * WAITERS++, sleep on VALUE expecting 0, WAITERS--, retry. Release of n:
 * one CAS of VALUE up by n (BoundedSemaphore refuses past MAX, all of it);
 * only when WAITERS > 0 is there a native wake, of n waiters (one thread per
 * process sleeps for its async acquirers, and the next of them tries as soon
 * as the first has its permit). The waiter bumps WAITERS before the
 * kernel re-checks VALUE == 0 and the releaser bumps VALUE before reading
 * WAITERS (both sequentially consistent), so a wake-up is never missed. A
 * waiter leaving without a permit (timeout, abort) passes a wake-up on if
 * permits remain, in case the one it got was meant for someone else; and
 * every sleep is at most kSliceMs, so a wake-up absorbed by a waiter that
 * was killed costs the others one slice, not forever.
 *
 * Holder death: as in Python, a semaphore has no owner by default: acquire
 * and release may happen in different processes (handing a permit over is a
 * normal use), so the permits of a process that dies are not returned.
 * With `{ trackHolders: true }` each process's permits are counted in a
 * holder slot (permit taken first, then counted; uncounted first, then
 * released: a death in between loses that one permit rather than making
 * one up; so each pair is two adjacent atomics, the slot being found or
 * claimed before the take: see #holderSlot). release() then requires this
 * process to hold a permit, and a waiter whose slice times out (or a
 * failing tryAcquire, once per slice) scans the slots: the count of a pid
 * that no longer runs goes back into VALUE and RECOVERED. Slots stay with
 * their process until it dies (freeing a slot at count 0 would race with
 * another thread of the same process counting into it); a full table
 * first reclaims the slots of dead pids.
 */
import { misuseError } from '../errors';
import { Kind } from '../layout';
import { WaitResult } from '../native';
import { registerKind, type Handle } from '../reduction';
import { attachShared, type Segment } from '../segment';
import { kHandleTag, kToHandle } from '../symbols';
import { checkInteger, checkOptionNames, deadlineFrom, describeValue, kForever, parseWait, remaining } from '../validate';
import { forkGeneration, kInheritedCall, parentOnly, wake } from '../wait';
import { recentlyAlive } from '../liveness';
import {
  acquireAsync, acquireBlocking, type AcquireSteps, Acquirable, adopt, closedError, closeWaking, isAdopting, kSliceMs, LocalQueue, myPid, segmentFor, type WaitOptions,
} from './common';

const VALUE = 0;
const WAITERS = 1;
const MAX = 2;
const FLAGS = 3;
const NSLOTS = 4;
const RECOVERED = 5;
const kSlotsAt = 16;
const kTracked = 1;
const kMaxValue = 0x7fffffff;

export interface SemaphoreOptions {
  /**
   * Count the permits each process holds, so that those of a process that
   * dies are given back (see `recoveredPermits`). release() must then come
   * from a process that holds a permit.
   */
  trackHolders?: boolean | undefined;
  /** With trackHolders: how many running processes may have taken permits (each keeps its slot until it exits; default 64). */
  maxHolders?: number | undefined;
}

export class Semaphore extends Acquirable {
  readonly #segment: Segment;
  readonly #w: Int32Array;
  readonly #buf: ArrayBuffer;
  readonly #off: number;
  readonly #tracked: boolean;
  readonly #nSlots: number;
  #mySlot = -1;
  #lastReclaim = 0;
  readonly #local = new LocalQueue();

  /** `value`: the number of permits to start with (an integer >= 0). */
  constructor(value = 1, options: SemaphoreOptions = {}) {
    super();
    const bounded = new.target === BoundedSemaphore;
    const kind = bounded ? 'BoundedSemaphore' : 'Semaphore';
    let nSlots = 0;
    if (!isAdopting()) {
      checkInteger(`${kind} value`, value, 0, kMaxValue);
      if (options === null || typeof options !== 'object') throw new TypeError(`Expected the ${kind} options to be an object, got ${describeValue(options)}`);
      checkOptionNames(options, ['trackHolders', 'maxHolders'], `${kind}()`);
      // Checked whether or not tracking is on: { maxHolders: -5 } or a maxHolders without trackHolders was ignored without a word.
      if (options.trackHolders !== undefined && typeof options.trackHolders !== 'boolean') {
        throw new TypeError(`Expected "trackHolders" to be a boolean, got ${describeValue(options.trackHolders)}`);
      }
      const max = options.maxHolders === undefined ? 64 : checkInteger('maxHolders', options.maxHolders, 1, 1 << 16);
      if (options.maxHolders !== undefined && !options.trackHolders) {
        throw new TypeError(`${kind}(): "maxHolders" sizes the holder table of { trackHolders: true }, which is not set; add it, or drop maxHolders`);
      }
      if (options.trackHolders) nSlots = max;
    }
    const { segment, fresh } = segmentFor(Kind.Semaphore, 64 + nSlots * 8, [nSlots, 0]);
    this.#segment = segment;
    this.#buf = segment.buffer;
    this.#off = segment.payloadOffset;
    const head = new Int32Array(segment.buffer, segment.payloadOffset, 16);
    if (fresh) {
      head[VALUE] = value;
      head[MAX] = bounded ? value : -1;
      head[FLAGS] = nSlots > 0 ? kTracked : 0;
      head[NSLOTS] = nSlots;
    }
    this.#tracked = (head[FLAGS] & kTracked) !== 0;
    this.#nSlots = head[NSLOTS];
    this.#w = new Int32Array(segment.buffer, segment.payloadOffset, kSlotsAt + 2 * this.#nSlots);
    segment.bindTo(this);
  }

  #words(): Int32Array {
    const w = this.#w;
    if (w.length === 0) throw closedError(this.constructor.name, this.#segment.name);
    return w;
  }

  /** Takes a permit if one is available right now. */
  tryAcquire(): boolean {
    const w = this.#w;
    const v = w.length === 0 ? 0 : Atomics.load(w, VALUE);
    if (v > 0) {
      if (!this.#tracked) {
        if (Atomics.compareExchange(w, VALUE, v, v - 1) === v) return true;
      } else {
        // The slot first, then the take and the count back to back (see #holderSlot).
        const at = this.#holderSlot(w);
        if (Atomics.compareExchange(w, VALUE, v, v - 1) === v) {
          Atomics.add(w, at + 1, 1);
          return true;
        }
      }
    }
    return this.#tryAcquireSlow();
  }

  #tryAcquireSlow(): boolean {
    const w = this.#words();
    for (let round = 0; round < 2; round++) {
      let v = Atomics.load(w, VALUE);
      if (v > 0) {
        const at = this.#tracked ? this.#holderSlot(w) : -1;
        while (v > 0) {
          const seen = Atomics.compareExchange(w, VALUE, v, v - 1);
          if (seen === v) {
            if (at >= 0) Atomics.add(w, at + 1, 1); // nothing between the take and the count (see #holderSlot)
            return true;
          }
          v = seen;
        }
      }
      if (!this.#tracked || this.#reclaimDead(w, false) === 0) return false;
    }
    return false;
  }

  /** This process's holder slot (claiming a free one if `claim`), or -1. */
  #slotOf(w: Int32Array, me: number, claim: boolean): number {
    const cached = this.#mySlot;
    if (cached >= 0 && Atomics.load(w, cached) === me) return cached;
    const end = kSlotsAt + 2 * this.#nSlots;
    for (let at = kSlotsAt; at < end; at += 2) {
      if (Atomics.load(w, at) === me) return (this.#mySlot = at);
    }
    if (!claim) return -1;
    for (let at = kSlotsAt; at < end; at += 2) {
      if (Atomics.compareExchange(w, at, 0, me) === 0) return (this.#mySlot = at);
    }
    return -1;
  }

  /**
   * This process's holder slot, claimed (after reclaiming the slots of dead
   * pids if the table is full) *before* a permit is taken, so that all that
   * stands between the take (a CAS of VALUE) and its count is one
   * Atomics.add in the same function: a process killed in between loses that
   * permit for good (its slot is reclaimed at count 0), and the window must
   * be as short as two adjacent atomic instructions. It was not: the count
   * was a call of #count after the take, which looked up or claimed the slot
   * first, and a process's first take ran #count, #slotOf and myPid for the
   * first time (lazy compilation: 0.1-0.3 ms). A pool worker killed by its
   * call's timeout (helper-87's trial: Semaphore(1, { trackHolders: true }),
   * `timeout: 15`) is often killed just as its task takes its first permit,
   * and SIGKILL lands up to ~0.5 ms after the parent sends it: the permit
   * was lost for good in 3 of 10 runs of 40 such kills (helper-89). A slot claimed for a take
   * that then finds no permit stays with its process at count 0, as any
   * slot of a live process does.
   */
  #holderSlot(w: Int32Array): number {
    const me = myPid();
    let at = this.#slotOf(w, me, true);
    if (at < 0) {
      this.#reclaimDead(w, true);
      at = this.#slotOf(w, me, true);
    }
    if (at < 0) {
      // A wake-up this process was given for a permit it cannot take goes on to another waiter (review helper-92).
      this.#passOn(w);
      // Not "N processes hold permits": a slot stays with its process, holding permits or none, until it exits (see the module comment).
      throw new RangeError(`${this.constructor.name}: all ${this.#nSlots} holder slots are taken by running processes that have taken permits (a process keeps its slot from its first permit until it exits, even once it has given them back); create it with a larger { maxHolders }`);
    }
    return at;
  }

  /** Uncounts `n` permits this process is about to release; throws (uncounting none) if it holds fewer. */
  #uncount(w: Int32Array, n: number): void {
    const at = this.#slotOf(w, myPid(), false);
    let c = at < 0 ? 0 : Atomics.load(w, at + 1);
    for (;;) {
      if (c < n) {
        const held = c <= 0 ? 'no permit' : `only ${c} permit${c === 1 ? '' : 's'}`;
        throw misuseError(`${this.constructor.name}.${releaseCall(n)}: this process holds ${held} (the semaphore tracks its holders)`, 'ERR_MULTIPROC_NOT_HELD');
      }
      const seen = Atomics.compareExchange(w, at + 1, c, c - n);
      if (seen === c) return;
      c = seen;
    }
  }

  /** Counts again permits uncounted for a release that then failed (the slot is still ours: only a dead pid's is reclaimed). */
  #recount(w: Int32Array, n: number): void {
    Atomics.add(w, this.#slotOf(w, myPid(), false) + 1, n);
  }

  #giveBack(w: Int32Array, n: number): void {
    Atomics.add(w, VALUE, n);
    if (Atomics.load(w, WAITERS) > 0) wake(this.#buf, this.#off, n);
  }

  /** Returns the permits of holders that died; scans at most once per slice unless forced. */
  #reclaimDead(w: Int32Array, force: boolean): number {
    const now = performance.now();
    if (!force && now - this.#lastReclaim < kSliceMs) return 0;
    this.#lastReclaim = now;
    const me = myPid();
    const end = kSlotsAt + 2 * this.#nSlots;
    let total = 0;
    for (let at = kSlotsAt; at < end; at += 2) {
      const pid = Atomics.load(w, at);
      // recentlyAlive with the segment: a pid the OS has given to a program that never mapped this semaphore is not a holder (liveness.ts).
      if (pid <= 0 || pid === me || recentlyAlive(pid, this.#segment.name)) continue;
      if (Atomics.compareExchange(w, at, pid, -1) !== pid) continue;
      const n = Atomics.exchange(w, at + 1, 0);
      Atomics.store(w, at, 0);
      if (n > 0) {
        Atomics.add(w, RECOVERED, n);
        total += n;
      }
    }
    if (total > 0) this.#giveBack(w, total);
    return total;
  }

  #passOn(w: Int32Array): void {
    if (Atomics.load(w, VALUE) > 0 && Atomics.load(w, WAITERS) > 0) wake(this.#buf, this.#off, 1);
  }

  /** Waits for a permit without blocking the event loop; false if `timeout` passed, rejects with signal.reason on abort. */
  async acquire(options?: WaitOptions): Promise<boolean> {
    const { deadline, signal } = options === undefined ? kForever : parseWait(options, `${this.constructor.name}.acquire()`);
    if (signal?.aborted) throw signal.reason;
    const w = this.#words();
    if (this.#local.empty && this.tryAcquire()) return parentOnly(true);
    const gen = forkGeneration();
    const { turn, ready } = this.#local.enter(deadline, signal);
    try {
      const go = await ready;
      if (forkGeneration() !== gen) await kInheritedCall;
      if (!go) return false;
      return await acquireAsync(this.#contended(w, deadline), this.#buf, this.#off, signal);
    } finally {
      this.#local.leave(turn);
    }
  }

  /**
   * The contended acquire of both forms (see acquireBlocking/acquireAsync):
   * count ourselves a waiter, sleep on VALUE while it is 0 for a slice, and
   * after a slice that ran out reclaim the permits of dead holders. The
   * async form runs only at the head of this process's local queue.
   */
  *#contended(w: Int32Array, deadline: number): AcquireSteps {
    for (;;) {
      if (w.length === 0) throw closedError(this.constructor.name, this.#segment.name);
      if (this.tryAcquire()) return true;
      const left = remaining(deadline);
      if (left === 0) {
        this.#passOn(w);
        return false;
      }
      Atomics.add(w, WAITERS, 1);
      let r: WaitResult;
      try {
        r = yield [0, Math.min(kSliceMs, left)];
      } catch (e) {
        if (w.length !== 0) {
          Atomics.sub(w, WAITERS, 1);
          this.#passOn(w);
        }
        throw e;
      }
      if (w.length === 0) throw closedError(this.constructor.name, this.#segment.name);
      Atomics.sub(w, WAITERS, 1);
      if (r === WaitResult.TimedOut && this.#tracked) this.#reclaimDead(w, false);
    }
  }

  /** Blocks the calling thread (and its event loop) until a permit is taken (true) or `timeoutMs` passes (false). */
  acquireSync(timeoutMs?: number): boolean {
    const deadline = deadlineFrom('timeoutMs', timeoutMs);
    const w = this.#words();
    if (this.tryAcquire()) return true;
    return acquireBlocking(this.#contended(w, deadline), this.#buf, this.#off);
  }

  /**
   * Returns `n` permits (as Python's threading.Semaphore.release(n=1)) and wakes up to `n` waiters.
   * All or nothing: a BoundedSemaphore that would go past its initial value
   * throws and changes nothing, as does a value that would pass 2^31-1.
   */
  release(n = 1): void {
    checkInteger('n', n, 1, kMaxValue);
    const w = this.#words();
    const max = w[MAX];
    if (this.#tracked) {
      // Checked first so that over-release says so rather than "holds no permit"; the CAS below decides.
      const v = Atomics.load(w, VALUE);
      if (max >= 0 && v > max - n) throw this.#overRelease(v, n, max);
      this.#uncount(w, n);
    }
    let v = Atomics.load(w, VALUE);
    for (;;) {
      // One CAS for the whole n, never an add then a take-back: in between, other processes could take permits that were never there.
      const error = max >= 0 && v > max - n ? this.#overRelease(v, n, max)
        : v > kMaxValue - n ? new RangeError(`${this.constructor.name}.${releaseCall(n)}: the value is ${v} and cannot exceed ${kMaxValue} (a 32-bit counter)`)
        : undefined;
      if (error !== undefined) {
        if (this.#tracked) this.#recount(w, n);
        throw error;
      }
      const seen = Atomics.compareExchange(w, VALUE, v, v + n);
      if (seen === v) break;
      v = seen;
    }
    if (Atomics.load(w, WAITERS) > 0) wake(this.#buf, this.#off, n);
  }

  #overRelease(v: number, n: number, max: number): Error {
    return misuseError(`BoundedSemaphore.${releaseCall(n)}: released too many times (its value is ${v}, and may not exceed ${max}, the value it was created with)`, 'ERR_MULTIPROC_RELEASED_TOO_MANY');
  }

  /** With trackHolders: permits given back so far (all processes) because their holder died. */
  get recoveredPermits(): number {
    return Atomics.load(this.#words(), RECOVERED);
  }

  /** Permits available right now (a snapshot). */
  getValue(): number {
    return Atomics.load(this.#words(), VALUE);
  }

  /** Name of the segment holding the counter. */
  get segmentName(): string {
    return this.#segment.name;
  }

  /** Releases this process's mapping; the memory goes when every process has closed it. Pending acquire()s here reject. */
  close(): void {
    closeWaking(this.#segment, [VALUE]);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [kToHandle](): Handle {
    this.#segment.retain();
    // A fixed tag, not constructor.name: a user subclass or a minifier must not change the wire format.
    return { [kHandleTag]: this instanceof BoundedSemaphore ? 'BoundedSemaphore' : 'Semaphore', name: this.#segment.name };
  }

  override toString(): string {
    return this.#w.length === 0 ? `${this.constructor.name}(closed)` : `${this.constructor.name}(value=${this.getValue()})`;
  }
}

/** How an error names the call: release() for one permit, as most calls are written. */
function releaseCall(n: number): string {
  return n === 1 ? 'release()' : `release(${n})`;
}

/** A Semaphore whose release() throws rather than raise the value past where it started. */
export class BoundedSemaphore extends Semaphore {}

function attachSemaphore(h: Handle, bounded: boolean): Semaphore {
  return attachShared(h.name, Kind.Semaphore, (seg) => {
    const max = new Int32Array(seg.buffer, seg.payloadOffset, 16)[MAX];
    if ((max >= 0) !== bounded) {
      throw new Error(`Segment '${h.name}' holds a ${max >= 0 ? 'BoundedSemaphore' : 'Semaphore'}, not a ${bounded ? 'BoundedSemaphore' : 'Semaphore'}`);
    }
    return adopt(seg, () => (bounded ? new BoundedSemaphore() : new Semaphore()));
  });
}

registerKind('Semaphore', (h) => attachSemaphore(h, false));
registerKind('BoundedSemaphore', (h) => attachSemaphore(h, true));
