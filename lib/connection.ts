/**
 * Pipe and Connection (CPython's multiprocessing.connection), over one ring
 * buffer per direction in one segment. Each direction has one writer end and
 * one reader end (`exclusive`: its reader may sleep on the wake socket), but
 * its ring still takes the producer/consumer locks: several processes may use
 * one end at once (in Python that corrupts the stream; here, without the
 * locks, two readers took the same message).
 *
 * Segment payload (Kind.Pipe; param0 = ring capacity, param1 = 1 if duplex):
 *
 *   offset         size   what
 *   0              64     end words: open[0], open[1], pid[0], pid[1], ident[0], ident[1], full[0], full[1], inFlight[0], inFlight[1],
 *                         inFlightAt[0], inFlightAt[1]
 *   64             64     the user words (kUser; a pool worker's job mark and the last job it began), alone on their line
 *   128            384    holders[0], holders[1]: 24 identities each (pid and start stamp) of the processes holding the end
 *   512            384    ring 0 control  (end 0 reads it; end 1 writes it)
 *   896            C      ring 0 data
 *   896 + C        384    ring 1 control  (duplex only: end 1 reads, end 0 writes)
 *   1280 + C       C      ring 1 data
 *
 * open[e] counts the Connection objects for end e in every process plus its
 * handles in flight; when it reaches 0 the end is closed for good: the ring it
 * writes is closed (its reader drains, then gets EOFError) and a writer to the
 * ring it reads gets BrokenPipeError. holders[e] names every process that
 * holds end e (each adds itself when it attaches or is sent the end, and
 * takes itself off when it closes its last object for it): a reader waiting
 * on an empty ring checks every 200 ms whether any of them is still alive,
 * so a peer killed by SIGKILL ends recv() with EOFError, and one of two
 * writers killed does not while the other lives (as an OS pipe gives EOF only
 * when every write end is closed). pid[e] and ident[e] name the last process
 * that attached end e: what is checked when the table is empty (a 'fork'
 * child's inherited end) or full[e] says it overflowed.
 *
 * Exports: Pipe, Connection, wait, PipeOptions.
 */
import { isMainThread } from 'node:worker_threads';
import { onAbort } from './abort';
import { encodeBytes, recordBytes, type Encoded } from './codec';
import { Channel } from './channel';
import { BrokenPipeError, EOFError, noPublicConstructor, ProcessError } from './errors';
import { Kind } from './layout';
import { native } from './native';
import { sameProcessRuns, selfStamp, startStamp } from './liveness';
import { disposeShared, registerKind, type Handle } from './reduction';
import { kConsumersWaiting, kControlBytes, kDataSeq, kFutexSleeper, kGetLock, kHead, kOwnerWords, Ring } from './ring-buffer';
import { roundCapacity, type GetOptions } from './queues';
import { Process } from './process';
import { argsGivenBack, attachShared, collectFresh, releaseAllAttachments, Segment } from './segment';
import { kDrainUnread, kHandleTag, kMaybeUnread, kOnExit, kSentTaken, kSentTo, kToHandle, kUnlinkNow, kUserWord } from './symbols';
import { checkInteger, checkOptionNames, deadlineFrom, describeValue, kMaxTimerMs, parseWait, remaining, type ParsedWait } from './validate';
import { currentCpu, forkGeneration, waitAsync, WaitResult } from './wait';

export interface PipeOptions {
  /** Bytes of ring buffer per direction (rounded up to a power of two); default 256 KiB. */
  capacityBytes?: number | undefined;
}

const kDefaultPipeCapacity = 256 * 1024;
const kBlobThreshold = 256 * 1024;
/** Bytes of the pipe's own words before its rings: eight cache lines (see kUser, kHoldersByte). */
const kWords = 512;
const kOpen = 0; // + end
const kPid = 2; // + end
/**
 * Byte offset of the 64-bit identity of each end's process (+ 8 * end):
 * pid * 2^32 + its startStamp, written in one store so that a reader never
 * pairs one process's pid with another's start time.
 */
const kIdentByte = 16;
/** Word (+ end): the end's holder table overflowed once; it is then not trusted (see holdersGone). */
const kHoldersFull = 8;
/**
 * Word (+ end): handles of the end made and not yet received. Their
 * receiver is not in the table yet, so while one travels (an end forwarded
 * through a Queue item, its sender closed) the end is not taken for dead.
 */
const kInFlight = 10;
/**
 * Word (+ end): when the last handle of the end was made (s since
 * kEpochSec). A handle counts for kInFlightSec after that: one whose record
 * is lost (its consumer killed before taking it) would keep the end alive
 * for good (review helper-69: EOFError before this table, a wait for ever
 * after it); one waiting longer in a queue, every other holder dead, gives
 * its peer an early EOF (review helper-70: 10 s was too short for a backlog).
 */
const kInFlightAt = 12;
const kEpochSec = 1_700_000_000;
// (MULTIPROC_INFLIGHT_SEC: for the test suite, which cannot wait a minute.)
const kInFlightSec = Number(process.env.MULTIPROC_INFLIGHT_SEC) > 0 ? Number(process.env.MULTIPROC_INFLIGHT_SEC) : 60;
const nowSec = (): number => Math.floor(Date.now() / 1000) - kEpochSec;
/**
 * Byte offset of the holder tables: kHolderSlots identities per end. 24, as
 * a segment's holder table (layout.ts): with 8, nine 'fork' children that
 * copied a write end overflowed it, and once they were all killed and the
 * parent closed its own, the reader waited for good (review helper-95).
 */
const kHoldersByte = 128;
const kHolderSlots = 24;
/**
 * Free for the pipe's user, both ends alike (see kUserWord), on a line of its
 * own: a pool worker swaps it twice per job, and kOpen, on the first line,
 * is read before every send (sharing the line cost each send a cache miss).
 */
const kUser = 16;
const kPollSliceMs = 200;
/** How often a send looks whether its reader still takes (a power of two; see Connection#readerGone). */
const kSendsPerLook = 16;
/** Ring control word: the CPU its writer last sent from, plus one (0: not known). */
const kWriterCpu = kOwnerWords;

/** send(x, { timeout }) from habit: ignored before (helper-58), it waited as long as the pipe stayed full. */
function sendTakesOne(method: string): TypeError {
  return new TypeError(
    `Connection.${method}() takes only the object to send (as Python's send()): it waits only while the pipe is full, until its reader takes some; ` +
      'for more room give Pipe() a larger { capacityBytes }, or use a Queue, whose put() takes { timeout, signal }',
  );
}

/** An end's identity word: the holder's pid and start stamp (see peerGone). */
function identOf(pid: number, stamp: number): bigint {
  return (BigInt(pid) << 32n) | BigInt(stamp);
}

const endFinalizer = new FinalizationRegistry<{ words: Int32Array; end: number; core: PipeCore }>((h) => {
  h.core.ended(h.end);
});

class PipeCore {
  readonly segment: Segment;
  readonly words: Int32Array;
  readonly idents: BigInt64Array;
  readonly holders: BigInt64Array;
  readonly duplex: boolean;
  /** rings[e]: the ring end e reads. */
  readonly rings: (Ring | null)[];
  readonly channels: (Channel | null)[];
  readonly conns: (WeakRef<Connection> | null)[] = [null, null];
  /** Open Connection objects of this core in this process. */
  #local = 0;
  /** Of those, per end: closed or finalized ones are taken off (see ended()). */
  readonly #open = [0, 0];
  /** Per end: the key of the process-wide count of such objects, every thread's (see release()). */
  readonly #countKeys: readonly [string, string];
  /** The fork generation this process attached it in, or adopted it in (see release()). */
  gen = forkGeneration();
  /** Per end: the identity found dead by peerGone(), until the end names another process (sends check it). */
  readonly deadIdent: (bigint | null)[] = [null, null];

  constructor(segment: Segment) {
    this.segment = segment;
    const cap = segment.param(0);
    this.duplex = segment.param(1) === 1;
    const size = kWords + (this.duplex ? 2 : 1) * (kControlBytes + cap);
    if (cap < 4096 || (cap & (cap - 1)) !== 0 || size > segment.payloadBytes) {
      throw new Error(`Segment '${segment.name}' does not hold a valid pipe`);
    }
    this.words = new Int32Array(segment.buffer, segment.payloadOffset, kWords / 4);
    this.idents = new BigInt64Array(segment.buffer, segment.payloadOffset + kIdentByte, 2);
    this.holders = new BigInt64Array(segment.buffer, segment.payloadOffset + kHoldersByte, 2 * kHolderSlots);
    this.#countKeys = [`pipe-end:${segment.name}:0`, `pipe-end:${segment.name}:1`];
    this.rings = [];
    this.channels = [];
    for (let e = 0; e < 2; e++) {
      if (e === 1 && !this.duplex) {
        this.rings.push(null);
        this.channels.push(null);
        continue;
      }
      const ctl = segment.payloadOffset + kWords + e * (kControlBytes + cap);
      const ring = new Ring(segment.buffer, ctl, ctl + kControlBytes, cap, true, segment.name);
      this.rings.push(ring);
      this.channels.push(new Channel(ring, {
        closedError: () => new EOFError('The other end of the pipe was closed'),
        words: { get: 'recv', put: 'send', holder: 'pipe' },
        readerIdle: (deep) => this.peerGone(this.writerOf(e), deep, EOFError),
        writerIdle: (deep) => this.peerGone(e, deep, BrokenPipeError),
        writerElsewhere: () => {
          const pid = Atomics.load(this.words, kPid + this.writerOf(e));
          return pid !== 0 && pid !== process.pid;
        },
        writer: {
          here: () => {
            // length 0: the segment was closed under a pending poll (its buffer detached).
            const cpu = ring.ctl.length === 0 ? 0 : Atomics.load(ring.ctl, kWriterCpu);
            return cpu !== 0 && cpu === currentCpu() + 1;
          },
          // What the writer checks while it waits on us: our CPU, in the ring we write.
          tell: () => {
            const w = this.ringWrittenBy(e);
            if (w >= 0) publishCpu(this.rings[w]!);
          },
        },
      }, Math.min(kBlobThreshold, cap / 4)));
    }
    segment.bindTo(this);
  }

  /** The end that writes the ring end e reads. */
  writerOf(e: number): number {
    return this.duplex ? 1 - e : 1;
  }

  /** The ring end e writes, if any. */
  ringWrittenBy(e: number): number {
    return this.duplex ? 1 - e : e === 1 ? 0 : -1;
  }

  peerGone(peer: number, deep: boolean, Err: typeof EOFError = EOFError): Error | null {
    if (Atomics.load(this.words, kOpen + peer) <= 0) return new Err('The other end of the pipe was closed');
    if (deep) {
      const gone = this.holdersGone(peer);
      if (gone === 0) {
        this.deadIdent[peer] = null;
        return null;
      }
      if (gone > 0) {
        this.deadIdent[peer] = identOf(gone, 0);
        return new Err(`The process at the other end of the pipe (pid ${gone}) died`);
      }
      // The identity names the last process that made a Connection for that
      // end, which may have handed the end on and closed its own: a live
      // process that no longer maps the segment is not a dead peer here,
      // unlike a lock holder. So a recycled pid is told apart by start time.
      const ident = Atomics.load(this.idents, peer);
      const pid = Number(ident >> 32n);
      const stamp = Number(ident & 0xffffffffn);
      if (pid !== 0 && pid !== process.pid && !sameProcessRuns(pid, stamp)) {
        this.deadIdent[peer] = ident;
        return new Err(`The process at the other end of the pipe (pid ${pid}) died`);
      }
      this.deadIdent[peer] = null;
    }
    return null;
  }

  connection(end: number): Connection {
    const existing = this.conns[end]?.deref();
    if (existing !== undefined && !existing.closed) {
      Atomics.sub(this.words, kOpen + end, 1); // one object per end per process: the handle's count is surplus
      return existing;
    }
    // Counted before it names this process: a close in another thread that
    // read the count as 0 just before then takes the name off, and looks
    // again (see release()).
    native.processCount(this.#countKeys[end]!, 1);
    this.holdFor(end, process.pid, selfStamp());
    this.#local++;
    this.#open[end]!++;
    liveCores.add(this);
    const c = new Connection(this, end);
    this.conns[end] = new WeakRef(c);
    endFinalizer.register(c, { words: this.words, end, core: this }, c);
    return c;
  }

  /** Names process pid (started at `stamp`) as the holder of `end`, as its own attach would. */
  holdFor(end: number, pid: number, stamp: number): void {
    Atomics.store(this.words, kPid + end, pid);
    Atomics.store(this.idents, end, identOf(pid, stamp));
    this.addHolder(end, identOf(pid, stamp));
  }

  /**
   * A child was sent the end: it holds it from its start (see
   * Connection[kSentTo]). It joins the holders; the last-attacher name moves
   * to it only while this process is still named: the child may have
   * attached the end, handed it on and closed its own before we got here.
   */
  handOver(end: number, pid: number, stamp: number): void {
    this.addHolder(end, identOf(pid, stamp));
    this.received(end); // its handle's receiver is known: the table names it
    const mine = identOf(process.pid, selfStamp());
    if (Atomics.compareExchange(this.idents, end, mine, identOf(pid, stamp)) !== mine) return;
    Atomics.compareExchange(this.words, kPid + end, process.pid, pid);
  }

  /**
   * Adds `ident` to end's holders: in a free slot, or in its own slot made
   * by handOver() without a start stamp; when none is free, slots of dead
   * processes are freed first; when still none, the table is marked full
   * for good (then only the last attacher is checked, as before the table).
   */
  addHolder(end: number, ident: bigint): void {
    const h = this.holders;
    const base = end * kHolderSlots;
    const pid = ident >> 32n;
    for (let i = 0; i < kHolderSlots; i++) {
      const v = Atomics.load(h, base + i);
      if (v === ident) return;
      if (v >> 32n === pid && (v & 0xffffffffn) === 0n && Atomics.compareExchange(h, base + i, v, ident) === v) return;
    }
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < kHolderSlots; i++) {
        if (Atomics.load(h, base + i) === 0n && Atomics.compareExchange(h, base + i, 0n, ident) === 0n) return;
      }
      if (pass === 0) {
        for (let i = 0; i < kHolderSlots; i++) {
          const v = Atomics.load(h, base + i);
          if (v !== 0n && !this.#runs(v)) Atomics.compareExchange(h, base + i, v, 0n);
        }
      }
    }
    Atomics.store(this.words, kHoldersFull + end, 1);
  }

  /**
   * A handle of `end` arrived, or its receiver was named by handOver (whose
   * child then does not count it again: see rebuildingArgs). Never below 0.
   */
  received(end: number): void {
    for (;;) {
      const n = Atomics.load(this.words, kInFlight + end);
      if (n <= 0 || Atomics.compareExchange(this.words, kInFlight + end, n, n - 1) === n) return;
    }
  }

  /** Takes `ident` off end's holders (its last object for the end is closed). */
  removeHolder(end: number, ident: bigint): void {
    const base = end * kHolderSlots;
    for (let i = 0; i < kHolderSlots; i++) {
      if (Atomics.load(this.holders, base + i) === ident) Atomics.compareExchange(this.holders, base + i, ident, 0n);
    }
  }

  #runs(ident: bigint): boolean {
    const pid = Number(ident >> 32n);
    return pid === process.pid || sameProcessRuns(pid, Number(ident & 0xffffffffn));
  }

  /**
   * Whether end's holders are all dead: the pid of one of them if so, 0 if
   * one runs, -1 if the table cannot tell (empty, or it overflowed).
   */
  holdersGone(end: number): number {
    if (Atomics.load(this.words, kHoldersFull + end) !== 0) return -1;
    // A handle on its way: its receiver will hold it (for a while: see kInFlightAt).
    if (Atomics.load(this.words, kInFlight + end) > 0 && nowSec() - Atomics.load(this.words, kInFlightAt + end) < kInFlightSec) return 0;
    const base = end * kHolderSlots;
    let dead = -1;
    for (let i = 0; i < kHolderSlots; i++) {
      const v = Atomics.load(this.holders, base + i);
      if (v === 0n) continue;
      if (this.#runs(v)) return 0;
      dead = Number(v >> 32n);
    }
    return dead;
  }

  /** One reference to `end` is gone (close, GC, or a handle that was not needed). */
  release(end: number): void {
    // A copy a child made by fork() inherited: the count is the parent's
    // (closing the child's copy of the parent's end, Python's idiom, closed
    // the pipe for both).
    if (this.gen !== forkGeneration()) return;
    if (Atomics.sub(this.words, kOpen + end, 1) !== 1) {
      // Others still hold the end. If this process is the one named as its
      // holder, the name goes: left, it named a process that would soon be
      // gone, and the peer took its exit for the end's (an end lent to a
      // child that then exited: the reader saw EOF and lost the messages the
      // parent sent later; helper-58). The peer then waits for the count.
      // (Not while another core of this process holds the end: a handle of
      // a pipe made here by Pipe(), which is in no attach cache, given back
      // through a core of its own (a failed start's unsent(), a failed
      // send), dropped this process from the holders of the end it still
      // held, and its peer read EOF once the others died; review helper-96.
      // Nor while another thread of it does: holders are processes, and a
      // worker thread's close took the process off while the main thread
      // held the end; helper-97. Hence a count of every thread's objects.)
      if (native.processCount(this.#countKeys[end]!, 0) === 0) {
        const mine = identOf(process.pid, selfStamp());
        Atomics.compareExchange(this.idents, end, mine, 0n);
        this.removeHolder(end, mine);
        // Another thread opened an object for the end meanwhile, and found
        // this process still named (review helper-100): named again.
        if (native.processCount(this.#countKeys[end]!, 0) > 0) this.addHolder(end, mine);
      }
      return;
    }
    const w = this.ringWrittenBy(end);
    if (w >= 0) this.rings[w]!.close(); // its reader drains, then EOF
    this.rings[end]?.wakeProducers(); // a writer blocked on a full ring sees the reader gone
  }

  unregister(c: Connection): void {
    endFinalizer.unregister(c);
  }

  /**
   * A Connection object of this process is gone: when none is left, this
   * process's reference to the segment goes too, so a pipe is unlinked as
   * soon as no process holds an end (not only when the tree ends).
   */
  dropLocal(): void {
    if (--this.#local !== 0) return;
    liveCores.delete(this);
    // The last holder anywhere (no other process, no handle in flight): what
    // is still unread will never be, so what it holds is given back.
    if (this.segment.livingRefcount() === 1 && this.gen === forkGeneration()) for (const ch of this.channels) ch?.giveBackUnread();
    this.segment.close();
  }

  /**
   * Closes the Connection objects made from this core here. For
   * releaseHandles() (reduction.ts), which attached the core afresh only to
   * give back the counts of handles nobody received (a failed send): left to
   * GC, the end stayed open and its peer's recv() never saw EOF.
   */
  [Symbol.dispose](): void {
    for (const ref of this.conns) ref?.deref()?.close();
  }

  /** A Connection object of `end` is closed or collected: its count and this process's hold go. */
  ended(end: number): void {
    this.#open[end]!--;
    native.processCount(this.#countKeys[end]!, -1);
    this.release(end);
    this.dropLocal();
  }

  /**
   * Before fork(): one more count per Connection object of each end open
   * here, collected ones whose finalizer has not run included, since the
   * child gives back exactly that many (closeAll). Counting only the live
   * objects let a child give back a count it was never given.
   */
  duplicateOpen(): readonly number[] {
    for (let e = 0; e < 2; e++) if (this.#open[e]! > 0) Atomics.add(this.words, kOpen + e, this.#open[e]!);
    return [...this.#open];
  }

  /** In a 'fork' child: the copies are this process's own, and it holds their ends. */
  adopt(gen: number): void {
    this.gen = gen;
    for (let e = 0; e < 2; e++) {
      if (this.#open[e]! === 0) continue;
      native.processCount(this.#countKeys[e]!, this.#open[e]!); // (the child's counts start empty)
      this.addHolder(e, identOf(process.pid, selfStamp()));
    }
  }

  /**
   * Closes what this process still has open, at its exit: the Connection
   * objects alive, and the counts of those collected whose finalizer has not
   * run (it may never run: a fork child made while a cleanup was pending
   * never got one, and kept a count the parent had given it for good).
   */
  closeAll(): void {
    for (let e = 0; e < 2; e++) {
      this.conns[e]?.deref()?.close();
      while (this.#open[e]! > 0) this.ended(e);
    }
  }
}

/**
 * Connections with a recv() or send() still waiting, and how many: such a
 * call waits in its Channel, which holds the pipe's core but not the
 * Connection, so a Connection the caller no longer referenced (a helper that
 * returns `conn.recv()`) was collected under the call: its finalizer closed
 * the end (the peer saw EOF) and unmapped the pipe, and the call failed on
 * a detached buffer (review helper-99). A poll() holds its Connection itself.
 */
const waitingOn = new Map<Connection, number>();

/** Keeps `c` reachable until `p` settles, if the call waits (a call done at once costs nothing). */
function pinWhileWaiting<T>(c: Connection, ch: Channel, p: Promise<T>): Promise<T> {
  if (!ch.waiting) return p;
  waitingOn.set(c, (waitingOn.get(c) ?? 0) + 1);
  const unpin = (): void => {
    const n = waitingOn.get(c)! - 1;
    if (n === 0) waitingOn.delete(c);
    else waitingOn.set(c, n);
  };
  // A promise of its own for the caller: a handler on p itself would make an
  // unawaited call that fails (its end closed under it) a silent loss, not
  // an unhandled rejection.
  return p.finally(unpin);
}

/** Pipes with a Connection open in this process (what a fork() duplicates, as it does file descriptors). */
let liveCores = new Set<PipeCore>();

/**
 * Before fork(): one more count for every end open here, the child's own
 * (it gives them back when it closes its copies or ends), as fork()
 * duplicates file descriptors. Before, the parent's close of an end the
 * child used from its closure closed the pipe under the child, whose sends
 * then went nowhere. Returns the undo, for a fork that failed.
 */
export function duplicateEndsForFork(): { undo: () => void; forkedAs: (pid: number) => void } {
  const taken = [...liveCores].map((core) => [core, core.duplicateOpen()] as const);
  return {
    undo: () => {
      for (const [core, counts] of taken) {
        for (let e = 0; e < 2; e++) for (let i = 0; i < counts[e]!; i++) core.release(e);
      }
    },
    // Once fork() returned: the child holds the ends it copied from its
    // start, so it is named among their holders at once, as an args end is
    // (handOver). Named only by its own adopt(), a child killed in its first
    // ms was in no table: the parent's close() left the count it held and no
    // holder to find dead, and the reader of the other end waited for good.
    forkedAs: (pid) => {
      const ident = identOf(pid, startStamp(pid) ?? 0);
      for (const [core, counts] of taken) for (let e = 0; e < 2; e++) if (counts[e]! > 0) core.addHolder(e, ident);
    },
  };
}

/** In a 'fork' child: the ends it copied are its own (duplicateEndsForFork counted them for it). */
export function adoptInheritedEnds(): void {
  waitingOn.clear(); // the parent's calls, dropped in the child (wait.ts forgetInheritedWaits)
  const gen = forkGeneration();
  for (const core of liveCores) core.adopt(gen);
}

/** In a forkserver child: the ends it copied are the zygote's. */
export function forgetInheritedEnds(): void {
  liveCores = new Set();
  waitingOn.clear();
}

/** A child ending: every end still open here is closed, so that its peer sees EOF now. */
export function closeAllEnds(): void {
  for (const core of [...liveCores]) core.closeAll();
}

// A worker thread that ends gives back what it still holds, as a child
// process does at its exit (bootstrap.ts): its objects' finalizers never run
// when its isolate goes, and every segment it had attached stayed until the
// whole process tree ended, a pipe end it held open until then too (review
// helper-101). Its pipe ends first: closing them drops their segments'
// references. (A worker ended by terminate() runs no JS: not covered.)
// After all the thread's 'exit' listeners: its own may still use them
// (registered at load, this ran first, and a worker's goodbye sendSync()
// found its end closed; review helper-103), also when the worker calls
// process.exit() right after adding one (review helper-104): so it runs
// from process.emit itself, once the listeners are done.
// A library that puts its own process.emit in place from a copy taken
// before ours (signal-exit) drops the wrapper: then a plain 'exit' listener
// does it, early but not never (review helper-105).
if (!isMainThread) {
  let released = false;
  let inWrapper = false;
  const release = (): void => {
    if (released) return;
    released = true;
    closeAllEnds();
    releaseAllAttachments();
  };
  const emit = process.emit as (this: NodeJS.Process, event: string | symbol, ...args: unknown[]) => boolean;
  process.emit = function (this: NodeJS.Process, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'exit') return emit.call(this, event, ...args);
    inWrapper = true;
    try {
      return emit.call(this, event, ...args);
    } finally {
      inWrapper = false;
      release();
    }
  } as typeof process.emit;
  process.on('exit', () => {
    if (!inWrapper) release();
  });
  // A process.exit() inside an 'exit' listener ends the thread there, with
  // the wrapper's finally never run (review helper-106): its way out
  // releases first.
  const proc = process as unknown as { reallyExit?: (...args: unknown[]) => unknown };
  const reallyExit = proc.reallyExit;
  if (typeof reallyExit === 'function') {
    proc.reallyExit = function (this: unknown, ...args: unknown[]): unknown {
      release();
      return reallyExit.apply(this, args);
    };
  }
}

export class Connection<T = unknown> {
  readonly #core: PipeCore;
  readonly #end: number;
  #closed = false;
  readonly #reader: Channel | null;
  readonly #writer: Channel | null;
  readonly #peer: number;
  /** Sends so far, the head of the ring this end writes as the last look saw it, and when its reader's liveness is next due (see #readerGone). */
  #sends = 0;
  #lastHead = -1;
  #peerCheckAt = 0;
  /** When poll() next looks whether the writer lives (see #pollLooksDeep). */
  #pollCheckAt = 0;
  readonly #rawDecode: ((offset: number, length: number) => unknown) | null;

  /** @internal use Pipe() */
  constructor(core: PipeCore, end: number) {
    if (!(core instanceof PipeCore)) throw noPublicConstructor('Connection', 'use Pipe() to make a pair of connected ends; an end reaches another process as a Process arg or a queue item');
    this.#core = core;
    this.#end = end;
    const readable = core.duplex || end === 0;
    const w = core.ringWrittenBy(end);
    this.#reader = readable ? core.channels[end] : null;
    this.#writer = w >= 0 ? core.channels[w] : null;
    this.#peer = 1 - end;
    this.#rawDecode = this.#reader?.decoder(recordBytes) ?? null;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal One word in the pipe's segment that both ends see: empty once the pipe is closed here. */
  [kUserWord](): Int32Array {
    const words = this.#core.words;
    return words.length === 0 ? words : words.subarray(kUser, kUser + 3);
  }

  get readable(): boolean {
    return this.#reader !== null;
  }

  get writable(): boolean {
    return this.#writer !== null;
  }

  #checkOpen(): void {
    if (this.#closed) throw new EOFError('This connection is closed');
  }

  #writeChannel(): Channel {
    this.#checkOpen();
    if (this.#writer === null) throw new TypeError('This connection is the read end of a simplex pipe: it cannot send');
    if (Atomics.load(this.#core.words, kOpen + this.#peer) <= 0) throw new BrokenPipeError('The other end of the pipe is closed');
    const err = this.#readerGone(this.#writer.ring);
    if (err !== null) throw err;
    return this.#writer;
  }

  /**
   * A send to a reader killed without closing its end: refused with
   * BrokenPipeError within kSendsPerLook * 2 messages (at once if a recv()
   * here saw the death), not taken until the ring was full (helper-60: 63
   * messages of 4 KiB went nowhere, even after a recv() here had already got
   * EOFError for that death). Cheap on the hot path: head, on the reader's
   * cache line, is read once every kSendsPerLook sends (read on every send,
   * it cost a streaming pipe 20-35% of its rate here: a cache miss each), and
   * the liveness check (a syscall) runs only when the reader took nothing
   * between two looks while something is unread, at most once per slice.
   */
  #readerGone(ring: Ring): Error | null {
    const core = this.#core;
    if (core.deadIdent[this.#peer] === null) {
      if ((++this.#sends & (kSendsPerLook - 1)) !== 0) return null;
      const h = Atomics.load(ring.ctl, kHead);
      if (h !== this.#lastHead) {
        this.#lastHead = h;
        return null;
      }
      if (ring.usedBytes() === 0) return null;
      const now = performance.now();
      if (now < this.#peerCheckAt) return null;
      this.#peerCheckAt = now + kPollSliceMs;
    }
    return core.peerGone(this.#peer, true, BrokenPipeError);
  }

  #readChannel(): Channel {
    this.#checkOpen();
    if (this.#reader === null) throw new TypeError('This connection is the write end of a simplex pipe: it cannot receive');
    return this.#reader;
  }

  #send(enc: () => Encoded): Promise<void> {
    let ch: Channel;
    let e: Encoded;
    try {
      ch = this.#writeChannel();
      publishCpu(ch.ring);
      e = ch.encode(undefined, enc());
    } catch (err) {
      return Promise.reject(err);
    }
    return pinWhileWaiting(this, ch, ch.put(e, Infinity, undefined));
  }

  /** Sends `obj`; resolves once it is in the pipe (waits while the pipe is full). */
  send(obj: T): Promise<void> {
    if (arguments.length > 1) return Promise.reject(sendTakesOne('send'));
    return this.#send(() => this.#writer!.encode(obj));
  }

  /** send() that blocks this thread while the pipe is full. */
  sendSync(obj: T): void {
    if (arguments.length > 1) throw sendTakesOne('sendSync');
    const ch = this.#writeChannel();
    publishCpu(ch.ring);
    ch.putSync(ch.encode(obj), Infinity);
  }

  /** Sends raw bytes (buf[offset, offset + size)), received as a Buffer by recvBytes() or recv(). */
  sendBytes(buf: ArrayBufferView | ArrayBuffer, offset = 0, size?: number): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = sliceBytes(buf, offset, size);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#send(() => encodeBytes(bytes));
  }

  /**
   * Yields messages until the other end is closed (or its process died) and
   * nothing is left, or until this end is closed here: `for await (const msg
   * of conn)`, the loop every port of `child.on('message')` writes by hand.
   * Other errors (a message that cannot be decoded) end the loop with the error.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for (;;) {
      let msg: T;
      try {
        msg = await this.recv();
      } catch (e) {
        if (e instanceof EOFError) return; // the peer's close or death, or this end's own close()
        throw e;
      }
      yield msg;
    }
  }

  /**
   * Resolves with the next message; rejects EOFError once the other end is
   * closed or dead and nothing is left. `timeout` (ms): TimeoutError after
   * it; `signal`: rejects with its reason (extras of ours: Python's recv()
   * takes neither).
   */
  recv(opts?: GetOptions | number): Promise<T> {
    let ch: Channel;
    let wait: { deadline: number; signal: AbortSignal | undefined };
    try {
      wait = recvOptions(opts, 'recv');
      ch = this.#readChannel();
    } catch (e) {
      return Promise.reject(e);
    }
    return pinWhileWaiting(this, ch, ch.get(wait.deadline, wait.signal) as Promise<T>);
  }

  /** recv() that blocks this thread; TimeoutError if timeoutMs passes. */
  recvSync(timeoutMs?: number): T {
    return this.#readChannel().getSync(deadlineFrom('timeoutMs', timeoutMs)) as T;
  }

  /** The next message as bytes (what sendBytes sent, or a Buffer / typed array's bytes, or the encoded message). */
  recvBytes(opts?: GetOptions): Promise<Buffer> {
    let ch: Channel;
    let wait: { deadline: number; signal: AbortSignal | undefined };
    try {
      wait = recvOptions(opts, 'recvBytes');
      ch = this.#readChannel();
    } catch (e) {
      return Promise.reject(e);
    }
    return pinWhileWaiting(this, ch, ch.get(wait.deadline, wait.signal, this.#rawDecode!) as Promise<Buffer>);
  }

  /**
   * Whether poll()'s first look checks that the writer lives (a system call):
   * at once after a death was seen here, else at most once per slice. Only
   * the looks after a timed-out slice did, so poll(0) never saw a SIGKILLed
   * peer, and `while (!(await c.poll())) work()` spun for good (helper-66).
   */
  #pollLooksDeep(): boolean {
    if (this.#core.deadIdent[this.#core.writerOf(this.#end)] !== null) return true;
    const now = performance.now();
    if (now < this.#pollCheckAt) return false;
    this.#pollCheckAt = now + kPollSliceMs;
    return true;
  }

  /**
   * Whether a message (or the end of the stream) is ready, waiting up to
   * `timeout` ms. poll() and poll(ms) default to 0 (just look), as Python's;
   * an options object without a timeout waits for good, so that
   * `poll({ signal })` waits until a message or the abort (which rejects
   * with the signal's reason, as a recv()'s does).
   */
  async poll(options: GetOptions | number = 0): Promise<boolean> {
    const ch = this.#readChannel();
    const { deadline, signal } = parseWait(options, 'Connection.poll()');
    if (signal?.aborted) throw signal.reason;
    const local = ch.localClosed('get');
    if (signal === undefined) return this.#poll(ch, deadline, local);
    // One signal for the waits: this end's close, or the caller's (through
    // abort.ts, which keeps one listener on a signal many polls share).
    const either = new AbortController();
    const stops = [onAbort(local, () => either.abort(local.reason)), onAbort(signal, () => either.abort(signal.reason))];
    try {
      return await this.#poll(ch, deadline, either.signal);
    } finally {
      for (const stop of stops) stop();
    }
  }

  async #poll(ch: Channel, deadline: number, closed: AbortSignal): Promise<boolean> {
    const ring = ch.ring;
    const ctl = ring.ctl;
    for (let deep = this.#pollLooksDeep(); ; ) {
      if (closed.aborted) throw closed.reason;
      if (ring.hasData() || ring.closed) return true;
      if (this.#core.peerGone(this.#core.writerOf(this.#end), deep) !== null) return true;
      const left = remaining(deadline);
      if (left <= 0) return false;
      const seq = Atomics.load(ctl, kDataSeq);
      Atomics.or(ctl, kConsumersWaiting, kFutexSleeper);
      let res: WaitResult = WaitResult.NotEqual;
      // unref() covers a pending poll() as it does a recv() (before, poll kept the process alive).
      if (!ring.hasData()) res = await waitAsync(ring.buffer, ring.byteOffset(kDataSeq), seq, Math.min(kPollSliceMs, left), closed, ch.keepAlive);
      deep = res === WaitResult.TimedOut;
    }
  }

  /**
   * A pending recv() or poll(), or a send() waiting for room, no longer keeps
   * the process alive (like socket.unref()): for background readers that
   * should not stop a script from ending. (A send() was left out: a write
   * end's unref() did nothing, and its send() waiting on a full pipe kept
   * the process alive for good.)
   */
  unref(): this {
    if (this.#reader !== null) this.#reader.keepAlive = false;
    if (this.#writer !== null) this.#writer.keepAlive = false;
    return this;
  }

  /** Undoes unref(). */
  ref(): this {
    if (this.#reader !== null) this.#reader.keepAlive = true;
    if (this.#writer !== null) this.#writer.keepAlive = true;
    return this;
  }

  /** Closes this end in this process; when no process holds the end any more, the peer sees EOF. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // recv()/send() calls still waiting here end now, before the mapping goes.
    this.#reader?.closeLocal('get', () => new EOFError('This connection was closed while a recv() or poll() waited on it'));
    this.#writer?.closeLocal('put', () => new EOFError('This connection was closed while a send() waited for room'));
    this.#core.unregister(this);
    this.#core.ended(this.#end);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * This end went to a child in its Process args: the child counts as its
   * holder from its start, not only once it attaches (a child killed before
   * that left the peer's recv waiting for good: the end still named us).
   */
  [kSentTo](pid: number): void {
    if (!this.#closed) this.#core.handOver(this.#end, pid, startStamp(pid) ?? 0);
  }

  [kSentTaken](): boolean {
    const w = this.#writer;
    if (w === null || w.ring.ctl.length === 0) return true;
    // A take holds the ring's get lock for its whole decode, and moves head only after it (review helper-70).
    return w.ring.usedBytes() === 0 || Atomics.load(w.ring.ctl, kGetLock) !== 0;
  }

  /**
   * False only when the ring this end reads holds nothing at all (not even a
   * record being written): then recvSync(0) would throw, and a caller that
   * drains with it (a Pool's dead worker) need not build that error.
   */
  [kMaybeUnread](): boolean {
    const r = this.#reader;
    return r === null || this.#closed || r.ring.usedBytes() !== 0;
  }

  [kUnlinkNow](): void {
    this.#core.segment.unlinkNow();
  }

  /**
   * For a peer known to be dead (a Pool's worker): takes the records it never
   * read from the ring this end writes, so that the big-item segments (blobs)
   * and shared objects they name are given back now. Left unread they stayed
   * until the process tree ended: a long-lived pool leaked a blob for each
   * worker killed with a job waiting (helper-55: 7 MB after 10 pools were
   * terminated during maps of 1 MiB items).
   */
  [kDrainUnread](): void {
    const w = this.#core.ringWrittenBy(this.#end);
    const ch = w < 0 ? null : this.#core.channels[w];
    if (ch === null || this.#closed) return;
    ch.giveBackUnread();
  }

  [kToHandle](): Handle {
    this.#checkOpen();
    this.#core.segment.retain();
    Atomics.add(this.#core.words, kOpen + this.#end, 1);
    Atomics.add(this.#core.words, kInFlight + this.#end, 1);
    Atomics.store(this.#core.words, kInFlightAt + this.#end, nowSec());
    return { [kHandleTag]: 'Connection', name: this.#core.segment.name, end: this.#end };
  }

  toString(): string {
    const how = this.#reader !== null && this.#writer !== null ? 'duplex' : this.#reader !== null ? 'read end' : 'write end';
    return `<Connection ${how}${this.#closed ? ' closed' : ''}>`;
  }

  /** console.log shows what toString() says (it showed {}; helper-68). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

/**
 * Tells the reader of `ring` which CPU its writer runs on (the `writer` hook's
 * here()): a load from this thread's CPU word, and a store only when it moved.
 */
function publishCpu(ring: Ring): void {
  const cpu = currentCpu() + 1;
  const ctl = ring.ctl;
  if (ctl[kWriterCpu] !== cpu && ctl.length !== 0) Atomics.store(ctl, kWriterCpu, cpu);
}

function sliceBytes(buf: ArrayBufferView | ArrayBuffer, offset: number, size: number | undefined): Uint8Array {
  let bytes: Uint8Array;
  if (buf instanceof ArrayBuffer) bytes = new Uint8Array(buf);
  else if (ArrayBuffer.isView(buf)) bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  else throw new TypeError(`Expected "buf" to be a Buffer, typed array, DataView or ArrayBuffer, got ${describeValue(buf)}`);
  checkInteger('offset', offset, 0, bytes.length);
  const n = size === undefined ? bytes.length - offset : checkInteger('size', size, 0, bytes.length - offset);
  return bytes.subarray(offset, offset + n);
}

/**
 * recv()'s options: as every wait's (a number is a timeout). recvBytes()
 * refuses a number: in Python it is recv_bytes(maxlength), which a porter
 * would mean, and a timeout there would silently change what it does.
 */
function recvOptions(opts: unknown, method: 'recv' | 'recvBytes'): ParsedWait {
  if (typeof opts === 'number' && method === 'recvBytes') {
    throw new TypeError(`Connection.recvBytes() takes { timeout?, signal? }, not a number: it has no maximum length (the whole message comes back: check its length); for a timeout, recvBytes({ timeout: ${opts} })`);
  }
  return parseWait(opts, `Connection.${method}()`);
}

/**
 * Python's multiprocessing.connection.wait(): resolves with those of
 * `objects` that are ready, once one is or `timeoutMs` passes (then []). A
 * Connection is ready when recv() would not wait (a message, or the end of
 * the stream: recv() then throws EOFError); a Process when it has exited
 * (Python's `sentinel`). In the order given. One reader serving many pipes
 * and children waits on all at once instead of polling each in turn.
 */
export async function wait<T extends Connection<unknown> | Process>(objects: Iterable<T>, timeoutMs?: number): Promise<T[]> {
  if (objects === null || typeof objects !== 'object' || typeof (objects as Iterable<T>)[Symbol.iterator] !== 'function') {
    throw new TypeError(`wait() takes an array of Connections and Processes, got ${describeValue(objects)}`);
  }
  const list = [...objects];
  for (const o of list) {
    if (!(o instanceof Connection) && !(o instanceof Process)) {
      throw new TypeError(`wait() watches Connections (a message to read) and Processes (their exit: pass the Process, or its sentinel), got ${describeValue(o)}`);
    }
    if (o instanceof Process) {
      if (o.pid === null) throw new ProcessError(`wait(): ${o.name} was never started`);
      // Only its parent can see it exit: a fork child's copy of a sibling threw
      // nothing and read as never exiting (review helper-79). Throws then.
      o.isAlive();
    }
  }
  const deadline = deadlineFrom('timeoutMs', timeoutMs);
  if (list.length === 0) {
    // As Python's: nothing becomes ready, so [] once the timeout passes; without one it would wait for good.
    if (deadline === Infinity) throw new TypeError('wait() needs at least one Connection or Process to watch (or a timeout: then it resolves with [] when it passes)');
    await new Promise((r) => setTimeout(r, remaining(deadline)));
    return [];
  }
  const readyNow = async (): Promise<T[]> => {
    const out: T[] = [];
    for (const o of list) if (o instanceof Process ? o.exitCode !== null : await o.poll(0)) out.push(o);
    return out;
  };
  const first = await readyNow();
  if (first.length > 0 || deadline !== Infinity && remaining(deadline) <= 0) return first;
  const stop = new AbortController();
  const polls: Promise<unknown>[] = [];
  for (const o of list) if (!(o instanceof Process)) polls.push(o.poll({ timeout: remaining(deadline), signal: stop.signal }));
  let timer: NodeJS.Timeout | undefined;
  let unwatch: (() => void)[] = [];
  // A process's exit or the timeout. The timer (for good, without one) keeps
  // the loop alive as join() would: an exit watch does not, and waiting on a
  // daemon child alone let the script end, and the daemon be SIGTERMed
  // (review helper-75).
  const exitOrTime = new Promise<void>((resolve) => {
    unwatch = list.filter((o) => o instanceof Process).map((p) => p[kOnExit](resolve));
    timer = deadline === Infinity ? setInterval(() => {}, kMaxTimerMs) : setTimeout(resolve, remaining(deadline));
  });
  try {
    // The first to settle (a poll that saw data or timed out, an exit, the
    // timer) ends the wait; an error (this end closed meanwhile) is thrown.
    await Promise.race([...polls, exitOrTime]);
  } finally {
    // The polls end at once (aborted): none is left to take a later
    // message's wake-up; the exit watches go (one reaction per call on the
    // child's exit promise grew the heap ~300 bytes a wait: helper-75).
    clearInterval(timer); // (either kind)
    for (const off of unwatch) off();
    stop.abort();
    await Promise.allSettled(polls);
  }
  return readyNow();
}

/**
 * A connected pair. Duplex (default): both ends send and receive. Simplex:
 * `[readEnd, writeEnd]`, as Python's `Pipe(False)`.
 */
export function Pipe<T = unknown>(duplex = true, options: PipeOptions = {}): [Connection<T>, Connection<T>] {
  if (typeof duplex !== 'boolean') {
    // Pipe({ capacityBytes }) from habit (Queue takes its options first): say where they go.
    const hint = typeof duplex === 'object' && duplex !== null ? '; the options come second: Pipe(true, { capacityBytes })' : '';
    throw new TypeError(`Expected "duplex" to be a boolean, got ${describeValue(duplex)}${hint}`);
  }
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`Expected the Pipe options to be an object like { capacityBytes }, got ${describeValue(options)}`);
  }
  checkOptionNames(options, ['capacityBytes'], 'Pipe()');
  const cap = roundCapacity('capacityBytes', options.capacityBytes, kDefaultPipeCapacity);
  const seg = Segment.create(Kind.Pipe, kWords + (duplex ? 2 : 1) * (kControlBytes + cap), [cap, duplex ? 1 : 0]);
  for (let e = 0; e < (duplex ? 2 : 1); e++) Ring.init(seg.buffer, seg.payloadOffset + kWords + e * (kControlBytes + cap), cap, 0);
  const words = new Int32Array(seg.buffer, seg.payloadOffset, kWords / 4);
  Atomics.store(words, kOpen, 1);
  Atomics.store(words, kOpen + 1, 1);
  let core: PipeCore;
  try {
    core = new PipeCore(seg);
  } catch (e) {
    seg.close();
    throw e;
  }
  return [core.connection(0) as Connection<T>, core.connection(1) as Connection<T>];
}

/** While a child rebuilds its Process args (see rebuildingArgs). */
let rebuildingChildArgs = 0;

/**
 * In a child, around the rebuild of its Process args: the pipe ends among
 * them are not counted as received here, since the parent counts them when
 * it names the child their holder (Connection[kSentTo], handOver). Counted
 * by both, the second receipt took the count of another handle of the same
 * end still on its way (a child that put its end in a Queue item and closed
 * its own before the parent got to it) and the end's reader, its other
 * holder dead, saw an EOFError that was not one (about one run in three of
 * pipe-killed-sharer.mjs under load).
 */
export function rebuildingArgs<T>(rebuild: () => T): T {
  rebuildingChildArgs++;
  try {
    return rebuild();
  } finally {
    rebuildingChildArgs--;
  }
}

registerKind('Connection', (h) => {
  const end = h.end;
  if (end !== 0 && end !== 1) throw new TypeError(`Malformed Connection handle: ${end === undefined ? 'missing end' : `bad end ${describeValue(end)} (0 or 1)`}`);
  const core = attachShared(h.name, Kind.Pipe, (seg) => new PipeCore(seg));
  // An arg whose references the parent gave back (a start it took for
  // failed while this child ran: see segment.ts pendingWord) carries no
  // count of the end either: the count connection() takes over (or drops as
  // surplus) is made anew. Used as it was, this child's close took the
  // count of another holder, and the end was closed under it.
  // (The parent too, releasing the handles of a start it took for failed
  // while the child ran and took the slot over: segment.ts releasingUnsent.)
  if (argsGivenBack(h.name)) Atomics.add(core.words, kOpen + end, 1);
  const c = core.connection(end);
  if (rebuildingChildArgs === 0) core.received(end);
  return c;
});

/**
 * For the forkserver's warm-up (bootstrap.ts): a recv() that finds the pipe
 * empty, polls, sleeps on the wake socket and is woken by a send(): the path
 * of every pool worker's first wait for a job and of the parent's result
 * readers, which the other rehearsals (items already there) never take.
 */
export async function rehearseSleepingRecv(): Promise<void> {
  const [a, b] = Pipe();
  const got = b.recv();
  try {
    // Past the poll window (at most 0.1 ms), into the sleep.
    await new Promise((resolve) => setTimeout(resolve, 1));
    await a.send(1);
    await got;
  } catch (e) {
    got.catch(() => {}); // closed below (EOFError): the send's error is the one to report
    throw e;
  } finally {
    a.close();
    b.close();
  }
}
