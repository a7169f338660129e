/**
 * Event: a flag in shared memory that waiters sleep on.
 *
 * Payload (Int32 words from the segment's payload offset; 64 bytes):
 *
 *   word  byte  field    meaning
 *   0     0     FLAG     0 clear, 1 set
 *   1     4     WAITERS  threads sleeping or about to sleep on GEN
 *   2     8     GEN      bumped by every set() that changed FLAG; waiters sleep on this word
 *   3-15  12    reserved
 *
 * A waiter notes GEN, and returns true once FLAG is 1 or GEN has moved: a
 * set() followed at once by clear() (a pulse) wakes every waiter that was
 * there, as Python's Event does. Before GEN, waiters slept on FLAG and went
 * back to sleep when they found it cleared again: they missed the pulse and
 * slept until their timeout, or for ever.
 *
 * set() stores FLAG, bumps GEN and wakes every sleeper only if WAITERS > 0,
 * so an Event nobody waits on never calls native code. A waiter bumps
 * WAITERS, then reads GEN, and the kernel re-checks GEN before sleeping;
 * set() bumps GEN before reading WAITERS (sequentially consistent Atomics on
 * both sides): either the waiter sees the new GEN or set() sees the waiter.
 * A wake-all cannot be absorbed by a waiter that leaves, so waits need no
 * slicing. A setter killed between its FLAG and its GEN (two instructions)
 * leaves its waiters asleep with FLAG set: see set().
 */
import { Kind } from '../layout';
import { registerKind, type Handle } from '../reduction';
import { attachShared, type Segment } from '../segment';
import { kHandleTag, kToHandle } from '../symbols';
import { deadlineFrom, parseWait, remaining } from '../validate';
import { waitAsync, waitSync, wake } from '../wait';
import { adopt, closedError, closeWaking, noArguments, segmentFor, type WaitOptions } from './common';

const FLAG = 0;
const WAITERS = 1;
const GEN = 2;

export type { WaitOptions } from './common';

export class Event {
  readonly #segment: Segment;
  readonly #w: Int32Array;
  readonly #buf: ArrayBuffer;
  readonly #off: number;

  constructor() {
    noArguments(arguments.length, 'Event', 'an Event starts clear; call set() to set it');
    const { segment } = segmentFor(Kind.Event, 64);
    this.#segment = segment;
    this.#buf = segment.buffer;
    this.#off = segment.payloadOffset;
    this.#w = new Int32Array(segment.buffer, segment.payloadOffset, 16);
    segment.bindTo(this);
  }

  #words(): Int32Array {
    const w = this.#w;
    if (w.length === 0) throw closedError('Event', this.#segment.name);
    return w;
  }

  isSet(): boolean {
    return Atomics.load(this.#words(), FLAG) === 1;
  }

  /** Sets the flag and wakes every waiter in every process. */
  set(): void {
    const w = this.#words();
    // FLAG first, then GEN: the futex word must change after the flag, or a
    // waiter that read the new GEN and the old FLAG slept on a GEN that no
    // longer moves (GEN first lost that wake-up; review helper-103). A
    // setter killed between the two leaves FLAG set and GEN still: its
    // waiters sleep on (review helper-101). Bumping GEN in a later set() that
    // finds FLAG set woke waiters that came after a clear() (review
    // helper-104): the real fix is FLAG and GEN in one word, a layout change
    // not made (docs/synchronize.md).
    if (Atomics.exchange(w, FLAG, 1) === 1) return;
    Atomics.add(w, GEN, 1);
    if (Atomics.load(w, WAITERS) > 0) wake(this.#buf, this.#off + GEN * 4, -1);
  }

  clear(): void {
    Atomics.store(this.#words(), FLAG, 0);
  }

  /**
   * Resolves true once the flag is set, false if the timeout passes first
   * (Python's wait returns the flag). Never blocks the event loop; with
   * { signal }, aborting rejects with signal.reason.
   */
  async wait(options?: WaitOptions): Promise<boolean> {
    const { deadline, signal } = parseWait(options, 'Event.wait()');
    if (signal?.aborted) throw signal.reason;
    const w = this.#words();
    const gen = Atomics.load(w, GEN);
    if (Atomics.load(w, FLAG) === 1) return true;
    Atomics.add(w, WAITERS, 1);
    try {
      for (;;) {
        if (Atomics.load(w, FLAG) === 1 || Atomics.load(w, GEN) !== gen) return true;
        const left = remaining(deadline);
        if (left === 0) return false;
        await waitAsync(this.#buf, this.#off + GEN * 4, gen, left, signal);
        if (w.length === 0) throw closedError('Event', this.#segment.name);
      }
    } finally {
      if (w.length !== 0) Atomics.sub(w, WAITERS, 1);
    }
  }

  /** As wait(), blocking the calling thread (and its event loop) meanwhile. */
  waitSync(timeoutMs?: number): boolean {
    const deadline = deadlineFrom('timeoutMs', timeoutMs);
    const w = this.#words();
    const gen = Atomics.load(w, GEN);
    if (Atomics.load(w, FLAG) === 1) return true;
    Atomics.add(w, WAITERS, 1);
    try {
      for (;;) {
        if (Atomics.load(w, FLAG) === 1 || Atomics.load(w, GEN) !== gen) return true;
        const left = remaining(deadline);
        if (left === 0) return false;
        waitSync(this.#buf, this.#off + GEN * 4, gen, left);
      }
    } finally {
      Atomics.sub(w, WAITERS, 1);
    }
  }

  get segmentName(): string {
    return this.#segment.name;
  }

  /** Releases this process's mapping; pending wait()s here reject. */
  close(): void {
    closeWaking(this.#segment, [GEN]);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [kToHandle](): Handle {
    this.#segment.retain();
    return { [kHandleTag]: 'Event', name: this.#segment.name };
  }

  toString(): string {
    return this.#w.length === 0 ? 'Event(closed)' : `Event(${this.isSet() ? 'set' : 'clear'})`;
  }

  /** console.log shows what toString() says. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

registerKind('Event', (h) => attachShared(h.name, Kind.Event, (seg) => adopt(seg, () => new Event())));
