/**
 * The blocking layer shared by queues and pipes: puts and gets over one Ring,
 * in three forms (Promise, *Sync, *Nowait) over one loop each, with timeouts,
 * AbortSignal, blobs for big items, and sleeping only when the ring says so.
 *
 * Sleeps are cut in slices of kSliceMs so that a peer that died without a word
 * (SIGKILL) is noticed: the owner's `idle` hook is asked, after each slice, whether
 * waiting still makes sense (a Pipe answers EOFError when the other end is gone).
 *
 * Exports: Channel (internal).
 */
import { decodeFrom, detach, discard, encode, toBlob, writeToRing, type Encoded } from './codec';
import { QueueEmptyError, QueueFullError, TimeoutError } from './errors';
import {
  kBusy, kBusyTake, kClosedRing, kConsumersWaiting, kDataSeq, kEmpty, kFull, kHead, kProducersWaiting, kSpaceSeq,
  kTail, kWaitCommit, Ring,
} from './ring-buffer';
import { pollAsync, waitAsync, waitSync, WaitResult } from './wait';
import { remaining } from './validate';

const kSliceMs = 200;
const kLockSliceMs = 5;
/** How long an empty get polls the ring before it sleeps (ms, adapted per channel between these). */
const kSpinMaxMs = 0.05;
const kSpinMinMs = 0.002;
/** Bounds of an async get's poll window (ms). */
const kPollMaxMs = 0.1;
const kPollMinMs = 0.005;
/** How long a poll may spin per event-loop turn when the writer is another process (ms). */
const kPollSpinMs = 0.01;
const kResolved = Promise.resolve();

export interface ChannelHooks {
  /** The error for a put on a closed ring, or a get on a closed and drained one. */
  closedError(): Error;
  /** Consumer side, before sleeping (deep: after a slice passed, liveness may be checked): an error ends the get. */
  readerIdle?(deep: boolean): Error | null;
  /** Producer side, likewise (e.g. the reading end of a pipe is gone). */
  writerIdle?(deep: boolean): Error | null;
  /** Whether a get may report "closed" (a queue: its closed flag; a pipe read end: never). */
  readerClosed?(): boolean;
  /**
   * Whether the ring's writer is known to run in another process: then an
   * async get that polls may spin a few µs per loop turn (nothing this event
   * loop runs can be what it waits for).
   */
  writerElsewhere?(): boolean;
}

const noop = (): void => {};

/** Resolves when `prev` settles; rejects with signal.reason if the signal fires first. */
function turn(prev: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return prev;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    void prev.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

interface Arm {
  word: number;
  expected: number;
  lock: boolean;
  slice: number;
}

type Decoder = (offset: number, length: number) => unknown;

const enum Mode {
  Nowait,
  Sync,
  Async,
}

export class Channel {
  readonly ring: Ring;
  readonly #hooks: ChannelHooks;
  readonly #data: Buffer;
  readonly #view: DataView;
  readonly #decode: Decoder;
  /** Items whose encoding is larger than this go in their own segment. */
  readonly maxInline: number;
  #spinMs = 0.02;
  /** How long an async get that finds the ring empty polls it before it sleeps (adaptive, see #adaptPoll). */
  #pollMs = kPollMaxMs / 2;
  readonly #readyFn: () => boolean;
  #pendingPuts = 0;
  #putTail: Promise<void> = kResolved;
  #pendingGets = 0;
  #getTail: Promise<void> = kResolved;

  /** Whether a pending async put/get keeps the process alive (Connection.unref() clears it). */
  keepAlive = true;

  constructor(ring: Ring, hooks: ChannelHooks, blobThreshold: number) {
    this.ring = ring;
    this.#hooks = hooks;
    this.#data = Buffer.from(ring.buffer, ring.dataOffset, ring.capacity);
    this.#view = new DataView(ring.buffer, ring.dataOffset, ring.capacity);
    const data = this.#data;
    const view = this.#view;
    this.#decode = (offset, length) => decodeFrom(data, offset, length, view);
    this.maxInline = Math.min(ring.maxPayload, blobThreshold);
    const ctl = ring.ctl;
    const words = ring.data;
    const mask = ring.capacity - 1;
    // Ready once the record at head is committed (its state word > 0): one
    // still being written is not worth a take, which would spin on it and
    // then ask whether its writer lives (and trust a "yes" for a while, so a
    // writer killed right after could keep its record looking "in progress").
    this.#readyFn = () => {
      const h = Atomics.load(ctl, kHead);
      return (h !== Atomics.load(ctl, kTail) && Atomics.load(words, (h & mask) >> 2) > 0) || ring.closed;
    };
  }

  // ---- put ---------------------------------------------------------------------

  /** One attempt: 0 when written, else kFull / kClosedRing / kBusy. */
  #tryPut(enc: Encoded): number {
    const off = this.ring.tryReserve(enc.size);
    if (off < 0) return off;
    writeToRing(enc, this.#data, this.ring.data, off);
    this.ring.commit();
    return 0;
  }

  /** Encodes before anything touches the ring, so a bad item leaves it unchanged. */
  encode(item: unknown, bytes?: Encoded): Encoded {
    const enc = bytes ?? encode(item);
    return enc.size > this.maxInline ? toBlob(enc) : enc;
  }

  putNowait(enc: Encoded): void {
    // Infinity: a nowait put still waits out another producer's few-instruction reservation.
    this.#putLoop(enc, Mode.Nowait, Infinity, undefined) as void;
  }

  putSync(enc: Encoded, deadline: number): void {
    this.#putLoop(enc, Mode.Sync, deadline, undefined) as void;
  }

  /**
   * Async puts of one process keep their call order: while one waits for
   * room, later ones queue behind it instead of racing it for the room.
   */
  put(enc: Encoded, deadline: number, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) {
      discard(enc);
      return Promise.reject(signal.reason);
    }
    if (this.#pendingPuts === 0) {
      let r: number;
      try {
        r = this.#tryPut(enc);
      } catch (e) {
        discard(enc);
        return Promise.reject(e);
      }
      if (r === 0) return kResolved;
    }
    const p = this.#putQueued(this.#putTail, detach(enc), deadline, signal);
    this.#putTail = p.then(noop, noop);
    return p;
  }

  async #putQueued(prev: Promise<void>, enc: Encoded, deadline: number, signal: AbortSignal | undefined): Promise<void> {
    this.#pendingPuts++;
    try {
      await turn(prev, signal);
      await this.#putLoop(enc, Mode.Async, deadline, signal);
    } catch (e) {
      discard(enc);
      throw e;
    } finally {
      this.#pendingPuts--;
    }
  }

  #putFailed(enc: Encoded, r: number, mode: Mode, deadline: number): Error | null {
    if (r === kClosedRing) return this.#hooks.closedError();
    const idle = this.#hooks.writerIdle?.(false) ?? null;
    if (idle !== null) return idle;
    if (mode === Mode.Nowait && r === kFull) return new QueueFullError('The queue is full');
    if (deadline !== Infinity && remaining(deadline) <= 0) {
      return new TimeoutError(`put timed out: the queue stayed full (${enc.size} bytes to write)`);
    }
    return null;
  }

  #putLoop(enc: Encoded, mode: Mode, deadline: number, signal: AbortSignal | undefined): void | Promise<void> {
    const ring = this.ring;
    for (;;) {
      let r = this.#tryPut(enc);
      if (r === 0) return;
      let err = this.#putFailed(enc, r, mode, deadline);
      if (err !== null) {
        discard(enc);
        throw err;
      }
      let arm: Arm;
      if (r === kBusy) arm = this.#armLock();
      else {
        arm = this.#armSeq(kSpaceSeq, kProducersWaiting);
        r = this.#tryPut(enc);
        if (r === 0) return;
      }
      if (mode === Mode.Async) return this.#putAsync(enc, deadline, signal, arm);
      const res = waitSync(ring.buffer, ring.byteOffset(arm.word), arm.expected, Math.min(arm.slice, remaining(deadline)));
      this.#disarm(arm);
      if (res === WaitResult.TimedOut) {
        err = this.#hooks.writerIdle?.(true) ?? null;
        if (err !== null) {
          discard(enc);
          throw err;
        }
      }
    }
  }

  /** One async sleep on an armed word (at most one slice), then disarm. */
  async #sleep(arm: Arm, deadline: number, signal: AbortSignal | undefined): Promise<WaitResult> {
    const ring = this.ring;
    try {
      return await waitAsync(ring.buffer, ring.byteOffset(arm.word), arm.expected, Math.min(arm.slice, remaining(deadline)), signal, this.keepAlive);
    } finally {
      this.#disarm(arm);
    }
  }

  async #putAsync(enc: Encoded, deadline: number, signal: AbortSignal | undefined, arm: Arm): Promise<void> {
    try {
      for (;;) {
        const res = await this.#sleep(arm, deadline, signal);
        if (res === WaitResult.TimedOut) {
          const err = this.#hooks.writerIdle?.(true) ?? null;
          if (err !== null) throw err;
        }
        let r = this.#tryPut(enc);
        if (r === 0) return;
        const err = this.#putFailed(enc, r, Mode.Async, deadline);
        if (err !== null) throw err;
        if (r === kBusy) arm = this.#armLock();
        else {
          arm = this.#armSeq(kSpaceSeq, kProducersWaiting);
          r = this.#tryPut(enc);
          if (r === 0) return;
        }
      }
    } catch (e) {
      discard(enc);
      throw e;
    }
  }

  /**
   * Before sleeping on a lock word: count ourselves so the holder wakes us.
   * Before sleeping on a sequence word: read it, then raise the side's
   * "someone sleeps" flag (the other side clears it when it wakes everyone),
   * then the caller re-checks once before the wait.
   */
  #armLock(): Arm {
    const word = this.ring.busyWord;
    Atomics.add(this.ring.ctl, word + 1, 1);
    return { word, expected: this.ring.busyValue, lock: true, slice: kLockSliceMs };
  }

  #armSeq(seqWord: number, flagWord: number): Arm {
    const ctl = this.ring.ctl;
    const expected = Atomics.load(ctl, seqWord);
    Atomics.store(ctl, flagWord, 1);
    return { word: seqWord, expected, lock: false, slice: kSliceMs };
  }

  #disarm(arm: Arm): void {
    if (arm.lock) Atomics.sub(this.ring.ctl, arm.word + 1, 1);
  }

  // ---- get ---------------------------------------------------------------------

  /** One attempt, with a short spin while the ring is empty. */
  #tryGet(decode: Decoder): unknown {
    const v = this.ring.tryTake(decode);
    if (v !== kEmpty) return v;
    // A reply is often a few µs away (a round trip through a pipe); waking
    // from a futex through a waiter thread and the event loop costs tens of
    // µs. Poll a bounded moment first.
    // Adaptive: a poll that pays off polls a bit longer next time, one that
    // does not (the other side is slow, or the CPUs are oversubscribed and
    // polling only steals time from it) halves the next one.
    const ring = this.ring;
    const until = performance.now() + this.#spinMs;
    for (let i = 1; ; i++) {
      if (ring.hasData()) {
        this.#spinMs = Math.min(kSpinMaxMs, this.#spinMs * 1.25 + 0.001);
        return ring.tryTake(decode);
      }
      if ((i & 63) === 0 && performance.now() > until) {
        this.#spinMs = Math.max(kSpinMinMs, this.#spinMs / 2);
        return v;
      }
    }
  }

  /** Why a get that found nothing must end now, if it must. */
  #getFailed(r: unknown, mode: Mode, deadline: number, deep: boolean): Error | null {
    if (r === kEmpty) {
      const closed = this.#hooks.readerClosed?.() ?? this.ring.closed;
      if (closed) return this.#hooks.closedError();
      const idle = this.#hooks.readerIdle?.(deep) ?? null;
      if (idle !== null) return idle;
    }
    if (mode === Mode.Nowait) return new QueueEmptyError('The queue is empty');
    if (deadline !== Infinity && remaining(deadline) <= 0) return new TimeoutError('get timed out: nothing arrived');
    return null;
  }

  /** Re-checks after a failure was seen: an item that landed meanwhile wins over EOF/closed. */
  #recheck(err: Error, decode: Decoder): unknown {
    const v = this.ring.tryTake(decode);
    if (v === kEmpty || v === kWaitCommit || v === kBusyTake) throw err;
    return v;
  }

  getNowait(decode: Decoder = this.#decode): unknown {
    return this.#getLoop(Mode.Nowait, 0, undefined, decode);
  }

  getSync(deadline: number, decode: Decoder = this.#decode): unknown {
    return this.#getLoop(Mode.Sync, deadline, undefined, decode);
  }

  /** Async gets of one process are served in call order (see put). */
  get(deadline: number, signal: AbortSignal | undefined, decode: Decoder = this.#decode): Promise<unknown> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#pendingGets === 0) {
      let v: unknown;
      try {
        v = this.ring.tryTake(decode);
      } catch (e) {
        return Promise.reject(e);
      }
      if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) return Promise.resolve(v);
    }
    const p = this.#getQueued(this.#getTail, deadline, signal, decode);
    this.#getTail = p.then(noop, noop);
    return p;
  }

  async #getQueued(prev: Promise<void>, deadline: number, signal: AbortSignal | undefined, decode: Decoder): Promise<unknown> {
    this.#pendingGets++;
    try {
      await turn(prev, signal);
      return await this.#getLoop(Mode.Async, deadline, signal, decode);
    } finally {
      this.#pendingGets--;
    }
  }

  #getLoop(mode: Mode, deadline: number, signal: AbortSignal | undefined, decode: Decoder): unknown {
    if (mode === Mode.Async) return this.#getAsync(deadline, signal, decode);
    const ring = this.ring;
    let deep = false;
    for (;;) {
      let v = this.#tryGet(decode);
      if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) return v;
      const err = this.#getFailed(v, mode, deadline, deep);
      if (err !== null) return this.#recheck(err, decode);
      let arm: Arm;
      if (v === kBusyTake) arm = this.#armLock();
      else {
        arm = this.#armSeq(kDataSeq, kConsumersWaiting);
        v = ring.tryTake(decode);
        if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) return v;
      }
      const res = waitSync(ring.buffer, ring.byteOffset(arm.word), arm.expected, Math.min(arm.slice, remaining(deadline)));
      this.#disarm(arm);
      deep = res === WaitResult.TimedOut;
    }
  }

  /**
   * An async get that found the ring empty: first polls it from the event
   * loop (pollAsync, for at most #pollMs, without arming the waiting flag so
   * the writer's commit makes no system call), then sleeps on the data word.
   * Each get polls at most once, so an idle reader costs one short window of
   * polling and then nothing.
   */
  async #getAsync(deadline: number, signal: AbortSignal | undefined, decode: Decoder): Promise<unknown> {
    const ring = this.ring;
    let deep = false;
    let start = -1;
    let caught = true;
    for (;;) {
      let v = ring.tryTake(decode);
      if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) {
        if (start >= 0) this.#adaptPoll(start, caught);
        return v;
      }
      const err = this.#getFailed(v, Mode.Async, deadline, deep);
      if (err !== null) return this.#recheck(err, decode);
      if (start < 0) {
        start = performance.now();
        if (v === kEmpty) {
          const spin = this.#hooks.writerElsewhere?.() === true ? kPollSpinMs : 0;
          const found = await pollAsync(this.#readyFn, Math.min(this.#pollMs, remaining(deadline)), spin);
          if (signal?.aborted) throw signal.reason;
          caught = found;
          continue;
        }
      }
      caught = false;
      let arm: Arm;
      if (v === kBusyTake) arm = this.#armLock();
      else {
        arm = this.#armSeq(kDataSeq, kConsumersWaiting);
        v = ring.tryTake(decode);
        if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) {
          this.#adaptPoll(start, false);
          return v;
        }
      }
      const res = await this.#sleep(arm, deadline, signal);
      deep = res === WaitResult.TimedOut;
    }
  }

  /**
   * Sizes the next poll window from how long this get waited. A poll that
   * paid off may run a little longer next time; an item that came after the
   * window closed but within kPollMaxMs would have been caught by a longer
   * one; one that came later means the other side is slow or busy, where
   * polling only burns CPU (and on oversubscribed CPUs steals time from the
   * very process it waits for), so the window halves. Bounded by kPollMaxMs:
   * about what a sleep and wake-up cost, so polling never spends much more
   * CPU than the wake-ups it saves.
   */
  #adaptPoll(start: number, caught: boolean): void {
    const waited = performance.now() - start;
    if (caught) this.#pollMs = Math.min(kPollMaxMs, Math.max(this.#pollMs, 2 * waited));
    else if (waited <= kPollMaxMs) this.#pollMs = Math.min(kPollMaxMs, this.#pollMs * 2);
    else this.#pollMs = Math.max(kPollMinMs, this.#pollMs / 2);
  }

  /** Whether a get would find something (or the end) right now; no state changes. */
  ready(): boolean {
    return this.ring.hasData();
  }

  /** A decoder over this ring's data area built from `fn` (e.g. raw bytes for recvBytes). */
  decoder(fn: (data: Buffer, offset: number, length: number) => unknown): Decoder {
    const data = this.#data;
    return (offset, length) => fn(data, offset, length);
  }
}
