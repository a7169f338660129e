/**
 * Semaphore and BoundedSemaphore: a counter of permits in shared memory.
 *
 * Payload (Int32 words from the segment's payload offset; 64 bytes):
 *
 *   word  byte  field    meaning
 *   0     0     VALUE    permits available (>= 0); waiters sleep on this word while it is 0
 *   1     4     WAITERS  processes/threads sleeping or about to sleep on VALUE
 *   2     8     MAX      BoundedSemaphore: the initial value, the most VALUE may reach; -1 unbounded
 *   3-15  12    reserved
 *
 * Acquire: CAS VALUE v -> v-1 while v > 0 (no native call). Otherwise
 * WAITERS++, sleep on VALUE expecting 0, WAITERS--, retry. Release: CAS
 * VALUE up (BoundedSemaphore refuses past MAX); only when WAITERS > 0 is
 * there a native wake of one waiter. The waiter bumps WAITERS before the
 * kernel re-checks VALUE == 0 and the releaser bumps VALUE before reading
 * WAITERS (both sequentially consistent), so a wake-up is never missed. A
 * waiter leaving without a permit (timeout, abort) passes a wake-up on if
 * permits remain, in case the one it got was meant for someone else; and
 * every sleep is at most kSliceMs, so a wake-up absorbed by a waiter that
 * was killed costs the others one slice, not forever.
 *
 * Holder death: as in Python, a semaphore has no owner: acquire and release
 * may happen in different processes (a permit handed over is the normal
 * use), so a permit taken by a process that dies is not returned. Known
 * limitation; use a Lock when the holder must be recoverable.
 */
import { Kind } from '../layout';
import { registerKind, type Handle } from '../reduction';
import { attachShared, type Segment } from '../segment';
import { kHandleTag, kToHandle } from '../symbols';
import { checkInteger, remaining } from '../validate';
import { waitAsync, waitSync, wake } from '../wait';
import { Acquirable, adopt, closedError, closeWaking, isAdopting, kSliceMs, parseAcquireOptions, segmentFor, type AcquireOptions } from './common';

const VALUE = 0;
const WAITERS = 1;
const MAX = 2;
const kMaxValue = 0x7fffffff;

export class Semaphore extends Acquirable {
  readonly #segment: Segment;
  readonly #w: Int32Array;
  readonly #buf: ArrayBuffer;
  readonly #off: number;

  /** `value`: the number of permits to start with (an integer >= 0). */
  constructor(value = 1) {
    super();
    const bounded = new.target === BoundedSemaphore;
    const kind = bounded ? 'BoundedSemaphore' : 'Semaphore';
    if (!isAdopting()) checkInteger(`${kind} value`, value, 0, kMaxValue);
    const { segment, fresh } = segmentFor(Kind.Semaphore, 64);
    this.#segment = segment;
    this.#buf = segment.buffer;
    this.#off = segment.payloadOffset;
    this.#w = new Int32Array(segment.buffer, segment.payloadOffset, 16);
    if (fresh) {
      this.#w[VALUE] = value;
      this.#w[MAX] = bounded ? value : -1;
    }
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
    if (v > 0 && Atomics.compareExchange(w, VALUE, v, v - 1) === v) return true;
    return this.#tryAcquireSlow();
  }

  #tryAcquireSlow(): boolean {
    const w = this.#words();
    let v = Atomics.load(w, VALUE);
    while (v > 0) {
      const seen = Atomics.compareExchange(w, VALUE, v, v - 1);
      if (seen === v) return true;
      v = seen;
    }
    return false;
  }

  #passOn(w: Int32Array): void {
    if (Atomics.load(w, VALUE) > 0 && Atomics.load(w, WAITERS) > 0) wake(this.#buf, this.#off, 1);
  }

  /** Waits for a permit without blocking the event loop; false if `timeout` passed, rejects with signal.reason on abort. */
  async acquire(options?: AcquireOptions): Promise<boolean> {
    const { deadline, signal } = parseAcquireOptions(options);
    if (signal?.aborted) throw signal.reason;
    const w = this.#words();
    for (;;) {
      if (this.tryAcquire()) return true;
      const left = remaining(deadline);
      if (left === 0) {
        this.#passOn(w);
        return false;
      }
      Atomics.add(w, WAITERS, 1);
      try {
        await waitAsync(this.#buf, this.#off, 0, Math.min(kSliceMs, left), signal);
      } catch (e) {
        if (w.length !== 0) {
          Atomics.sub(w, WAITERS, 1);
          this.#passOn(w);
        }
        throw e;
      }
      if (w.length === 0) throw closedError(this.constructor.name, this.#segment.name);
      Atomics.sub(w, WAITERS, 1);
    }
  }

  /** Blocks the calling thread (and its event loop) until a permit is taken (true) or `timeoutMs` passes (false). */
  acquireSync(timeoutMs?: number): boolean {
    const { deadline } = parseAcquireOptions({ timeout: timeoutMs });
    const w = this.#words();
    for (;;) {
      if (this.tryAcquire()) return true;
      const left = remaining(deadline);
      if (left === 0) {
        this.#passOn(w);
        return false;
      }
      Atomics.add(w, WAITERS, 1);
      waitSync(this.#buf, this.#off, 0, Math.min(kSliceMs, left));
      Atomics.sub(w, WAITERS, 1);
    }
  }

  /** Returns a permit. A BoundedSemaphore throws if that would exceed its initial value. */
  release(): void {
    const w = this.#words();
    const max = w[MAX];
    if (max < 0) {
      if (Atomics.add(w, VALUE, 1) === kMaxValue) {
        Atomics.sub(w, VALUE, 1);
        throw new Error(`Semaphore.release(): the value cannot exceed ${kMaxValue}`);
      }
    } else {
      let v = Atomics.load(w, VALUE);
      for (;;) {
        if (v >= max) {
          throw new Error(`BoundedSemaphore.release(): released too many times (its value is already ${v}, the value it was created with)`);
        }
        const seen = Atomics.compareExchange(w, VALUE, v, v + 1);
        if (seen === v) break;
        v = seen;
      }
    }
    if (Atomics.load(w, WAITERS) > 0) wake(this.#buf, this.#off, 1);
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
    return { [kHandleTag]: this.constructor.name, name: this.#segment.name };
  }

  override toString(): string {
    return this.#w.length === 0 ? `${this.constructor.name}(closed)` : `${this.constructor.name}(value=${this.getValue()})`;
  }
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
