/**
 * Queue, JoinableQueue and SimpleQueue (CPython's multiprocessing.queues),
 * each one ring buffer (lib/ring-buffer.ts) in its own segment. No feeder
 * thread: put() either lands in shared memory or waits for room, so nothing is
 * ever buffered in a process that might exit.
 *
 * Segment payload (Kind.Queue; param0 = ring capacity, param1 = flags):
 *
 *   offset   size          what
 *   0        384           ring control block (see ring-buffer.ts)
 *   384      capacity      ring data area (records)
 *
 * Semantics worth knowing:
 * - close() closes the queue for every process: puts fail with
 *   QueueClosedError, gets drain what is left, then fail with QueueClosedError;
 *   the async iterator ends.
 * - A get with no timeout on an open, empty queue waits, even if every process
 *   that ever put is dead: a queue has no fixed set of producers (any process
 *   holding it may put), so there is no one whose death means "end". Close it,
 *   or use a timeout. A producer killed in the middle of a put loses that one
 *   item and nothing else.
 * - Items larger than a quarter of the ring (256 KiB at most) travel in their
 *   own segment; see docs/queues.md.
 *
 * Exports: Queue, JoinableQueue, SimpleQueue, QueueOptions, GetOptions, PutOptions.
 */
import { type Encoded } from './codec';
import { Channel } from './channel';
import { ProcessError, QueueClosedError, TimeoutError } from './errors';
import { Kind } from './layout';
import { registerKind, type Handle } from './reduction';
import { kControlBytes, kJoinSeq, kJoinWaiters, Ring } from './ring-buffer';
import { attachShared, Segment } from './segment';
import { kHandleTag, kToHandle } from './symbols';
import { checkInteger, checkOptionNames, deadlineFrom, describeValue, parseWait, remaining } from './validate';
import { waitAsync, waitSync, WaitResult } from './wait';

export interface QueueOptions {
  /** Most items the queue holds; 0 (default) = bounded only by capacityBytes. */
  maxsize?: number | undefined;
  /** Bytes of ring buffer (rounded up to a power of two); default 1 MiB. */
  capacityBytes?: number | undefined;
}

export interface PutOptions {
  /** Milliseconds to wait (for room, for an item); default: forever. A plain number in its place is the timeout too. */
  timeout?: number | undefined;
  signal?: AbortSignal | undefined;
}
export type GetOptions = PutOptions;

export const kDefaultCapacity = 1 << 20;
export const kMinCapacity = 4096;
export const kMaxCapacity = 1 << 30;
const kMaxMaxsize = 0x7fffffff;
/** Items encoding to more than this (or a quarter of the ring) go in their own segment. */
export const kBlobThreshold = 256 * 1024;
const kFlagJoinable = 1;
const kJoinSliceMs = 1000;

export function roundCapacity(name: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new TypeError(`Expected "${name}" to be an integer number of bytes, got ${describeValue(v)}`);
  }
  if (v < kMinCapacity || v > kMaxCapacity) {
    throw new RangeError(`Expected "${name}" to be between ${kMinCapacity} and ${kMaxCapacity} bytes, got ${v}`);
  }
  return 2 ** Math.ceil(Math.log2(v));
}

/** `what`: the constructor, for messages ("Queue()"). */
function parseOptions(arg: unknown, what: string): { maxsize: number; capacity: number } {
  let maxsize: unknown = 0;
  let capacity: unknown;
  if (typeof arg === 'number' || arg === undefined) maxsize = arg ?? 0;
  else if (typeof arg === 'object' && arg !== null) {
    checkOptionNames(arg, ['maxsize', 'capacityBytes'], what);
    maxsize = (arg as QueueOptions).maxsize ?? 0;
    capacity = (arg as QueueOptions).capacityBytes;
  } else {
    throw new TypeError(`Expected a maxsize number or { maxsize, capacityBytes }, got ${describeValue(arg)}`);
  }
  if (typeof maxsize !== 'number' || !Number.isInteger(maxsize)) {
    throw new TypeError(`Expected "maxsize" to be an integer, got ${describeValue(maxsize)}`);
  }
  if (maxsize < 0 || maxsize > kMaxMaxsize) {
    throw new RangeError(`Expected "maxsize" to be between 0 (unbounded) and ${kMaxMaxsize}, got ${maxsize}`);
  }
  return { maxsize, capacity: roundCapacity('capacityBytes', capacity, kDefaultCapacity) };
}

function toIterable<T>(items: Iterable<T>): Iterable<T> {
  if (items === null || typeof items !== 'object' || typeof (items as Iterable<T>)[Symbol.iterator] !== 'function') {
    throw new TypeError(`putMany expects an iterable of items (an array, a Set, a generator...), got ${describeValue(items)}`);
  }
  return items;
}

function checkMaxItems(v: unknown): number {
  if (typeof v === 'object' && v !== null) {
    // getMany({ timeout }) from get()'s habit: the options come second.
    throw new TypeError('Expected "maxItems" to be a number (or undefined for all that are ready): the options come second, getMany(maxItems, { timeout, signal })');
  }
  return v === undefined || v === Infinity ? Infinity : checkInteger('maxItems', v, 1);
}

// close() closes a queue for every process, unlike Python's (which only ends this process's puts): said here, where a port meets it (helper-68).
const closedError = (): Error => new QueueClosedError('The queue is closed (close() closes it for every process: call it once, when every producer is done)');

/** Set while a handle is being attached, so that the constructors adopt this segment. */
let attaching: Segment | null = null;

export class Queue<T = unknown> {
  readonly #segment: Segment;
  readonly #ring: Ring;
  readonly #channel: Channel;
  readonly #maxsize: number;
  readonly #capacity: number;
  /**
   * This process's mapping is gone: 'drained' once the queue was closed and
   * this process saw it empty (nothing can come or go any more, so the
   * mapping is given back: see #releaseIfDrained), 'disposed' by
   * [Symbol.dispose]. Null while mapped.
   */
  #released: 'drained' | 'disposed' | null = null;

  constructor(maxsize: number | QueueOptions = 0) {
    let seg = attaching;
    attaching = null;
    if (seg === null) {
      const { maxsize: m, capacity } = parseOptions(maxsize, `${new.target.name}()`);
      seg = Segment.create(Kind.Queue, kControlBytes + capacity, [capacity, this instanceof JoinableQueue ? kFlagJoinable : 0]);
      Ring.init(seg.buffer, seg.payloadOffset, capacity, m);
    }
    const capacity = seg.param(0);
    if (capacity < kMinCapacity || capacity > kMaxCapacity || kControlBytes + capacity > seg.payloadBytes) {
      seg.close();
      throw new Error(`Segment '${seg.name}' does not hold a valid queue`);
    }
    this.#segment = seg;
    this.#ring = new Ring(seg.buffer, seg.payloadOffset, seg.payloadOffset + kControlBytes, capacity, false, seg.name);
    this.#ring.joinable = (seg.param(1) & kFlagJoinable) !== 0;
    // The refcount counts every process's (and thread's) attachment and every handle in flight.
    const closed = (): Error => {
      // Called when a put or get finds the queue closed (and, for a get, drained).
      queueMicrotask(() => this.#releaseIfDrained());
      return closedError();
    };
    this.#channel = new Channel(this.#ring, { closedError: closed, soleHolder: () => this.soleHolder(), readBehind: true }, Math.min(kBlobThreshold, capacity / 4));
    this.#maxsize = this.#ring.maxsize;
    this.#capacity = capacity;
    seg.bindTo(this);
  }

  /** The channel, or the error this object's calls get once its mapping is released. */
  #ch(): Channel {
    if (this.#released !== null) throw this.#releasedError();
    return this.#channel;
  }

  #releasedError(): Error {
    return this.#released === 'drained'
      ? closedError()
      : new QueueClosedError('This Queue object was disposed in this process; the queue lives on for its other users');
  }

  /**
   * A closed queue that is empty (and, for a JoinableQueue, has no task
   * undone) stays so for good: puts are refused, and nothing is left to get
   * or mark done. This process's mapping is then given back at once, not when
   * the object is garbage collected (a queue made and closed per job kept
   * 1 MiB of /dev/shm each until a GC that may never come). Every call
   * answers as on a closed, drained queue (see #released).
   */
  #releaseIfDrained(): void {
    if (this.#released !== null || this.#ring.ctl.length === 0 || !this.#ring.closed) return;
    // A put begun before the close may not be counted yet (see Ring.putsSettled): the mapping stays then.
    if (!this.#ring.putsSettled()) return;
    if (this.#ring.size() !== 0 || (this.#ring.joinable && this.#ring.unfinished() > 0)) return;
    this.#release('drained', closedError);
  }

  #release(why: 'drained' | 'disposed', err: () => Error): void {
    if (this.#ring.ctl.length > 0) {
      // Calls still waiting here end now, before the mapping goes (an async iteration ends quietly).
      this.#channel.closeLocal('get', err);
      this.#channel.closeLocal('put', err);
    }
    this.#released = why;
    // The last holder anywhere (no other process, no handle in flight): the
    // items left will never be taken, so what they hold is given back (a
    // pipe end in one kept its peer from ever seeing EOF; helper-66).
    if (this.#segment.livingRefcount() === 1) this.#channel.giveBackUnread();
    this.#segment.close();
  }

  /** @internal JoinableQueue: after a taskDone(). */
  protected afterTaskDone(): void {
    if (this.#ring.closed) this.#releaseIfDrained();
  }

  /** @internal Whether no other process or thread holds the queue, nor a handle in flight (a *Sync wait would be for ever). */
  protected soleHolder(): boolean {
    return this.#released === null && this.#segment.livingRefcount() === 1;
  }

  /** @internal JoinableQueue: whether the mapping is gone, and why. */
  protected get releasedAs(): 'drained' | 'disposed' | null {
    return this.#released;
  }

  /** Waits for room (forever unless `timeout`), then adds `item`. Rejects TypeError for an uncloneable item. */
  put(item: T, opts?: PutOptions | number): Promise<void> {
    let enc: Encoded;
    let deadline = Infinity;
    let signal: AbortSignal | undefined;
    try {
      if (opts !== undefined) ({ deadline, signal } = parseWait(opts, 'Queue.put()'));
      enc = this.#ch().encode(item);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#channel.put(enc, deadline, signal);
  }

  /** put() that blocks this thread (and its event loop) while the queue is full. */
  putSync(item: T, timeoutMs?: number): void {
    const deadline = deadlineFrom('timeoutMs', timeoutMs);
    const ch = this.#ch();
    ch.putSync(ch.encode(item), deadline);
  }

  /** Adds `item` or throws QueueFullError. */
  putNowait(item: T): void {
    const ch = this.#ch();
    ch.putNowait(ch.encode(item));
  }

  /**
   * Puts every item, in order: as many at a time as fit, each batch under one
   * hold of the ring's lock and one await per call instead of per item. Every item is
   * encoded first, so an uncloneable one rejects with a TypeError naming its
   * index and nothing is put. Items of one call stay in order; another
   * producer's items may fall between them when the queue fills up midway.
   * If the call fails midway on a timeout or a closed queue, the first
   * `error.itemsPut` items are in the queue and the rest are not. An abort
   * rejects with the signal's own reason (not annotated: it may be shared);
   * items put before it stay put.
   */
  putMany(items: Iterable<T>, opts?: PutOptions | number): Promise<void> {
    try {
      const { deadline, signal } = parseWait(opts, 'Queue.putMany()');
      const ch = this.#ch();
      return ch.putMany(ch.encodeMany(toIterable(items)), deadline, signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** putMany() that blocks this thread while the queue is full. */
  putManySync(items: Iterable<T>, timeoutMs?: number): void {
    const deadline = deadlineFrom('timeoutMs', timeoutMs);
    const ch = this.#ch();
    ch.putManySync(ch.encodeMany(toIterable(items)), deadline);
  }

  /**
   * Waits for at least one item (like get()), then returns it with every
   * other item ready at that moment, up to `maxItems` (default: all), in
   * queue order, taken under one hold of the lock.
   */
  getMany(maxItems?: number, opts?: GetOptions | number): Promise<T[]> {
    try {
      const max = checkMaxItems(maxItems);
      const { deadline, signal } = parseWait(opts, 'Queue.getMany()');
      return this.#ch().getMany(max, deadline, signal) as Promise<T[]>;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** getMany() that blocks this thread while the queue is empty. */
  getManySync(maxItems?: number, timeoutMs?: number): T[] {
    const max = checkMaxItems(maxItems);
    return this.#ch().getManySync(max, deadlineFrom('timeoutMs', timeoutMs)) as T[];
  }

  /** The items ready now, up to `maxItems`: [] when there are none (QueueClosedError once closed and drained). */
  getManyNowait(maxItems?: number): T[] {
    return this.#ch().getManyNowait(checkMaxItems(maxItems)) as T[];
  }

  /** Waits for an item (forever unless `timeout`); rejects QueueClosedError once closed and drained. */
  get(opts?: GetOptions | number): Promise<T> {
    if (this.#released !== null) return Promise.reject(this.#releasedError());
    if (opts === undefined) return this.#channel.get(Infinity, undefined) as Promise<T>;
    let deadline: number;
    let signal: AbortSignal | undefined;
    try {
      ({ deadline, signal } = parseWait(opts, 'Queue.get()'));
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#channel.get(deadline, signal) as Promise<T>;
  }

  /** get() that blocks this thread while the queue is empty. */
  getSync(timeoutMs?: number): T {
    return this.#ch().getSync(deadlineFrom('timeoutMs', timeoutMs)) as T;
  }

  /** Takes an item or throws QueueEmptyError. */
  getNowait(): T {
    return this.#ch().getNowait() as T;
  }

  /** Items in the queue at one instant (including puts in progress); stale as soon as it returns. */
  qsize(): number {
    if (this.#released === 'drained') return 0;
    this.#ch();
    return Math.max(0, this.#ring.size());
  }

  empty(): boolean {
    return this.qsize() === 0;
  }

  /** Whether maxsize items are queued (a queue bounded only by bytes is never "full" here). */
  full(): boolean {
    const n = this.qsize(); // (first: a disposed object throws)
    const m = this.#maxsize;
    return m > 0 && n >= m;
  }

  get maxsize(): number {
    return this.#maxsize;
  }

  /** Ring buffer size in bytes. */
  get capacityBytes(): number {
    return this.#capacity;
  }

  /**
   * Closes the queue for every process (see the module comment). Idempotent.
   * If it is empty then, this process's mapping is given back at once (see #releaseIfDrained).
   */
  close(): void {
    if (this.#released === 'disposed') throw this.#releasedError();
    if (this.#released !== null) return;
    if (!this.#ring.closed) this.#ring.close();
    this.#releaseIfDrained();
  }

  /** Whether the queue is closed; true as well once this object was disposed. */
  get closed(): boolean {
    return this.#released !== null || this.#ring.closed;
  }

  /**
   * Pending async gets and puts of this object no longer keep the process
   * alive (like socket.unref(), and Connection.unref()): for a background
   * consumer that should not stop a script from ending. By default a pending
   * get() keeps it alive, as a blocked get() does in Python.
   */
  unref(): this {
    this.#channel.keepAlive = false;
    return this;
  }

  /** @internal Whether pending calls keep the process alive (see unref()). */
  get keepsAlive(): boolean {
    return this.#channel.keepAlive;
  }

  /** Undoes unref(). */
  ref(): this {
    this.#channel.keepAlive = true;
    return this;
  }

  /** Yields items until the queue is closed and drained. */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for (;;) {
      let item: T;
      try {
        item = await this.get();
      } catch (e) {
        if (e instanceof QueueClosedError) return;
        throw e;
      }
      yield item;
    }
  }

  /** Drops this process's mapping (the queue lives on in other processes). Later calls throw QueueClosedError. */
  [Symbol.dispose](): void {
    if (this.#released !== null) return;
    this.#release('disposed', () => new QueueClosedError('This Queue object was disposed in this process while a call waited on it; the queue lives on for its other users'));
  }

  [kToHandle](): Handle {
    if (this.#released === 'disposed') throw new QueueClosedError('This Queue object was disposed in this process: it cannot be sent');
    if (this.#released === 'drained') {
      // Its segment may be gone, but a closed, drained queue is all there is
      // to send: a small one made so stands in (the receiver sees the same).
      // A Pool re-sends its initargs to each replacement worker, and a job's
      // items when it is dispatched: refusing broke those after a close().
      const Kind = this.constructor as new (o: QueueOptions) => Queue;
      const stand = new Kind({ maxsize: this.#maxsize, capacityBytes: kMinCapacity });
      stand.#ring.close();
      const h = stand[kToHandle]();
      stand[Symbol.dispose]();
      return h;
    }
    this.#segment.retain();
    // instanceof: a subclass of JoinableQueue arrived as a plain Queue, without taskDone() (helper-58).
    return { [kHandleTag]: this instanceof JoinableQueue ? 'JoinableQueue' : 'Queue', name: this.#segment.name };
  }

  /** @internal */
  get ring(): Ring {
    return this.#ring;
  }

  toString(): string {
    if (this.#released !== null) return `<${this.constructor.name} ${this.#released}>`;
    return `<${this.constructor.name} size=${this.#ring.size()}${this.#maxsize > 0 ? `/${this.#maxsize}` : ''}${this.#ring.closed ? ' closed' : ''}>`;
  }

  /** console.log shows what toString() says (it showed {}; helper-68). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

export class JoinableQueue<T = unknown> extends Queue<T> {
  /** Marks one item taken with get() as processed; throws RangeError when called more often than items were put. */
  taskDone(): void {
    if (this.releasedAs === 'disposed') throw new QueueClosedError('This JoinableQueue object was disposed in this process');
    if (this.releasedAs !== null || !this.ring.taskDone()) throw new RangeError('taskDone() called more times than there were items put on the queue');
    this.afterTaskDone();
  }

  /** Number of items put and not yet marked done. */
  get unfinishedTasks(): number {
    if (this.releasedAs === 'drained') return 0;
    if (this.releasedAs === 'disposed') throw new QueueClosedError('This JoinableQueue object was disposed in this process');
    return this.ring.unfinished();
  }

  /** Whether join() has nothing to wait for (throws once disposed). */
  #joinDone(): boolean {
    if (this.releasedAs === 'disposed') throw new QueueClosedError('This JoinableQueue object was disposed in this process');
    return this.releasedAs === 'drained' || this.ring.unfinished() <= 0;
  }

  /** Resolves once every item put has been marked done with taskDone() (by any process). */
  async join(opts?: PutOptions | number): Promise<void> {
    const { deadline, signal } = parseWait(opts, 'JoinableQueue.join()');
    const ring = this.ring;
    const ctl = ring.ctl;
    // Sleeps on the join sequence: the taskDone() (or skip) that brings the count to 0 bumps it and wakes joiners.
    for (;;) {
      if (this.#joinDone()) return;
      const seq = Atomics.load(ctl, kJoinSeq);
      if (ring.unfinishedRepaired() <= 0) return;
      if (deadline !== Infinity && remaining(deadline) <= 0) throw new TimeoutError('join timed out: tasks still unfinished');
      Atomics.add(ctl, kJoinWaiters, 1);
      try {
        if (Atomics.load(ctl, kJoinSeq) !== seq) continue;
        // unref() covers a pending join() as it does a get() (before, join kept the process alive for good).
        await waitAsync(ring.buffer, ring.byteOffset(kJoinSeq), seq, Math.min(kJoinSliceMs, remaining(deadline)), signal, this.keepsAlive);
      } finally {
        // (Unmapped meanwhile: a taskDone() of this process ended the last task of a closed queue.)
        if (ctl.length > 0) Atomics.sub(ctl, kJoinWaiters, 1);
      }
    }
  }

  /** join() that blocks this thread. Returns false if the timeout passed. */
  joinSync(timeoutMs?: number): boolean {
    const deadline = deadlineFrom('timeoutMs', timeoutMs);
    const ring = this.ring;
    const ctl = ring.ctl;
    for (;;) {
      if (this.#joinDone()) return true;
      const seq = Atomics.load(ctl, kJoinSeq);
      if (ring.unfinishedRepaired() <= 0) return true;
      if (deadline !== Infinity && remaining(deadline) <= 0) return false;
      if (deadline === Infinity && this.soleHolder()) {
        // As getSync() on an empty queue nobody else holds: a hang for good.
        throw new ProcessError(
          `JoinableQueue.joinSync() would block this thread for ever: ${ring.unfinished()} task(s) are not done and no other process holds the queue, so only this thread could call taskDone(). ` +
            'Start the consumers first (pass them the queue), or give a timeout.',
        );
      }
      Atomics.add(ctl, kJoinWaiters, 1);
      if (Atomics.load(ctl, kJoinSeq) === seq) {
        waitSync(ring.buffer, ring.byteOffset(kJoinSeq), seq, Math.min(kJoinSliceMs, remaining(deadline))) satisfies WaitResult;
      }
      Atomics.sub(ctl, kJoinWaiters, 1);
    }
  }
}

/** Python's SimpleQueue takes no timeouts either; a { timeout } passed from habit was ignored without a word (helper-58). */
function simpleTakesNoOptions(method: string): TypeError {
  return new TypeError(`SimpleQueue.${method}() takes no timeout or options (as Python's SimpleQueue): use a Queue, whose ${method.replace('Sync', '')}() takes { timeout, signal }${method.endsWith('Sync') ? ` and ${method}() a timeout` : ''}`);
}

/**
 * A queue with only put, get, empty and close (CPython's SimpleQueue), and no
 * timeouts. Unlike CPython's it is bounded, by its ring (1 MiB by default,
 * { capacityBytes }), as a Queue is.
 */
export class SimpleQueue<T = unknown> {
  readonly #q: Queue<T>;

  constructor(options?: { capacityBytes?: number }) {
    if (attaching === null && options !== undefined && options !== null) {
      if (typeof options !== 'object') throw new TypeError(`Expected the SimpleQueue options to be an object like { capacityBytes }, got ${describeValue(options)}`);
      checkOptionNames(options, ['capacityBytes'], 'SimpleQueue()');
    }
    this.#q = attaching !== null ? new Queue<T>() : new Queue<T>({ capacityBytes: options?.capacityBytes });
  }

  put(item: T): Promise<void> {
    if (arguments.length > 1) return Promise.reject(simpleTakesNoOptions('put'));
    return this.#q.put(item);
  }

  putSync(item: T): void {
    if (arguments.length > 1) throw simpleTakesNoOptions('putSync');
    this.#q.putSync(item);
  }

  get(): Promise<T> {
    if (arguments.length > 0) return Promise.reject(simpleTakesNoOptions('get'));
    return this.#q.get();
  }

  getSync(): T {
    if (arguments.length > 0) throw simpleTakesNoOptions('getSync');
    return this.#q.getSync();
  }

  /** See Queue.putMany. */
  putMany(items: Iterable<T>): Promise<void> {
    // As put(): Queue.putMany() would have taken a timeout given here, and waited for good instead.
    if (arguments.length > 1) return Promise.reject(simpleTakesNoOptions('putMany'));
    return this.#q.putMany(items);
  }

  putManySync(items: Iterable<T>): void {
    if (arguments.length > 1) throw simpleTakesNoOptions('putManySync');
    this.#q.putManySync(items);
  }

  /** See Queue.getMany. */
  getMany(maxItems?: number): Promise<T[]> {
    if (arguments.length > 1) return Promise.reject(simpleTakesNoOptions('getMany'));
    return this.#q.getMany(maxItems);
  }

  getManySync(maxItems?: number): T[] {
    if (arguments.length > 1) throw simpleTakesNoOptions('getManySync');
    return this.#q.getManySync(maxItems);
  }

  empty(): boolean {
    return this.#q.empty();
  }

  close(): void {
    this.#q.close();
  }

  /** Drops this process's mapping (the queue lives on in other processes). */
  [Symbol.dispose](): void {
    this.#q[Symbol.dispose]();
  }

  [Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    return this.#q[Symbol.asyncIterator]();
  }

  /** See Queue.unref. */
  unref(): this {
    this.#q.unref();
    return this;
  }

  /** See Queue.ref. */
  ref(): this {
    this.#q.ref();
    return this;
  }

  [kToHandle](): Handle {
    const h = this.#q[kToHandle]();
    return { ...h, [kHandleTag]: 'SimpleQueue' };
  }

  toString(): string {
    return this.#q.toString().replace(/^<\w+/, '<SimpleQueue');
  }

  /** console.log shows what toString() says (it showed SimpleQueue {}; review helper-70). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

function attachQueue<Q extends object>(h: Handle, make: () => Q): Q {
  return attachShared(h.name, Kind.Queue, (seg) => {
    attaching = seg;
    try {
      return make();
    } finally {
      attaching = null;
    }
  });
}

registerKind('Queue', (h) => attachQueue(h, () => new Queue()));
registerKind('JoinableQueue', (h) => attachQueue(h, () => new JoinableQueue()));
registerKind('SimpleQueue', (h) => attachQueue(h, () => new SimpleQueue()));
