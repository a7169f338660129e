/**
 * A ring of variable-length records in shared memory, usable from any number
 * of processes: the transport under Queue, JoinableQueue, SimpleQueue and
 * each direction of a Pipe. No C++ on the fast path: indices, locks and
 * commit words are plain `Atomics` on the mapping; the futex is touched only
 * by a side that has to sleep, or to wake a side that sleeps.
 *
 * Control block (Int32 words, `controlOffset` + 4*i), one 64-byte line per
 * group so that producers and consumers never write the same line on the
 * fast path:
 *
 *   line  word  name              written by           read by
 *   0     0     tail              producers (in lock)  producers; consumers only for a dead producer's record
 *         1     putCount          producers (in lock)  qsize, full checks
 *         2     putLock           producers (CAS)      producers
 *         3     putLockWaiters    producers            producers
 *         4     putJournalTail    producers (in lock)  a producer taking the lock over from a dead one
 *         5     putJournalCount   producers (in lock)  likewise
 *   1     16    head              consumers (in lock)  producers (when short of room)
 *         17    getCount          consumers (in lock)  qsize, full checks
 *         18    getLock           consumers (CAS)      consumers
 *         19    getLockWaiters    consumers            consumers
 *         20    getJournalHead    consumers (in lock)  a consumer taking the lock over from a dead one
 *         21    getJournalCount   consumers (in lock)  likewise
 *         22    skipCount         consumers (in lock)  JoinableQueue: records skipped because their producer died
 *         23    getJournalSkip    consumers (in lock)  likewise (journaled with head: see #advanceHead)
 *   2     32    dataSeq           producers, close()   consumers sleep on it
 *         33    consumersWaiting  consumers set bits   producers after a commit (clear + wake):
 *                                                      1 = futex sleepers, 2 = a reader on its wake socket
 *         34-36 reader wake addr  an exclusive ring's  producers, to send the socket wake-up
 *                                 reader (pid, token, id)
 *         37    wake unreachable  a producer whose     the reader: sleep on the futex instead
 *                                 datagram failed
 *   3     48    spaceSeq          consumers, close()   producers sleep on it
 *         49    producersWaiting  producers set 1      consumers after a take (clear + wake)
 *   4     64    capacity          creator              everyone (checked on attach)
 *         65    maxsize           creator              producers
 *         66    closed            close()              everyone
 *         67    doneCount         JoinableQueue: taskDone (+1, by CAS); unfinished = putCount - doneCount - skipCount
 *         68    joinWaiters       JoinableQueue.join
 *         69    joinSeq           bumped when the unfinished count reaches 0; join() sleeps on it
 *   5     80..  owner words       free for the owner (Pipe: 80 = CPU its writer last sent from, + 1)
 *
 * "pid" below, in the lock words and in a record's -pid, is the writer's
 * synchronize/common.ts myOwnerId(): its process's pid, or on Linux a worker
 * thread's kernel thread id, so a thread ended by worker.terminate() in the
 * middle of a put or get is a dead writer as a killed process is.
 *
 * Data area (`dataOffset`, `capacity` bytes, a power of two): records, each
 * 8-byte aligned, never split across the end of the area:
 *
 *   +0  state   int32: -pid while reserved (being written by that process),
 *                      tag(pos) > 0 once committed, where tag(pos) =
 *                      ((pos >>> 3) & 0x3fffffff) + 1
 *   +4  length  int32: payload bytes; bit 30 set = padding up to the end of the area
 *   +8  payload length bytes, then zero to 7 bytes of alignment slack
 *
 * Positions (head, tail, pos) are byte counters that wrap at 2^32; the offset
 * of a position is `pos & (capacity - 1)`, and since 2^32 is a multiple of the
 * capacity a position names the same offset on every lap.
 *
 * The protocol, folly-style:
 * - Cardinality: many producers and many consumers, a Pipe direction's too
 *   (created `exclusive`, which only says one reader may sleep on the wake
 *   socket: the locks are taken, since processes may share a pipe end).
 * - Empty when head === tail; full when a record of n bytes (plus padding to
 *   the end of the area if it does not fit before it) would leave fewer than
 *   8 free bytes (tail - head > capacity - 8), or when maxsize > 0 and
 *   putCount - getCount >= maxsize.
 * - The frontier: the state word at tail is always 0 (fresh segments are
 *   zeroed, and every reservation zeroes the word just past its record before
 *   it moves tail there; the 8 spare bytes keep that word in free space). So
 *   the word at head says everything a consumer needs: 0 = empty, -pid = being
 *   reserved or written, tag(head) = committed. Stale bytes of an earlier lap
 *   only ever lie beyond the frontier, where no consumer looks.
 * - Producers reserve under putLock (a CAS of 0 -> pid): check room and
 *   maxsize and closed, zero the new frontier, write the record's length and
 *   state = -pid, then store tail and putCount (release-ordered: see
 *   kStoresInOrder), release the lock. A padded reservation writes the
 *   padding header as -pid too and commits it
 *   only after tail covers the record behind it (a consumer must not step
 *   past the padding onto a header not yet written). The payload is then
 *   copied OUTSIDE the lock (producers copy in parallel) and published by
 *   Atomics.store(state, tag(pos)): the store is sequentially consistent, so
 *   a consumer whose Atomics.load sees the tag also sees every payload byte.
 *   A small record already encoded (at most 256 bytes, tryPutWords) is
 *   copied and committed before the unlock instead: on x86 its commit is a
 *   plain store (see kStoresInOrder: the consumer sees it after every
 *   payload byte), and the unlock's atomic store is the one fence of the put.
 *   A kill anywhere in it is one of the cases below: the record still says
 *   -pid from before tail covers it until the tag replaces that.
 * - Consumers take under getLock by the state word at head alone; they read
 *   tail only to judge a dead producer's -pid (below tail: a record to skip;
 *   at tail: a reservation that never finished, i.e. empty). The consumer
 *   decodes the payload in place (copying out what it keeps), then a store
 *   of head = pos + n frees the room (on x86 a plain one: see
 *   kStoresInOrder), then releases the lock.
 * - Only the lock holder writes tail (head). Consumers do not read tail on
 *   the fast path and producers read head only when their cached copy says
 *   there is no room, so neither side pulls the other's hot line per record
 *   (a consumer that polled tail made each of the producer's writes to line 0
 *   a cache miss).
 * - Sleeping: a side that must wait reads the sequence word, stores 1 in its
 *   "waiting" flag, re-checks, and only then futex-waits on the sequence word
 *   (expecting the value it read). The other side, after a sequentially
 *   consistent store that follows its commit / head (the commit itself, or
 *   the unlock after a plain one), reads the flag; if set, it exchanges it
 *   to 0, bumps the sequence and wakes every sleeper (Dekker: one of the two
 *   always sees the other). Clearing the flag makes that one syscall per
 *   sleep, not one per record while the sleeper is still waking up. Producers
 *   are woken once half the ring (or half of maxsize) is free, not per freed
 *   record: waking per record halves throughput (NATIVE-NOTES).
 * - Closing: close() stores `closed` without the put lock, and producers
 *   check it under the lock, in the hold that reserves. A consumer that
 *   found the ring empty and then closed reports the end only once no live
 *   process holds the put lock (putsSettled), by a take made after that:
 *   a put that read `closed` before the close has then reserved, below tail.
 *
 * Crash safety (a process SIGKILLed at any instruction):
 * - in putLock after tail moved, before putCount: the next producer to take
 *   the lock over finds tail past the journaled tail and stores the journaled
 *   count (see #repairPutCount). A JoinableQueue's unfinished count is
 *   putCount - doneCount, so the same repair keeps it right (a consumer
 *   that skips such a record takes the lock over first, see #take).
 * - in putLock before tail moved: the next producer finds the lock held by a
 *   dead pid (recentlyAlive), steals it, and rewrites the same position;
 *   whatever the dead one wrote is at or beyond tail. A consumer that meets
 *   its -pid at head === tail reads the queue as empty (it re-reads the state
 *   after tail, in case a new producer has rewritten the position since).
 * - between reserve and commit: the record says -pid. A consumer that finds
 *   it at head checks whether pid is alive; if dead (and the record is below
 *   tail), it skips the record (head += n, getCount += 1; a padding record:
 *   head to the end of the area). Committed records after it stay readable.
 * - in getLock before head moved: the next consumer steals the lock and
 *   reads the same record again (the dead one never returned it).
 * No step leaves a half-written record that a reader could take for a whole one.
 *
 * What qsize() promises: putCount - getCount read at one instant, which
 * includes records reserved but not yet committed and can be stale as soon as
 * it returns (as Python's). empty()/full() are as approximate.
 */
import { recentlyAlive } from './liveness';
import { myOwnerId } from './synchronize/common';
import { wake } from './wait';
import { sendWake } from './wake-socket';

export const kLine = 64;
/** Bytes of control block before the data area. */
export const kControlBytes = 6 * kLine;
export const kRecordHeader = 8;

// Control words (Int32 index).
export const kTail = 0;
export const kPutCount = 1;
export const kPutLock = 2;
export const kPutLockWaiters = 3;
export const kPutJournalTail = 4;
export const kPutJournalCount = 5;
export const kHead = 16;
export const kGetCount = 17;
export const kGetLock = 18;
export const kGetLockWaiters = 19;
export const kGetJournalHead = 20;
export const kGetJournalCount = 21;
/** JoinableQueue: records skipped (their producer died before committing), which nobody will ever mark done. */
export const kSkipCount = 22;
export const kGetJournalSkip = 23;
export const kDataSeq = 32;
export const kConsumersWaiting = 33;
/** An exclusive ring's reader, asleep on its wake socket: where to send the wake-up (see wake-socket.ts). */
export const kReaderWakePid = 34;
export const kReaderWakeToken = 35;
export const kReaderWakeId = 36;
/** Set by a writer whose wake datagram could not be delivered: the reader sleeps on the futex from then on. */
export const kReaderWakeUnreachable = 37;
export const kSpaceSeq = 48;
export const kProducersWaiting = 49;
export const kCapacity = 64;
export const kMaxsize = 65;
export const kClosed = 66;
/**
 * JoinableQueue: items marked done. Unfinished tasks are putCount - doneCount
 * - skipCount; a death inside a reservation or a take can leave putCount or
 * skipCount behind, and the journals repair both.
 */
export const kDoneCount = 67;
export const kJoinWaiters = 68;
/** JoinableQueue: bumped when the last unfinished task is done or skipped; join() sleeps on it. */
export const kJoinSeq = 69;
/** Set once a record holding references (shared objects, big-item segments) was written: see Channel.giveBackUnread. */
export const kCarriedRefs = 70;
export const kOwnerWords = 80;

/** Bits of kConsumersWaiting: who sleeps (a futex waiter; a reader on its wake socket). */
export const kFutexSleeper = 1;
export const kSocketSleeper = 2;

/**
 * Whether plain stores to the ring reach other CPUs in program order: x86's
 * memory model (TSO) never reorders a store with an earlier store, and V8
 * emits typed-array stores in program order (stores stay on TurboFan's
 * effect chain; Atomics calls are barriers to it). The producer's journal,
 * tail and putCount are then published without a fence: whoever reads them
 * either holds the lock after us (our unlock, an atomic store, drains them
 * first) or reads them after an atomic load of a word stored later (a
 * commit). Elsewhere (arm64) Atomics.store gives the release ordering.
 */
const kStoresInOrder = (process.arch === 'x64' || process.arch === 'ia32') && process.env.MULTIPROC_RING_ATOMIC !== '1';
// (MULTIPROC_RING_ATOMIC=1, for tests only: every such store and load
// atomic, as on other CPUs, so that a test can place a SIGKILL at one of
// them by wrapping Atomics.store (test/fixtures/queue-consumer-kill.mjs).
// The stores come in the same order either way, and crash safety rests on
// that order.)

/**
 * Whether a plain typed-array read may stand for Atomics.load: on x86 every
 * load is an acquire load in hardware, and V8 keeps a typed-array read after
 * the calls and atomic operations before it (both are on its effect chain).
 * Node 20's V8 makes Atomics.load a builtin call (~8 ns here, a plain read
 * under 1), and a put and a get made four each. Only single reads use it: a
 * read repeated in a loop (a spin, a poll) stays atomic, lest the compiler
 * hoist it. (Reads of words that only the holder of a lock writes, made
 * while holding it, need no atomic load on any CPU: the lock orders them.)
 */
const kPlainLoads = kStoresInOrder;

const kPadFlag = 0x40000000;
const kLenMask = 0x3fffffff;
const kSpins = 64;

/** Results of tryReserve / tryTake other than success. */
export const kFull = -1;
export const kClosedRing = -2;
/** A lock is held by a live process; `busyWord`/`busyPid` say what to wait on. */
export const kBusy = -3;
export const kEmpty: unique symbol = Symbol('empty');
export const kWaitCommit: unique symbol = Symbol('waitCommit');
export const kBusyTake: unique symbol = Symbol('busy');

function tag(pos: number): number {
  return ((pos >>> 3) & kLenMask) + 1;
}

export function recordBytes(len: number): number {
  return kRecordHeader + ((len + 7) & ~7);
}

export type Decode<T> = (offset: number, length: number) => T;

export class Ring {
  readonly buffer: ArrayBuffer;
  readonly ctl: Int32Array;
  readonly data: Int32Array;
  readonly capacity: number;
  readonly controlOffset: number;
  readonly dataOffset: number;
  /** A pipe direction: one reader, usually, which may sleep on its wake socket (channel.ts). Locks are taken all the same. */
  readonly exclusive: boolean;
  /** The segment the ring lives in: a pid found in a lock or record must map it to count as alive (liveness.ts). */
  readonly segmentName: string | undefined;
  /** JoinableQueue: a record skipped after its producer died counts as done (see #take). */
  joinable = false;
  readonly #mask: number;
  /** Largest payload a record can hold (a record must fit in half the ring, see padding). */
  readonly maxPayload: number;
  #maxsize: number;
  /**
   * head as this producer last read it, and tail after its last reservation.
   * (t - cachedHead) >>> 0 overstates the bytes in use, a safe answer, only
   * while tail has moved less than 2^32 bytes since the cache was taken: a
   * producer that puts rarely into a queue others keep busy would see room
   * that is not there once 4 GiB went by. So the cache is trusted only while
   * tail and putCount are where this producer left them (always so for a
   * single producer; others' puts would have to add up to exact multiples of
   * 2^32 bytes and 2^32 records at once to look like none).
   */
  #cachedHead = 0;
  #lastTail = 0;
  #lastCount = 0;
  // Per record of the current reservation run: Int32 index of its state word, and its position.
  readonly #runState: number[] = [0];
  readonly #runPos: number[] = [0];
  /** After kBusy: the control word index to wait on and the value it held. */
  busyWord = 0;
  busyValue = 0;

  constructor(buffer: ArrayBuffer, controlOffset: number, dataOffset: number, capacity: number, exclusive: boolean, segmentName?: string) {
    this.buffer = buffer;
    this.segmentName = segmentName;
    this.controlOffset = controlOffset;
    this.dataOffset = dataOffset;
    this.capacity = capacity;
    this.exclusive = exclusive;
    this.ctl = new Int32Array(buffer, controlOffset, kControlBytes / 4);
    this.data = new Int32Array(buffer, dataOffset, capacity / 4);
    this.#mask = capacity - 1;
    this.maxPayload = capacity / 2 - kRecordHeader;
    this.#maxsize = Atomics.load(this.ctl, kMaxsize);
    this.#cachedHead = Atomics.load(this.ctl, kHead);
    this.#lastTail = Atomics.load(this.ctl, kTail);
    this.#lastCount = Atomics.load(this.ctl, kPutCount);
  }

  /** Writes the configuration words of a fresh (zeroed) control block. */
  static init(buffer: ArrayBuffer, controlOffset: number, capacity: number, maxsize: number): void {
    const ctl = new Int32Array(buffer, controlOffset, kControlBytes / 4);
    ctl[kMaxsize] = maxsize;
    Atomics.store(ctl, kCapacity, capacity);
  }

  byteOffset(word: number): number {
    return this.controlOffset + word * 4;
  }

  get maxsize(): number {
    return this.#maxsize;
  }

  get closed(): boolean {
    return Atomics.load(this.ctl, kClosed) !== 0;
  }

  size(): number {
    const ctl = this.ctl;
    // A lock still held is the rare case (a few instructions, or a holder that died in them).
    if (Atomics.load(ctl, kGetLock) !== 0) this.#repairDeadLock(kGetLock);
    if (Atomics.load(ctl, kPutLock) !== 0) this.#repairDeadLock(kPutLock);
    return (Atomics.load(ctl, kPutCount) - Atomics.load(ctl, kGetCount)) | 0;
  }

  /**
   * Records put and not yet taken, by the counts alone (no repair of a count
   * a dead lock holder left off by one, as size() makes): a reader's hint.
   */
  backlog(): number {
    return (Atomics.load(this.ctl, kPutCount) - Atomics.load(this.ctl, kGetCount)) | 0;
  }

  /** Before writing a record that holds references (once per ring: a load, then no store). */
  noteRefs(): void {
    if (this.ctl[kCarriedRefs] === 0) Atomics.store(this.ctl, kCarriedRefs, 1);
  }

  carriedRefs(): boolean {
    return Atomics.load(this.ctl, kCarriedRefs) !== 0;
  }

  usedBytes(): number {
    return (Atomics.load(this.ctl, kTail) - Atomics.load(this.ctl, kHead)) >>> 0;
  }

  // ---- locks -------------------------------------------------------------

  /**
   * CAS 0 -> pid, spinning a little. A holder that is dead is replaced. When
   * a live process holds it, returns false with busyWord/busyValue set so the
   * caller can sleep on the lock word.
   */
  #lock(word: number): boolean {
    const ctl = this.ctl;
    const pid = myOwnerId();
    for (let i = 0; ; i++) {
      const held = Atomics.compareExchange(ctl, word, 0, pid);
      if (held === 0) return true;
      if (i < kSpins) continue;
      if (held !== pid && !recentlyAlive(held, this.segmentName)) {
        // Its owner died inside the critical section; the state it guards is
        // consistent at every step (see the header), so take it over.
        if (Atomics.compareExchange(ctl, word, held, pid) === held) {
          if (word === kPutLock) this.#repairPutCount();
          else if (word === kGetLock) this.#repairGetCount();
          return true;
        }
        continue;
      }
      this.busyWord = word;
      this.busyValue = held;
      return false;
    }
  }

  /**
   * putCount and tail are two words: a producer killed between storing one
   * and the other would leave qsize() off by one for good. Each reservation
   * first journals the tail it starts from and the count it will publish; if
   * tail has moved past the journaled one, the count is the journaled one
   * (idempotent when the dead producer got that far itself).
   */
  #repairPutCount(): void {
    const ctl = this.ctl;
    if (Atomics.load(ctl, kTail) !== ctl[kPutJournalTail]) ctl[kPutCount] = ctl[kPutJournalCount];
  }

  /**
   * The consumers' side of the same: head and getCount are two words, and a
   * consumer killed between its store of one and the other left qsize() one
   * too high for good, and a maxsize queue one item smaller (maxsize 1: full
   * while empty, every put waiting for ever; helper-55's trial). Each step
   * that moves head journals the head it moves from and the count it will
   * publish (see #advanceHead).
   */
  #repairGetCount(): void {
    const ctl = this.ctl;
    if (Atomics.load(ctl, kHead) === ctl[kGetJournalHead]) return;
    ctl[kGetCount] = ctl[kGetJournalCount];
    if (this.joinable) ctl[kSkipCount] = ctl[kGetJournalSkip];
  }

  /**
   * Moves head from h to nh (the get lock held), counting a record taken if
   * `counted`, and in a JoinableQueue a record skipped if `skipped` (its
   * producer died: nobody will get it, so nobody will call taskDone). The
   * skip is journaled with the take: a consumer killed between moving head
   * and counting the skip left join() waiting for good (it was a taskDone()
   * after the take).
   */
  #advanceHead(h: number, nh: number, counted: boolean, skipped = false): void {
    const ctl = this.ctl;
    const count = counted ? (ctl[kGetCount] + 1) | 0 : ctl[kGetCount];
    ctl[kGetJournalHead] = h;
    ctl[kGetJournalCount] = count;
    if (this.joinable) {
      const skips = skipped ? (ctl[kSkipCount] + 1) | 0 : ctl[kSkipCount];
      ctl[kGetJournalSkip] = skips;
      Atomics.store(ctl, kHead, nh);
      ctl[kGetCount] = count;
      Atomics.store(ctl, kSkipCount, skips);
      if (skipped && this.unfinished() <= 0) this.#joinersMayGo();
      return;
    }
    // x86: a plain store (see kStoresInOrder), after the journal's and after
    // the payload's loads (x86 never moves a store ahead of an earlier load),
    // made visible by the unlock's atomic store; the producers' waiting flag
    // is read after that unlock (tryTake), not here, where it could be read
    // before head is visible (Dekker, see Sleeping).
    if (kStoresInOrder) ctl[kHead] = nh;
    else Atomics.store(ctl, kHead, nh);
    ctl[kGetCount] = count;
  }

  /**
   * A consumer (producer) that died holding the get (put) lock, found by a
   * producer whose queue looks full by maxsize, or by qsize(): the count it
   * may have left off by one is repaired here, not only when a consumer
   * (producer) next comes (a queue whose consumers had all died read full
   * while empty).
   */
  #repairDeadLock(word: typeof kGetLock | typeof kPutLock): void {
    const held = Atomics.load(this.ctl, word);
    if (held === 0 || held === myOwnerId() || recentlyAlive(held, this.segmentName)) return;
    if (this.#lock(word)) this.#unlock(word);
  }

  #unlock(word: number): void {
    const ctl = this.ctl;
    Atomics.store(ctl, word, 0);
    // (After the store's full fence: a waiter counted before it is seen; see Sleeping.)
    if ((kPlainLoads ? ctl[word + 1]! : Atomics.load(ctl, word + 1)) > 0) wake(this.buffer, this.byteOffset(word), -1);
  }

  // ---- producer side -----------------------------------------------------

  /**
   * Reserves a record for `len` payload bytes. Returns the payload's offset in
   * the data area (bytes), or kFull / kClosedRing / kBusy. A successful
   * reservation must be followed by commit() before anything else is reserved.
   */
  tryReserve(len: number): number {
    this.#one[0] = len;
    const k = this.tryReserveMany(this.#one, 0, 1, this.#oneOffset);
    return k === 1 ? this.#oneOffset[0]! : k;
  }

  readonly #one = [0];
  readonly #oneOffset = [0];

  /**
   * Reserves records for lens[from], lens[from + 1]... (at most `max`) under
   * one hold of the lock, stopping at the first that does not fit. Writes
   * each payload's offset to offsets[0..k) and returns k >= 1, or kFull /
   * kClosedRing / kBusy when none could be reserved. commitMany(k) must
   * follow (commit() for one).
   *
   * The run is published with one store of tail and one of putCount: every
   * record in it says -pid (and the word past the last one is zeroed, the new
   * frontier) before tail moves over them, so a consumer meets nothing but
   * "being written" until each commit; a producer killed before tail moved
   * left only bytes beyond the frontier, which the next one writes over.
   */
  tryReserveMany(lens: ArrayLike<number>, from: number, max: number, offsets: number[]): number {
    if (!this.#lock(kPutLock)) return kBusy;
    try {
      return this.#reserve(lens, from, max, offsets);
    } finally {
      this.#unlock(kPutLock);
    }
  }

  /**
   * A whole small record in one hold of the put lock: reserves `len` bytes,
   * copies ceil(len / 4) words of `src` into the payload and commits it, all
   * before the unlock. Returns 0, or kFull / kClosedRing / kBusy. For
   * payloads of a few hundred bytes at most: the copy holds up other
   * producers a little, but on x86 the commit is then a plain store, made
   * visible by the unlock's: one fence less of the three a put made (lock,
   * commit, unlock), each ~10 ns alone and more when the consumer's CPU
   * holds the lines being written. Crash safety is tryReserveMany's: the
   * record says -pid from before tail covers it until its tag is stored.
   */
  tryPutWords(src: Int32Array, len: number): number {
    if (!this.#lock(kPutLock)) return kBusy;
    let k: number;
    try {
      this.#one[0] = len;
      k = this.#reserve(this.#one, 0, 1, this.#oneOffset);
      if (k === 1) {
        const d = this.data;
        const base = this.#oneOffset[0]! >> 2;
        const w = (len + 3) >> 2;
        for (let i = 0; i < w; i++) d[base + i] = src[i]!;
        if (kStoresInOrder) d[this.#runState[0]!] = tag(this.#runPos[0]!);
        else Atomics.store(d, this.#runState[0]!, tag(this.#runPos[0]!));
      }
    } finally {
      this.#unlock(kPutLock);
    }
    if (k !== 1) return k;
    // After the unlock's atomic store: the commit is visible before the flag is read (see Sleeping).
    this.#signalCommit();
    return 0;
  }

  /** tryReserveMany's work, the put lock held. */
  #reserve(lens: ArrayLike<number>, from: number, max: number, offsets: number[]): number {
    const ctl = this.ctl;
    if ((kPlainLoads ? ctl[kClosed] : Atomics.load(ctl, kClosed)) !== 0) return kClosedRing;
    const maxsize = this.#maxsize;
    if (maxsize > 0) {
      let room = maxsize - ((ctl[kPutCount] - Atomics.load(ctl, kGetCount)) | 0);
      if (room <= 0) {
        this.#repairDeadLock(kGetLock);
        room = maxsize - ((ctl[kPutCount] - Atomics.load(ctl, kGetCount)) | 0);
        if (room <= 0) return kFull;
      }
      if (max > room) max = room;
    }
    const cap = this.capacity;
    const mask = this.#mask;
    const d = this.data;
    // Not a cached pid: under the 'fork' start method a child uses this very object.
    const negPid = -myOwnerId();
    const t0 = ctl[kTail]!; // only the put lock's holder writes it
    if (t0 !== this.#lastTail || ctl[kPutCount] !== this.#lastCount) this.#cachedHead = Atomics.load(ctl, kHead);
    let t = t0;
    let padAt = -1;
    let padTag = 0;
    let k = 0;
    for (; k < max; k++) {
      const n = recordBytes(lens[from + k]!);
      const off = t & mask;
      const pad = n > cap - off ? cap - off : 0;
      // kRecordHeader more than the record: the frontier word after it must lie in free space.
      if (((t - this.#cachedHead) >>> 0) + pad + n + kRecordHeader > cap) {
        this.#cachedHead = Atomics.load(ctl, kHead);
        if (((t - this.#cachedHead) >>> 0) + pad + n + kRecordHeader > cap) break;
      }
      if (pad > 0) {
        // Reserved like a record until tail covers the record after it: a
        // consumer must not step over the pad before that record says -pid.
        d[(off >> 2) + 1] = kPadFlag;
        d[off >> 2] = negPid;
        padAt = off >> 2;
        padTag = tag(t);
      }
      const pos = (t + pad) | 0;
      const s = (pos & mask) >> 2;
      d[s + 1] = lens[from + k]!;
      d[s] = negPid;
      this.#runState[k] = s;
      this.#runPos[k] = pos;
      offsets[k] = (pos & mask) + kRecordHeader;
      t = (pos + n) | 0;
    }
    if (k === 0) return kFull;
    // The new frontier: consumers find 0 there until a producer reserves
    // it. Plain stores up to here: no consumer reads past the record at
    // head before that record's commit, which follows them (an atomic
    // store, or on x86 a plain one: see kStoresInOrder).
    d[(t & mask) >> 2] = 0;
    const count = (ctl[kPutCount] + k) | 0;
    this.#lastTail = t;
    this.#lastCount = count;
    if (kStoresInOrder) {
      // x86: no fence needed for these (see kStoresInOrder): a full
      // barrier here stalled on the consumer's copy of the line, and the
      // three of them were ~20% of a producer's time (perf).
      ctl[kPutJournalTail] = t0;
      ctl[kPutJournalCount] = count;
      ctl[kTail] = t;
      if (padAt >= 0) Atomics.store(d, padAt, padTag);
      ctl[kPutCount] = count;
    } else {
      // The tail before the count (the atomic store orders them), both before tail moves: see #repairPutCount.
      ctl[kPutJournalTail] = t0;
      Atomics.store(ctl, kPutJournalCount, count);
      Atomics.store(ctl, kTail, t);
      if (padAt >= 0) Atomics.store(d, padAt, padTag);
      Atomics.store(ctl, kPutCount, count);
    }
    return k;
  }

  /** Publishes the reserved record (its payload must be written). */
  commit(): void {
    Atomics.store(this.data, this.#runState[0]!, tag(this.#runPos[0]!));
    this.#signalCommit();
  }

  /** Publishes the first `count` records of a tryReserveMany run, in order. */
  commitMany(count: number): void {
    const d = this.data;
    for (let i = 0; i < count; i++) Atomics.store(d, this.#runState[i]!, tag(this.#runPos[i]!));
    this.#signalCommit();
  }

  #signalCommit(): void {
    const ctl = this.ctl;
    // (After the commit's or the unlock's full fence: see Sleeping.)
    if ((kPlainLoads ? ctl[kConsumersWaiting] : Atomics.load(ctl, kConsumersWaiting)) === 0) return;
    const sleepers = Atomics.exchange(ctl, kConsumersWaiting, 0);
    if (sleepers === 0) return;
    Atomics.add(ctl, kDataSeq, 1);
    if ((sleepers & kFutexSleeper) !== 0) wake(this.buffer, this.byteOffset(kDataSeq), -1);
    if ((sleepers & kSocketSleeper) !== 0) this.#wakeReaderSocket();
  }

  #wakeReaderSocket(): void {
    const ctl = this.ctl;
    if (!sendWake(ctl[kReaderWakePid]!, ctl[kReaderWakeToken]!, ctl[kReaderWakeId]!)) {
      // That reader, if alive, wakes at the end of its slice and finds this.
      Atomics.store(ctl, kReaderWakeUnreachable, 1);
    }
  }

  // ---- consumer side -----------------------------------------------------

  /**
   * Takes the record at head: decode(offset, length) runs on its payload in
   * place and its result is returned. Otherwise kEmpty, kWaitCommit (the
   * record at head is being written by a live process) or kBusyTake (another
   * consumer holds the lock; see busyWord). If decode throws, the record is
   * still consumed and the error propagates.
   */
  tryTake<T>(decode: Decode<T>): T | typeof kEmpty | typeof kWaitCommit | typeof kBusyTake {
    if (!this.#lock(kGetLock)) return kBusyTake;
    try {
      return this.#take(decode);
    } finally {
      this.#unlockGet();
    }
  }

  /**
   * Takes up to `max` records under one hold of the lock, appending what
   * decode returns to `out`. Returns how many (>= 1), or kEmpty / kWaitCommit /
   * kBusyTake when none. If decode throws after some were taken, those stay
   * in `out` and the error is appended to `failed` (the record that failed is consumed).
   */
  tryTakeMany<T>(decode: Decode<T>, max: number, out: T[], failed: unknown[], consumed?: () => void): number | typeof kEmpty | typeof kWaitCommit | typeof kBusyTake {
    if (!this.#lock(kGetLock)) return kBusyTake;
    let k = 0;
    try {
      for (; k < max; k++) {
        const v = this.#take(decode);
        if (v === kEmpty || v === kWaitCommit) return k > 0 ? k : (v as typeof kEmpty | typeof kWaitCommit);
        out.push(v as T);
        consumed?.(); // head is past its record
      }
      return k;
    } catch (e) {
      if (k === 0) throw e;
      failed.push(e);
      return k;
    } finally {
      this.#unlockGet();
    }
  }

  /** One take (the lock held). */
  #take<T>(decode: Decode<T>): T | typeof kEmpty | typeof kWaitCommit {
    const d = this.data;
    let h = this.ctl[kHead]!; // only the get lock's holder writes it
    let s = (h & this.#mask) >> 2;
    // A committed record at head is taken here; the rest (empty, padding, a
    // record being written or left by a dead producer) in #settleHead, a
    // call the common case does not pay (~6 ns of a ~60 ns getSync).
    if ((kPlainLoads ? d[s]! : Atomics.load(d, s)) !== tag(h) || (d[s + 1]! & kPadFlag) !== 0) {
      const at = this.#settleHead();
      if (at === kEmpty || at === kWaitCommit) return at;
      h = at;
      s = (h & this.#mask) >> 2;
    }
    const lenWord = d[s + 1]!;
    try {
      return decode((h & this.#mask) + kRecordHeader, lenWord);
    } finally {
      this.#advanceHead(h, (h + recordBytes(lenWord)) | 0, true);
    }
  }

  /**
   * Moves head past what no take returns (padding, a dead producer's
   * unfinished record) and returns it once a committed record is there, or
   * kEmpty / kWaitCommit (the get lock held).
   */
  #settleHead(): number | typeof kEmpty | typeof kWaitCommit {
    const ctl = this.ctl;
    const d = this.data;
    for (;;) {
      const h = ctl[kHead]!; // only the get lock's holder writes it
      const off = h & this.#mask;
      const s = off >> 2;
      // The state word at head says it all (see "frontier" in the header):
      // tail, on the producers' line, is read only for a dead producer's record.
      let state = kPlainLoads ? d[s]! : Atomics.load(d, s);
      if (state === 0) return kEmpty;
      // Its producer is copying the payload right now (usually well under a µs).
      for (let i = 0; state < 0 && i < kSpins * 4; i++) state = Atomics.load(d, s);
      if (state < 0) {
        if (recentlyAlive(-state, this.segmentName)) return kWaitCommit;
        // Its producer died. Only a record below tail is a record: at tail
        // it is a reservation that never finished, which the next producer
        // redoes. Re-read the state after tail: a producer that took the
        // dead one's lock over may have written this position since.
        const t = Atomics.load(ctl, kTail);
        if (t === h) return kEmpty;
        if (Atomics.load(d, s) !== state) continue;
        const lenWord = d[s + 1]!;
        if ((lenWord & kPadFlag) !== 0) {
          this.#advanceHead(h, (h + this.capacity - off) | 0, false);
          continue;
        }
        // Died before committing: skip the record. If it died holding the
        // put lock, the record may not be in putCount yet: hold the put lock
        // once first (whoever takes it over from the dead producer repairs
        // the count from the journal: us, or a producer that got there
        // first and must finish), so that getCount, and a JoinableQueue's
        // done mark, never run ahead of putCount (qsize() would read -1, a
        // done mark could be refused and join() never end).
        if (!this.#holdPutLockOnce()) return kWaitCommit;
        this.#advanceHead(h, (h + recordBytes(lenWord & kLenMask)) | 0, true, true);
        continue;
      }
      if (state !== tag(h)) {
        throw new Error(`multiproc: ring buffer corrupted at position ${h >>> 0} (state ${state}, expected ${tag(h)})`);
      }
      if ((d[s + 1]! & kPadFlag) !== 0) {
        this.#advanceHead(h, (h + this.capacity - off) | 0, false);
        continue;
      }
      return h;
    }
  }

  /**
   * Takes the put lock and releases it (crash recovery only). A live holder
   * keeps it for a few instructions, unless it is stopped or descheduled:
   * then false, and the caller waits as for a record being written
   * (kWaitCommit) instead of blocking its thread here, an async get's event
   * loop included.
   */
  #holdPutLockOnce(): boolean {
    for (let i = 0; i < kSpins; i++) {
      if (this.#lock(kPutLock)) {
        this.#unlock(kPutLock);
        return true;
      }
    }
    return false;
  }

  /**
   * Whether the record at head is committed: the consumers' polling test.
   * Unlike hasData() it never reads tail, whose line the producer writes on
   * every put: a consumer polling a record still being written would pull
   * that line to its CPU at each poll, and the producer's next put would
   * wait to get it back.
   */
  committedAtHead(): boolean {
    return Atomics.load(this.data, (Atomics.load(this.ctl, kHead) & this.#mask) >> 2) > 0;
  }

  /**
   * Whether a take would return a record now (poll, wait()). A record at
   * head that is not committed is looked at as a take would: one a dead
   * writer left is skipped (under the get lock) and the answer is what lies
   * behind it; one a live writer is still writing answers false, since a
   * take would wait for it. Before, both answered true while recv() waited,
   * and a writer killed mid-send left poll() saying true for good.
   */
  hasData(): boolean {
    const s = (Atomics.load(this.ctl, kHead) & this.#mask) >> 2;
    const state = Atomics.load(this.data, s);
    if (state === 0) return false;
    // Committed padding: the record behind it may be unfinished, or a dead writer's (a take looks past it).
    if (state > 0 && (this.data[s + 1]! & kPadFlag) === 0) return true;
    // Another reader holds the lock: that take settles head, not this look.
    if (!this.#lock(kGetLock)) return false;
    try {
      return typeof this.#settleHead() === 'number';
    } finally {
      this.#unlockGet();
    }
  }

  /**
   * A consumer that found the ring empty and then closed: whether it may
   * report the end, i.e. no put that began before the close can still add
   * a record. A producer checks `closed` under the put lock and reserves in
   * the same hold, so once closed was seen, only the holder of that lock
   * may still add one; while it lives this answers false, with
   * busyWord/busyValue naming the lock, and the caller waits for its
   * unlock and takes again (the record is then below tail). Read after
   * `closed`, before that take, the order this rests on.
   *
   * Why here and not in close(): close() taking the put lock would have to
   * wait for a holder that is stopped (SIGSTOP, a debugger) for as long as
   * it is, or give up and let the race through. A consumer waits for such a
   * holder as it already waits for a stopped producer's record (kWaitCommit),
   * within its timeout; and the put path is unchanged.
   */
  putsSettled(): boolean {
    const held = Atomics.load(this.ctl, kPutLock);
    // A dead holder's reservation is at or beyond tail, or below it and skipped (see Crash safety).
    if (held === 0 || !recentlyAlive(held, this.segmentName)) return true;
    this.busyWord = kPutLock;
    this.busyValue = held;
    return false;
  }

  /** Lets the get lock go, then wakes producers waiting for the room a take made (after the unlock: see Sleeping). */
  #unlockGet(): void {
    this.#unlock(kGetLock);
    if ((kPlainLoads ? this.ctl[kProducersWaiting] : Atomics.load(this.ctl, kProducersWaiting)) !== 0) this.#maybeWakeProducers();
  }

  #maybeWakeProducers(): void {
    const ctl = this.ctl;
    const used = (Atomics.load(ctl, kTail) - Atomics.load(ctl, kHead)) >>> 0;
    const count = (ctl[kPutCount] - ctl[kGetCount]) | 0;
    // Batched: a producer is woken once half the ring is free (waking it per
    // record halves throughput). A small maxsize is a hand-off, where latency
    // matters more: there, any free slot wakes it.
    const maxsize = this.#maxsize;
    if (used * 2 <= this.capacity || (maxsize > 0 && (count * 2 <= maxsize || (maxsize <= 64 && count < maxsize)))) {
      if (Atomics.exchange(ctl, kProducersWaiting, 0) !== 0) this.wakeProducers();
    }
  }

  /**
   * JoinableQueue: items put and not yet marked done. doneCount is read
   * before putCount, and putCount only grows: the difference is never less
   * than the count at the instant putCount was read (0 here means all done).
   */
  unfinished(): number {
    const ctl = this.ctl;
    const done = (Atomics.load(ctl, kDoneCount) + Atomics.load(ctl, kSkipCount)) | 0;
    return (Atomics.load(ctl, kPutCount) - done) | 0;
  }

  /**
   * unfinished() for join(), which may be the only one left to look: first
   * repair the counts a producer or consumer killed inside its lock left
   * behind (before, a consumer killed while skipping a dead producer's
   * record left join() waiting for good).
   */
  unfinishedRepaired(): number {
    this.size();
    return this.unfinished();
  }

  /**
   * The last unfinished task is done (or skipped): bump the join sequence
   * that join() sleeps on, then wake its sleepers. A sequence, not doneCount:
   * a skip leaves doneCount as it is, so a joiner that read it just before
   * could not tell, and slept out its whole slice (helper-62).
   */
  #joinersMayGo(): void {
    Atomics.add(this.ctl, kJoinSeq, 1);
    if (Atomics.load(this.ctl, kJoinWaiters) > 0) wake(this.buffer, this.byteOffset(kJoinSeq), -1);
  }

  /** JoinableQueue: one task finished. Returns false (and changes nothing) when none was unfinished. */
  taskDone(): boolean {
    const ctl = this.ctl;
    for (;;) {
      // done, then skip, then put (as unfinished()): put only grows, so a
      // record put and skipped between the reads cannot make `left` too small.
      const done = Atomics.load(ctl, kDoneCount);
      const skip = Atomics.load(ctl, kSkipCount);
      const left = (Atomics.load(ctl, kPutCount) - done - skip) | 0;
      if (left <= 0) return false;
      if (Atomics.compareExchange(ctl, kDoneCount, done, (done + 1) | 0) !== done) continue;
      // (A skip between our reads and the swap may have made this the last one: helper-63.)
      if (left === 1 || (Atomics.load(ctl, kSkipCount) !== skip && this.unfinished() <= 0)) this.#joinersMayGo();
      return true;
    }
  }

  wakeProducers(): void {
    Atomics.add(this.ctl, kSpaceSeq, 1);
    wake(this.buffer, this.byteOffset(kSpaceSeq), -1);
  }

  wakeConsumers(): void {
    const sleepers = Atomics.exchange(this.ctl, kConsumersWaiting, 0);
    Atomics.add(this.ctl, kDataSeq, 1);
    wake(this.buffer, this.byteOffset(kDataSeq), -1);
    if ((sleepers & kSocketSleeper) !== 0) this.#wakeReaderSocket();
  }

  /** Marks the ring closed for every process and wakes every sleeper. */
  close(): void {
    Atomics.store(this.ctl, kClosed, 1);
    this.wakeConsumers();
    this.wakeProducers();
  }
}
