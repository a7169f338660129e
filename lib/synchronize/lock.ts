/**
 * Lock and RLock: a futex mutex whose word names its owner.
 *
 * Payload (Int32 words from the segment's payload offset; 64 bytes):
 *
 *   word  byte  field     meaning
 *   0     0     STATE     0 = free; else the owner's id (< 2^30): its pid, or on
 *                          Linux a worker thread's kernel thread id (common.ts
 *                          myOwnerId), with kTakingOver (2^30) beside it while
 *                          a takeover writes TID
 *   1     4     TID       owner's worker_threads threadId + 1 (0 while free)
 *   2     8     COUNT     RLock recursion depth (owner-only; unused by Lock)
 *   3     12    SLEEPERS  threads sleeping, or about to sleep, on STATE
 *   4     16    DEATHS    times an acquirer took the lock over from a dead owner
 *   5-15  20    reserved
 *
 * Acquire: one compareExchange STATE 0 -> pid, then a plain store of TID.
 * Release: check owner (pid and TID), TID = 0, store STATE = 0, and only if
 * SLEEPERS > 0 a native wake of one sleeper. Clearing TID *before* freeing
 * STATE means a thread of the same process can never read its own thread
 * id next to somebody else's acquisition of the word.
 *
 * Contention: a waiter counts itself in SLEEPERS, then sleeps on STATE
 * expecting the owner's pid it saw. The releaser stores STATE before it
 * reads SLEEPERS and the sleeper counts itself before the kernel compares
 * STATE (all sequentially consistent): either the releaser sees the sleeper
 * or the kernel sees the changed word. An exact count rather than Drepper's
 * WAITERS bit in the word (which stays set after contention until the lock
 * is free of waiters again) spares a wake syscall on most releases under
 * contention. The async waiters of one process line up in a LocalQueue
 * (common.ts) and only its head sleeps.
 *
 * Holder death: a waiter sleeps at most kSliceMs at a time. When a slice
 * times out and the word is unchanged, it asks the OS whether the owner pid
 * still runs (kill(pid, 0), not a zombie, and on Linux maps this segment: see
 * liveness.ts holderAlive). If not, it
 * CASes the word from the dead owner's value to its own: exactly one waiter
 * wins, gets the lock, and sees `ownerDied === true`; DEATHS counts these
 * recoveries for every process. A pid in the word rather than a robust futex
 * list (Linux-only, needs the kernel's cooperation per thread) or a pidfd
 * (Linux-only, per waiter) works the same on macOS. A recycled pid (the
 * holder died and the OS gave its number to another program) is told apart
 * on Linux: a live pid that does not map this lock's segment is not its
 * holder (liveness.ts). Limits: on macOS a recycled pid looks alive (pid
 * reuse within a lock's lifetime is rare but possible). A worker thread that
 * ends holding the lock (worker.terminate(), or its code done) while its
 * process lives is detected on Linux, where the word names the thread's
 * kernel thread id; not on macOS, where it names the process.
 */
import { holderAlive } from '../liveness';
import { WaitResult } from '../native';
import { misuseError } from '../errors';
import { Kind } from '../layout';
import { registerKind, type Handle } from '../reduction';
import { attachShared, type Segment } from '../segment';
import { kHandleTag, kToHandle } from '../symbols';
import { deadlineFrom, kForever, parseWait, remaining } from '../validate';
import { forkGeneration, kInheritedCall, parentOnly, wake } from '../wait';
import {
  Acquirable, acquireAsync, acquireBlocking, adopt, closedError, type AcquireSteps, closeWaking, kAcquireRestore, LocalQueue, kIsMine, kPidMask, kReleaseSave, kSliceMs, kTid,
  describeOwnerId, myOwnerId, noArguments, ofThisProcess, segmentFor, type WaitOptions,
} from './common';

const STATE = 0;
const TID = 1;
const COUNT = 2;
const SLEEPERS = 3;
const DEATHS = 4;
/** x86: a plain load after an Atomics.store is ordered after it (see release()). */
const kPlainAfterStore = process.arch === 'x64' || process.arch === 'ia32';
/**
 * Set in the word, beside the taker's pid, while a takeover from a dead owner
 * is under way. The dead owner never cleared TID, and until the taker has
 * written its own a thread of the taker's process would read its pid next
 * to the dead owner's thread id: a main thread's (1) is every process's, so
 * that process's main thread took itself for the owner (an RLock acquire
 * entered beside the taker). Ownership checks compare the whole word, so
 * the bit fails them; liveness reads the pid bits, so the lock counts as
 * held by the taker (and is taken over again if it dies there).
 */
const kTakingOver = 0x40000000;
/** Words a mutex occupies (Barrier embeds one). */
export const kMutexWords = 5;

/**
 * The mutex algorithm over four words of some segment (Lock and RLock own a
 * whole segment; Barrier embeds one for its internal state).
 */
export class Mutex {
  readonly #w: Int32Array;
  readonly #buf: ArrayBuffer;
  readonly #off: number;
  readonly #recursive: boolean;
  readonly #what: string;
  readonly #name: string;
  #lastLivenessCheck = 0;
  readonly #local = new LocalQueue();
  /** True after an acquire that took the lock over from a dead owner. */
  ownerDied = false;
  /** Held through this object (set where the word is taken, cleared by release()): see releaseIfHeldHere. */
  #heldHere = false;

  constructor(buffer: ArrayBuffer, byteOffset: number, recursive: boolean, what: string, segmentName: string) {
    this.#name = segmentName;
    this.#buf = buffer;
    this.#off = byteOffset;
    this.#w = new Int32Array(buffer, byteOffset, kMutexWords);
    this.#recursive = recursive;
    this.#what = what;
  }

  get detached(): boolean {
    return this.#w.length === 0;
  }

  tryAcquire(): boolean {
    const w = this.#w;
    if (Atomics.compareExchange(w, STATE, 0, myOwnerId()) === 0) {
      w[TID] = kTid;
      if (this.#recursive) w[COUNT] = 1;
      if (this.ownerDied) this.ownerDied = false;
      this.#heldHere = true;
      return true;
    }
    return this.#tryAcquireSlow();
  }

  #tryAcquireSlow(): boolean {
    const w = this.#w;
    const me = myOwnerId();
    const c = Atomics.load(w, STATE);
    if (c === 0) return Atomics.compareExchange(w, STATE, 0, me) === 0 && this.#won(false);
    if (this.#recursive && c === me && w[TID] === kTid) {
      w[COUNT]++;
      return true;
    }
    // A holder that died is noticed here too, at most once per slice per object,
    // so that code that only ever polls with tryAcquire() recovers as well.
    const now = performance.now();
    if (now - this.#lastLivenessCheck >= kSliceMs) {
      this.#lastLivenessCheck = now;
      if (this.#tookOver(c, me)) return this.#won(true);
    }
    return false;
  }

  /**
   * After the word is ours (died: taken over, the word then reads our pid
   * with kTakingOver set, see there): our thread id, then the plain pid.
   */
  #won(died: boolean): true {
    const w = this.#w;
    w[TID] = kTid;
    if (this.#recursive) w[COUNT] = 1;
    this.ownerDied = died;
    this.#heldHere = true;
    if (died) {
      Atomics.store(w, STATE, myOwnerId());
      Atomics.add(w, DEATHS, 1);
    }
    return true;
  }

  #ownerDead(c: number, me: number): boolean {
    const pid = c & kPidMask;
    return pid !== me && pid !== 0 && !holderAlive(pid, this.#name);
  }

  /**
   * Before the words are unmapped (Barrier.close()): gives back a hold taken
   * through this object whose user has not resumed yet (an await between the
   * take and its use). Left held, it stayed so for good wherever this
   * process still looked alive and mapped the segment (another object of
   * it): every later acquire there hung. Not for Lock/RLock, which another
   * object of the same thread may release.
   */
  releaseIfHeldHere(): void {
    if (this.#heldHere && !this.detached && this.isMine()) this.release();
  }

  /** Owned by this process and thread. */
  isMine(): boolean {
    const w = this.#w;
    return Atomics.load(w, STATE) === myOwnerId() && w[TID] === kTid;
  }

  /** Takes the lock if it is free (-1), else returns the word to sleep on (the owner's pid). */
  #contend(me: number): number {
    const w = this.#w;
    for (;;) {
      const c = Atomics.load(w, STATE);
      if (c !== 0) return c;
      if (Atomics.compareExchange(w, STATE, 0, me) === 0) return -1;
    }
  }

  /** Word `c` names a dead owner (after a slice timed out on it, or a tryAcquire's look): we took over. */
  #tookOver(c: number, me: number): boolean {
    return Atomics.load(this.#w, STATE) === c && this.#ownerDead(c, me) &&
      Atomics.compareExchange(this.#w, STATE, c, me | kTakingOver) === c;
  }

  /** A waiter leaving without the lock passes on a wake-up it may have absorbed. */
  #passOn(): void {
    if (Atomics.load(this.#w, STATE) === 0 && Atomics.load(this.#w, SLEEPERS) > 0) wake(this.#buf, this.#off, 1);
  }

  #deadlockCheck(deadline: number): void {
    if (!this.#recursive && deadline === Infinity && this.isMine()) {
      throw misuseError(`${this.#what}.acquireSync() would deadlock: this thread already holds it (use an RLock to re-enter)`, 'ERR_MULTIPROC_DEADLOCK');
    }
  }

  acquireSync(deadline: number): boolean {
    if (this.tryAcquire()) return true;
    this.#deadlockCheck(deadline);
    return acquireBlocking(this.#contended(deadline), this.#buf, this.#off);
  }

  async acquire(deadline: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (signal?.aborted) throw signal.reason;
    if (this.#local.empty && this.tryAcquire()) return parentOnly(true);
    const gen = forkGeneration();
    const { turn, ready } = this.#local.enter(deadline, signal);
    try {
      const go = await ready;
      if (forkGeneration() !== gen) await kInheritedCall;
      if (!go) return false;
      if (this.detached) throw closedError(this.#what, this.#name);
      return await acquireAsync(this.#contended(deadline), this.#buf, this.#off, signal);
    } finally {
      this.#local.leave(turn);
    }
  }

  /**
   * The contended acquire of both forms (see acquireBlocking/acquireAsync):
   * count ourselves a sleeper, sleep on the owner's value for a slice, and
   * after a slice that ran out take the lock over if its owner died. The
   * async form runs only at the head of this process's local queue.
   */
  *#contended(deadline: number): AcquireSteps {
    const me = myOwnerId();
    const w = this.#w;
    for (;;) {
      if (this.#recursive && this.isMine()) {
        // async: this thread took it while we queued behind its own call
        w[COUNT]++;
        return true;
      }
      const c = this.#contend(me);
      if (c === -1) return this.#won(false);
      const left = remaining(deadline);
      if (left === 0) {
        this.#passOn();
        return false;
      }
      let r: WaitResult;
      Atomics.add(w, SLEEPERS, 1);
      try {
        r = yield [c, Math.min(kSliceMs, left)];
      } catch (e) {
        if (!this.detached) {
          Atomics.sub(w, SLEEPERS, 1);
          this.#passOn();
        }
        throw e;
      }
      if (this.detached) throw closedError(this.#what, this.#name);
      Atomics.sub(w, SLEEPERS, 1);
      if (r === WaitResult.TimedOut) {
        if (this.#tookOver(c, me)) return this.#won(true);
        // Another process took the lock over from the owner we slept on
        // while we slept (a takeover wakes nobody): its new owner may be dead
        // already too. Checked now, not after one more slice: otherwise a
        // newcomer, whose tryAcquire() looks at once, always won, and with
        // a crashing holder every ~100 ms this waiter never got in
        // (helper-61: > 20 s).
        const now = Atomics.load(w, STATE);
        if (now !== c && now !== 0 && this.#tookOver(now, me)) return this.#won(true);
      }
    }
  }

  release(): void {
    const w = this.#w;
    // A plain read is enough: if the word holds our pid, only we can change it.
    const c = w[STATE];
    if (c !== myOwnerId() || w[TID] !== kTid) throw this.#notOwner(c);
    if (this.#recursive) {
      const depth = w[COUNT] - 1;
      if (depth > 0) {
        w[COUNT] = depth;
        return;
      }
    }
    w[TID] = 0;
    this.#heldHere = false;
    Atomics.store(w, STATE, 0);
    // The sleeper count must be read after the store (see the header). On x86
    // the store is an xchg, a full fence, and V8 keeps plain loads after an
    // Atomics call: a plain read is as safe there and skips a builtin call.
    if ((kPlainAfterStore ? w[SLEEPERS]! : Atomics.load(w, SLEEPERS)) > 0) wake(this.#buf, this.#off, 1);
  }

  #notOwner(c: number): Error {
    if (c === 0) return misuseError(`${this.#what}.release(): the ${this.#what} is not held (release() once per acquire)`, 'ERR_MULTIPROC_NOT_HELD');
    const pid = c & kPidMask;
    const who = ofThisProcess(pid) ? `another thread of this process (threadId ${this.#w[TID] - 1})` : describeOwnerId(pid);
    return misuseError(`${this.#what}.release(): the ${this.#what} is held by ${who}, not by this thread; only the owner may release it (a Semaphore(1) may be released by anyone)`, 'ERR_MULTIPROC_NOT_HELD');
  }

  /** Fully releases (whatever the recursion depth) and returns the depth to restore. */
  releaseSave(): number {
    const w = this.#w;
    const c = Atomics.load(w, STATE);
    if (c !== myOwnerId() || w[TID] !== kTid) throw this.#notOwner(c);
    const depth = this.#recursive ? w[COUNT] : 1;
    if (this.#recursive) w[COUNT] = 1;
    this.release();
    return depth;
  }

  async acquireRestore(depth: number): Promise<void> {
    await this.acquire(Infinity, undefined);
    // Added to, not set: another task of this thread may hold it meanwhile
    // (an RLock does not keep a thread's tasks apart), and its level was
    // lost, its balanced release() then refused (review helper-101).
    if (this.#recursive) this.#w[COUNT] += depth - 1;
  }

  /** Recursion depth held by this thread (0 if not the owner). */
  depth(): number {
    if (!this.isMine()) return 0;
    return this.#recursive ? this.#w[COUNT] : 1;
  }

  locked(): boolean {
    return Atomics.load(this.#w, STATE) !== 0;
  }

  ownerPid(): number {
    return Atomics.load(this.#w, STATE) & kPidMask;
  }

  deaths(): number {
    return Atomics.load(this.#w, DEATHS);
  }
}

abstract class MutexObject extends Acquirable {
  readonly #segment: Segment;
  readonly #mutex: Mutex;
  readonly #what: 'Lock' | 'RLock';

  /** @internal */
  constructor(kind: Kind.Lock | Kind.RLock) {
    super();
    const what = kind === Kind.Lock ? 'Lock' : 'RLock';
    const { segment } = segmentFor(kind, 64);
    this.#segment = segment;
    this.#what = what;
    this.#mutex = new Mutex(segment.buffer, segment.payloadOffset, kind === Kind.RLock, what, segment.name);
    segment.bindTo(this);
  }

  #m(): Mutex {
    const m = this.#mutex;
    if (m.detached) throw closedError(this.#what, this.#segment.name);
    return m;
  }

  /** Waits without blocking the event loop; false if `timeout` passed, rejects with signal.reason on abort. */
  acquire(options?: WaitOptions): Promise<boolean> {
    try {
      const { deadline, signal } = options === undefined ? kForever : parseWait(options, `${this.#what}.acquire()`);
      return this.#m().acquire(deadline, signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Blocks the calling thread, and so its event loop, until acquired (true) or `timeoutMs` passes (false). */
  acquireSync(timeoutMs?: number): boolean {
    const m = this.#m();
    if (timeoutMs === undefined) return m.acquireSync(Infinity);
    return m.acquireSync(deadlineFrom('timeoutMs', timeoutMs));
  }

  /** Acquires if free right now (pure Atomics when uncontended). */
  // The two calls of the uncontended path check for a closed lock only when
  // they fail: on a closed (detached) lock the atomics throw, or the owner
  // check does. Checking first cost ~10% of the round trip (BENCHMARKS.md).
  tryAcquire(): boolean {
    try {
      return this.#mutex.tryAcquire();
    } catch (e) {
      throw this.#mutex.detached ? closedError(this.#what, this.#segment.name) : e;
    }
  }

  /** Releases; throws unless this process and thread hold it. */
  release(): void {
    try {
      this.#mutex.release();
    } catch (e) {
      throw this.#mutex.detached ? closedError(this.#what, this.#segment.name) : e;
    }
  }

  /**
   * True when the most recent acquire through this object took the lock over
   * from a holder that had died holding it: what it protected may be half-updated.
   */
  get ownerDied(): boolean {
    return this.#mutex.ownerDied;
  }

  /** How many times, in all processes, the lock was taken over from a dead owner. */
  get ownerDeaths(): number {
    return this.#m().deaths();
  }

  protected heldDepth(): number {
    return this.#m().depth();
  }

  /** Whether any process or thread holds it (a snapshot). */
  locked(): boolean {
    return this.#m().locked();
  }

  /** Name of the segment holding the lock word. */
  get segmentName(): string {
    return this.#segment.name;
  }

  /**
   * Releases this process's mapping; the memory goes when every process has
   * closed it. Pending acquire()s of this process reject (closed).
   */
  close(): void {
    closeWaking(this.#segment, [STATE]);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [kToHandle](): Handle {
    this.#segment.retain();
    return { [kHandleTag]: this.#what, name: this.#segment.name };
  }

  /** @internal */
  [kIsMine](): boolean {
    return this.#m().isMine();
  }

  /** @internal */
  [kReleaseSave](): number {
    return this.#m().releaseSave();
  }

  /** @internal */
  [kAcquireRestore](depth: number): Promise<void> {
    return this.#m().acquireRestore(depth);
  }

  override toString(): string {
    const m = this.#mutex;
    return m.detached ? `${this.#what}(closed)` : `${this.#what}(${m.locked() ? `held by ${describeOwnerId(m.ownerPid())}` : 'free'})`;
  }
}

/**
 * A process-shared mutex (multiprocessing.Lock). Owned by one process and
 * thread at a time: two async acquire()s in one process contend; release()
 * by anyone else throws.
 */
export class Lock extends MutexObject {
  constructor() {
    noArguments(arguments.length, 'Lock', 'a timeout or signal goes to acquire({ timeout, signal })');
    super(Kind.Lock);
  }
}

/**
 * A re-entrant process-shared mutex (multiprocessing.RLock): its owner (same
 * process and thread) may acquire it again and must release it as many times.
 * The default lock of Value and SharedArray.
 */
export class RLock extends MutexObject {
  constructor() {
    noArguments(arguments.length, 'RLock', 'a timeout or signal goes to acquire({ timeout, signal })');
    super(Kind.RLock);
  }

  /** Recursion depth held by the calling thread (0 if it does not hold it). */
  get depth(): number {
    return this.heldDepth();
  }
}

registerKind('Lock', (h) => attachShared(h.name, Kind.Lock, (seg) => adopt(seg, () => new Lock())));
registerKind('RLock', (h) => attachShared(h.name, Kind.RLock, (seg) => adopt(seg, () => new RLock())));
