/**
 * forkserver: children forked copy-on-write from a zygote
 * (lib/entry/forkserver-main.ts) that this process starts on first use and
 * that exits with it (EOF on its request pipe, and PR_SET_PDEATHSIG).
 *
 * Protocol and shared board: see forkserver-layout.ts. A request is written
 * with a blocking write to a pipe only we hold the write end of, and the pid
 * comes back through the board, so start() is synchronous like Python's.
 * A Pool's workers use startAsync(), which waits for the reply
 * without blocking the event loop; the board has one reply slot, so the
 * requests go one at a time (see Zygote.request and requestAsync).
 * Exits come back as ring records; the zygote is the children's parent and
 * reaps them on SIGCHLD.
 *
 * Exports: ForkserverPopen, setForkserverPreload, getForkserverPreload,
 * forkserverPid, stopForkserver.
 */
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { libDir, startCwd } from '../paths';
import { ProcessError } from '../errors';
import { resolveForChild } from '../task';
import { native } from '../native';
import { checkTracker, kTrackerFdEnv, kTrackerInoEnv, kTrackerPidEnv, onTrackerRestart, register, trackerFdForChild, trackerPipeInode, trackerProcessId, unregister } from '../resource-tracker';
import { createSegment, generateName, osName } from '../segment';
import { checkInteger } from '../validate';
import { processState } from '../liveness';
import { forkGeneration, kInheritedCall, waitAsync, waitSync, wake } from '../wait';
import {
  kBellRung, kBoardBytes, kBoardEnv, kCancelSeq, kPreloadEnv, kReady, kSparesEnv, kReplyPid, kReplySeq, kRingCapacity, kRingRead, kRingRecordInts, kRingStart, kRingWrite,
} from './forkserver-layout';
import { warnIfUnparkable } from './park';
import { BasePopen, encodeSpec, exitCodeOf, type ChildSpec } from './popen';
import { childExecArgv, kZygoteFlags } from './spawn';

let preload: string[] = [];
let spareCount = Math.min(4, availableParallelism());
/** A word nobody wakes: Atomics.wait on it is a sub-millisecond sleep (see request()). */
const napWord = new Int32Array(new SharedArrayBuffer(4));

/**
 * How many children the zygote keeps forked ahead of demand (default: the
 * CPU count, at most 4). Each idle spare costs about 1 MB of unique memory;
 * 0 turns them off. Applies to a zygote started after the call.
 */
export function setForkserverSpares(n: number): void {
  checkInteger('n', n, 0, 64);
  spareCount = n;
}

export function setForkserverPreload(modules: readonly (string | URL)[]): void {
  if (!Array.isArray(modules) || modules.some((m) => typeof m !== 'string' && !(m instanceof URL))) {
    throw new TypeError('Expected "modules" to be an array of module names, paths or file URLs');
  }
  // Resolved here, from the calling file, as module targets are: the zygote
  // import()s from this library's folder, where the caller's packages (and
  // its relative paths) are not found.
  preload = modules.map((m) => resolveForChild(m, 'setForkserverPreload'));
}

export function getForkserverPreload(): string[] {
  return [...preload];
}

interface PendingRequest {
  spec: ChildSpec;
  /** Its request's seq, once written. */
  seq: number;
  resolve(pid: number): void;
  reject(e: Error): void;
}

function diedWhileStarting(): ProcessError {
  return new ProcessError('The forkserver process died while starting a child (see its stderr above)');
}

class Zygote {
  readonly pid: number;
  readonly #child: ChildProcess;
  readonly #reqFd: number;
  readonly #buffer: ArrayBuffer;
  readonly #board: Int32Array;
  readonly #doorbell: Socket;
  #boardName: string | null;
  #seq = 0;
  #dead = false;
  /** A fork child's copy (forgetInForkChild). */
  #forgotten = false;
  #refs = 0;
  readonly popens = new Map<number, ForkserverPopen>();
  readonly #early = new Map<number, number>();
  /** Children finished from their zombie's status while the zygote was stopped: its record for them, if it comes, is dropped. */
  readonly #finishedHere = new Set<number>();
  #stopWatch: NodeJS.Timeout | undefined;
  /** When the zygote was first seen stopped (0: it was not, at the last look). */
  #stoppedSince = 0;
  /** The async request written and not yet answered: at most one, as the board has one reply slot. */
  #outstanding: PendingRequest | null = null;
  /** Async requests not yet written, in call order. */
  readonly #waiting: PendingRequest[] = [];

  constructor() {
    warnIfUnparkable(); // the zygote parks around its forks (it shares this addon)
    const name = osName(generateName());
    this.#buffer = createSegment(name, kBoardBytes);
    register(name, 'object');
    this.#boardName = name;
    this.#board = new Int32Array(this.#buffer);
    let r: number;
    let w: number;
    try {
      [r, w] = native.pipe();
    } catch (e) {
      this.#unlinkBoard();
      throw new ProcessError(`Could not start the forkserver process: ${(e as Error).message}`, { cause: e });
    }
    const main = join(libDir, 'entry', 'forkserver-main.js');
    let child: ChildProcess;
    try {
      // One V8 worker thread (Node's least): the zygote runs V8 single-threaded
      // and parks its workers around each fork (popen/park.ts); fewer to park.
      child = spawnChild(process.execPath, [...kZygoteFlags, ...childExecArgv(), main], {
        stdio: ['ignore', 'inherit', 'inherit', r, 'pipe', trackerFdForChild()],
        // Where its execArgv resolves as the parent's did (paths.ts); each child changes to its own cwd.
        cwd: startCwd(process.cwd()),
        env: {
          ...process.env,
          [kTrackerFdEnv]: '5',
          [kTrackerPidEnv]: String(trackerProcessId()),
          [kTrackerInoEnv]: String(trackerPipeInode()),
          MULTIPROC_PARENT_PID: String(process.pid),
          [kBoardEnv]: name,
          [kPreloadEnv]: JSON.stringify(preload),
          [kSparesEnv]: String(spareCount),
        },
      });
    } finally {
      native.closeFd(r);
    }
    if (child.pid === undefined) {
      child.on('error', () => {}); // see SpawnPopen: emitted next tick, would crash the process
      native.closeFd(w);
      this.#unlinkBoard();
      throw new ProcessError('Could not start the forkserver process');
    }
    this.pid = child.pid;
    this.#child = child;
    this.#reqFd = w;
    child.unref();
    child.on('error', () => {});
    child.on('exit', () => this.#died());
    this.#doorbell = child.stdio[4] as Socket;
    this.#doorbell.on('data', () => {
      // The byte is read: the next exit may ring again. Cleared before the
      // drain, so an exit pushed meanwhile is either drained now or rings.
      Atomics.store(this.#board, kBellRung, 0);
      this.drain();
    });
    this.#doorbell.on('error', () => {});
    this.#doorbell.unref();
  }

  #unlinkBoard(): void {
    if (this.#boardName === null) return;
    native.shmUnlink(this.#boardName);
    unregister(this.#boardName, 'object');
    this.#boardName = null;
  }

  get alive(): boolean {
    return !this.#dead;
  }

  /** Resolves once the zygote serves requests, without blocking the event loop; rejects if it dies first. */
  async ready(): Promise<void> {
    while (Atomics.load(this.#board, kReady) === 0) {
      if (this.#dead || !native.isAlive(this.pid)) {
        this.#died();
        throw new ProcessError('The forkserver process exited while starting (see its stderr above)');
      }
      await waitAsync(this.#buffer, kReady * 4, 0, 100);
    }
  }

  /**
   * Forks a child for spec; returns its pid. Blocks until the zygote answers
   * (and, first, until it has answered the async request it may be serving:
   * the board has one reply slot).
   */
  request(spec: ChildSpec): number {
    if (this.#dead) throw new ProcessError('The forkserver process has exited');
    const prior = this.#outstanding;
    if (prior !== null) {
      // Taken from its async waiter (which sees it gone and stops): its
      // reply must be read before ours can be asked for.
      this.#outstanding = null;
      try {
        prior.resolve(this.#awaitReplySync(prior.seq));
      } catch (e) {
        prior.reject(e as Error);
        if (this.#dead) throw e;
      }
    }
    try {
      return this.#awaitReplySync(this.#write(spec));
    } finally {
      this.#pump();
    }
  }

  /**
   * request() without blocking the event loop while the zygote forks: the
   * request is written now (or, if another one is being served, when its
   * reply is in: one at a time), and the reply is waited for with waitAsync.
   */
  requestAsync(spec: ChildSpec): Promise<number> {
    if (this.#dead) return Promise.reject(new ProcessError('The forkserver process has exited'));
    return new Promise<number>((resolve, reject) => {
      this.#waiting.push({ spec, seq: 0, resolve, reject });
      this.#pump();
      this.#watch();
    });
  }

  /** Writes the next waiting async request, if none is being served. */
  #pump(): void {
    while (this.#outstanding === null && this.#waiting.length > 0 && !this.#dead) {
      const req = this.#waiting.shift()!;
      try {
        req.seq = this.#write(req.spec);
      } catch (e) {
        req.reject(e as Error);
        continue;
      }
      this.#outstanding = req;
      void this.#awaitReplyAsync(req);
    }
  }

  /** Sends one request frame; returns its seq. */
  #write(spec: ChildSpec): number {
    // A loop of starts that never lets the event loop turn must still free
    // the exit ring, or the zygote would wait for room and answer no one.
    this.drain();
    const body = encodeSpec(spec);
    const seq = (this.#seq = (this.#seq + 1) >>> 0);
    const frame = Buffer.allocUnsafe(8 + body.length);
    frame.writeUInt32LE(seq, 0);
    frame.writeUInt32LE(body.length, 4);
    body.copy(frame, 8);
    let off = 0;
    while (off < frame.length) {
      try {
        off += writeSync(this.#reqFd, frame, off);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EINTR') continue;
        if (code === 'EAGAIN') {
          // The pipe is full until the zygote reads (big args): nap instead
          // of spinning, which took a CPU from the zygote we wait for.
          Atomics.wait(napWord, 0, 0, 0.2);
          continue;
        }
        const err = new ProcessError(`The forkserver process is gone (${code ?? String(e)})`, { cause: e });
        this.#died(err);
        throw err;
      }
    }
    return seq;
  }

  #awaitReplySync(seq: number): number {
    for (;;) {
      const now = Atomics.load(this.#board, kReplySeq);
      if (now === (seq | 0)) break;
      waitSync(this.#buffer, kReplySeq * 4, now, 100);
      if (Atomics.load(this.#board, kReplySeq) !== (seq | 0) && !native.isAlive(this.pid)) {
        const err = diedWhileStarting();
        this.#died(err);
        throw err;
      }
    }
    return this.#reply();
  }

  async #awaitReplyAsync(req: PendingRequest): Promise<void> {
    for (;;) {
      // Gone: a synchronous request read its reply for it, or the zygote died (both settled it).
      if (this.#outstanding !== req) return;
      const now = Atomics.load(this.#board, kReplySeq);
      if (now === (req.seq | 0)) break;
      await waitAsync(this.#buffer, kReplySeq * 4, now, 100);
      if (this.#outstanding !== req) return;
      if (Atomics.load(this.#board, kReplySeq) !== (req.seq | 0) && !native.isAlive(this.pid)) {
        this.#died(diedWhileStarting()); // rejects req
        return;
      }
    }
    this.#outstanding = null;
    try {
      req.resolve(this.#reply());
    } catch (e) {
      req.reject(e as Error);
    }
    this.#pump();
  }

  /** The pid in the reply slot, once it holds the answer to our latest request. */
  #reply(): number {
    // The zygote has attached the board by now: the name is no longer needed.
    this.#unlinkBoard();
    const pid = Atomics.load(this.#board, kReplyPid);
    if (pid <= 0) throw new ProcessError('The forkserver could not fork a child (see its stderr above)');
    return pid;
  }

  /** Delivers every exit record the zygote has written. */
  drain(): void {
    if (this.#board.length === 0 || this.#forgotten) return; // (a fork child's copy: the records are the parent's)
    let r = Atomics.load(this.#board, kRingRead);
    const w = Atomics.load(this.#board, kRingWrite);
    if (r === w) return;
    while (r !== w) {
      const at = kRingStart + (r % kRingCapacity) * kRingRecordInts;
      const pid = this.#board[at];
      const code = this.#board[at + 1];
      const signal = this.#board[at + 2];
      this.#deliver(pid, exitCodeOf(signal !== 0 ? null : code, signal !== 0 ? signal : null));
      r++;
    }
    Atomics.store(this.#board, kRingRead, r);
    wake(this.#buffer, kRingRead * 4);
  }

  #deliver(pid: number, code: number): void {
    if (this.#finishedHere.delete(pid)) return;
    const p = this.popens.get(pid);
    if (p === undefined) {
      this.#early.set(pid, code);
      return;
    }
    this.popens.delete(pid);
    p.finish(code);
  }

  /** Blocks until a new exit record may be there, or ms passes. */
  waitForRecord(ms: number): void {
    if (this.#dead) return;
    const w = Atomics.load(this.#board, kRingWrite);
    if (w !== Atomics.load(this.#board, kRingRead)) return;
    waitSync(this.#buffer, kRingWrite * 4, w, Math.min(ms, 100));
    if (!native.isAlive(this.pid)) this.#died();
  }

  adopt(pid: number, p: ForkserverPopen): void {
    if (this.#dead) {
      // Forked before the zygote died, adopted after (a reply read for an
      // async start by a synchronous one, whose own request then found the
      // zygote gone): its exit will never be reported. It was killed with
      // the others (see #died); left here, its Pool waited for ever.
      p.lostWithServer = true;
      p.finish(-9);
      return;
    }
    const early = this.#early.get(pid);
    if (early !== undefined) {
      this.#early.delete(pid);
      p.finish(early);
      return;
    }
    this.popens.set(pid, p);
    this.#watch();
  }

  #watch(): void {
    this.#stopWatch ??= setInterval(() => this.watchStopped(), kStopWatchMs).unref();
  }

  /**
   * Exits are learned from the zygote, which reaps its children: stopped
   * (SIGSTOP, a debugger), it reports none, and a Pool's terminate() waited
   * for its killed workers for the whole stop, a worker SIGKILLed meanwhile
   * was never noticed, and a finished child read as running (helper-61).
   * While it is stopped, a child of it that has ended is a zombie whose exit
   * status /proc still shows: finished from that (Linux).
   */
  watchStopped(): void {
    const requests = this.#outstanding !== null || this.#waiting.length > 0;
    if ((this.popens.size === 0 && !requests) || this.#dead) {
      clearInterval(this.#stopWatch);
      this.#stopWatch = undefined;
      this.#stoppedSince = 0;
      return;
    }
    const z = processState(this.pid);
    if (z === null || (z.state !== 'T' && z.state !== 't')) {
      this.#stoppedSince = 0;
      return;
    }
    const now = performance.now();
    if (this.#stoppedSince === 0) this.#stoppedSince = now;
    else if (requests && now - this.#stoppedSince >= kStoppedFailMs) {
      // A Pool's workers (a new pool's first ones too): their start fails
      // rather than waiting out the stop (its terminate() waited for them). A synchronous
      // start() still waits (its target would run later, a run nobody
      // asked for, if the zygote read the request before the cancel).
      // The written request is marked cancelled (kCancelSeq): continued,
      // the zygote forks nothing for it.
      if (this.#outstanding !== null) Atomics.store(this.#board, kCancelSeq, this.#outstanding.seq | 0);
      this.#failRequests(new ProcessError(`The forkserver process (pid ${this.pid}) is stopped (SIGSTOP, a debugger?) and cannot start a pool worker: send it SIGCONT, or use startMethod 'spawn'`));
    }
    this.drain();
    for (const [pid, p] of this.popens) {
      const st = processState(pid);
      if (st === null || st.exitCode === null) continue;
      this.popens.delete(pid);
      this.#finishedHere.add(pid);
      p.finish(st.exitCode);
    }
  }

  ref(delta: number): void {
    this.#refs += delta;
    if (this.#refs > 0) this.#doorbell.ref();
    else this.#doorbell.unref();
  }

  #died(reason?: ProcessError): void {
    if (this.#dead) return;
    this.drain();
    this.#dead = true;
    this.#failRequests(reason ?? new ProcessError('The forkserver process has exited (see its stderr above)'));
    if (current === this) current = null;
    this.#unlinkBoard();
    try {
      native.closeFd(this.#reqFd);
    } catch {
      // closed already
    }
    // Its children got SIGKILL from the kernel (PR_SET_PDEATHSIG) or its watchdog.
    for (const [, p] of this.popens) {
      p.lostWithServer = true;
      p.finish(-9);
    }
    this.popens.clear();
    this.#doorbell.destroy();
  }

  /** The async requests this zygote will never answer fail (their starts try a new zygote once). */
  #failRequests(err: ProcessError): void {
    const reqs = this.#outstanding === null ? [...this.#waiting] : [this.#outstanding, ...this.#waiting];
    this.#outstanding = null;
    this.#waiting.length = 0;
    for (const r of reqs) r.reject(err);
  }

  /**
   * In a child made by fork() ('fork' start method): this copy of the
   * parent's zygote client lets go of what it shares with the parent's
   * without touching it. Its copy of the doorbell pipe was still watched
   * (uv_loop_fork re-registers every watcher): the child read the bell byte
   * and drained the shared exit ring, and the parent never learned of its
   * forkserver children's exits; join() without a timeout waited for good
   * (helper-91). Closing the child's fd copies and dropping its timer leaves
   * the parent's alone.
   */
  forgetInForkChild(): void {
    this.#forgotten = true;
    this.#dead = true;
    this.#doorbell.destroy();
    native.closeFd(this.#reqFd);
    if (this.#stopWatch !== undefined) clearInterval(this.#stopWatch);
    this.#stopWatch = undefined;
    this.#outstanding = null;
    this.#waiting.length = 0;
    this.popens.clear();
  }

  /** Closes the request pipe: the zygote exits (and its remaining children with it). */
  shutdown(): void {
    if (this.#dead) return;
    this.drain();
    this.#dead = true;
    this.#failRequests(new ProcessError('The forkserver was stopped (stopForkserver()) while starting a child'));
    if (current === this) current = null;
    this.#unlinkBoard();
    native.closeFd(this.#reqFd);
    this.#doorbell.destroy();
    // Whatever still runs gets SIGKILL when the zygote exits (PR_SET_PDEATHSIG).
    for (const [, p] of this.popens) p.finish(-9);
    this.popens.clear();
  }
}

let current: Zygote | null = null;
/** How often a zygote with children or pending starts checks whether it is stopped (see watchStopped). */
const kStopWatchMs = 250;
/** How long a stopped zygote may hold a pool worker's start before it fails. */
const kStoppedFailMs = 1000;

// Stopped from process.ts's exit hook, after the children were joined (the
// zygote must outlive them: it reports their exits).
function zygote(): Zygote {
  checkTracker(); // a zygote holding a dead tracker's pipe is replaced if idle (see onTrackerRestart below)
  if (current === null || !current.alive) current = new Zygote();
  return current;
}

/**
 * Starts this process's zygote now, if it is not running, and resolves once
 * it serves requests: the first forkserver start() (or new Pool()) then
 * does not block the event loop while a fresh zygote boots (~0.5 s on a
 * slow VM). Python's forkserver.ensure_running(), awaitable.
 */
export async function startForkserver(): Promise<void> {
  await zygote().ready();
}

/** pid of this process's zygote, or null if none is running. */
export function forkserverPid(): number | null {
  return current !== null && current.alive ? current.pid : null;
}

/** Stops the zygote now (it is restarted on next use). */
export function stopForkserver(): void {
  current?.shutdown();
  current = null;
}

// A zygote holds the tracker pipe it was started with, and so do the
// children it forks: after the tracker died and the root started another,
// an idle zygote is replaced at the next start (one with children runs on;
// its later children are not tracked and say so once each: helper-62).
onTrackerRestart(() => {
  if (current !== null && current.popens.size === 0) stopForkserver();
});

/** In a fork child: the parent's zygote is not ours to use. */
export function forgetForkserver(): void {
  current?.forgetInForkChild();
  current = null;
}

export class ForkserverPopen extends BasePopen {
  readonly method = 'forkserver' as const;
  readonly pid: number;
  #zygote: Zygote;
  #ref = false;

  private constructor(z: Zygote, pid: number) {
    super();
    this.#zygote = z;
    this.pid = pid;
    z.adopt(pid, this);
  }

  /** Starts a child; blocks until the zygote has forked it (Process.start()). */
  static start(spec: ChildSpec): ForkserverPopen {
    let z = zygote();
    let pid: number;
    try {
      pid = z.request(spec);
    } catch (e) {
      // A zygote that died while this process's event loop did not turn is
      // only found dead now (EPIPE): start a fresh one once, as the docs say.
      if (z.alive) throw e;
      z = zygote();
      pid = z.request(spec);
    }
    return new ForkserverPopen(z, pid);
  }

  /** start() without blocking the event loop while the zygote forks (a Pool's workers). */
  static async startAsync(spec: ChildSpec): Promise<ForkserverPopen> {
    // A 'fork' child copies this start's continuation when its reply was
    // settled just before the fork (a synchronous start() reads it for us, see
    // request()): the child is not that worker's parent. Before, the child's
    // copy of the Pool took it for its own, found it dead (the zygote is not
    // the child's), read and closed its pipe and started a replacement of its
    // own (a zygote and a worker that ran the initializer). A new Pool's
    // starts are pending after new Pool() returns, so a start() and a fork in
    // one block after it did so every time.
    const gen = forkGeneration();
    let z = zygote();
    let pid: number;
    try {
      pid = await z.requestAsync(spec);
    } catch (e) {
      if (forkGeneration() !== gen) await kInheritedCall;
      if (z.alive) throw e;
      z = zygote();
      pid = await z.requestAsync(spec);
    }
    if (forkGeneration() !== gen) await kInheritedCall;
    return new ForkserverPopen(z, pid);
  }

  /** Exit records come from the zygote's ring; drain() delivers them to their Popens. */
  protected check(): void {
    this.#zygote.drain();
  }

  /** Sleeps on the ring's futex word rather than polling. */
  override waitSync(timeoutMs: number): number | null {
    const deadline = performance.now() + timeoutMs;
    while (this.poll() === null) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      // A dead zygote's children are finished by #died/adopt; never spin on one.
      if (!this.#zygote.alive) {
        this.finish(-9);
        break;
      }
      this.#zygote.waitForRecord(left);
      // A blocked thread runs no timer: look here too (the exit hook's joinSync waited out a stopped zygote).
      this.#zygote.watchStopped();
    }
    return this.returncode;
  }

  setRef(ref: boolean): void {
    if (ref === this.#ref || (ref && this.returncode !== null)) return;
    this.#ref = ref;
    this.#zygote.ref(ref ? 1 : -1);
  }
}
