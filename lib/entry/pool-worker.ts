/**
 * The worker side of Pool (lib/pool.ts): a Process target that receives jobs
 * on its Connection, runs them one after another and sends results back in
 * the same order. Task functions are compiled once and cached by key.
 *
 * A worker ignores SIGINT and SIGTERM: Ctrl-C (or a SIGTERM sent to the
 * group) reaches the whole process group, and the
 * parent decides (it rejects pending calls and kills the workers), so users
 * never see a stack trace from every child (CPython's bpo-8296).
 */
import { Pipe, type Connection } from '../connection';
import { AbortError, TimeoutError } from '../errors';
import { discard, encode } from '../codec';
import { noop } from '../abort';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { attachCount } from '../segment';
import { jobTag, kUserWord } from '../symbols';
import { onUnsettledAtExit } from './unsettled';
import { explainReferenceError, kProgressSink, kSignalSink, loadTask, type TaskTarget } from '../task';
import { wire, type WireError } from '../wire-error';

interface WorkerInit {
  initializer?: TaskTarget;
  initargs: unknown[];
  /** Where a function task's require() resolves from when the pool set the workers' cwd: the parent's directory (see ChildSpec.base). */
  base?: string;
  /** maxWorkerMemoryMb, in bytes: over it after a job, the worker begins no other (see serveJobs). */
  maxRssBytes?: number;
}

/** The base for function tasks (set once, by poolWorkerMain). */
let taskBase: string | undefined;

interface JobMsg {
  t: 'job';
  id: number;
  fn: number;
  def?: TaskTarget;
  star: boolean;
  items: unknown[];
  /** The call has an onProgress: reportProgress() sends to it. */
  progress?: true;
}

const kRssEveryMs = 20;

/** What serveJobs tells reportFatal: the job running now, if any. */
interface Watch {
  running(): { id: number; index: number } | null;
}

/**
 * An error that escapes every task's own promise (a rejection nothing
 * awaits, a throw from a timer or a callback) ends the worker: the bootstrap
 * reports it on stderr and exits 1, and a process in an unknown state must
 * take no more work (CPython's rule). Before that, this tells the parent what
 * it was and which job was running, so the call that fails for it gets it as
 * the cause, and a job the worker had not started is not blamed. Prepended,
 * so that it runs before the bootstrap's handler exits.
 */
function reportFatal(conn: Connection, watch: Watch): void {
  process.prependListener('uncaughtException', (err, origin) => {
    // A 'fork' grandchild leaving this worker's code (see bootstrap.ts isForkChildExit): not an error.
    if ((err as { forkChild?: unknown } | null)?.forkChild === true) return;
    try {
      conn.sendSync({ t: 'fatal', error: wire(err), rejection: origin === 'unhandledRejection', running: watch.running() });
    } catch {
      // the pipe is closed: the report on stderr remains
    }
  });
}

export async function poolWorkerMain(conn: Connection, init: WorkerInit): Promise<void> {
  // SIGTERM too: a group-wide one (systemd, `timeout`) is the parent's to act on, and it stops
  // workers with SIGKILL when it must.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  const watch: Watch = { running: () => null };
  reportFatal(conn, watch);
  taskBase = init.base;
  try {
    if (init.initializer !== undefined) {
      const f = await loadTask(init.initializer, taskBase);
      // An initializer whose promise never settles, with nothing left to
      // wait on: before, the worker exited 0 and the pool failed with "keep
      // dying ... exit code 0", which named nothing. Prepended and exiting,
      // so the generic "target never settled" line (bootstrap.ts) does not follow.
      const settled = onUnsettledAtExit(() => {
        conn.sendSync({ t: 'init-failed', error: wire(new Error('The pool initializer returned a promise that never settled, with nothing left for it to wait on (the worker\'s event loop is empty): it must resolve or reject for the worker to start')) });
        process.exit(1); // within 'exit': ends now, before the generic line
      });
      try {
        await f(...init.initargs);
      } finally {
        settled();
      }
    }
  } catch (e) {
    conn.send({ t: 'init-failed', error: wire(init.initializer?.kind === 'source' ? explainReferenceError(e, 'A pool task function') : e) });
    process.exit(1);
  }
  conn.send({ t: 'ready', pid: process.pid });
  await serveJobs(conn, watch, init.maxRssBytes);
  conn.close();
  process.exit(0);
}

type CancelKind = 'abort' | 'timeout';
type ToWorker = JobMsg | { t: 'stop' } | { t: 'cancel'; id: number; kind: CancelKind };
/** A job as it waits in the inbox: a cancel for it may mark it before it runs. */
type Queued = JobMsg & { cancelled?: CancelKind };

/**
 * Reads conn ahead of the job loop, so that a 'cancel' reaches the job it
 * names while that job's task is still running (awaiting something): jobs
 * and 'stop' queue up in order, cancels take effect at once. The parent
 * sends a cancel after the job it names, so that job is by then running,
 * queued here, or done.
 */
class Inbox {
  readonly #queue: (Queued | { t: 'stop' } | null)[] = [];
  #waiter: ((m: Queued | { t: 'stop' } | null) => void) | null = null;

  constructor(conn: Connection, onCancel: (id: number, kind: CancelKind) => void) {
    this.#pump(conn, onCancel);
  }

  /**
   * A chain of callbacks, not a loop in an async function: a loop's frame,
   * suspended in recv() while the worker is idle, still held the last job
   * message, and the idle collection (ReceivedShared) could not give its
   * shared arguments back.
   */
  #pump(conn: Connection, onCancel: (id: number, kind: CancelKind) => void): void {
    const next = (): void => {
      conn.recv().then(
        (m) => this.#deliver(m as ToWorker, onCancel) && next(),
        () => this.#deliver(null, onCancel), // the parent is gone or closed the pipe
      );
    };
    next();
  }

  /** Takes in one message; false once nothing more will come. */
  #deliver(m: ToWorker | null, onCancel: (id: number, kind: CancelKind) => void): boolean {
    if (m !== null && m.t === 'cancel') {
      const queued = this.#queue.find((q) => q !== null && q.t === 'job' && q.id === m.id) as Queued | undefined;
      if (queued !== undefined) queued.cancelled = m.kind;
      else onCancel(m.id, m.kind);
      return true;
    }
    const w = this.#waiter;
    if (w !== null) {
      this.#waiter = null;
      w(m);
    } else this.#queue.push(m);
    return !(m === null || m.t === 'stop');
  }

  /** The next job or 'stop' if one has arrived (null: EOF), else undefined: then wait(). */
  take(): Queued | { t: 'stop' } | null | undefined {
    return this.#queue.length > 0 ? this.#queue.shift() : undefined;
  }

  /** Whether nothing is queued here. */
  idle(): boolean {
    return this.#queue.length === 0;
  }

  /** The next job or 'stop' (null at EOF), once it arrives. */
  wait(): Promise<Queued | { t: 'stop' } | null> {
    return new Promise((resolve) => (this.#waiter = resolve));
  }
}

/**
 * The shared objects (Value, Queue, Lock...) that job items bring stay
 * attached for as long as anything here refers to them (the task may keep
 * one, or leave a get() pending on it), and are given back by their
 * finalizers when collected. A worker's heap is small and may never be
 * collected, which kept every one of them, its segment in /dev/shm, until
 * the tree ended (1,200 segments after 600 tasks with a Value each). So the
 * worker collects garbage itself: while busy, once kCollectEvery objects or
 * kCollectBytes bytes were attached afresh (the object count limited by the
 * last collection's cost), and after kIdleMs without a job. (Disposing a
 * job's arguments when it ended, tried first, closed objects under the jobs
 * read ahead that held the same object, and under calls a task had left
 * pending.)
 */
class ReceivedShared {
  #since = 0;
  #sinceBytes = 0;
  #seen = attachCount().objects;
  #seenBytes = attachCount().bytes;
  /** Whether the last collection came right after shared objects arrived: then one more follows the next job. */
  #again = false;
  #idleCheck: NodeJS.Timeout | undefined;
  /** When the last collection ended, and how long it took (ms). */
  #lastEnd = 0;
  #lastMs = 0;

  /** Counts the objects attached since the last job: one this worker had already (the same Value in every task) costs nothing. */
  arrived(): void {
    const { objects, bytes } = attachCount();
    this.#since += objects - this.#seen;
    this.#sinceBytes += bytes - this.#seenBytes;
    this.#seen = objects;
    this.#seenBytes = bytes;
  }

  /**
   * After a job: collect if enough arrived (and the last collection was
   * cheap against the time since: a worker with a big heap spends at most
   * ~1/kGcShare of its time on these), or once the worker has been idle for
   * kIdleMs (`idle()` true then).
   */
  jobDone(idle: () => boolean): void {
    if (this.#since === 0 && !this.#again) return;
    // Big objects (a 4 MB array a task) are collected for by size, whatever the time rule says:
    // the rule alone let a worker with a big heap hold 800 MB of /dev/shm.
    if (this.#sinceBytes >= kCollectBytes) {
      this.#collect();
      return;
    }
    if (this.#since >= kCollectEvery) {
      const now = performance.now();
      if (this.#lastEnd === 0) {
        // No collection yet to go by: guess ~1 ms per MB of heap (measured here: 266 ms for 230 MB).
        this.#lastEnd = now;
        this.#lastMs = process.memoryUsage().heapUsed / 1e6;
      }
      if (now - this.#lastEnd >= kGcShare * this.#lastMs) {
        this.#collect();
        return;
      }
    }
    // Idle for a while, not just between two jobs of a busy call (a full
    // collection of a big heap there cost 30x the tasks' own time).
    if (this.#idleCheck !== undefined) {
      this.#idleCheck.refresh();
      return;
    }
    this.#idleCheck = setTimeout(() => {
      this.#idleCheck = undefined;
      if (idle()) this.#collect();
      else this.jobDone(idle); // a job runs: look again once it is done
    }, kIdleMs);
    this.#idleCheck.unref();
  }

  /**
   * A full collection. After one that followed new arrivals, one more comes
   * after the next job: the last job's objects may still have sat in a
   * register of some suspended frame, which the next job overwrites. An
   * object a task keeps costs no more collections.
   */
  #collect(): void {
    this.#again = this.#since > 0;
    this.#since = 0;
    this.#sinceBytes = 0;
    const t0 = performance.now();
    collectGarbage();
    this.#lastEnd = performance.now();
    this.#lastMs = this.#lastEnd - t0;
  }
}

/** Shared objects received between two collections while the worker stays busy. */
const kCollectEvery = 64;
/** While busy, a collection waits until this many times the last one's duration has passed since it. */
const kGcShare = 10;
/** How long a worker must have had no job before it collects (ms). */
const kIdleMs = 100;
/** Bytes of shared memory attached since the last collection past which a busy worker collects. */
const kCollectBytes = 128 << 20;

let gcFn: (() => void) | null | undefined;
/** A full GC, without exposing gc() to the user's code: a function of a context of our own. */
function collectGarbage(): void {
  if (gcFn === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  gcFn?.();
}

/** The job running now: what taskSignal() and reportProgress() act on. */
interface Running {
  id: number;
  index: number;
  progress: boolean;
  controller: AbortController | null;
  cancelled: Error | null;
}

function cancelError(kind: CancelKind): Error {
  return kind === 'timeout'
    ? new TimeoutError('The pool call timed out; this task was asked to stop (taskSignal() aborted)')
    : new AbortError('The pool call was aborted; this task was asked to stop (taskSignal() aborted)');
}

/** Why runItems stopped before the end of its items. */
const enum Stop {
  Cancelled,
  /** The item's result is a thenable (in stopValue) to await. */
  Thenable,
  /** The item threw (stopValue). */
  Threw,
}
let stop = Stop.Cancelled;
let stopValue: unknown;

/**
 * Runs items[from], items[from + 1]... while their results are plain values,
 * pushing those to values. Returns items.length, or the index of the item it
 * stopped at (why in stop and stopValue). Kept apart from runJob and small
 * because a forked worker has no compiler threads: V8 optimizes hot code on
 * the main thread, in the middle of the job that made it hot. With the loop
 * in runJob, a fresh pool's first big map paid for compiling all of runJob
 * in each worker, 19-26 ms (--trace-opt), and again after a deopt on one of
 * its rare paths; this loop compiles in well under a millisecond.
 */
function runItems(fn: (...args: unknown[]) => unknown, items: unknown[], star: boolean, values: unknown[], job: Running, from: number): number {
  for (let i = from; i < items.length; i++) {
    if (job.cancelled !== null) {
      stop = Stop.Cancelled;
      return i;
    }
    job.index = i;
    let r: unknown;
    try {
      r = star ? fn(...(items[i] as unknown[])) : fn(items[i]);
      // Inside the try: reading `then` runs the result's getter or Proxy
      // trap, whose throw is the item's (out here, it rejected serveJobs and
      // the worker exited with code 1: WorkerExitError, not the task's error).
      if (r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function') {
        stop = Stop.Thenable;
        stopValue = r;
        return i;
      }
    } catch (e) {
      stop = Stop.Threw;
      stopValue = e;
      return i;
    }
    values.push(r);
  }
  return items.length;
}

/**
 * Which of a chunk's results made its answer fail to encode: the first the
 * codec refuses on its own (each is encoded again, and what an encode takes
 * is given back), or -1 if none does (the answer failed as a whole: no room
 * for it in /dev/shm, a getter that threw only once). Run only on that
 * failure, never on the way of a good answer.
 */
function unsendableAt(values: unknown[]): number {
  for (let i = 0; i < values.length; i++) {
    try {
      discard(encode(values[i]));
    } catch {
      return i;
    }
  }
  return -1;
}

/**
 * Runs the jobs that arrive on conn, in order, until 'stop' or EOF. Answers
 * go back with sendSync, in order with reportProgress()'s messages (it blocks
 * only while the pipe to the parent is full, and the parent never stops
 * reading); an answer that cannot be encoded throws here, where it is caught.
 */
async function serveJobs(conn: Connection, watch?: Watch, maxRssBytes?: number): Promise<void> {
  const fns = new Map<number, { fn: (...args: unknown[]) => unknown; source: boolean }>();
  const loadFailures = new Map<number, { error: unknown }>();
  let lastRss = 0;
  // Over the pool's memory cap after a job: this worker ends instead of
  // beginning the next job already in its pipe, which the parent then gives
  // to another worker, as it does the jobs of a worker that died before
  // beginning them. Left to the parent, the cap was seen only once that job
  // had run too: 340 MB for a cap of 150 (helper-87).
  let overCap = false;
  let running: Running | null = null;
  if (watch !== undefined) watch.running = () => (running === null ? null : { id: running.id, index: running.index });
  const received = new ReceivedShared();
  const inbox = new Inbox(conn, (id, kind) => {
    // Not queued: running now, or done already (then there is nothing to stop).
    if (running === null || running.id !== id || running.cancelled !== null) return;
    running.cancelled = cancelError(kind);
    (running.controller ??= new AbortController()).abort(running.cancelled);
  });
  // The job this worker is on (0: none), in a word of its pipe that the
  // parent also sees: a cancel's kill is for one job, and the parent makes it
  // only by swapping that job's tag for its negative (pool.ts
  // #cancelInWorkers). The worker stores a job's tag before it starts the
  // job (the word is 0 then: the parent swaps only a tag), and swaps it back
  // to 0 before it answers: if the parent's swap came first, it is about to
  // be killed for that job, and it neither answers nor starts anything more.
  // So a kill always finds its job
  // unanswered, at the head of the worker's jobs in the parent, and never
  // hits another call's task.
  const jobWord = conn[kUserWord]();
  const awaitKill = (): Promise<never> => new Promise(() => setInterval(() => {}, 1 << 30)); // alive: exiting would free its pid while a kill is on the way
  const sinks = globalThis as unknown as Record<symbol, unknown>;
  const progress = (value: unknown): boolean => {
    if (running === null || !running.progress) return false;
    // A value that cannot be sent throws here, in the task.
    conn.sendSync({ t: 'progress', id: running.id, index: running.index, value });
    return true;
  };
  const signal = (): AbortSignal | undefined => (running === null ? undefined : (running.controller ??= new AbortController()).signal);
  sinks[kProgressSink] = progress;
  sinks[kSignalSink] = signal;
  /** One job: run its items, answer, and let the shared objects it brought go. */
  const runJob = async (msg: Queued): Promise<void> => {
    const tag = jobTag(msg.id);
    if (jobWord.length > 0) {
      Atomics.store(jobWord, 1, tag); // begun (never cleared): the parent tells a job this worker began from one it never read
      Atomics.store(jobWord, 0, tag);
    }
    const t0 = performance.now();
    let failed: { index: number; error: WireError } | undefined;
    const values: unknown[] = [];
    // Running from here: a cancel that comes while the task module loads counts.
    const job: Running = { id: msg.id, index: 0, progress: msg.progress === true, controller: null, cancelled: msg.cancelled === undefined ? null : cancelError(msg.cancelled) };
    running = job;
    let entry = fns.get(msg.fn);
    try {
      // Loaded even for a job cancelled before it ran: the definition it carries is needed by the next ones.
      if (entry === undefined) {
        // The parent sends a definition once: a load that failed fails every job of it the same way.
        const failedBefore = loadFailures.get(msg.fn);
        if (failedBefore !== undefined) throw failedBefore.error;
        if (msg.def === undefined) throw new Error(`Internal error: task #${msg.fn} was never sent to this worker`);
        try {
          entry = { fn: await loadTask(msg.def, taskBase), source: msg.def.kind === 'source' };
        } catch (e) {
          loadFailures.set(msg.fn, { error: e });
          throw e;
        }
        fns.set(msg.fn, entry);
      }
      // Loaded: from here a death is the task's doing, not a start-up crash
      // (a task module that exits at import must trip the crash-loop breaker).
      if (jobWord.length > 2) Atomics.store(jobWord, 2, tag);
    } catch (e) {
      failed = { index: 0, error: wire(e) };
    }
    if (entry !== undefined && failed === undefined) {
      const { fn, source } = entry;
      const items = msg.items;
      for (let i = 0; i < items.length; ) {
        i = runItems(fn, items, msg.star, values, job, i);
        if (i === items.length) break;
        if (stop === Stop.Cancelled) {
          // The rest of the chunk is not run; the parent discards this job's answer.
          failed = { index: i, error: wire(job.cancelled) };
          break;
        }
        const value = stopValue;
        stopValue = undefined;
        try {
          if (stop === Stop.Threw) throw value;
          values.push(await (value as PromiseLike<unknown>));
        } catch (e) {
          failed = { index: i, error: wire(source ? explainReferenceError(e, 'A pool task function') : e) };
          break;
        }
        i++;
      }
    }
    running = null;
    if (jobWord.length > 0 && Atomics.compareExchange(jobWord, 0, tag, 0) !== tag) await awaitKill();
    const now = performance.now();
    const ms = now - t0;
    let rss: number | undefined;
    if (maxRssBytes !== undefined || now - lastRss >= kRssEveryMs) {
      rss = process.memoryUsage.rss();
      lastRss = now;
      if (maxRssBytes !== undefined && rss > maxRssBytes) overCap = true;
    }
    if (failed !== undefined) {
      conn.sendSync({ t: 'done', id: msg.id, ok: false, index: failed.index, error: failed.error, ms, rss, ...(job.cancelled ? { cancelled: true } : {}) });
    } else {
      try {
        conn.sendSync({ t: 'done', id: msg.id, ok: true, values, ms, rss });
      } catch (e) {
        // The parent makes the SerializationError: it names the item by its
        // index in the call's input, which only the parent knows (before, the
        // worker made it, naming none, and a chunk's answer said item 0
        // failed whichever did: stats() counted the items before it failed).
        const at = values.length === 1 ? 0 : unsendableAt(values);
        conn.sendSync({ t: 'done', id: msg.id, ok: false, index: Math.max(at, 0), error: wire(e), unsent: at >= 0 ? 'item' : 'chunk', ms, rss });
      }
    }
    received.arrived();
    received.jobDone(() => running === null && inbox.idle());
  };
  try {
    // Event-driven rather than a loop in one async function: a loop's frame,
    // suspended while the worker is idle, still held the last job's items
    // and results in its registers, and the idle collection (ReceivedShared)
    // could not give those back.
    await new Promise<void>((finished, fail) => {
      const handle = (msg: Queued | { t: 'stop' } | null): void => {
        if (msg === null || msg.t === 'stop') finished();
        else runJob(msg).then(serveNext, fail);
      };
      const serveNext = (): void => {
        if (overCap) {
          finished();
          return;
        }
        const msg = inbox.take();
        if (msg === undefined) void inbox.wait().then(handle);
        else handle(msg);
      };
      serveNext();
    });
  } finally {
    if (sinks[kProgressSink] === progress) sinks[kProgressSink] = undefined;
    if (sinks[kSignalSink] === signal) sinks[kSignalSink] = undefined;
  }
}

/**
 * One job and a 'stop' through serveJobs over a private pipe, for the
 * forkserver's warm-up: the zygote then has the worker's job path compiled
 * and its lazy parts loaded, and no forked worker pays for that on its first
 * task (copy-on-write faults and lazy compiles were most of the time between
 * a first job's arrival and its result).
 */
export async function rehearsePoolWorker(bigMap: boolean): Promise<void> {
  const [parent, worker] = Pipe();
  try {
    const served = serveJobs(worker);
    // A worker side that failed must not leave the zygote waiting for an answer for ever.
    const ended = served.then(() => {
      throw new Error('the rehearsal worker stopped before it answered');
    });
    ended.catch(noop);
    let id = 0;
    const job = async (fn: number, items: unknown[], star = false, def?: TaskTarget): Promise<void> => {
      await parent.send({ t: 'job', id: ++id, fn, star, items, ...(def && { def }) } satisfies JobMsg);
      const answer = parent.recv();
      answer.catch(noop); // rejected by the close below when `ended` came first
      await Promise.race([answer, ended]);
    };
    const source = (f: number): TaskTarget => ({ kind: 'source', source: f === 2 ? '(a, b) => a + b' : `(x) => x + ${f}` });
    if (!bigMap) {
      // A spare: each path once, with small-integer results (a string or an
      // object would deoptimize the item loop the spare inherited optimized).
      await job(1, [1, 2, 3], false, source(1));
      await job(2, [[1, 2]], true, source(2));
    } else {
      // The zygote: V8 optimizes the item loop (runItems) and the codec's
      // array paths here, and every forked worker inherits them (a worker has
      // no compiler threads, and compiled each in its first big chunk, 2-8 ms,
      // --trace-opt). So, in this order: small jobs of six functions, which
      // give the loop its feedback vector (V8 allocates it only after a few
      // calls: what ran before had left no feedback, and the optimized loop
      // deoptimized on a string result or a starmap) and make its call site
      // megamorphic (a user's task is then called with no check on which
      // function it is; one that failed deoptimized the loop in every worker);
      // then mixed results and a starmap; then big chunks.
      for (let f = 1; f < 8; f++) if (f !== 2) await job(f, [1, 2, 3], false, source(f));
      await job(1, [1, 'a', { x: 1.5 }, 2.5]);
      await job(2, [[1, 2], [3, 4]], true, source(2));
      const big = Array.from({ length: kRehearseChunk }, (_, i) => i);
      for (let f = 3; f < 8; f++) await job(f, big);
    }
    await parent.send({ t: 'stop' });
    await served;
  } finally {
    parent.close();
    worker.close();
  }
}

/** Items per chunk of rehearsePoolWorker's map (five chunks). */
const kRehearseChunk = 5000;

