/**
 * Event: a flag in shared memory that waiters sleep on.
 *
 * Payload (Int32 words from the segment's payload offset; 64 bytes):
 *
 *   word  byte  field    meaning
 *   0     0     STATE    gen << 1 | flag: flag 1 set, 0 clear; gen (31 bits,
 *                        wrapping) bumped by every set() that sets the flag.
 *                        Waiters sleep on this word
 *   1     4     WAITERS  threads sleeping or about to sleep on STATE
 *   2-15  8     reserved
 *
 * A waiter notes STATE, and returns true once STATE is no longer what it
 * noted. It sleeps only on a value whose flag is clear, and the flag is set
 * only together with a new gen, so STATE moves exactly when some set() has
 * happened since: a set() followed at once by clear() (a pulse) wakes every
 * waiter that was there, as Python's threading.Event does. clear() leaves gen alone:
 * it only has to make later waiters wait, and they note STATE afresh.
 *
 * Flag and gen share one word so that set() is one compare-and-swap, from
 * gen << 1 to (gen + 1) << 1 | 1: a setter killed at any point has set the
 * flag and moved the word its waiters compare, or done neither. With two
 * words (layout 7), a setter killed between storing the flag and bumping the
 * generation left the flag set and its waiters asleep on a word that never
 * moved again, since every later set() found the flag set and returned.
 * A setter can still die after its swap and before its wake: its waiters'
 * word has moved, so each finds it when its thread next looks (waitAsync's
 * thread re-arms every 5 s, waitSync sleeps in kRecheckMs slices), and any
 * later set() wakes them at once (see set()).
 *
 * The gen wraps after 2^31 sets. A waiter is fooled (sleeps on) only if a
 * multiple of 2^31 set()-clear() pairs pass between two of its looks at
 * STATE; asleep and counted, it is woken by the first of them and looks
 * again at once.
 *
 * set() wakes the sleepers only if WAITERS > 0, so an Event nobody waits on
 * never calls native code. A waiter bumps WAITERS, then reads STATE, and the
 * kernel re-checks STATE before sleeping; set() swaps STATE before reading
 * WAITERS (sequentially consistent Atomics on both sides): either the
 * waiter sees the new STATE or set() sees the waiter. A wake-all cannot be
 * absorbed by a waiter that leaves.
 */
import { Kind } from '../layout';
import { registerKind, type Handle } from '../reduction';
import { attachShared, type Segment } from '../segment';
import { kHandleTag, kToHandle } from '../symbols';
import { deadlineFrom, parseWait, remaining } from '../validate';
import { waitAsync, waitSync, wake } from '../wait';
import { adopt, closedError, closeWaking, noArguments, segmentFor, type WaitOptions } from './common';

const STATE = 0;
const WAITERS = 1;
/** STATE's flag bit; the rest is the generation. */
const SET = 1;
/**
 * Longest single sleep of waitSync(): a setter killed between its swap and
 * its wake leaves nobody to wake the sleepers, who then see the moved STATE
 * only when they look again. The async waits' threads look every 5 s
 * (native/futex.cc kRearmMs); this makes the blocking ones do the same.
 */
const kRecheckMs = 5000;

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
    return (Atomics.load(this.#words(), STATE) & SET) !== 0;
  }

  /** Sets the flag and wakes every waiter in every process. */
  set(): void {
    const w = this.#words();
    let s = Atomics.load(w, STATE);
    while ((s & SET) === 0) {
      // Flag and generation in one swap: a setter killed anywhere in this
      // loop leaves either both or neither (see the header).
      const seen = Atomics.compareExchange(w, STATE, s, (s + 2) | SET);
      if (seen === s) break;
      s = seen;
    }
    // Also when the flag was set already: nobody sleeps on a STATE whose
    // flag is set, so a sleeper counted now noted an older STATE and is
    // owed a wake-up its setter may have died before giving. A waiter that
    // came after a clear() and sleeps on the current STATE wakes only to
    // look and sleep again.
    if (Atomics.load(w, WAITERS) > 0) wake(this.#buf, this.#off + STATE * 4, -1);
  }

  clear(): void {
    Atomics.and(this.#words(), STATE, ~SET);
  }

  /**
   * Resolves true once the flag is set (or was set since the call began:
   * a pulse), false if the timeout passes first, as Python's
   * threading.Event.wait does. Never blocks the event loop; with
   * { signal }, aborting rejects with signal.reason.
   */
  async wait(options?: WaitOptions): Promise<boolean> {
    const { deadline, signal } = parseWait(options, 'Event.wait()');
    if (signal?.aborted) throw signal.reason;
    const w = this.#words();
    const s = Atomics.load(w, STATE);
    if ((s & SET) !== 0) return true;
    Atomics.add(w, WAITERS, 1);
    try {
      for (;;) {
        if (Atomics.load(w, STATE) !== s) return true;
        const left = remaining(deadline);
        if (left === 0) return false;
        await waitAsync(this.#buf, this.#off + STATE * 4, s, left, signal);
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
    const s = Atomics.load(w, STATE);
    if ((s & SET) !== 0) return true;
    Atomics.add(w, WAITERS, 1);
    try {
      for (;;) {
        if (Atomics.load(w, STATE) !== s) return true;
        const left = remaining(deadline);
        if (left === 0) return false;
        waitSync(this.#buf, this.#off + STATE * 4, s, Math.min(left, kRecheckMs));
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
    closeWaking(this.#segment, [STATE]);
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
