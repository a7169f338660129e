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
import { decodeFrom, detach, discard, encode, publishBlobs, readBlobs, releaseReadBlobs, scratchWordsOf, toBlob, unmapBlobs, writeToRing, type Encoded } from './codec';
import { QueueEmptyError, QueueFullError, TimeoutError } from './errors';
import {
  kBusy, kBusyTake, kClosedRing, kConsumersWaiting, kDataSeq, kEmpty, kFull, kProducersWaiting, kSpaceSeq,
  kControlBytes, kFutexSleeper, kReaderWakeId, kReaderWakePid, kReaderWakeToken, kReaderWakeUnreachable, kSocketSleeper, kWaitCommit, Ring,
} from './ring-buffer';
import { describeOwnerId } from './synchronize/common';
import { forkGeneration, kInheritedCall, parentOnly, pollAsync, spinUntil, waitAsync, waitSync, WaitResult, type PollPeer } from './wait';
import { noop, onAbort } from './abort';
import { remaining } from './validate';
import { disposeShared } from './reduction';
import { collectFresh, deferAdoptions, endDeferAdoptions, recordConsumed } from './segment';
import { newWakeId, waitWake, wakeTarget } from './wake-socket';

const kSliceMs = 200;
const kLockSliceMs = 5;
/** How long an empty get polls the ring before it sleeps (ms, adapted per channel between these). */
const kSpinMaxMs = 0.05;
const kSpinMinMs = 0.002;
/** Bounds of an async get's poll window (ms). */
const kPollMaxMs = 0.1;
const kPollMinMs = 0.005;
/** How long putNowait() waits for another producer's hold of the put lock (ms): a reservation takes well under a µs unless its process is descheduled or stopped. */
const kNowaitLockMs = 50;
/** How long a poll may spin per event-loop turn when the writer is another process (ms). */
const kPollSpinMs = 0.01;
const kResolved = Promise.resolve();
/**
 * Reading behind a fast writer (see Channel.#readBehind): records left
 * between this reader and the newest, the backlog that starts it, and how
 * long a get waits for the writer to get that far ahead before it takes what
 * there is and stops reading behind (ms).
 */
const kBehindRecords = 16;
const kBehindEnter = 64;
const kBehindWaitMs = 0.05;
/** Gets between two looks at the backlog while not reading behind (a power of two). */
const kBehindSample = 64;

/** How often gets of this process started reading behind a writer (tests). */
export const readBehindStats = { spells: 0 };

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
   * loop runs can be what it waits for). Without this hook: whether no put
   * was made through this channel (a queue's consumer seldom feeds it too).
   */
  writerElsewhere?(): boolean;
  /** The ring's one writer, by CPU: an async get's poll never spins on the CPU that writer needs (see pollAsync). */
  writer?: PollPeer;
  /**
   * Whether no other process (or thread) holds the ring: then a *Sync call
   * without a timeout that must wait would wait for ever (nobody else can
   * make room or add an item, and this thread is blocked), and fails instead.
   */
  soleHolder?(): boolean;
  /** How timeout errors name the calls and what holds the items: a queue's get/put/queue (the default), a pipe's recv/send/pipe. */
  words?: { get: string; put: string; holder: string };
  /**
   * Whether get() and getSync() may read behind a fast writer (see
   * Channel.#readBehind): a queue's. Not a pipe's: a pool's workers talk
   * through pipes, and there a reply is awaited as soon as it is written.
   */
  readBehind?: boolean;
}

const kQueueWords = { get: 'get', put: 'put', holder: 'queue' };


/** Async gets of this thread that found their ring empty and wait (see #getAsync). */
let waitingGets = 0;
/** The fork generation waitingGets counts in (see Channel#checkFork). */
let waitingGen = 0;

/**
 * Resolves when `prev` (an earlier call of this process, which must go first)
 * settles; rejects with signal.reason if the signal fires first, and with a
 * TimeoutError (`what` timed out) if the deadline passes first.
 */
function turn(prev: Promise<void>, signal: AbortSignal | undefined, deadline: number, what: string, ref: boolean): Promise<void> {
  if (signal === undefined && deadline === Infinity) return prev;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const off = signal === undefined ? noop : onAbort(signal, () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
    if (deadline !== Infinity) {
      timer = setTimeout(() => {
        off();
        reject(new TimeoutError(`${what} timed out: an earlier ${what} of this process was still waiting`));
      }, remaining(deadline));
      if (!ref) timer.unref(); // as the wait it stands for (Connection.unref())
    }
    void prev.then(() => {
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

/**
 * One take; the big-item segments it read are unlinked once it returns, the
 * record consumed (see releaseReadBlobs), and the shared objects it received
 * become this process's holdings only then (see deferAdoptions).
 */
function takeOne(ring: Ring, decode: Decoder): unknown {
  deferAdoptions();
  try {
    return ring.tryTake(decode);
  } finally {
    if (readBlobs.length !== 0) releaseReadBlobs();
    endDeferAdoptions();
  }
}

/** After each record of a take of several: as takeOne does after its one (see recordConsumed). */
function consumedOne(): void {
  if (readBlobs.length !== 0) releaseReadBlobs();
  recordConsumed();
}

interface Arm {
  word: number;
  expected: number;
  lock: boolean;
  slice: number;
}

type Decoder = (offset: number, length: number) => unknown;
/** One attempt at a get: the value (an item, or getMany's array), or kEmpty / kWaitCommit / kBusyTake. */
type Take = () => unknown;

const enum Mode {
  Nowait,
  Sync,
  Async,
}

let scratchBytes: Buffer = Buffer.allocUnsafeSlow(64 * 1024);
/** Set while a batch is being encoded into the scratch (a getter that calls putMany gets its own buffer). */
let scratchBusy = false;
/** A scratch buffer grown past this is dropped by the next batch, if the last one used little of it. */
const kScratchKeep = 4 << 20;
let lastBatchBytes = 0;
let scratchWords: Int32Array = new Int32Array(scratchBytes.buffer, scratchBytes.byteOffset, scratchBytes.length >>> 2);

/** What the put loops drive: one encoded item (OnePut) or a putMany batch (Batch). */
interface PutJob {
  /** Writes what fits now: 0 once everything is written, else kFull / kClosedRing / kBusy. */
  attempt(): number;
  /** Releases what the items not yet written hold (they will never be delivered). */
  discard(): void;
  /** Bytes still to write (for error messages). */
  pendingBytes(): number;
  /** The error a failed put rejects with (a batch says how many items went in). */
  annotate(e: unknown): unknown;
}

/** A signal that aborts with whichever of the two aborts first (a user's signal may be absent). */
function either(user: AbortSignal | undefined, own: AbortSignal): AbortSignal {
  return user === undefined ? own : AbortSignal.any([user, own]);
}

/** Reserves, writes and commits one encoded item: 0, or kFull / kClosedRing / kBusy. */
function writeOne(ring: Ring, data: Buffer, enc: Encoded): number {
  const words = scratchWordsOf(enc);
  if (words !== null) return ring.tryPutWords(words, enc.size);
  const off = ring.tryReserve(enc.size);
  if (off < 0) return off;
  if (enc.refs) ring.noteRefs();
  writeToRing(enc, data, ring.data, off);
  // Its blobs stop being this process's alone only now, right before the
  // commit: a writer SIGKILLed earlier (while it made or filled one, or
  // waited for room) leaves them pending, and the tracker unlinks them.
  if (enc.blobs) publishBlobs(enc);
  ring.commit();
  if (enc.blobs) unmapBlobs(enc);
  return 0;
}

class OnePut implements PutJob {
  constructor(
    readonly ring: Ring,
    readonly data: Buffer,
    readonly enc: Encoded,
  ) {}

  attempt(): number {
    return writeOne(this.ring, this.data, this.enc);
  }

  discard(): void {
    discard(this.enc);
  }

  pendingBytes(): number {
    return this.enc.size;
  }

  annotate(e: unknown): unknown {
    return e;
  }
}

/**
 * The items of one putMany, encoded up front. Small plain encodings are
 * packed back to back, 4-aligned, in one buffer (copied to the ring a word
 * at a time); the rest (Buffers, blobs, items holding shared objects) are
 * kept as Encoded. attempt() reserves as many as fit under one hold of the
 * ring's lock, writes them, and commits them in order.
 */
export class Batch implements PutJob {
  readonly #ring: Ring;
  readonly #data: Buffer;
  #bytes: Buffer;
  #words: Int32Array;
  #shared: boolean;
  #used = 0;
  readonly #lens: number[] = [];
  readonly #offs: number[] = [];
  readonly #encs: (Encoded | null)[] = [];
  /** Items written so far (they are in the ring, in order). */
  #next = 0;
  #dropped = false;
  readonly #slots: number[] = [];

  constructor(ring: Ring, data: Buffer, items: Iterable<unknown>, encodeItem: (item: unknown) => Encoded) {
    this.#ring = ring;
    this.#data = data;
    // The packed bytes live in a scratch buffer shared by every batch of this
    // thread until the batch has to wait for room (own() copies them then):
    // most batches are written at once, and allocating per batch cost more
    // than the ring writes (measured).
    this.#shared = !scratchBusy;
    if (this.#shared) {
      if (scratchBytes.length > kScratchKeep && lastBatchBytes < scratchBytes.length >>> 2) {
        // A batch that needed a big one is over: the thread does not keep it for life (review helper-69).
        scratchBytes = Buffer.allocUnsafeSlow(64 * 1024);
        scratchWords = new Int32Array(scratchBytes.buffer, scratchBytes.byteOffset, scratchBytes.length >>> 2);
      }
      this.#bytes = scratchBytes;
      this.#words = scratchWords;
    } else {
      this.#bytes = Buffer.allocUnsafeSlow(4096);
      this.#words = new Int32Array(this.#bytes.buffer, this.#bytes.byteOffset, 1024);
    }
    let used = 0;
    let i = 0;
    const outer = scratchBusy;
    scratchBusy = true;
    try {
      for (const item of items) {
        const enc = encodeItem(item);
        this.#lens.push(enc.size);
        if (enc.body === null && !enc.refs) {
          if (used + enc.size + 4 > this.#bytes.length) this.#grow(Math.max(this.#bytes.length * 2, used + enc.size + 4), used);
          // Word copies (and 4-aligned packing) both here and into the ring.
          writeToRing(enc, this.#bytes, this.#words, used);
          this.#offs.push(used);
          this.#encs.push(null);
          used += (enc.size + 3) & ~3;
          this.#used = used;
        } else {
          this.#offs.push(-1);
          this.#encs.push(detach(enc, false)); // own() copies the body if the batch has to wait
        }
        i++;
      }
      if (this.#shared) lastBatchBytes = used;
      // A top-level Buffer's bytes are referenced, not copied, until the
      // write: a later item's getter may have detached (transferred) it.
      // Found now, before anything is reserved; at the write it would leave
      // reserved records "being written" for this process's lifetime.
      for (i = 0; i < this.#encs.length; i++) {
        const enc = this.#encs[i];
        if (enc && enc.body !== null && enc.body.byteLength !== enc.size - enc.headLen) {
          throw new TypeError('its buffer was detached or transferred while later items were encoded; nothing was put');
        }
      }
    } catch (e) {
      this.discard();
      if (e instanceof TypeError) throw new TypeError(`putMany: item ${i}: ${e.message}`, { cause: e.cause ?? e });
      throw e;
    } finally {
      scratchBusy = outer;
    }
  }

  #grow(size: number, keep = 0): void {
    // (No 32-bit arithmetic on sizes: 2 GiB and up went negative; see codec ensure().)
    const bigger = Buffer.allocUnsafeSlow(Math.ceil(size / 4096) * 4096);
    const words = new Int32Array(bigger.buffer, bigger.byteOffset, bigger.length >>> 2);
    if (keep > 0) this.#bytes.copy(bigger, 0, 0, keep);
    this.#bytes = bigger;
    this.#words = words;
    if (this.#shared) {
      scratchBytes = this.#bytes;
      scratchWords = this.#words;
    }
  }

  /**
   * Before the batch waits: its own copy of the packed bytes (another batch
   * may reuse the scratch) and of the caller's Buffers (see codec detach()).
   */
  own(): this {
    for (let j = this.#next; j < this.#encs.length; j++) {
      const enc = this.#encs[j];
      if (enc) this.#encs[j] = detach(enc);
    }
    if (!this.#shared) return this;
    this.#shared = false;
    const used = this.#used;
    const mine = Buffer.allocUnsafeSlow(Math.max(4, Math.ceil(used / 4) * 4));
    this.#bytes.copy(mine, 0, 0, used);
    this.#bytes = mine;
    this.#words = new Int32Array(mine.buffer, mine.byteOffset, mine.length >>> 2);
    return this;
  }

  attempt(): number {
    const ring = this.#ring;
    const n = this.#lens.length;
    while (this.#next < n) {
      const first = this.#next;
      const k = ring.tryReserveMany(this.#lens, first, n - first, this.#slots);
      if (k < 0) return k;
      const dst = ring.data;
      const src = this.#words;
      let blobs = false;
      for (let i = 0; i < k; i++) {
        const j = first + i;
        const enc = this.#encs[j];
        const at = this.#slots[i]!;
        if (enc === null) {
          // Payloads start 8-aligned in the ring and 4-aligned here; the last
          // word may spill up to 3 bytes into the record's alignment slack.
          const from = this.#offs[j]! >> 2;
          const to = at >> 2;
          const w = (this.#lens[j]! + 3) >> 2;
          for (let x = 0; x < w; x++) dst[to + x] = src[from + x]!;
        } else {
          if (enc!.refs) ring.noteRefs();
          if (enc!.blobs) blobs = true;
          writeToRing(enc!, this.#data, dst, at);
        }
      }
      // (Only a run that carries big items' segments walks its items again.)
      if (blobs) for (let i = 0; i < k; i++) if (this.#encs[first + i]?.blobs) publishBlobs(this.#encs[first + i]!); // see writeOne
      ring.commitMany(k);
      if (blobs) for (let i = 0; i < k; i++) if (this.#encs[first + i]?.blobs) unmapBlobs(this.#encs[first + i]!);
      this.#next = first + k;
    }
    return 0;
  }

  discard(): void {
    if (this.#dropped) return;
    this.#dropped = true;
    for (let j = this.#next; j < this.#encs.length; j++) {
      const enc = this.#encs[j];
      if (enc) discard(enc);
    }
  }

  pendingBytes(): number {
    let n = 0;
    for (let j = this.#next; j < this.#lens.length; j++) n += this.#lens[j]!;
    return n;
  }

  /** Records on an Error this call created how many items of the batch went in (`itemsPut`). */
  annotate(e: unknown): unknown {
    if (e instanceof Error && Object.isExtensible(e)) (e as Error & { itemsPut?: number }).itemsPut = this.#next;
    return e;
  }
}

export class Channel {
  readonly ring: Ring;
  readonly #hooks: ChannelHooks;
  readonly #words: { get: string; put: string; holder: string };
  readonly #data: Buffer;
  readonly #view: DataView;
  readonly #decode: Decoder;
  /** Items whose encoding is larger than this go in their own segment. */
  readonly maxInline: number;
  #spinMs = 0.02;
  /** This channel's id on the process's wake socket (0: none yet). */
  #wakeId = 0;
  /** How long an async get that finds the ring empty polls it before it sleeps (adaptive, see #adaptPoll). */
  #pollMs = kPollMaxMs / 2;
  readonly #readyFn: () => boolean;
  #pendingPuts = 0;
  /** Whether this process put anything through this channel (see writerElsewhere). */
  #putsHere = false;
  #putTail: Promise<void> = kResolved;
  #pendingGets = 0;
  /** Whether an async call of this process waits here (a get, or a put for room). */
  get waiting(): boolean {
    return this.#pendingGets > 0 || this.#pendingPuts > 0;
  }
  /** The last async get (it may reject: the next one waits for it to settle). */
  #getTail: Promise<unknown> = kResolved;
  /** The fork generation the pending counts and tails above belong to. */
  #gen = forkGeneration();
  readonly #mayReadBehind: boolean;
  /** Whether gets read behind the writer now, how many may go before the backlog is looked at again, and a count of gets (see #readBehind). */
  #behind = false;
  #behindBudget = 0;
  #behindTick = 0;
  /** How long the last wait of this spell lasted (ms; see #readBehind). */
  #behindWaited = 0;

  /** Whether a pending async put/get keeps the process alive (Connection.unref() clears it). */
  keepAlive = true;

  constructor(ring: Ring, hooks: ChannelHooks, blobThreshold: number) {
    this.ring = ring;
    this.#hooks = hooks;
    this.#words = hooks.words ?? kQueueWords;
    this.#data = Buffer.from(ring.buffer, ring.dataOffset, ring.capacity);
    this.#view = new DataView(ring.buffer, ring.dataOffset, ring.capacity);
    const data = this.#data;
    const view = this.#view;
    this.#decode = (offset, length) => decodeFrom(data, offset, length, view);
    this.maxInline = Math.min(ring.maxPayload, blobThreshold);
    this.#mayReadBehind = hooks.readBehind === true;
    // Ready once the record at head is committed (its state word > 0): one
    // still being written is not worth a take, which would spin on it and
    // then ask whether its writer lives (and trust a "yes" for a while, so a
    // writer killed right after could keep its record looking "in progress").
    this.#readyFn = () => ring.committedAtHead() || ring.closed;
  }

  /**
   * In a child made by fork(), the calls this process had pending here were
   * the parent's (copied mid-wait, and dropped: wait.ts
   * forgetInheritedWaits): forget them, or every call of the child would
   * wait behind them for good.
   */
  #checkFork(): void {
    const gen = forkGeneration();
    if (this.#gen === gen) return;
    this.#gen = gen;
    this.#pendingPuts = 0;
    this.#putTail = kResolved;
    this.#pendingGets = 0;
    this.#getTail = kResolved;
    this.#putsHere = false;
    this.#wakeId = 0; // an id on the parent's wake socket
    if (waitingGen !== gen) {
      waitingGen = gen;
      waitingGets = 0;
    }
  }

  // ---- put ---------------------------------------------------------------------

  /** One attempt: 0 when written, else kFull / kClosedRing / kBusy. */
  #tryPut(enc: Encoded): number {
    return writeOne(this.ring, this.#data, enc);
  }

  /** Encodes before anything touches the ring, so a bad item leaves it unchanged. */
  encode(item: unknown, bytes?: Encoded): Encoded {
    this.#putsHere = true;
    const enc = bytes ?? encode(item);
    if (enc.size <= this.maxInline) return enc;
    try {
      return toBlob(enc);
    } catch (e) {
      discard(enc); // the big views' segments and shared objects it had taken (review helper-70)
      throw e;
    }
  }

  /**
   * Encodes every item of a putMany first (a bad one throws, naming its
   * index, and the ring is unchanged); small encodings are packed into one
   * buffer, the others kept whole.
   */
  encodeMany(items: Iterable<unknown>): Batch {
    this.#putsHere = true;
    return new Batch(this.ring, this.#data, items, (item) => this.encode(item));
  }

  putNowait(enc: Encoded): void {
    this.#checkFork();
    if (this.#pendingPuts > 0) {
      // An async put of this process waits for room ahead of this one and
      // goes first (call order): for this call the queue is full.
      discard(enc);
      throw new QueueFullError('The queue is full (an earlier put of this process is waiting for room)');
    }
    if (this.#tryPut(enc) === 0) return;
    // A nowait put still waits out another producer's few-instruction
    // reservation, but not for ever: a producer stopped (SIGSTOP, a debugger,
    // a frozen cgroup) while it held the lock blocked this thread and its
    // event loop for good (helper-55's trial).
    this.#putLoop(new OnePut(this.ring, this.#data, enc), Mode.Nowait, performance.now() + kNowaitLockMs, undefined) as void;
  }

  putSync(enc: Encoded, deadline: number): void {
    this.#checkFork();
    this.#refuseOvertaking(enc, 'Sync');
    if (this.#tryPut(enc) === 0) return;
    this.#putLoop(new OnePut(this.ring, this.#data, enc), Mode.Sync, deadline, undefined) as void;
  }

  putManySync(batch: Batch, deadline: number): void {
    this.#checkFork();
    this.#refuseOvertaking(batch, 'ManySync');
    this.#putLoop(batch, Mode.Sync, deadline, undefined) as void;
  }

  /**
   * A blocking put while an async put of this process waits (for room, or
   * for the lock another producer holds) would go first (the waiting one
   * needs this event loop to run), and one producer's items would arrive out
   * of call order (review helper-99): the blocking call is refused instead,
   * with QueueFullError as putNowait() is (it cannot put now, in turn; the
   * queue need not be full: review helper-100). Sync gets are not:
   * they take the next item ahead of this process's waiting get() calls,
   * which get the ones after it (docs/queues.md).
   */
  #refuseOvertaking(job: Encoded | Batch, form: string): void {
    if (this.#pendingPuts === 0) return;
    if (job instanceof Batch) job.discard();
    else discard(job);
    const w = this.#words;
    throw new QueueFullError(
      `An earlier ${w.put}() of this process is still waiting (for room, or for the ${w.holder}'s lock, held by another process), and ${w.put}${form}() would overtake it: the items of one producer keep their order. Await that ${w.put}() first`,
    );
  }

  /**
   * Async puts of one process keep their call order: while one waits for
   * room, later ones queue behind it instead of racing it for the room.
   */
  put(enc: Encoded, deadline: number, signal: AbortSignal | undefined): Promise<void> {
    this.#checkFork();
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
      if (r === 0) return parentOnly(kResolved) as Promise<void>; // (a promise of it, in a process that can fork)
    }
    return this.#enqueuePut(new OnePut(this.ring, this.#data, detach(enc)), deadline, signal);
  }

  /** put() for a batch: its items go in order, as many at a time as fit. */
  putMany(batch: Batch, deadline: number, signal: AbortSignal | undefined): Promise<void> {
    this.#checkFork();
    if (signal?.aborted) {
      batch.discard();
      return Promise.reject(signal.reason);
    }
    if (this.#pendingPuts === 0) {
      let r: number;
      try {
        r = batch.attempt();
      } catch (e) {
        batch.discard();
        return Promise.reject(batch.annotate(e));
      }
      if (r === 0) return parentOnly(kResolved) as Promise<void>; // (a promise of it, in a process that can fork)
    }
    return this.#enqueuePut(batch.own(), deadline, signal);
  }

  #enqueuePut(job: PutJob, deadline: number, signal: AbortSignal | undefined): Promise<void> {
    const prev = this.#putTail;
    const p = this.#putQueued(prev, job, deadline, signal);
    // A put aborted (or timed out) before its turn must not let later ones
    // overtake the earlier ones still waiting: the next turn is then prev's.
    this.#putTail = p.then(noop, () => prev);
    // The caller gets a promise of its own: the chain above handles p, and a
    // put nobody awaits that fails (the connection closed under it) must
    // still be an unhandled rejection, not an item lost without a word.
    return p.then();
  }

  async #putQueued(prev: Promise<void>, job: PutJob, deadline: number, signal: AbortSignal | undefined): Promise<void> {
    this.#pendingPuts++;
    const closed = this.localClosed('put');
    try {
      await turn(prev, signal, deadline, this.#words.put, this.keepAlive);
      await this.#putLoop(job, Mode.Async, deadline, signal, closed);
    } catch (e) {
      job.discard();
      // An abort rejects with the signal's own reason, as every call does: it
      // may be shared by many calls, so it is not ours to annotate.
      throw signal !== undefined && e === signal.reason ? e : job.annotate(e);
    } finally {
      this.#pendingPuts--;
    }
  }

  #putFailed(job: PutJob, r: number, mode: Mode, deadline: number): Error | null {
    if (r === kClosedRing) return this.#hooks.closedError();
    const idle = this.#hooks.writerIdle?.(false) ?? null;
    if (idle !== null) return idle;
    if (mode === Mode.Nowait && r === kFull) return new QueueFullError('The queue is full');
    if (mode === Mode.Nowait && remaining(deadline) <= 0) {
      return new QueueFullError(`The queue could not take the item without waiting: another producer (${describeOwnerId(this.ring.busyValue)}) has held its put lock for ${kNowaitLockMs} ms (stopped or descheduled?)`);
    }
    if (deadline !== Infinity && remaining(deadline) <= 0) {
      return new TimeoutError(`${this.#words.put} timed out: the ${this.#words.holder} stayed full (${job.pendingBytes()} bytes to write)`);
    }
    return null;
  }

  /** Sync and nowait forms throw (after discarding what was not written); the async form returns a promise. */
  #putLoop(job: PutJob, mode: Mode, deadline: number, signal: AbortSignal | undefined, closed = this.localClosed('put')): void | Promise<void> {
    const ring = this.ring;
    try {
      for (;;) {
        if (closed.aborted) throw closed.reason;
        let r = job.attempt();
        if (r === 0) return;
        let err = this.#putFailed(job, r, mode, deadline);
        if (err !== null) throw err;
        let arm: Arm;
        if (r === kBusy) arm = this.#armLock();
        else {
          arm = this.#armSeq(kSpaceSeq, kProducersWaiting);
          r = job.attempt();
          if (r === 0) return;
          // Another producer holds the lock now: its unlock, not a get, is what to wait for.
          if (r === kBusy) arm = this.#armLock();
        }
        if (mode === Mode.Async) return this.#putAsync(job, deadline, either(signal, closed), arm, closed);
        if (r !== kBusy && deadline === Infinity && this.#hooks.soleHolder?.() === true) {
          this.#disarm(arm);
          throw new QueueFullError(
            `The ${this.#words.holder} is full and no other process holds it: ${job instanceof Batch ? 'putManySync' : `${this.#words.put}Sync`}() would block this thread for ever, since only this thread could make room. ` +
              'Start the consumer before filling it, make it larger ({ capacityBytes }), or use await put() with a consumer in this process.',
          );
        }
        const res = waitSync(ring.buffer, ring.byteOffset(arm.word), arm.expected, Math.min(arm.slice, remaining(deadline)));
        this.#disarm(arm);
        if (res === WaitResult.TimedOut) {
          err = this.#hooks.writerIdle?.(true) ?? null;
          if (err !== null) throw err;
        }
      }
    } catch (e) {
      if (mode === Mode.Async) throw e; // #putQueued discards and annotates
      job.discard();
      throw job.annotate(e);
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

  async #putAsync(job: PutJob, deadline: number, signal: AbortSignal | undefined, arm: Arm, closed: AbortSignal): Promise<void> {
    for (;;) {
      const res = await this.#sleep(arm, deadline, signal);
      if (closed.aborted) throw closed.reason;
      if (res === WaitResult.TimedOut) {
        const err = this.#hooks.writerIdle?.(true) ?? null;
        if (err !== null) throw err;
      }
      let r = job.attempt();
      if (r === 0) return;
      const err = this.#putFailed(job, r, Mode.Async, deadline);
      if (err !== null) throw err;
      if (r === kBusy) arm = this.#armLock();
      else {
        arm = this.#armSeq(kSpaceSeq, kProducersWaiting);
        r = job.attempt();
        if (r === 0) return;
        if (r === kBusy) arm = this.#armLock(); // see #putLoop
      }
    }
  }

  /**
   * Another reader of this exclusive ring (two processes reading one pipe
   * end) is asleep on its wake socket: the producer can wake only one
   * registration, so this reader sleeps on the futex instead of taking that
   * one's place (it would sleep out its whole slice otherwise).
   */
  #otherSocketSleeper(me: { pid: number; token: number }): boolean {
    const ctl = this.ring.ctl;
    if ((Atomics.load(ctl, kConsumersWaiting) & kSocketSleeper) === 0) return false;
    return ctl[kReaderWakePid] !== me.pid || ctl[kReaderWakeToken] !== me.token || ctl[kReaderWakeId] !== this.#wakeId;
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
    Atomics.or(ctl, flagWord, kFutexSleeper);
    return { word: seqWord, expected, lock: false, slice: kSliceMs };
  }

  #disarm(arm: Arm): void {
    // (Not after a local close: the mapping is gone, and with it the count.)
    if (arm.lock && this.ring.ctl.length > 0) Atomics.sub(this.ring.ctl, arm.word + 1, 1);
  }

  // ---- get ---------------------------------------------------------------------

  /** One attempt, with a short spin while the ring is empty. */
  #tryGet(take: Take): unknown {
    const v = take();
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
      // Committed records only (see committedAtHead): a record still being
      // written or left by a dead writer is the take's business after the spin.
      if (ring.committedAtHead()) {
        this.#spinMs = Math.min(kSpinMaxMs, this.#spinMs * 1.25 + 0.001);
        return take();
      }
      if ((i & 63) === 0 && performance.now() > until) {
        this.#spinMs = Math.max(kSpinMinMs, this.#spinMs / 2);
        return v;
      }
    }
  }

  /**
   * After an attempt found no item (r): throws if the get must end now, else
   * returns what to wait for (kEmpty / kWaitCommit / kBusyTake), or an item
   * that landed meanwhile.
   */
  #noItem(r: unknown, take: Take, mode: Mode, deadline: number, deep: boolean): unknown {
    if (r === kEmpty && (this.#hooks.readerClosed?.() ?? this.ring.closed)) {
      r = this.#afterClosed(take);
      if (r !== kWaitCommit && r !== kBusyTake) return r;
    }
    const err = this.#getFailed(r, mode, deadline, deep);
    return err === null ? r : this.#recheck(err, take);
  }

  /**
   * The ring was found empty, then closed: the get ends only if a take made
   * once every put begun before the close has reserved (see
   * Ring.putsSettled) still finds nothing. Before, a put past its check of
   * `closed` could commit after a consumer had ended (an async iteration
   * over, get() rejected): that item was never read, its put had succeeded.
   * Otherwise what to wait for (the put lock's holder, or a record still
   * being written: the end is not known yet, so a nowait get says empty),
   * or an item.
   */
  #afterClosed(take: Take): unknown {
    if (!this.ring.putsSettled()) return kBusyTake; // busyWord: the put lock (see #armLock)
    const v = take();
    if (v === kEmpty) throw this.#hooks.closedError();
    return v;
  }

  /** Why a get that found nothing (and not the end of a closed ring: see #noItem) must end now, if it must. */
  #getFailed(r: unknown, mode: Mode, deadline: number, deep: boolean): Error | null {
    if (r === kEmpty) {
      const idle = this.#hooks.readerIdle?.(deep) ?? null;
      if (idle !== null) return idle;
    }
    if (mode === Mode.Nowait) return new QueueEmptyError('The queue is empty');
    if (deadline !== Infinity && remaining(deadline) <= 0) return new TimeoutError(`${this.#words.get} timed out: nothing arrived`);
    return null;
  }

  /** Re-checks after a failure was seen: an item that landed meanwhile wins over EOF/closed. */
  #recheck(err: Error, take: Take): unknown {
    const v = take();
    if (v === kEmpty || v === kWaitCommit || v === kBusyTake) throw err;
    return v;
  }

  /** Records that failed to decode in the middle of a getMany, in order: the next gets report them. */
  readonly #deferred: unknown[] = [];

  /**
   * Aborted when this process closes its side (a Connection's close(), a
   * Queue's dispose): the gets (puts) waiting here reject with the reason at
   * once, before the mapping goes, instead of sleeping on memory that is
   * about to be unmapped, forever. Each op keeps the one current when it
   * began; a fresh one serves ops that begin later (the same end may be
   * attached again in this process).
   */
  readonly #closedLocally = { get: new AbortController(), put: new AbortController() };
  /** Whether the current signal of that side went to an op (localClosed): else nothing can be watching it. */
  readonly #lent = { get: false, put: false };

  /** What a get ('get') or put ('put') that begins now watches for a local close. */
  localClosed(side: 'get' | 'put'): AbortSignal {
    this.#lent[side] = true;
    return this.#closedLocally[side].signal;
  }

  /**
   * Rejects this process's pending gets ('get') or puts ('put') with err().
   * A side whose signal no op ever took is left as it is, and its error is
   * never made: a Pool closes two Connections per worker (four sides), most
   * of them never read or never blocked in a send, and each error's stack
   * capture cost ~40 µs there (a CPU profile of bench/pool-start.mjs).
   */
  closeLocal(side: 'get' | 'put', err: () => Error): void {
    if (!this.#lent[side]) return;
    const reason = err(); // first: had it thrown with the flag cleared, the waiters would never be woken
    this.#lent[side] = false;
    this.#closedLocally[side].abort(reason);
    this.#closedLocally[side] = new AbortController();
  }

  #takeOne(decode: Decoder): Take {
    const ring = this.ring;
    return () => takeOne(ring, decode);
  }

  #takeMany(max: number, decode: Decoder): Take {
    const ring = this.ring;
    const out: unknown[] = [];
    const failed = this.#deferred; // one stable FIFO: an error is never dropped or overwritten
    return () => {
      let r;
      deferAdoptions();
      try {
        r = ring.tryTakeMany(decode, max, out, failed, consumedOne);
      } finally {
        if (readBlobs.length !== 0) releaseReadBlobs();
        endDeferAdoptions();
      }
      return typeof r === 'number' ? out : r;
    };
  }

  #throwDeferred(): void {
    throw this.#deferred.shift();
  }

  getNowait(decode: Decoder = this.#decode): unknown {
    this.#checkFork();
    if (this.#deferred.length > 0) this.#throwDeferred();
    // An async get of this process waits ahead of this one and takes the next item first.
    if (this.#pendingGets > 0) throw new QueueEmptyError('The queue is empty (an earlier get of this process is waiting for the next item)');
    return this.#getLoop(Mode.Nowait, 0, undefined, this.#takeOne(decode));
  }

  /**
   * For a ring nobody will read again (its last holder is letting it go, or
   * its reader died): takes every record left and gives back what they hold,
   * the big-item segments and the shared objects attached afresh for them.
   * One this process already held (received earlier, and cached) is the
   * user's, and stays open. Left there, a pipe end inside an item kept its
   * peer from ever seeing EOF, and each segment lived until the tree ended.
   */
  giveBackUnread(): void {
    // Nothing to give back from a ring that never carried a reference: its
    // items are not decoded for nothing (200k of them took a dispose 1 s; review helper-69).
    if (this.ring.ctl.length === 0 || !this.ring.carriedRefs()) return;
    const take = this.#takeOne(this.#decode);
    for (;;) {
      const fresh: object[] = [];
      try {
        // Not getNowait(): a get() of this process still pending (its promise
        // rejected by the release, not yet settled) made it give back nothing.
        collectFresh(fresh, () => this.#getLoop(Mode.Nowait, 0, undefined, take));
      } catch {
        return; // empty (or a record that cannot be read: nothing more to give back from it)
      } finally {
        for (const obj of fresh) disposeShared(obj);
      }
    }
  }

  /**
   * Before a get() or getSync() takes: a reader that keeps up with a fast
   * writer reads each record just after it is written, and so keeps pulling
   * the lines the writer is about to write (its next record, the word past
   * it) to its own CPU. The writer then waits for them at each put: 15–25% of
   * its time in a one-way stream, whatever the fences (BENCHMARKS.md,
   * twenty-ninth session). So once a get finds a backlog of kBehindEnter
   * records (a look every kBehindSample gets, at the writer's line), this
   * reader stays kBehindRecords behind the newest record: it takes
   * the backlog less that many without looking again, then waits (a spin of
   * at most kBehindWaitMs, the deadline's if sooner, reading only the
   * counts) for the writer to get twice that far ahead. A writer that does
   * not, or a close, ends it: the get takes what there is. An item is so
   * held back at most kBehindWaitMs; a round trip or an occasional item
   * never builds the backlog, and is read at once.
   */
  #readBehind(deadline: number): void {
    const ring = this.ring;
    if (!this.#behind) {
      if ((++this.#behindTick & (kBehindSample - 1)) !== 0 || ring.backlog() < kBehindEnter) return;
      this.#behind = true;
      readBehindStats.spells++;
      this.#behindWaited = 0;
    } else if (this.#behindBudget > 0) {
      this.#behindBudget--;
      return;
    }
    // The records a wait leaves behind were waited for in it already, and
    // this wait takes them all (one that ends takes at least 16, one that
    // runs out all): the two together stay within kBehindWaitMs, which so
    // bounds what an item is held back (two full waits held one ~100 µs).
    const start = performance.now();
    const until = Math.min(start + kBehindWaitMs - this.#behindWaited, deadline);
    for (;;) {
      const n = ring.backlog();
      if (n >= 2 * kBehindRecords) {
        this.#behindBudget = n - kBehindRecords - 1; // this get takes one of them
        this.#behindWaited = performance.now() - start;
        return;
      }
      if (ring.closed || performance.now() >= until) {
        this.#behind = false;
        return;
      }
      // A µs between looks: each one reads the line the writer stores its counts in.
      const next = performance.now() + 0.001;
      while (performance.now() < next);
    }
  }

  getSync(deadline: number, decode: Decoder = this.#decode): unknown {
    this.#checkFork();
    if (this.#deferred.length > 0) this.#throwDeferred();
    if (this.#mayReadBehind) this.#readBehind(deadline);
    const v = takeOne(this.ring, decode);
    if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) return v;
    return this.#getLoop(Mode.Sync, deadline, undefined, this.#takeOne(decode));
  }

  /** getMany() that blocks: waits for at least one item, then takes up to `max` of those ready. */
  getManySync(max: number, deadline: number): unknown[] {
    this.#checkFork();
    if (this.#deferred.length > 0) this.#throwDeferred();
    return this.#getLoop(Mode.Sync, deadline, undefined, this.#takeMany(max, this.#decode), 'getManySync') as unknown[];
  }

  /** Up to `max` items ready now; [] when none is (QueueClosedError-like once closed and drained). */
  getManyNowait(max: number): unknown[] {
    this.#checkFork();
    if (this.#deferred.length > 0) this.#throwDeferred();
    if (this.#pendingGets > 0) return []; // see getNowait
    const take = this.#takeMany(max, this.#decode);
    let v = take();
    if (v === kEmpty && (this.#hooks.readerClosed?.() ?? this.ring.closed)) v = this.#afterClosed(take);
    return Array.isArray(v) ? v : [];
  }

  /** Async gets of one process are served in call order (see put). */
  get(deadline: number, signal: AbortSignal | undefined, decode: Decoder = this.#decode): Promise<unknown> {
    this.#checkFork();
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#pendingGets === 0) {
      if (this.#deferred.length > 0) {
        try {
          this.#throwDeferred();
        } catch (e) {
          return Promise.reject(e);
        }
      }
      // (Its wait blocks this event loop for at most kBehindWaitMs.)
      if (this.#mayReadBehind) this.#readBehind(deadline);
      let v: unknown;
      try {
        v = takeOne(this.ring, decode);
      } catch (e) {
        return Promise.reject(e);
      }
      if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) return Promise.resolve(parentOnly(v));
    }
    return this.#enqueueGet(this.#takeOne(decode), deadline, signal);
  }

  getMany(max: number, deadline: number, signal: AbortSignal | undefined): Promise<unknown[]> {
    this.#checkFork();
    if (signal?.aborted) return Promise.reject(signal.reason);
    const take = this.#takeMany(max, this.#decode);
    if (this.#pendingGets === 0) {
      let v: unknown;
      try {
        if (this.#deferred.length > 0) this.#throwDeferred();
        v = take();
      } catch (e) {
        return Promise.reject(e);
      }
      if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) return Promise.resolve(parentOnly(v as unknown[]));
    }
    return this.#enqueueGet(take, deadline, signal) as Promise<unknown[]>;
  }

  /**
   * With no get of this process ahead of it, a get has no turn to wait for:
   * it runs at once, and nothing is chained for a later get unless one comes
   * while it waits (measured: ~15% fewer bytes allocated per Pipe round
   * trip).
   */
  #enqueueGet(take: Take, deadline: number, signal: AbortSignal | undefined): Promise<unknown> {
    const prev = this.#pendingGets === 0 ? null : this.#getTail;
    const p = this.#getAsync(prev, deadline, signal, take);
    // As for puts: a get that ended before its turn hands the turn back to
    // the gets before it (p rejects then; the chained promise never does).
    this.#getTail = prev === null ? p : p.then(noop, () => prev.then(noop, noop));
    return p;
  }

  /** `form`: the call, for the error that refuses to block for ever (getManySync() was named getSync() there). */
  #getLoop(mode: Mode.Sync | Mode.Nowait, deadline: number, signal: AbortSignal | undefined, take: Take, form = `${this.#words.get}Sync`): unknown {
    const ring = this.ring;
    let deep = false;
    for (;;) {
      let v = this.#tryGet(take);
      if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) return v;
      v = this.#noItem(v, take, mode, deadline, deep);
      if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) return v;
      let arm: Arm;
      if (v === kBusyTake) arm = this.#armLock();
      else {
        arm = this.#armSeq(kDataSeq, kConsumersWaiting);
        v = take();
        if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) return v;
        // Another consumer holds the lock now: it may leave items behind, and
        // only its unlock (not a commit) would say so.
        if (v === kBusyTake) arm = this.#armLock();
      }
      if (v === kEmpty && mode === Mode.Sync && deadline === Infinity && this.#hooks.soleHolder?.() === true) {
        this.#disarm(arm);
        throw new QueueEmptyError(
          `The ${this.#words.holder} is empty and no other process holds it: ${form}() would block this thread for ever, since only this thread could add an item. ` +
            'Pass the queue to the producer first, or give a timeout.',
        );
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
  async #getAsync(prev: Promise<unknown> | null, deadline: number, signal: AbortSignal | undefined, take: Take): Promise<unknown> {
    this.#pendingGets++;
    waitingGets++;
    const closed = this.localClosed('get');
    // After each await: a fork child's copy of this get stops there, before it takes the parent's item (see kInheritedCall).
    const gen = forkGeneration();
    let sleepSignal: AbortSignal | undefined;
    try {
      if (prev !== null) {
        await turn(prev.then(noop, noop), signal, deadline, this.#words.get, this.keepAlive);
        if (forkGeneration() !== gen) await kInheritedCall;
        if (this.#deferred.length > 0) this.#throwDeferred();
      }
      const ring = this.ring;
      let deep = false;
      let start = -1;
      let caught = true;
      for (;;) {
        if (closed.aborted) throw closed.reason;
        let v = take();
        if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) {
          if (start >= 0) this.#adaptPoll(start, caught);
          return parentOnly(v);
        }
        v = this.#noItem(v, take, Mode.Async, deadline, deep);
        if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) return parentOnly(v);
        if (start < 0) {
          start = performance.now();
          if (v === kEmpty) {
            const spin = (this.#hooks.writerElsewhere?.() ?? !this.#putsHere) ? kPollSpinMs : 0;
            // The writer's CPU matters only when it is another thread (spin > 0).
            const writer = spin > 0 ? this.#hooks.writer : undefined;
            writer?.tell();
            // Inline only for the one waiting get of this thread: with several
            // (a pool's result readers), one spinning on its ring would hold up
            // the others' answers (measured: -8% pool throughput).
            const found = (spin > 0 && waitingGets === 1 && spinUntil(this.#readyFn, spin, writer)) || (await pollAsync(this.#readyFn, Math.min(this.#pollMs, remaining(deadline)), spin, writer));
            if (forkGeneration() !== gen) await kInheritedCall;
            if (signal?.aborted) throw signal.reason;
            caught = found;
            continue;
          }
        }
        caught = false;
        let target = v !== kBusyTake && ring.exclusive && Atomics.load(ring.ctl, kReaderWakeUnreachable) === 0 ? wakeTarget() : null;
        if (target !== null && this.#otherSocketSleeper(target)) target = null;
        if (target !== null) {
          // The one reader of this ring sleeps on its wake socket (one hop to
          // this loop, see wake-socket.ts): publish where to send the wake-up,
          // then raise the flag, then look once more.
          const ctl = ring.ctl;
          if (this.#wakeId === 0) this.#wakeId = newWakeId();
          ctl[kReaderWakePid] = target.pid;
          ctl[kReaderWakeToken] = target.token;
          ctl[kReaderWakeId] = this.#wakeId;
          Atomics.or(ctl, kConsumersWaiting, kSocketSleeper);
          v = take();
          if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) {
            this.#adaptPoll(start, false);
            return parentOnly(v);
          }
          sleepSignal ??= either(signal, closed);
          const res = await waitWake(this.#wakeId, Math.min(kSliceMs, remaining(deadline)), sleepSignal, this.keepAlive);
          if (forkGeneration() !== gen) await kInheritedCall;
          deep = res === WaitResult.TimedOut;
          continue;
        }
        let arm: Arm;
        if (v === kBusyTake) arm = this.#armLock();
        else {
          arm = this.#armSeq(kDataSeq, kConsumersWaiting);
          v = take();
          if (v !== kEmpty && v !== kWaitCommit && v !== kBusyTake) {
            this.#adaptPoll(start, false);
            return parentOnly(v);
          }
          if (v === kBusyTake) arm = this.#armLock(); // see #getLoop
        }
        sleepSignal ??= either(signal, closed);
        const res = await this.#sleep(arm, deadline, sleepSignal);
        if (forkGeneration() !== gen) await kInheritedCall;
        deep = res === WaitResult.TimedOut;
      }
    } finally {
      this.#pendingGets--;
      waitingGets--;
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

  /** Whether a get would find an item right now (see Ring.hasData: a dead writer's record at head is skipped). */
  ready(): boolean {
    return this.ring.hasData();
  }

  /** A decoder over this ring's data area built from `fn` (e.g. raw bytes for recvBytes). */
  decoder(fn: (data: Buffer, offset: number, length: number) => unknown): Decoder {
    const data = this.#data;
    return (offset, length) => fn(data, offset, length);
  }
}

/**
 * Runs the put and get paths once over a private ring (no shared memory, no
 * waits), with messages shaped like Pool's: the forkserver's warmUp calls it
 * so that forked children inherit compiled code and the codec's key-list
 * cache instead of compiling them on their first message (measured: a pool
 * worker's first send took ~4 ms cold).
 */
export async function rehearseChannel(): Promise<void> {
  const capacity = 4096;
  const buffer = new ArrayBuffer(kControlBytes + capacity);
  Ring.init(buffer, 0, capacity, 0);
  const ch = new Channel(new Ring(buffer, 0, kControlBytes, capacity, true), { closedError: () => new Error('closed') }, capacity);
  const msgs: unknown[] = [
    { t: 'ready', pid: 1 },
    { t: 'job', id: 1, fn: 1, star: false, items: [1, 'a', { x: 1.5 }], def: { kind: 'source', source: 'x => x' } },
    { t: 'job', id: 2, fn: 1, star: false, items: [2] },
    // A module task's definition (TaskTarget): its key list's decoder is
    // compiled here once (codec compileBuild), not in each forked worker on
    // its first job.
    // (A URL as long as real ones: strings over 20 bytes take another decoder
    // path, which a worker's first job otherwise deoptimized readValue on.)
    { t: 'job', id: 3, fn: 2, star: false, items: [3], def: { kind: 'module', url: 'file:///home/user/project/lib/tasks.mjs', export: 'default' } },
    { t: 'done', id: 1, ok: true, values: [2, 'b', null], ms: 0.5, rss: 1 },
    { t: 'done', id: 2, ok: true, values: [4], ms: 0.5 },
    { t: 'stop' },
  ];
  for (const m of msgs) {
    ch.putSync(ch.encode(m), Infinity);
    ch.getSync(Infinity);
    await ch.put(ch.encode(m), Infinity, undefined);
    await ch.get(Infinity, undefined);
  }
}
