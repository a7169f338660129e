/**
 * Pool: a set of worker processes that run tasks (CPython's Pool, without
 * its hangs).
 *
 * Design, and why:
 * - No shared task queue. Each worker has its own duplex Pipe (a pair of
 *   SPSC rings in shared memory) and the parent schedules: it picks a worker
 *   and sends it a job. CPython's Pool hangs forever when a worker dies while
 *   holding the shared queue's lock (cpython#96062); with one channel per
 *   worker there is no lock a worker can take with it, and the parent always
 *   knows exactly which jobs a dead worker held.
 * - A job is a chunk of calls of one task function. Workers run their jobs in
 *   the order received, so when a worker dies the oldest job it held is the
 *   one it was running: that job's call rejects with WorkerExitError, the
 *   jobs queued behind it go back to the front of the queue, a replacement
 *   worker starts and every other task still completes. (A worker that dies
 *   of an uncaught error says first which job it was on, if any: one that
 *   died between jobs had started none of those it held.)
 * - Jobs are pipelined: a worker may hold a few jobs at once so it never
 *   sleeps between short tasks. How many adapts to the measured job time
 *   (about 1 ms of queued work per worker, 1..32 jobs), so long tasks still
 *   spread evenly over the workers.
 * - A task function travels once per worker (source text or module export)
 *   and is compiled and cached there under a key; later jobs name the key.
 * - Per-call `timeout` is enforced by killing the worker (it stops any code,
 *   even `while (true) {}` or a native call), so a job with a timeout goes
 *   only to an idle worker and nothing is queued behind it.
 * - Cancelling (abort, timeout, an imap left early) is two-staged: the
 *   workers holding the call's jobs get a 'cancel' (the running task's
 *   taskSignal() aborts, queued ones are skipped) and the jobs count as
 *   settled, so a worker's death never puts them back in the queue; after
 *   `cancelGraceMs` a worker still running one of them is killed. Kills the
 *   pool makes are not crashes (the crash-loop breaker counts only deaths
 *   nobody asked for).
 * - Workers report their RSS with results: a worker over
 *   `maxWorkerMemoryMb` retires between tasks; `maxTasksPerChild` likewise.
 * - SIGINT/SIGTERM while calls are pending, when the user has no handler of
 *   their own: every pending call rejects with AbortError, the workers are
 *   killed quietly (they ignore the terminal's SIGINT), and nothing is left;
 *   a program still running a second later dies of the signal.
 *
 * Exports: Pool, PoolOptions (PoolBaseOptions, InitargsOption), TaskRef, CallOptions, MapOptions, ImapOptions, ApplyOptions, PoolStats, WorkerStats.
 */
import { availableParallelism, constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { libDir } from './paths';
import { libraryHandlers, markSignalAbort, noop, onAbort, reraise, signalOfAbort } from './abort';
import { asyncResult, takeCallbacks, type AsyncCallbacks, type AsyncResult } from './async-result';
import { AbortError, EOFError, ProcessError, SerializationError, TimeoutError, WorkerExitError } from './errors';
import { checkForkedImport, describeTask, refuseWhileImportingTarget, type TaskTarget } from './task';
import { checkInteger, checkOptionNames, checkSignal, describeValue, kMaxTimerMs } from './validate';
import { Pipe, type Connection } from './connection';
import { checkChildPlace, Process, nextPoolName, type ArgsFor, type ChildPlace } from './process';
import { unwire, type WireError } from './wire-error';
import { disposeShared, forEachShared, rebuild, reduce } from './reduction';
import { attachPrivately } from './segment';
import { jobTag, kDrainUnread, kKillAtExit, kLostWithServer, kMaybeUnread, kNotSendable, kSentTaken, kStartAsync, kUnlinkNow, kUserWord } from './symbols';
import { myPid } from './synchronize/common';
import * as context from './context';
import type { StartMethod } from './popen/popen';

/** A task: a self-contained function (sent as source) or a module export. */
export type TaskRef<A extends unknown[] = unknown[], R = unknown> =
  | ((...args: A) => R | Promise<R>)
  // `call?: never`: a defineTask() handle is a function with `module` and
  // `export` too, and must not pass as this unchecked form (pool.map(add2, [1, 2])
  // of a two-parameter task compiled, and gave [NaN, NaN]).
  | { module: string | URL; export?: string; call?: never };

/**
 * What apply()/submit() take without args: a function of no (required)
 * parameters, or a plain { module, export } (unchecked). `call?: never` keeps
 * defineTask() handles, which are functions, to their own parameters.
 */
type NoArgsTask<R> = ((...args: []) => R | Promise<R>) | { module: string | URL; export?: string; call?: never };

/**
 * `I`: the initializer's parameters, inferred from `initializer` alone;
 * `initargs` is checked against them (a module initializer: unchecked).
 */
export type PoolOptions<I extends readonly unknown[] = never[]> = PoolBaseOptions<I> & InitargsOption<I>;

/** `initargs`, required when the initializer needs arguments (as a Process's `args`). */
export type InitargsOption<I extends readonly unknown[]> = [] extends I
  ? { initargs?: NoInfer<ArgsFor<I>> | null | undefined } // null: none, as left out
  : { initargs: NoInfer<ArgsFor<I>> };

/**
 * `null`, as Python's `None`, means the same as leaving an option out where
 * Python's Pool takes None: `processes` (cpuCount()), `initializer` (none),
 * `initargs` (no arguments), `maxTasksPerChild` (no limit), `startMethod`
 * (the default, as Python's context=None).
 */
export interface PoolBaseOptions<I extends readonly unknown[] = never[]> {
  /** Number of workers; default (or null, Python's None) cpuCount(). */
  processes?: number | null | undefined;
  /** Runs once in each worker before its first task, with initargs: `(lock: Lock) => ...`. null: none. */
  initializer?: ((...args: I) => unknown) | { module: string | URL; export?: string } | null | undefined;
  /** Recycle a worker after this many jobs (CPython's maxtasksperchild); default (or null, Python's None): no limit. */
  maxTasksPerChild?: number | null | undefined;
  /** Recycle a worker (between tasks) whose resident memory exceeds this many MiB; default (or null): no limit. */
  maxWorkerMemoryMb?: number | null | undefined;
  /** null: the default (Python's context=None). */
  startMethod?: StartMethod | null | undefined;
  /** Turn SIGINT/SIGTERM into AbortError for pending calls (default, or null, true; skipped if you have your own handler). */
  handleSignals?: boolean | null | undefined;
  /**
   * Backpressure: once this many tasks are pending (submitted, not yet
   * finished), `needsDrain` is true and `submit()` waits. Default 4 per
   * worker (also for null). map/apply/imap are not limited by it (imap has maxInFlight).
   */
  maxPending?: number | null | undefined;
  /** Every worker's whole environment (as Process's `env`: by default a forkserver worker has the zygote's). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Every worker's working directory (as Process's `cwd`). */
  cwd?: string | undefined;
}

/** What submit() resolves with: the task's own promise, wrapped so that waiting for room and waiting for the result stay separate. */
export interface Submitted<R> {
  result: Promise<R>;
}

export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** Limit in ms for each chunk of the call, from its start on a worker: the call rejects with TimeoutError, and a task still running is stopped (see cancelGraceMs). */
  timeout?: number | undefined;
  /**
   * Called in this process with what a task passes to reportProgress(value)
   * in its worker, and the index in this call's input of the item it runs
   * (for apply: 0). Calls come in the order the worker made them, each
   * before that item's result; none after the call has settled.
   */
  onProgress?: ((value: unknown, index: number) => void) | undefined;
  /**
   * When the call is aborted, times out or (imap) is left early, its running
   * tasks see taskSignal() abort; a task still running this many ms later has
   * its worker killed and replaced. Default: a timeout kills at once (0), an
   * abort (or an imap left early) after 1000 ms; Infinity: never (the task
   * runs to its end and its result is dropped).
   */
  cancelGraceMs?: number | undefined;
}
export interface MapOptions extends CallOptions {
  chunksize?: number | undefined;
}
export interface ImapOptions extends MapOptions {
  /** Jobs of this call in flight at once (default 4 per worker): bounds memory for endless inputs. */
  maxInFlight?: number | undefined;
}
export type ApplyOptions = CallOptions;

// The names each options object takes (see checkOptionNames).
const kPoolOptionNames: readonly string[] = [
  'processes', 'initializer', 'initargs', 'maxTasksPerChild', 'maxWorkerMemoryMb', 'startMethod', 'handleSignals', 'maxPending', 'env', 'cwd',
];
const kCallOptionNames: readonly string[] = ['signal', 'timeout', 'onProgress', 'cancelGraceMs'];
const kMapOptionNames: readonly string[] = [...kCallOptionNames, 'chunksize'];
const kImapOptionNames: readonly string[] = [...kMapOptionNames, 'maxInFlight'];
/** The *Async forms' options: their call's, and the callbacks (named in the message for a misspelt one). */
const kAsyncCallOptionNames: readonly string[] = [...kCallOptionNames, 'callback', 'errorCallback'];
const kAsyncMapOptionNames: readonly string[] = [...kMapOptionNames, 'callback', 'errorCallback'];

/** A worker of stats(): listed once its process has started (it has a pid; see Pool.started()). */
export interface WorkerStats {
  pid: number;
  jobsInFlight: number;
  jobsDone: number;
  rssBytes: number;
  /** ms from the worker's start to its 'ready' (its initializer included); null while it is starting. */
  startupMs: number | null;
  /**
   * Being replaced (maxTasksPerChild, maxWorkerMemoryMb): it finishes what it
   * holds and exits, takes nothing more, and its replacement is listed too,
   * so `workers` may briefly hold more than `processes`.
   */
  retiring: boolean;
}
export interface PoolStats {
  state: 'running' | 'closed' | 'terminated';
  processes: number;
  workers: WorkerStats[];
  /**
   * Items (tasks) by state. `cancelled`: items that gave no result because
   * their call was aborted, timed out or left early (imap), or the pool was
   * terminated: dropped from the queue, skipped or stopped in a worker. The
   * job (chunk) a timeout stopped counts as failed: its call rejected with it.
   */
  tasks: { queued: number; running: number; done: number; failed: number; cancelled: number };
}

type ToWorker =
  | { t: 'job'; id: number; fn: number; def?: TaskTarget; star: boolean; items: unknown[]; progress?: true }
  | { t: 'stop' }
  | { t: 'cancel'; id: number; kind: 'abort' | 'timeout' };
type FromWorker =
  | { t: 'ready'; pid: number }
  | { t: 'done'; id: number; ok: true; values: unknown[]; ms: number; rss?: number }
  /**
   * `unsent`: the answer could not be encoded (a result that cannot travel);
   * `error` is the encoder's. 'item': items[index]'s result is one the codec
   * refuses; 'chunk': none alone is (index 0). See unsentError.
   */
  | { t: 'done'; id: number; ok: false; index: number; error: WireError; ms: number; rss?: number; cancelled?: true; unsent?: 'item' | 'chunk' }
  | { t: 'progress'; id: number; index: number; value: unknown }
  | { t: 'init-failed'; error: WireError }
  /** An uncaught error is ending the worker (pool-worker.ts reportFatal); `running`: the job it was on. */
  | { t: 'fatal'; error: WireError; rejection: boolean; running: { id: number; index: number } | null };

interface Job {
  id: number;
  call: Call;
  /** Small per-pool id of the task function (the source text travels once per worker). */
  fnKey: number;
  def: TaskTarget;
  star: boolean;
  items: unknown[];
  /** Index of items[0] in the call's input. */
  start: number;
  timeoutMs: number;
  worker?: Worker;
  /** performance.now() when it was sent to its worker. */
  sentAt?: number;
  timer?: NodeJS.Timeout;
  settled: boolean;
  /** A 'cancel' for it went to its worker (see #cancelInWorkers). */
  cancelled?: boolean;
  /** Its items are counted in stats() (done / failed / cancelled), once. */
  tallied?: boolean;
  /** Workers that died with it first in their pipe, not yet begun (see #onExit). */
  diedBefore?: number;
}

/** One public call (map, imap, apply...): receives the results of its jobs. */
interface Call {
  onResult(job: Job, values: unknown[]): void;
  onError(job: Job, err: Error): void;
  /** The whole call fails now (terminate, signal, crash loop). */
  fail(err: Error): void;
  done: boolean;
  /** Measured ms per item of this call's jobs (-1 until its first job is done). */
  itemMs: number;
  /** Whether the call is a single job (apply): it needs no slow start. */
  single: boolean;
  onProgress?: (value: unknown, index: number) => void;
  graceMs?: number;
  /** Whether it may still queue jobs (an imap reading its input); a map's are all queued when it starts. */
  mayQueue(): boolean;
}

/**
 * A call's error: a flag of its own, since an abort's reason may be any
 * value, null or 0 too (a falsy one resolved a map with holes, and ended an
 * imap as if complete; review helper-98).
 */
class Failure {
  failed = false;
  error: unknown = undefined;

  /** Keeps the first error. */
  first(e: unknown): void {
    if (!this.failed) this.set(e);
  }

  /** This error, whatever came before (an abort's reason). */
  set(e: unknown): void {
    this.failed = true;
    this.error = e;
  }

  /** The error, once: cleared. */
  take(): unknown {
    const e = this.error;
    this.failed = false;
    this.error = undefined;
    return e;
  }
}

interface CallSettings {
  signal: AbortSignal | undefined;
  timeoutMs: number;
  onProgress: ((value: unknown, index: number) => void) | undefined;
  graceMs: number | undefined;
}

interface Worker {
  proc: Process;
  conn: Connection;
  pid: number;
  ready: boolean;
  retiring: boolean;
  dead: boolean;
  exclusive: boolean;
  inflight: Job[];
  known: Set<number>;
  jobsDone: number;
  rss: number;
  everFinishedJob: boolean;
  startedAt: number;
  startupMs: number | null;
  /** The pool killed it (timeout, cancel, terminate): its exit is not a crash. */
  killed: boolean;
  /** Its initializer failed: counted once as a crash then, not again at its exit. */
  initFailed?: boolean;
  /** An answer of its that this process could not read (see #readLoop): it was killed for it. */
  unreadable?: Error;
  /** The job at the head of its pipe when that answer could not be read: the answer was that job's (#handleExit fails it). */
  unreadableJob?: Job;
  /** The uncaught error it reported before it exited (see #onExit). */
  fatal?: { error: Error; rejection: boolean; running: { id: number; index: number } | null };
  /** The last job it answered: an uncaught error may come from that task (a floating rejection, a timer). */
  lastDone?: { start: number; count: number; call: WeakRef<Call> };
  /** Settles once its process is started (or failed to start: then it left #workers). */
  started: Promise<void>;
}

/** FIFO of jobs with O(1) shift (Array#shift is O(n): a 100k-task map was quadratic). */
class JobQueue {
  #jobs: (Job | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#jobs.length - this.#head;
  }

  peek(): Job | undefined {
    return this.#jobs[this.#head];
  }

  push(job: Job): void {
    this.#jobs.push(job);
  }

  shift(): Job | undefined {
    if (this.#head >= this.#jobs.length) return undefined;
    const job = this.#jobs[this.#head];
    this.#jobs[this.#head++] = undefined;
    if (this.#head >= 1024 && this.#head * 2 >= this.#jobs.length) {
      this.#jobs = this.#jobs.slice(this.#head);
      this.#head = 0;
    }
    return job;
  }

  unshift(job: Job): void {
    if (this.#head > 0) this.#jobs[--this.#head] = job;
    else this.#jobs.unshift(job);
  }

  removeWhere(pred: (job: Job) => boolean): void {
    this.#jobs = this.drain().filter((j) => !pred(j));
  }

  /** Takes every job out, in order. */
  drain(): Job[] {
    const out = this.#jobs.slice(this.#head) as Job[];
    this.#jobs = [];
    this.#head = 0;
    return out;
  }

  /** Number of task items (not jobs) waiting. */
  items(): number {
    let n = 0;
    for (let i = this.#head; i < this.#jobs.length; i++) n += this.#jobs[i]!.items.length;
    return n;
  }
}

const kWorkerEntry = join(libDir, 'entry', 'pool-worker.js');
/** Aim for about this much queued work per worker before it asks for more. */
const kTargetQueuedMs = 1;
const kMaxWindow = 32;
const kPrefetchBelowMs = 100;
/**
 * How long a task that keeps running after its call was aborted (or its imap
 * left) has before its worker is killed, unless the call says (cancelGraceMs).
 * Before, it was never: a task that ignored taskSignal() held its worker for
 * good, and close() + join() (so `await using`) waited for it for ever.
 */
const kAbortGraceMs = 1000;
/** A job expected short that has been out this long (and 4x its estimate) is taken for a long one (see #stackable). */
const kOverdueMs = 20;
/** Consecutive worker deaths before any job finished: stop and report instead of looping. */
const kCrashLoopLimit = 5;
/** Workers killed in a row by their tasks, none finishing anywhere between, that stop the pool (see #onExit). */
const kJobDeathLimit = 16;
/** A timed job's worker that has still not taken it from its pipe this long after its time ran out (or its cancelGraceMs, if longer) is killed (see #timedOut). */
const kStuckMs = 1000;
/** How often a timed job whose time ran out before it began is looked at (see #timedOut)... */
const kBeginLookMs = 2;
/** ...and once its worker has taken it (decoding its arguments). */
const kTakenLookMs = 20;
/** Workers that may die with one job first in their pipe, not begun, before that job fails (see #onExit). */
const kDiedBeforeLimit = 3;
/**
 * Workers killed idle by a signal from outside (as far as waitpid can tell)
 * in a run with no task finished anywhere between that are replaced at once:
 * this many, or the pool's size if larger; each later one waits
 * kIdleKillBaseMs, then twice as long each time, up to kIdleKillMaxMs (see #handleExit).
 */
const kIdleKillsAtOnce = 2;
const kIdleKillBaseMs = 50;
const kIdleKillMaxMs = 2000;
/** Signals a process gets from what it runs (a fault, abort(): Node's on a full heap, a resource limit), not from someone else. */
const kOwnFaults: ReadonlySet<string> = new Set(['SIGABRT', 'SIGSEGV', 'SIGBUS', 'SIGILL', 'SIGFPE', 'SIGTRAP', 'SIGSYS', 'SIGXCPU', 'SIGXFSZ']);

/**
 * What a task's own error is rebuilt as (see docs/pool.md): its class (the
 * nearest built-in one), message, stack, cause and own primitive properties,
 * and the pid of the worker that threw it: `(e as TaskError).workerPid`.
 */
export type TaskError = Error & {
  workerPid?: number;
  /** On a SerializationError for a result that could not be sent back: the item's index in the call's input, when the worker could tell which (absent when only its chunk is known). */
  index?: number;
};

/** A worker's error, rebuilt (see wire-error.ts), saying which worker threw it. */
function remoteError(e: WireError, pid: number): TaskError {
  return Object.assign(unwire(e), { workerPid: pid });
}

/**
 * A whole-number option where null, as Python's None, means the same as
 * leaving it out (undefined back; `none` says what that is, for the message).
 */
function optionalInteger(name: string, v: unknown, min: number, max: number, none: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw new TypeError(`Expected "${name}" to be an integer (or null: ${none}), got ${describeValue(v)}`);
  }
  return checkInteger(name, v, min, max);
}

/** maxWorkerMemoryMb (a positive number of MiB) in bytes; Infinity when left out, or null as Python's None: no limit. */
function maxRssBytes(v: unknown): number {
  if (v === undefined || v === null) return Infinity;
  if (typeof v !== 'number') throw new TypeError(`Expected "maxWorkerMemoryMb" to be a number of MiB (or null: no limit), got ${describeValue(v)}`);
  if (!(v > 0)) throw new RangeError(`Expected "maxWorkerMemoryMb" to be a positive number of MiB, got ${describeValue(v)}`);
  return v * 1024 * 1024;
}

/**
 * A job's answer that its worker could not send: a SerializationError that
 * names the item whose result could not travel by its index in the call's
 * input, as WorkerExitError's messages and onProgress do (the worker knows
 * only its place in the chunk); the encoder's error is its cause.
 */
function unsentError(e: WireError, unsent: 'item' | 'chunk', index: number, job: Job, pid: number): TaskError {
  const cause = remoteError(e, pid);
  const n = job.items.length;
  const known = unsent === 'item' || n === 1;
  const what = known ? `item ${job.start + index}` : `one of items ${job.start}-${job.start + n - 1}`;
  const err: TaskError = Object.assign(new SerializationError(`A task's result could not be sent back to the parent (${what} of its call): ${cause.message}`, { cause }), { workerPid: pid });
  if (known) err.index = job.start + index;
  return err;
}

function toArray<T>(iterable: Iterable<T> | AsyncIterable<T>, what: string): Iterable<T> {
  if (iterable === null || typeof iterable !== 'object' || typeof (iterable as Iterable<T>)[Symbol.iterator] !== 'function') {
    // A string is iterable, but a map over its characters is more often a slip than a wish (Python maps them).
    const hint = typeof iterable === 'string' ? ': a string is not taken as its characters here, pass [...str] for them' : '';
    throw new TypeError(`Expected "${what}" to be an iterable object (array, Set, generator...), got ${describeValue(iterable)}${hint}`);
  }
  return iterable as Iterable<T>;
}

/**
 * initargs, with attachments of the pool's own in place of their shared
 * objects (a Value, a Lock, a pipe end...): a worker started later (a
 * replacement, maxTasksPerChild) is given those, so the caller may close its
 * own copies once the pool exists, as it may a Process's args after start().
 * Before, the next replacement failed ("The args of Pool-1-Worker-3 hold a
 * closed object"), and with it the pool (helper-87). initargs without shared
 * objects are used as they are.
 */
function ownShared(initargs: readonly unknown[]): readonly unknown[] {
  const reduced = reduce(initargs);
  if (reduced === initargs) return initargs;
  return attachPrivately(() => rebuild(reduced)) as unknown[];
}

/** `I`: the initializer's parameters (see PoolOptions); a type of construction only, so every Pool<I> is a Pool. */
export class Pool<I extends readonly unknown[] = never[]> {
  readonly #processes: number;
  /** maxWorkerMemoryMb in bytes, Infinity for none; read once (a change to the caller's options object after the constructor changes nothing). */
  readonly #maxRssBytes: number;
  /** maxTasksPerChild, Infinity for none (left out, or null as Python's None). */
  readonly #maxTasksPerChild: number;
  readonly #initializer: TaskTarget | undefined;
  /** initargs with the pool's own attachments of their shared objects (see ownShared); given up by join(). */
  readonly #initargs: readonly unknown[];
  #initargsHeld = true;
  readonly #workers = new Set<Worker>();
  readonly #fnIds = new Map<string, number>();
  /** Workers asked to stop or killed, until their exit is seen (join() waits for them). */
  readonly #queue = new JobQueue();
  #state: 'running' | 'closed' | 'terminated' = 'running';
  #nextJob = 1;
  /** Measured ms per item, per task function (fnKey): the estimate for a new call's jobs. */
  readonly #fnItemMs = new Map<number, number>();
  #crashes = 0;
  /** Fresh workers that died running a loaded task, since a task last finished (see #onExit), and when the first of them died. */
  #jobDeaths = 0;
  #jobDeathsFrom = 0;
  /** Workers killed idle from outside since a task last finished (see #handleExit). */
  #idleKills = 0;
  /** Replacements waiting out their delay (see #startWorkerLater), and join() calls waiting for one while no worker is left. */
  readonly #delayed = new Set<NodeJS.Timeout>();
  #delayedWaiters: (() => void)[] = [];
  #done = 0;
  #failed = 0;
  #cancelled = 0;
  /** Items submitted by any call and not yet done, failed or cancelled. */
  #pending = 0;
  readonly #maxPending: number;
  /** Callers of submit() (with fail) and drained() waiting for #pending < #maxPending, first come first served. */
  #roomWaiters: { run: () => void; fail?: (e: unknown) => void }[] = [];
  #serveScheduled = false;
  #fatal: Error | undefined;
  readonly #calls = new Set<Call>();
  readonly #signalHandler: ((sig: NodeJS.Signals) => void) | undefined;
  /** `Pool-1` (`Pool-1:1` in a child: see nextPoolName); worker names extend it. */
  readonly #name = nextPoolName();
  /** Workers started so far: each, replacements too, gets the next number. */
  #workerCount = 0;
  /** The process that made this pool (see #checkOwner). */
  readonly #owner = myPid();
  #keepAlive: NodeJS.Timeout | undefined;
  /** Whether workers are forked (forkserver/fork), which limits module tasks under loader hooks. */
  #forked = false;
  /** Every worker's, replacements' too: the default read once, at new Pool() (a later setStartMethod() does not mix methods in one pool). */
  #method: StartMethod = 'forkserver';
  /** env and cwd for every worker (checked once). */
  #place: ChildPlace = {};
  /** With a cwd for the workers: this process's directory when the pool was made, where function tasks' require() resolves from (as without one). */
  #base: string | undefined;

  constructor(options: PoolOptions<I> = {} as PoolOptions<I>) {
    if (typeof options !== 'object' || options === null) {
      // Python's Pool(4) habit.
      const hint = typeof options === 'number' ? `; did you mean new Pool({ processes: ${options} })?` : '';
      throw new TypeError(`Expected Pool options to be an object, got ${describeValue(options)}${hint}`);
    }
    checkOptionNames(options, kPoolOptionNames, 'Pool()');
    refuseWhileImportingTarget('new Pool()');
    // null is Python's None: as left out (see PoolBaseOptions).
    this.#processes = optionalInteger('processes', options.processes, 1, 4096, 'cpuCount()') ?? availableParallelism();
    this.#maxTasksPerChild = optionalInteger('maxTasksPerChild', options.maxTasksPerChild, 1, Number.MAX_SAFE_INTEGER, 'no limit') ?? Infinity;
    this.#maxRssBytes = maxRssBytes(options.maxWorkerMemoryMb);
    const initargs: unknown = options.initargs;
    if (initargs !== undefined && initargs !== null && !Array.isArray(initargs)) {
      throw new TypeError(`Expected "initargs" to be an array of the initializer's arguments (or null: none), got ${describeValue(initargs)}`);
    }
    this.#maxPending = optionalInteger('maxPending', options.maxPending, 1, Number.MAX_SAFE_INTEGER, '4 per worker') ?? 4 * this.#processes;
    const handleSignals = options.handleSignals ?? true;
    if (typeof handleSignals !== 'boolean') {
      throw new TypeError(`Expected "handleSignals" to be true or false (or null: true), got ${describeValue(options.handleSignals)}`);
    }
    const method = options.startMethod ?? context.getStartMethod();
    if (method === 'fork') {
      // Workers that are copies of this process share its copies of their
      // pipes instead of attaching their own; measured: 4 maps in 20 hung.
      throw new ProcessError("A Pool cannot use the 'fork' start method yet (its workers' pipes are not reliable there): use 'forkserver' (the default, also copy-on-write) or 'spawn'");
    }
    this.#method = method;
    this.#forked = method !== 'spawn';
    this.#place = checkChildPlace(options.env, options.cwd);
    if (this.#place.cwd !== undefined) this.#base = process.cwd();
    this.#initializer = options.initializer === undefined || options.initializer === null ? undefined : describeTask(options.initializer, 'initializer');
    if (this.#initializer !== undefined) checkForkedImport(this.#initializer, this.#forked, 'The pool initializer');
    this.#initargs = ownShared((initargs ?? []) as readonly unknown[]);
    // Forkserver workers start without blocking: the zygote forks (or hands
    // over a spare) while this thread goes on, and a call made meanwhile
    // waits in a starting worker's pipe (#dispatch). Blocking for each pid in
    // turn put every worker's start before the first job: `node
    // bench/pool-start.mjs 60 0` (back to back), three A/B rounds, median
    // 9.95-10.25 ms -> 8.80-10.00 ms. Until its pid is in, stats() does not
    // list a worker.
    // 'spawn' has no async start (libuv's spawn waits for the exec).
    const sync = this.#method !== 'forkserver';
    for (let i = 0; i < this.#processes && this.#fatal === undefined; i++) this.#startWorker(sync);
    // (Not for a pool that failed to start: nothing of it runs, nor will.)
    if (handleSignals && this.#fatal === undefined) {
      this.#signalHandler = (sig) => this.#onSignal(sig);
      libraryHandlers.set(this.#signalHandler, process.pid);
      process.on('SIGINT', this.#signalHandler);
      process.on('SIGTERM', this.#signalHandler);
    }
  }

  /** Calls fn(item) for every item; results in input order. Rejects (after all finish) with the first error. */
  map<T, R>(fn: TaskRef<[T], R>, iterable: Iterable<T>, options: MapOptions = {}): Promise<R[]> {
    return this.#mapLike(fn as TaskRef, iterable, false, options, "map") as Promise<R[]>;
  }

  /** Calls fn(...args) for every args array; results in input order. */
  starmap<A extends unknown[], R>(fn: TaskRef<A, R>, iterable: Iterable<Readonly<A>>, options: MapOptions = {}): Promise<R[]> {
    return this.#mapLike(fn as TaskRef, iterable, true, options, 'starmap') as Promise<R[]>;
  }

  /** Calls fn(...args) once in a worker. */
  /** Without args: only a task that takes none (pool.apply(add) of add(a, b) ran add(undefined, undefined)). */
  apply<R>(fn: NoArgsTask<R>): Promise<R>;
  apply<A extends unknown[], R>(fn: TaskRef<A, R>, args: A, options?: ApplyOptions): Promise<R>;
  apply<A extends unknown[], R>(fn: TaskRef<A, R>, args: A = [] as unknown as A, options: ApplyOptions = {}): Promise<R> {
    try {
      const call = this.#applyCall(fn as TaskRef, args, options, 'apply');
      return this.#runApply(call) as Promise<R>;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * What apply() checks and describes, on the caller's stack: a relative
   * module resolves against the calling file, found from the stack, which a
   * submit() that waited for room no longer has.
   */
  #applyCall(fn: TaskRef, args: unknown, options: ApplyOptions, what: string, allowed = kCallOptionNames, abortThrows = true): { def: TaskTarget; args: unknown[]; settings: CallSettings } {
    this.#checkOpen();
    if (!Array.isArray(args)) throw new TypeError(`Expected "args" to be an array, got ${describeValue(args)}`);
    return { def: this.#describe(fn), args, settings: this.#callOptions(options, allowed, `Pool.${what}()`, abortThrows) };
  }

  #runApply({ def, args, settings }: { def: TaskTarget; args: unknown[]; settings: CallSettings }): Promise<unknown> {
    return this.#collect(def, [args], true, 1, false, settings).then((r) => r[0]);
  }

  /**
   * Python's apply_async: starts fn(...args) and returns an AsyncResult at
   * once (ready(), successful(), get(timeoutMs), wait(timeoutMs)), calling
   * `callback` with the result or `errorCallback` with the error. apply()'s
   * promise is the Node way; this is for code ported from Python.
   */
  applyAsync<R>(fn: NoArgsTask<R>): AsyncResult<R>;
  applyAsync<A extends unknown[], R>(fn: TaskRef<A, R>, args: A, options?: ApplyOptions & AsyncCallbacks<R>): AsyncResult<R>;
  applyAsync<A extends unknown[], R>(fn: TaskRef<A, R>, args: A = [] as unknown as A, options?: ApplyOptions & AsyncCallbacks<R>): AsyncResult<R> {
    // What is wrong with the call itself (a misspelt option, a callback that
    // is no function, a closed pool) throws here, as Python's apply_async
    // raises: in an AsyncResult nobody asked, a ported fire-and-forget loop
    // ran nothing and said nothing (helper-80).
    const { rest, callbacks } = takeCallbacks<ApplyOptions, R>(options, 'Pool.applyAsync()');
    const call = this.#applyCall(fn as TaskRef, args, rest ?? {}, 'applyAsync', kAsyncCallOptionNames, false);
    return asyncResult(abortedCall(call.settings.signal) ?? (this.#runApply(call) as Promise<R>), callbacks);
  }

  /** Python's map_async: map() returning an AsyncResult of the results (see applyAsync; its call's errors throw). */
  mapAsync<T, R>(fn: TaskRef<[T], R>, iterable: Iterable<T>, options?: MapOptions & AsyncCallbacks<R[]>): AsyncResult<R[]> {
    const { rest, callbacks } = takeCallbacks<MapOptions, R[]>(options, 'Pool.mapAsync()');
    const run = this.#mapCall(fn as TaskRef, iterable, false, rest ?? {}, 'mapAsync', kAsyncMapOptionNames, false);
    return asyncResult(abortedCall(rest?.signal) ?? (run() as Promise<R[]>), callbacks);
  }

  /** Python's starmap_async: starmap() returning an AsyncResult (see applyAsync; its call's errors throw). */
  starmapAsync<A extends unknown[], R>(fn: TaskRef<A, R>, iterable: Iterable<Readonly<A>>, options?: MapOptions & AsyncCallbacks<R[]>): AsyncResult<R[]> {
    const { rest, callbacks } = takeCallbacks<MapOptions, R[]>(options, 'Pool.starmapAsync()');
    const run = this.#mapCall(fn as TaskRef, iterable, true, rest ?? {}, 'starmapAsync', kAsyncMapOptionNames, false);
    return asyncResult(abortedCall(rest?.signal) ?? (run() as Promise<R[]>), callbacks);
  }

  /** Like map, lazily: reads the input as results are consumed, yields in input order. */
  imap<T, R>(fn: TaskRef<[T], R>, iterable: Iterable<T> | AsyncIterable<T>, options: ImapOptions = {}): AsyncIterableIterator<R> {
    return this.#imap(fn as TaskRef, iterable as Iterable<unknown>, true, options, 'imap') as AsyncIterableIterator<R>;
  }

  /** Like imap, yielding results as they complete. */
  imapUnordered<T, R>(fn: TaskRef<[T], R>, iterable: Iterable<T> | AsyncIterable<T>, options: ImapOptions = {}): AsyncIterableIterator<R> {
    return this.#imap(fn as TaskRef, iterable as Iterable<unknown>, false, options, 'imapUnordered') as AsyncIterableIterator<R>;
  }

  /**
   * apply() with backpressure (USER-ASKS N9): waits, without blocking the
   * event loop, until fewer than `maxPending` tasks are pending, then
   * submits fn(...args). Submitters are served in call order. Resolves with
   * `{ result }`: attach a handler to `result` (it rejects as apply() would).
   * Rejects if the pool is closed while it waits, or on `options.signal`.
   */
  submit<R>(fn: NoArgsTask<R>): Promise<Submitted<R>>;
  submit<A extends unknown[], R>(fn: TaskRef<A, R>, args: A, options?: ApplyOptions): Promise<Submitted<R>>;
  submit<A extends unknown[], R>(fn: TaskRef<A, R>, args: A = [] as unknown as A, options: ApplyOptions = {}): Promise<Submitted<R>> {
    try {
      // An aborted signal rejects the submit itself, whether or not there is room.
      const call = this.#applyCall(fn as TaskRef, args, options, 'submit');
      const signal = call.settings.signal;
      const result = (): Promise<R> => this.#runApply(call) as Promise<R>;
      if (this.#roomWaiters.length === 0 && this.#pending < this.#maxPending) return Promise.resolve({ result: result() });
      return new Promise((resolve, reject) => {
        const waiter = {
          run: () => {
            off();
            try {
              this.#checkOpen();
              resolve({ result: result() });
            } catch (e) {
              reject(e);
            }
          },
          fail: (e: unknown) => {
            off();
            reject(e);
          },
        };
        const off = signal === undefined ? noop : onAbort(signal, () => {
          const i = this.#roomWaiters.indexOf(waiter);
          if (i >= 0) this.#roomWaiters.splice(i, 1);
          reject(signal.reason);
          this.#serveRoomWaiters(); // the next in line may fit now
        });
        this.#roomWaiters.push(waiter);
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Tasks submitted by any call (map, apply, submit...) and not yet finished. */
  get pending(): number {
    return this.#pending;
  }

  /** Whether `pending` has reached `maxPending`: time to stop submitting until drained() resolves. */
  get needsDrain(): boolean {
    return this.#pending >= this.#maxPending;
  }

  /** Resolves once fewer than `maxPending` tasks are pending (at once if they are), after the submit() calls already waiting. */
  drained(): Promise<void> {
    if (this.#roomWaiters.length === 0 && this.#pending < this.#maxPending) return Promise.resolve();
    return new Promise((resolve) => this.#roomWaiters.push({ run: resolve }));
  }

  #serveRoomWaiters(): void {
    const waiters = this.#roomWaiters;
    while (waiters.length > 0 && this.#pending < this.#maxPending) waiters.shift()!.run();
  }

  /** Called when #pending drops: serves waiters once the current event's bookkeeping is done. */
  #roomMade(): void {
    if (this.#serveScheduled || this.#roomWaiters.length === 0 || this.#pending >= this.#maxPending) return;
    this.#serveScheduled = true;
    queueMicrotask(() => {
      this.#serveScheduled = false;
      this.#serveRoomWaiters();
    });
  }

  /** Waiting submit() calls reject: the pool takes no more calls. drained() waiters wait on (the work still pending finishes, or is failed). */
  #failRoomWaiters(why?: Error): void {
    const err = why ?? this.#fatal ?? new ProcessError(`Pool is ${this.#state}; create a new Pool to run more tasks`);
    const waiters = this.#roomWaiters;
    this.#roomWaiters = waiters.filter((w) => w.fail === undefined);
    for (const w of waiters) w.fail?.(err);
  }

  /** No new calls; workers exit once the queued work is done (await join()). */
  close(): void {
    this.#checkOwner('close');
    if (this.#state !== 'running') return;
    this.#state = 'closed';
    this.#failRoomWaiters();
    this.#maybeFinish();
  }

  /** Stops now: pending calls reject, workers are killed. Resolves when they are gone. */
  async terminate(): Promise<void> {
    this.#checkOwner('terminate');
    if (this.#state === 'terminated') {
      // Terminated by a failure (a start that failed, a crash loop), or by a
      // signal: whatever is left still goes (review helper-98: workers
      // started after a failed one outlived it, and this waited for them).
      this.#cancelDelayed();
      for (const w of this.#workers) this.#kill(w);
      return this.join();
    }
    this.#state = 'terminated';
    this.#cancelDelayed();
    this.#failAll(new AbortError('The pool was terminated'));
    this.#failRoomWaiters();
    for (const w of this.#workers) this.#kill(w);
    return this.join();
  }

  /** Resolves when every worker has exited (after close() or terminate()). */
  async join(): Promise<void> {
    this.#checkOwner('join');
    if (this.#state === 'running') throw new ProcessError('Pool.join() needs close() or terminate() first');
    while (this.#workers.size > 0 || this.#delayed.size > 0) {
      // None left, and a replacement waits out its delay (see #handleExit):
      // only while work is queued for it (close() with none cancels it), and
      // that work's calls keep the process alive.
      if (this.#workers.size === 0) {
        await new Promise<void>((r) => this.#delayedWaiters.push(r));
        continue;
      }
      // join(), not whenExited(): waiting for the workers must keep the process alive.
      await Promise.all([...this.#workers].map((w) => w.started.then(() => w.proc.join()).catch(() => {})));
      await new Promise((r) => setImmediate(r)); // let #onExit run for each
    }
    this.#letGo();
  }

  /** Once no worker is left, nor will be: the signal handlers and the initargs' shared objects go. */
  #letGo(): void {
    this.#removeSignalHandlers();
    if (this.#initargsHeld) {
      this.#initargsHeld = false;
      forEachShared(this.#initargs, disposeShared);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#state === 'running') {
      this.close();
    }
    await this.join();
  }

  /**
   * Resolves once every worker asked for so far has its process (stats()
   * lists it with its pid): new Pool() does not wait for them. Rejects with
   * the pool's error once it has failed (a worker that could not start, a
   * crash loop). A call need not wait for this: it goes to a worker still
   * starting (see docs/pool.md).
   */
  async started(): Promise<void> {
    // In a 'fork' child, a copy of a start still pending never settles there (the start is the parent's).
    this.#checkOwner('wait for the workers of');
    await Promise.all([...this.#workers].map((w) => w.started));
    if (this.#fatal !== undefined) throw this.#fatal;
  }

  /** Workers with a pid (see started()), tasks by state. */
  stats(): PoolStats {
    let running = 0;
    const workers: WorkerStats[] = [];
    for (const w of this.#workers) {
      if (w.dead) continue;
      // Items, as the other counts; a job already counted done, failed or
      // cancelled (a cancel, terminate() or a signal) is not running too
      // (before: 2 running + 38 cancelled + 2 done for a map of 40).
      for (const job of w.inflight) if (!job.tallied) running += job.items.length;
      if (w.pid === 0) continue; // still being started: listed once it has a pid (see started())
      workers.push({ pid: w.pid, jobsInFlight: w.inflight.length, jobsDone: w.jobsDone, rssBytes: w.rss, startupMs: w.startupMs, retiring: w.retiring });
    }
    return {
      state: this.#state,
      processes: this.#processes,
      workers,
      tasks: { queued: this.#queue.items(), running, done: this.#done, failed: this.#failed, cancelled: this.#cancelled },
    };
  }

  // ---- calls --------------------------------------------------------------

  /**
   * A child made by fork() copies its parent's pools, workers and timers
   * included: from there, a call's timeout or a terminate() killed the
   * parent's workers, and a call never got its result (the parent's reader
   * took it). Only the process that made the pool may use it.
   */
  #checkOwner(what: string): void {
    if (myPid() !== this.#owner) {
      throw new ProcessError(`Cannot ${what} a Pool made by process ${this.#owner} from process ${myPid()} (a child made by fork() inherits its parent's pools); make a new Pool in this process`);
    }
  }

  #checkOpen(): void {
    this.#checkOwner('use');
    if (this.#fatal) throw this.#fatal;
    if (this.#state !== 'running') throw new ProcessError(`Pool is ${this.#state}; create a new Pool to run more tasks`);
  }

  /** `allowed`: the names the call takes; `what`: the call, for messages ("Pool.map()"). */
  #callOptions(options: CallOptions, allowed: readonly string[], what: string, abortThrows = true): CallSettings {
    if (typeof options !== 'object' || options === null) throw new TypeError(`Expected options to be an object, got ${describeValue(options)}`);
    checkOptionNames(options, allowed, what);
    const signal = checkSignal(options.signal);
    let timeoutMs = Infinity;
    if (options.timeout !== undefined) {
      if (typeof options.timeout !== 'number' || !(options.timeout > 0)) {
        throw new TypeError(`Expected "timeout" to be a number of milliseconds > 0, got ${describeValue(options.timeout)}`);
      }
      // Beyond setTimeout's range (~24.8 days) is no limit.
      if (options.timeout <= kMaxTimerMs) timeoutMs = options.timeout;
    }
    const onProgress = options.onProgress;
    if (onProgress !== undefined && typeof onProgress !== 'function') {
      throw new TypeError(`Expected "onProgress" to be a function (value, index) => void, got ${describeValue(onProgress)}`);
    }
    const graceMs = options.cancelGraceMs;
    if (graceMs !== undefined && !(typeof graceMs === 'number' && graceMs >= 0)) {
      throw new TypeError(`Expected "cancelGraceMs" to be a number of milliseconds >= 0 (Infinity: never kill), got ${describeValue(graceMs)}`);
    }
    if (abortThrows) signal?.throwIfAborted();
    return { signal, timeoutMs, onProgress, graceMs };
  }

  #chunksize(options: MapOptions, length: number | undefined): number {
    if (options.chunksize !== undefined) return checkInteger('chunksize', options.chunksize, 1);
    if (length === undefined) return 1;
    // CPython's rule: about four chunks per worker.
    let c = Math.floor(length / (this.#processes * 4));
    if (length % (this.#processes * 4) !== 0) c += 1;
    return Math.max(1, c);
  }

  #mapLike(fn: TaskRef, iterable: Iterable<unknown>, star: boolean, options: MapOptions, what: string): Promise<unknown[]> {
    try {
      return this.#mapCall(fn, iterable, star, options, what)();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** map()'s checks, which throw, and then the function that runs it. */
  #mapCall(fn: TaskRef, iterable: Iterable<unknown>, star: boolean, options: MapOptions, what: string, allowed = kMapOptionNames, abortThrows = true): () => Promise<unknown[]> {
    this.#checkOpen();
    const def = this.#describe(fn);
    const items = Array.from(toArray(iterable, 'iterable'));
    if (star) {
      items.forEach((a, i) => {
        if (!Array.isArray(a)) throw new TypeError(`${what}: item ${i} must be an array of arguments, got ${describeValue(a)}`);
      });
    }
    const settings = this.#callOptions(options, allowed, `Pool.${what}()`, abortThrows);
    const guided = options.chunksize === undefined;
    const chunksize = this.#chunksize(options, items.length);
    return () => this.#collect(def, items, star, chunksize, guided, settings);
  }

  /**
   * Size of the next chunk when the user gave no chunksize: CPython's size
   * while more than half the input is left, then smaller and smaller
   * (guided self-scheduling: a share of what is left per worker), down to
   * single items. Workers that finish early then take the last items
   * instead of idling while one worker runs a whole chunk: with CPython's
   * fixed chunks, one worker slowed down by anything (another process on
   * its core) held the whole map up by up to a chunk (a quarter of its share).
   */
  #guidedSize(left: number, chunksize: number): number {
    return Math.max(1, Math.min(chunksize, Math.ceil(left / (2 * this.#processes))));
  }

  /** Runs all items, resolves with every result in order, or rejects with the first error once all settle. */
  #collect(def: TaskTarget, items: unknown[], star: boolean, chunksize: number, guided: boolean, settings: CallSettings): Promise<unknown[]> {
    const { signal, timeoutMs, onProgress, graceMs } = settings;
    return new Promise((resolve, reject) => {
      const results = new Array<unknown>(items.length);
      let left = items.length;
      const failure = new Failure();
      const jobs: Job[] = [];
      const finish = (): void => {
        if (call.done) return;
        call.done = true;
        this.#removeCall(call);
        off();
        if (failure.failed) reject(failure.error);
        else resolve(results);
      };
      const call: Call = {
        done: false,
        itemMs: -1,
        single: items.length <= chunksize,
        onProgress,
        graceMs,
        onResult: (job, values) => {
          for (let i = 0; i < values.length; i++) results[job.start + i] = values[i];
          left -= job.items.length;
          if (left === 0) finish();
        },
        onError: (job, err) => {
          failure.first(err);
          left -= job.items.length;
          if (left === 0) finish();
        },
        fail: (err) => {
          failure.first(err);
          this.#dropQueued(call);
          finish();
        },
        mayQueue: () => false,
      };
      let off = noop;
      if (items.length === 0) {
        resolve([]);
        return;
      }
      this.#addCall(call);
      if (signal !== undefined) {
        off = onAbort(signal, () => {
          this.#dropQueued(call);
          this.#cancelInWorkers(call, 'abort', graceMs ?? kAbortGraceMs);
          failure.set(signal.reason);
          left = 0;
          finish();
        });
      }
      const fnKey = this.#fnKey(def);
      for (let start = 0; start < items.length; ) {
        const size = guided ? this.#guidedSize(items.length - start, chunksize) : chunksize;
        jobs.push(this.#makeJob(call, fnKey, def, star, items.slice(start, start + size), start, timeoutMs));
        start += size;
      }
      for (const job of jobs) this.#queue.push(job);
      this.#dispatch();
    });
  }

  #imap(fn: TaskRef, iterable: Iterable<unknown> | AsyncIterable<unknown>, ordered: boolean, options: ImapOptions, what: string): AsyncIterableIterator<unknown> {
    this.#checkOpen();
    const def = this.#describe(fn);
    const isAsync = iterable !== null && typeof iterable === 'object' && typeof (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
    const source: Iterator<unknown> | AsyncIterator<unknown> = isAsync
      ? (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator]()
      : toArray(iterable as Iterable<unknown>, 'iterable')[Symbol.iterator]();
    const { signal, timeoutMs, onProgress, graceMs } = this.#callOptions(options, kImapOptionNames, `Pool.${what}()`);
    const chunksize = this.#chunksize(options, undefined);
    const maxInFlight = options.maxInFlight === undefined ? this.#processes * 4 : checkInteger('maxInFlight', options.maxInFlight, 1);
    const fnKey = this.#fnKey(def);
    const pool = this;

    // Results wait here until the consumer takes them (ordered: by job start index).
    const ready = new Map<number, { values?: unknown[]; error?: Error }>();
    const completion: { values?: unknown[]; error?: Error }[] = [];
    let nextStart = 0; // next input index to read
    let nextYield = 0; // next job start to yield (ordered)
    let inFlight = 0; // jobs sent and not yet answered
    let outstanding = 0; // jobs made and not yet yielded: what bounds memory
    let exhausted = false;
    let stopped = false;
    // What next() throws, once.
    const failure = new Failure();
    // Every next() waiting (a consumer may call next() again before the last settled).
    let wakers: (() => void)[] = [];
    let pending: unknown[] = [];
    let reading = false;
    let buffered: unknown[] = []; // the chunk being yielded, from bufferedAt on
    // An index, not shift(): shift() copies a large array each call, which
    // made imap with a chunksize of 100,000s quadratic (a minute for 1M items).
    let bufferedAt = 0;
    const notify = (): void => {
      const ws = wakers;
      wakers = [];
      for (const w of ws) w();
    };

    const call: Call = {
      done: false,
      itemMs: -1,
      single: false,
      onProgress,
      graceMs,
      onResult: (job, values) => {
        inFlight--;
        if (ordered) ready.set(job.start, { values });
        else completion.push({ values });
        busy();
        notify();
      },
      onError: (job, err) => {
        inFlight--;
        if (ordered) ready.set(job.start, { error: err });
        else completion.push({ error: err });
        busy();
        notify();
      },
      fail: (err) => {
        failure.first(err);
        stop();
        notify();
      },
      mayQueue: () => !stopped && !exhausted,
    };
    this.#addCall(call);
    // Whether this call keeps the process alive (see #hold).
    const busy = (): void => pool.#hold(call, !stopped && (reading || inFlight > 0));
    const off = signal === undefined ? noop : onAbort(signal, () => {
      failure.set(signal.reason);
      stop();
      notify();
    });

    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      call.done = true;
      pool.#dropQueued(call);
      pool.#cancelInWorkers(call, 'abort', graceMs ?? kAbortGraceMs);
      pool.#removeCall(call);
      off();
      buffered = []; // the rest of a chunk already taken is not yielded after break/return()
      bufferedAt = 0;
      // Not awaited behind a read still pending: an input that waits for data
      // (a stream, an endless feed) would hold the consumer's break for good.
      const closing = closeSource();
      sourceClosed = readPending ? Promise.resolve() : closing;
      notify(); // a next() waiting now ends (done, or the failure that stopped it)
    };

    // The input's own return() may throw or reject (a generator whose finally
    // throws). It must not escape stop(), which terminate() and a failing
    // call run: thrown there, terminate() threw it and left every other call
    // and this imap's next() pending for good; and a rejection was unhandled.
    // The consumer's return() (a break) reports it, as a for await over the
    // input itself does (review helper-124).
    let sourceClosed: Promise<void> = Promise.resolve();
    let readPending = false;
    const closeSource = (): Promise<void> => {
      let closing: Promise<void>;
      try {
        closing = Promise.resolve(source.return?.()).then(noop);
      } catch (e) {
        closing = Promise.reject(e);
      }
      closing.catch(noop);
      return closing;
    };

    // Reads input while fewer than maxInFlight jobs of this call are out.
    const fill = async (): Promise<void> => {
      if (reading) return;
      reading = true;
      const wasExhausted = exhausted;
      busy();
      try {
        while (!stopped && !exhausted && outstanding < maxInFlight) {
          const step = source.next();
          // An async input's return() waits behind a next() still pending (see stop()).
          readPending = typeof (step as { then?: unknown } | null)?.then === 'function';
          let r: IteratorResult<unknown>;
          try {
            r = await step;
          } finally {
            readPending = false;
          }
          if (stopped) break;
          if (r.done) {
            exhausted = true;
          } else {
            pending.push(r.value);
            if (pending.length < chunksize) continue;
          }
          if (pending.length > 0) {
            const job = pool.#makeJob(call, fnKey, def, false, pending, nextStart, timeoutMs);
            nextStart += pending.length;
            pending = [];
            inFlight++;
            outstanding++;
            pool.#queue.push(job);
            pool.#dispatch();
          }
        }
      } catch (e) {
        failure.first(e);
        stop();
      } finally {
        reading = false;
        busy();
        // A next() waiting now may have nothing more to wait for: the input
        // ended (empty, or its end came after the last result was taken).
        // Only then: each notify makes a waiting next() call fill() again.
        // And a closed pool whose only call this was may let its workers go.
        if (exhausted && !wasExhausted) {
          notify();
          pool.#maybeFinish();
        }
      }
    };

    const take = (): { values?: unknown[]; error?: Error } | undefined => {
      let r: { values?: unknown[]; error?: Error } | undefined;
      if (!ordered) r = completion.shift();
      else {
        r = ready.get(nextYield);
        if (r === undefined) return undefined;
        ready.delete(nextYield);
        nextYield += (r.values?.length ?? 0) || (r.error ? chunksize : 0);
      }
      if (r !== undefined) outstanding--;
      return r;
    };

    const iterator: AsyncIterableIterator<unknown> = {
      async next(): Promise<IteratorResult<unknown>> {
        for (;;) {
          if (bufferedAt < buffered.length) {
            const value = buffered[bufferedAt];
            buffered[bufferedAt++] = undefined; // yielded: not kept alive by the rest of its chunk
            return { value, done: false };
          }
          if (failure.failed) {
            const f = failure.take();
            stop();
            throw f;
          }
          if (stopped) return { value: undefined, done: true };
          const r = take();
          if (r !== undefined) {
            if (r.error) {
              stop();
              throw r.error;
            }
            buffered = r.values!;
            bufferedAt = 0;
            void fill();
            continue;
          }
          if (exhausted && inFlight === 0 && pending.length === 0) {
            stop();
            return { value: undefined, done: true };
          }
          void fill();
          await new Promise<void>((res) => wakers.push(res));
        }
      },
      async return(): Promise<IteratorResult<unknown>> {
        const wasStopped = stopped;
        stop();
        if (!wasStopped) await sourceClosed;
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
    void fill();
    return iterator;
  }

  #fnKey(def: TaskTarget): number {
    const key = def.kind === 'source' ? `s:${def.source}` : `m:${def.url}#${def.export}`;
    let id = this.#fnIds.get(key);
    if (id === undefined) this.#fnIds.set(key, (id = this.#fnIds.size + 1));
    return id;
  }

  #makeJob(call: Call, fnKey: number, def: TaskTarget, star: boolean, items: unknown[], start: number, timeoutMs: number): Job {
    this.#pending += items.length;
    return { id: this.#nextJob++, call, fnKey, def, star, items, start, timeoutMs, settled: false };
  }

  /** Removes a call's jobs that no worker has yet. */
  #dropQueued(call: Call): void {
    this.#queue.removeWhere((job) => {
      if (job.call !== call) return false;
      job.settled = true;
      this.#tally(job, 0, 0);
      return true;
    });
  }

  // ---- scheduling -----------------------------------------------------------

  /**
   * How many jobs a worker may hold when `job` is next: about kTargetQueuedMs
   * of work, estimated from this call's measured time per item, else from
   * the task function's. A call of several jobs starts at 2 until one of
   * its own jobs has been timed: the same function may be 1000x slower now
   * (fib(20) for a warm-up, then fib(29)), and a window sized from the old
   * time would hand out every chunk at once, with no balancing left.
   */
  #window(job: Job): number {
    const call = job.call;
    const fnMs = this.#fnItemMs.get(job.fnKey);
    const perItem = call.itemMs >= 0 ? call.itemMs : fnMs;
    if (perItem === undefined) return 2;
    const jobMs = perItem * job.items.length;
    // Jobs shorter than kPrefetchBelowMs always have one more queued behind
    // them: a worker that finishes then starts the next at once instead of
    // waiting for its result to reach the parent and a job to come back (a
    // round trip of ~0.5-1 ms through two sleeping processes here, 4% of a
    // 25 ms job: measured on a CPU-bound map). Longer jobs get one at a time,
    // so a worker never holds work that an idle one could start.
    const min = jobMs < kPrefetchBelowMs ? 2 : 1;
    const w = Math.max(min, Math.min(kMaxWindow, Math.floor(kTargetQueuedMs / Math.max(jobMs, 1e-3))));
    return call.itemMs < 0 && !call.single ? Math.min(2, w) : w;
  }

  /** A job's expected duration from its call's (else its function's) measured time per item; undefined before any. */
  #estimateMs(job: Job): number | undefined {
    const perItem = job.call.itemMs >= 0 ? job.call.itemMs : this.#fnItemMs.get(job.fnKey);
    return perItem === undefined ? undefined : perItem * job.items.length;
  }

  /**
   * Whether more jobs may queue on `w` behind those it holds: only behind
   * short ones. Behind a long job (by its estimate, or unknown yet, or out
   * for longer than expected: a slow input, an aborted task left running)
   * they wait in the pool's queue for whichever worker is free first, as
   * Python's do. Before, the least-loaded worker took them: quick calls
   * queued for 3 s behind a long task on one worker while the other sat idle.
   * Only the first and the last job held can be long: nothing queues behind
   * a long one.
   */
  #stackable(w: Worker, now: number): boolean {
    const held = w.inflight;
    if (held.length === 0) return true;
    const head = held[0]!;
    const headMs = this.#estimateMs(head);
    if (headMs === undefined || headMs >= kPrefetchBelowMs) return false;
    if (now - (head.sentAt ?? now) > Math.max(kOverdueMs, 4 * headMs)) return false;
    if (held.length === 1) return true;
    const lastMs = this.#estimateMs(held[held.length - 1]!);
    return lastMs !== undefined && lastMs < kPrefetchBelowMs;
  }

  #dispatch(): void {
    if (this.#queue.length === 0) return;
    // Jobs with no worker left to take them (a closed pool's last worker
    // recycled or killed while an imap read on): one starts. (Not while an
    // exit is handled: an answer drained from the dead worker's pipe comes
    // here, and the exit starts its own replacement.)
    // (Nor while a replacement waits out its delay: it is the one.)
    if (this.#exiting === 0 && this.#fatal === undefined && this.#state !== 'terminated' && this.#delayed.size === 0 && !this.#hasActiveWorker()) this.#startWorker();
    const now = performance.now();
    const max = this.#maxTasksPerChild;
    const workers: Worker[] = [];
    // A worker still starting takes one job: it waits in its pipe, so the
    // first job does not wait for a 'ready' round trip (a pool's first result
    // came ~2-5 ms sooner), and a slow initializer strands no more than that
    // one. If the worker dies before 'ready', its job goes back to the queue
    // (#onExit). Timed jobs wait for 'ready': their clock starts at send.
    for (const w of this.#workers) if (!w.retiring && !w.dead && !w.exclusive && !w.killed) workers.push(w);
    // One job at a time to the least-loaded worker, so work spreads before it
    // stacks (filling one worker to its window first left the others idle).
    while (this.#queue.length > 0) {
      const job = this.#queue.peek()!;
      const timed = job.timeoutMs !== Infinity;
      const window = this.#window(job);
      let best: Worker | undefined;
      for (const w of workers) {
        if (w.exclusive || (timed && !w.ready)) continue;
        // A worker recycled after `max` jobs is never sent more than that;
        // a timed job runs alone on an idle worker.
        const room = timed ? (w.inflight.length === 0 ? 1 : 0) : w.ready ? Math.min(window, max - w.jobsDone) : 1;
        if (w.inflight.length >= room || w.jobsDone + w.inflight.length >= max) continue;
        if (w.ready && !this.#stackable(w, now)) continue;
        if (best === undefined || w.inflight.length < best.inflight.length) best = w;
      }
      if (best === undefined) return;
      this.#queue.shift();
      if (timed) best.exclusive = true;
      this.#send(best, job);
    }
  }

  #send(w: Worker, job: Job): void {
    job.worker = w;
    job.sentAt = performance.now();
    w.inflight.push(job);
    const msg: ToWorker = { t: 'job', id: job.id, fn: job.fnKey, star: job.star, items: job.items };
    if (job.call.onProgress !== undefined) msg.progress = true;
    // The definition rides along until a send that carried it has succeeded:
    // marking it known before would strand later jobs if this send fails.
    if (!w.known.has(job.fnKey)) msg.def = job.def;
    w.conn.send(msg).then(() => {
      if (msg.def) w.known.add(job.fnKey);
    }, (e: unknown) => {
      // The items could not be encoded (a function, a symbol, a getter or
      // Proxy trap of the user's that threw: any error) or the worker is gone
      // (EOFError: its end, or ours, closed). An encoding failure fails only
      // this call; a dead worker is handled by #onExit.
      if (w.dead || e instanceof EOFError) return;
      const i = w.inflight.indexOf(job);
      if (i >= 0) w.inflight.splice(i, 1);
      if (w.inflight.length === 0) w.exclusive = false;
      this.#settleError(job, e as Error);
      this.#tally(job, 0, 0); // already settled by a cancel: no answer will ever come for it
      this.#dispatch();
    });
    if (job.timeoutMs !== Infinity) job.timer = setTimeout(() => this.#timedOut(w, job, performance.now() + Math.max(kStuckMs, job.call.graceMs ?? 0)), job.timeoutMs);
  }

  /**
   * A timed job's time ran out. Its clock runs from its start on the worker
   * (an idle one: a timed job runs alone), so one not begun yet is watched
   * until it begins, and then given its whole time again (before, it ran
   * from the send: on an idle pool `{ timeout: 1 }` failed 3 times in 10;
   * helper-68). One its worker has not even taken from its pipe by `stuckAt`
   * is behind something no job runs (a timer an earlier task left spinning):
   * the worker is killed. (Taken and not begun is a worker decoding big
   * arguments: it is waited for.)
   * Before, only a worker on the job was ever killed: that one kept the job
   * for good, and the pool lost it while the message said it was replaced (helper-65).
   */
  #timedOut(w: Worker, job: Job, stuckAt: number): void {
    // A copy in a 'fork' child (its timers came along): the job's word is
    // shared with the parent, and a swap made here left the parent's own
    // timeout looking at it for ever (the call never settled, the worker never killed).
    if (myPid() !== this.#owner) return;
    if (w.dead || !w.inflight.includes(job)) return; // answered meanwhile (or skipped, once cancelled)
    const grace = job.call.graceMs ?? 0;
    if (this.#stuckBefore(w, job)) {
      const taken = w.conn[kSentTaken]();
      if (taken || performance.now() < stuckAt) {
        job.timer = setTimeout(() => {
          if (this.#stuckBefore(w, job)) this.#timedOut(w, job, stuckAt);
          else job.timer = setTimeout(() => this.#timedOut(w, job, Infinity), job.timeoutMs); // begun just now: its whole time
        }, taken ? kTakenLookMs : kBeginLookMs);
        return;
      }
      this.#settleError(job, new TimeoutError(
        `Task did not finish within ${job.timeoutMs} ms: its worker (pid ${w.pid}) had not even taken it from its pipe ${Math.max(kStuckMs, grace)} ms after its time (busy with something an earlier task left running, a timer perhaps), and ${this.#killedFor(w)}`,
      ));
      job.cancelled = true;
      this.#kill(w);
      return;
    }
    if (job.cancelled) {
      // Aborted (or its imap left) before its time ran out, with no kill
      // asked: its timeout still bounds how long it may hold the worker.
      this.#killWhileOn(w, new Set([job.id]), grace);
      return;
    }
    if (job.settled) return;
    // The worker clears its word before it answers (pool-worker.ts runJob):
    // one that has finished the task, its answer in its pipe or on its way
    // (this process, busy, read it only after the deadline). That answer
    // settles the call: before, it was dropped for a TimeoutError saying the
    // worker "was killed", and the worker lived on. Looked at again until it
    // is read (also covers the instant between the worker's two stores as a
    // job begins). With no grace, the swap that claims the job for the kill
    // is the look itself: the worker then never answers, so "killed" is true.
    const word = w.conn[kUserWord]();
    const tag = jobTag(job.id);
    if (word.length > 0 && (grace === 0 ? Atomics.compareExchange(word, 0, tag, -tag) : Atomics.load(word, 0)) !== tag) {
      job.timer = setTimeout(() => this.#timedOut(w, job, stuckAt), kTakenLookMs);
      return;
    }
    if (grace === 0) {
      this.#settleError(job, new TimeoutError(`Task did not finish within ${job.timeoutMs} ms; its worker (pid ${w.pid}) ${this.#killedFor(w)}`));
      job.cancelled = true;
      this.#kill(w);
      return;
    }
    this.#settleError(job, new TimeoutError(`Task did not finish within ${job.timeoutMs} ms; its worker (pid ${w.pid}) was asked to stop (taskSignal() aborted) and is killed if still running ${grace} ms later`));
    this.#cancelInWorkers(job.call, 'timeout', grace, job);
  }

  /**
   * "was killed", and "and replaced" if its exit is to start a replacement
   * as things stand (#needsWorker, w aside: a running pool, or a closed one
   * with work left). Before, a closed pool with no work left said so too,
   * and none started. (A close() between this and the exit, with nothing
   * left, still spares it: a worker started only to stop would slow join().)
   */
  #killedFor(w: Worker): string {
    if (this.#state === 'terminated' || this.#fatal !== undefined) return 'was killed';
    return this.#needsWorker(w) ? 'was killed and replaced' : 'was killed';
  }

  /** Whether `job`, alone on worker w (a timed job), is still not begun by it. */
  #stuckBefore(w: Worker, job: Job): boolean {
    if (w.dead || w.inflight.length !== 1 || w.inflight[0] !== job) return false;
    const word = w.conn[kUserWord]();
    return word.length > 1 && Atomics.load(word, 1) !== jobTag(job.id);
  }

  /**
   * Tells the workers holding jobs of `call` (only `only`, if given) to stop
   * them: a running one sees taskSignal() abort, a queued one is skipped.
   * After graceMs, a worker still running one of them is killed (and
   * replaced); undefined: never.
   */
  #cancelInWorkers(call: Call, kind: 'abort' | 'timeout', graceMs: number | undefined, only?: Job): void {
    // Beyond setTimeout's range (~24.8 days) is never.
    if (graceMs !== undefined && graceMs > kMaxTimerMs) graceMs = undefined;
    for (const w of this.#workers) {
      if (w.dead) continue;
      const ids = new Set<number>();
      for (const job of w.inflight) {
        if ((only !== undefined ? job !== only : job.call !== call) || job.cancelled) continue;
        job.cancelled = true;
        ids.add(job.id);
        // Settled: if this worker dies, these do not go back to the queue.
        job.settled = true;
        // An abort leaves the job's own timeout running (see #timedOut): an
        // abort's grace longer than it let a stuck task outlive its timeout
        // (review helper-98).
        if (job.timer && kind !== 'abort') clearTimeout(job.timer);
      }
      if (ids.size === 0) continue;
      for (const id of ids) w.conn.send({ t: 'cancel', id, kind } satisfies ToWorker).catch(() => {});
      if (graceMs !== undefined) this.#killWhileOn(w, ids, graceMs);
    }
  }

  /**
   * Kills worker w after graceMs if it is then still on one of the jobs
   * `ids`: only while it is on one of them, and only by winning the swap the
   * worker makes before each job (pool-worker.ts serveJobs): a worker that
   * has moved on to another call's job, its answer for this one perhaps still
   * in the pipe, is left alone (workerpool#548: a kill meant for a timed-out
   * task hit the next one).
   */
  #killWhileOn(w: Worker, ids: Set<number>, graceMs: number): void {
    if (graceMs > kMaxTimerMs) return; // beyond setTimeout's range (~24.8 days) is never
    const word = w.conn[kUserWord]();
    const tags = new Set([...ids].map(jobTag));
    let again = 5;
    const check = (): void => {
      if (w.dead || word.length === 0 || myPid() !== this.#owner) return; // (a copy in a 'fork' child: see #timedOut)
      const on = Atomics.load(word, 0);
      if (on > 0 && tags.has(on) && w.inflight.some((j) => jobTag(j.id) === on)) {
        if (Atomics.compareExchange(word, 0, on, -on) === on) this.#kill(w);
        else setImmediate(check); // it moved on this instant: look at what it is on now
        return;
      }
      // Not on one of them now, but still holding one: it may yet start it
      // (a cancel can reach the worker just after the job began, too late
      // to skip it), so look again, less often as time goes on.
      if (w.inflight.some((j) => ids.has(j.id))) {
        setTimeout(check, again).unref();
        again = Math.min(again * 2, 200);
      }
    };
    if (graceMs === 0) check();
    else setTimeout(check, graceMs).unref();
  }

  #settleError(job: Job, err: Error): void {
    if (job.settled) return;
    job.settled = true;
    if (job.timer) clearTimeout(job.timer);
    this.#tally(job, 0, job.items.length);
    if (!job.call.done) job.call.onError(job, err);
  }

  /** Counts a job's items once: `done` gave results, `failed` failed, the rest were cancelled. */
  #tally(job: Job, done: number, failed: number): void {
    if (job.tallied) return;
    job.tallied = true;
    this.#done += done;
    this.#failed += failed;
    this.#cancelled += job.items.length - done - failed;
    this.#pending -= job.items.length;
    this.#roomMade();
  }

  // ---- workers --------------------------------------------------------------

  #describe(fn: TaskRef): TaskTarget {
    const def = describeTask(fn, 'fn');
    checkForkedImport(def, this.#forked, 'The task');
    return def;
  }

  /**
   * Starts a worker. Under 'forkserver' every one, the constructor's too,
   * starts without blocking the event loop while the zygote forks it (under
   * load tens of ms each); `sync` (the constructor's, under 'spawn') starts
   * it before this returns. Until then the worker may already be sent a job
   * (into its pipe, see #dispatch) or a stop, but has no pid (stats() does
   * not list it; started() waits for it).
   */
  #startWorker(sync = false): void {
    const [parentEnd, childEnd] = Pipe(true);
    const proc = new Process({
      target: { module: kWorkerEntry, export: 'poolWorkerMain' },
      args: [childEnd, {
        initializer: this.#initializer,
        initargs: this.#initargs,
        ...(this.#maxRssBytes !== Infinity ? { maxRssBytes: this.#maxRssBytes } : {}),
        ...(this.#base !== undefined ? { base: this.#base } : {}) }],
      name: `${this.#name}-Worker-${++this.#workerCount}`,
      daemon: true,
      startMethod: this.#method,
      ...this.#place,
    });
    proc[kKillAtExit] = true;
    const w: Worker = {
      proc, conn: parentEnd, pid: 0, ready: false, retiring: false, dead: false, exclusive: false,
      inflight: [], known: new Set(), jobsDone: 0, rss: 0, everFinishedJob: false, startedAt: performance.now(), startupMs: null, killed: false,
      started: Promise.resolve(),
    };
    this.#workers.add(w);
    if (sync) {
      try {
        proc.start();
      } catch (e) {
        this.#startFailed(w, childEnd, e);
        return;
      }
      this.#workerStarted(w, childEnd);
      return;
    }
    w.started = proc[kStartAsync]().then(() => this.#workerStarted(w, childEnd), (e: unknown) => this.#startFailed(w, childEnd, e));
  }

  #startFailed(w: Worker, childEnd: Connection, e: unknown): void {
    if (myPid() !== this.#owner) return; // a fork child's copy of a start that was settling: the parent's (see #workerStarted)
    // Before w leaves the set: a job already sent to it fails with the rest.
    if (this.#state !== 'terminated') this.#fail(new ProcessError(`Pool could not start a worker: ${(e as Error).message}`, { cause: e }));
    this.#workers.delete(w);
    w.conn.close();
    childEnd.close();
    this.#letGoIfDone();
  }

  #workerStarted(w: Worker, childEnd: Connection): void {
    // A 'fork' child made while this was queued (the start's last step; see
    // Process[kStartAsync] for the steps before) copied it: the worker and
    // its pipe are the parent's. Run there, the child's copy of the pool
    // listed the worker and read its answers off the parent's pipe.
    if (myPid() !== this.#owner) return;
    const proc = w.proc;
    childEnd.close(); // the child holds its own attachment now
    w.pid = proc.pid ?? 0;
    // The result reader must not keep the process alive: pending calls do (#addCall).
    w.conn.unref();
    void this.#readLoop(w);
    // A turn later: by then the read loop has handled every answer it had
    // already taken from the pipe (#onExit takes the rest itself).
    void proc.whenExited().then(() => setImmediate(() => this.#onExit(w)));
    // Killed (terminate, a timeout...) while it was being started: its kill found no process yet.
    if (w.killed) this.#kill(w);
  }

  async #readLoop(w: Worker): Promise<void> {
    for (;;) {
      let msg: FromWorker;
      try {
        msg = (await w.conn.recv()) as FromWorker;
      } catch (e) {
        // EOF: the worker is gone; #onExit handles its jobs. Anything else is
        // an answer that could not be read (a shared object in it unlinked
        // before this process attached it): its job would never settle, nor
        // would any later one sent to this worker, so the worker goes and
        // #handleExit fails that job with this error (before, this loop just
        // stopped: the call and every later one on that worker hung).
        if (!(e instanceof EOFError) && !w.dead && this.#state !== 'terminated') {
          w.unreadable = e as Error;
          w.unreadableJob = w.inflight[0];
          this.#kill(w);
        }
        return;
      }
      if (msg.t === 'done') this.#onDone(w, msg);
      else if (msg.t === 'progress') this.#onProgress(w, msg);
      else if (msg.t === 'ready') {
        w.ready = true;
        w.pid = msg.pid;
        w.startupMs = performance.now() - w.startedAt;
        this.#dispatch();
      } else if (msg.t === 'fatal') this.#onFatal(w, msg);
      else if (msg.t === 'init-failed') {
        w.initFailed = true;
        this.#crashes++;
        const err = remoteError(msg.error, w.pid);
        if (this.#crashes >= kCrashLoopLimit) {
          this.#fail(new ProcessError(`Pool initializer failed in ${this.#crashes} workers in a row: ${err.message}`, { cause: err }));
        }
      }
    }
  }

  #onFatal(w: Worker, msg: Extract<FromWorker, { t: 'fatal' }>): void {
    w.fatal = { error: remoteError(msg.error, w.pid), rejection: msg.rejection, running: msg.running };
  }

  #onDone(w: Worker, msg: Extract<FromWorker, { t: 'done' }>): void {
    // In order (the ring is), but for a job whose answer could not be read
    // (see #readLoop): #handleExit's drain then reads the answers of the
    // jobs after it, which must not shift it off in their place (review
    // helper-114: that job's call hung, and the next one failed for it).
    let at = w.inflight[0]?.id === msg.id ? 0 : -1;
    if (at < 0 && w.unreadable !== undefined) at = w.inflight.findIndex((j) => j.id === msg.id);
    if (at < 0) return;
    const job = at === 0 ? w.inflight.shift()! : w.inflight.splice(at, 1)[0]!;
    w.exclusive = false;
    w.jobsDone++;
    w.lastDone = { start: job.start, count: job.items.length, call: new WeakRef(job.call) };
    w.everFinishedJob = true;
    this.#crashes = 0;
    this.#jobDeaths = 0;
    this.#idleKills = 0;
    if (msg.rss !== undefined) w.rss = msg.rss;
    // A cancelled job stopped early (or never ran): its time says nothing about the task.
    if (job.items.length > 0 && !(!msg.ok && msg.cancelled)) {
      const per = msg.ms / job.items.length;
      const call = job.call;
      call.itemMs = call.itemMs < 0 ? per : call.itemMs * 0.8 + per * 0.2;
      const fnMs = this.#fnItemMs.get(job.fnKey);
      this.#fnItemMs.set(job.fnKey, fnMs === undefined ? per : fnMs * 0.8 + per * 0.2);
    }
    if (job.timer) clearTimeout(job.timer);
    // Also a job cancelled while it ran: what it finished before it stopped is done.
    if (msg.ok) this.#tally(job, job.items.length, 0);
    else this.#tally(job, msg.index, msg.cancelled ? 0 : job.items.length - msg.index);
    if (!job.settled) {
      job.settled = true;
      if (msg.ok) {
        if (!job.call.done) job.call.onResult(job, msg.values);
      } else if (!job.call.done) job.call.onError(job, msg.unsent === undefined ? remoteError(msg.error, w.pid) : unsentError(msg.error, msg.unsent, msg.index, job, w.pid));
    }
    const max = this.#maxTasksPerChild;
    // A retiring worker stops once its last job answered, whatever its RSS
    // still says (before: over the cap it was "retired" again, a no-op, and
    // never stopped: it lived on beside its replacement and join() hung).
    if (w.retiring) {
      if (w.inflight.length === 0) this.#stopWorker(w);
    } else if (w.jobsDone >= max || w.rss > this.#maxRssBytes) this.#retire(w);
    this.#dispatch();
    this.#maybeFinish();
  }

  #onProgress(w: Worker, msg: Extract<FromWorker, { t: 'progress' }>): void {
    // Usually the oldest in flight; a later one if the worker's 'done' of
    // the one before is still on its way.
    const job = w.inflight.find((j) => j.id === msg.id);
    if (job === undefined || job.settled || job.call.done) return;
    const cb = job.call.onProgress;
    if (cb === undefined) return;
    try {
      cb(msg.value, job.start + msg.index);
    } catch (e) {
      // The caller's callback failed: its call fails with that error (and
      // its running tasks are cancelled, as by an abort); other calls go on.
      const call = job.call;
      this.#cancelInWorkers(call, 'abort', call.graceMs ?? kAbortGraceMs);
      call.fail(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** No more jobs for w; it exits once its queue drains, and a fresh worker takes its place. */
  #retire(w: Worker): void {
    if (w.retiring) return;
    w.retiring = true;
    if (this.#state === 'running' || this.#queue.length > 0 || this.#mayQueueMore()) this.#startWorker();
    if (w.inflight.length === 0) this.#stopWorker(w);
  }

  #stopWorker(w: Worker): void {
    w.conn.send({ t: 'stop' } satisfies ToWorker).catch(() => this.#kill(w));
  }

  #kill(w: Worker): void {
    if (myPid() !== this.#owner) return; // a copy in a fork child: its timers must not kill the parent's workers
    w.killed = true;
    try {
      w.proc.kill();
    } catch {
      // already exited
    }
  }

  #onExit(w: Worker): void {
    if (w.dead) return;
    w.dead = true;
    this.#exiting++;
    try {
      this.#handleExit(w);
    } finally {
      this.#exiting--;
    }
    this.#dispatch();
    this.#maybeFinish();
    this.#letGoIfDone();
  }

  /** While a worker's exit is handled: it decides on a replacement itself (see #dispatch). */
  #exiting = 0;

  #handleExit(w: Worker): void {
    // Answers the worker sent before it died may still be in its pipe (this
    // process was busy): take them first, so that a job that answered is
    // not taken for the one it died running, nor run again.
    while (w.conn[kMaybeUnread]()) {
      let msg: FromWorker;
      try {
        msg = w.conn.recvSync(0) as FromWorker;
      } catch {
        break; // empty (or the end of the stream)
      }
      if (msg.t === 'done') this.#onDone(w, msg);
      else if (msg.t === 'progress') this.#onProgress(w, msg);
      else if (msg.t === 'ready') w.ready = true; // then it did start its first job
      else if (msg.t === 'fatal') this.#onFatal(w, msg);
    }
    // The last job it began (pool-worker.ts), read before the pipe is unmapped.
    const words = w.conn[kUserWord]();
    const begun = words.length > 1 ? Atomics.load(words, 1) : null;
    const loaded = words.length > 2 ? Atomics.load(words, 2) : null;
    w.conn[kDrainUnread](); // its unread jobs' big items and shared args
    w.conn.close();
    // Nobody will attach this pipe again; a worker that died holding its end
    // never dropped its reference, which kept the segment (~0.5 MB) until
    // this process tree ended.
    w.conn[kUnlinkNow]();
    // Forget it at once: a long-lived pool that recycles workers must not pile them up.
    this.#workers.delete(w);
    try {
      w.proc.close();
    } catch {
      // close() refuses only a running process; this one has exited
    }
    const code = w.proc.exitCode;
    const fatal = w.fatal;
    // A worker that never said 'ready' never started a job: all go back. Nor
    // did one that reported an uncaught error between two jobs: it died
    // before it took the next from its pipe, and that job is not to blame.
    // Nor did one that never began the job at the head of its pipe (killed
    // idle, from outside or with its forkserver, as that job was sent): it
    // goes back too, instead of failing with a WorkerExitError for a task
    // that never ran.
    const head = w.inflight[0];
    const neverBegun = w.ready && head !== undefined && begun !== null && begun !== jobTag(head.id);
    const started = w.ready && (fatal === undefined || fatal.running !== null) && !neverBegun;
    // Killed for an answer that could not be read (see #readLoop): that
    // answer's job fails, whatever the worker began since (before, one begun
    // after it was blamed, or it went back to the queue and ran again); the
    // others go back to the queue.
    const lost = w.unreadable !== undefined && head !== undefined && head === w.unreadableJob;
    const running = lost ? head : started && w.unreadable === undefined ? w.inflight[0] : undefined;
    const queued = running !== undefined ? w.inflight.slice(1) : w.inflight;
    // None of them will answer on this worker: their timers go (an aborted
    // job's kept timer held the process for its whole timeout after the
    // worker was killed; review helper-100). Jobs that go back to the queue
    // get new ones when they are sent again.
    for (const job of w.inflight) if (job.timer) clearTimeout(job.timer);
    w.inflight = [];
    const signal = code !== null && code < 0 ? signalName(-code) : null;
    // SIGABRT is how Node ends on "JavaScript heap out of memory" (its stderr says which).
    const oom = signal === 'SIGABRT' ? ': Node aborts so when its JavaScript heap runs out of memory, see its stderr' : '';
    const how = code !== null && code < 0 ? `was killed by signal ${-code}${signal ? ` (${signal}${oom})` : ''}` : `exited with code ${code}`;
    // A job that kills every worker it is sent to before it begins (its
    // arguments too big to decode in a worker's memory: SIGABRT) went back to
    // the queue without end; a few such deaths fail it.
    // A worker over the memory cap ends of itself, without beginning the job
    // at the head of its pipe (pool-worker.ts serveJobs): no fault of that job's.
    const quitOverCap = w.retiring && code === 0 && w.rss > this.#maxRssBytes;
    if (neverBegun && !quitOverCap && !head.settled && !w.killed && !w.proc[kLostWithServer] && (head.diedBefore = (head.diedBefore ?? 0) + 1) >= kDiedBeforeLimit) {
      queued.shift();
      const n = head.items.length;
      this.#settleError(head, new WorkerExitError(
        `${kDiedBeforeLimit} pool workers died while ${n === 1 ? `item ${head.start}` : `items ${head.start}-${head.start + n - 1}`} of its call waited first in their pipe, before they began it ` +
          `(the last, pid ${w.pid}, ${how}): the job itself may be what kills them (arguments too big for a worker's memory?)`,
        { pid: w.pid, exitCode: code !== null && code >= 0 ? code : null, signal, index: head.start, count: n },
      ));
      this.#tally(head, 0, 0);
    }
    if (running !== undefined && !running.settled) {
      const n = running.items.length;
      let what = n === 1 ? `item ${running.start}` : `items ${running.start}-${running.start + n - 1}`;
      if (n > 1 && fatal?.running?.id === running.id) what += ` (at item ${running.start + fatal.running.index})`;
      const mem = w.rss > 0 ? `; it last reported ${(w.rss / 1048576).toFixed(0)} MB resident` : '';
      const [why, from] = fatal === undefined ? ['', ''] : describeFatal(fatal.rejection, running.call, w.lastDone);
      const said = fatal !== undefined ? `: ${errorLine(fatal.error)}` : w.unreadable !== undefined ? `; it was killed because an answer of its could not be read: ${errorLine(w.unreadable)}` : '';
      const cause = fatal?.error ?? w.unreadable;
      this.#settleError(
        running,
        new WorkerExitError(`Pool worker (pid ${w.pid}) ${how}${why} while running ${what} of its call${from}${mem}${said}`, {
          pid: w.pid,
          exitCode: code !== null && code >= 0 ? code : null,
          signal,
          index: running.start,
          count: n,
          rssBytes: w.rss > 0 ? w.rss : undefined,
        }, cause === undefined ? undefined : { cause }),
      );
    }
    // Cancelled jobs it was running or holding end here.
    if (running !== undefined) this.#tally(running, 0, 0);
    // Jobs the worker had not started go back to the front of the queue.
    for (let i = queued.length - 1; i >= 0; i--) {
      const job = queued[i];
      if (job.settled) {
        this.#tally(job, 0, 0);
        continue;
      }
      if (job.timer) clearTimeout(job.timer);
      job.worker = undefined;
      this.#queue.unshift(job);
    }
    // A crash loop is workers dying of what they run: while starting (its
    // task's module loading included), on an uncaught error (which may come
    // from the initializer's own timers, in every worker alike), or on an
    // exit of their own between jobs. A signal or an exit while a loaded
    // task runs (SIGKILL, out of memory, process.exit in the task) fails
    // that task, so the pool moves on: five calls whose tasks kill their
    // workers must not fail every other call too (they did: 94 of 100
    // applies); only kJobDeathLimit of them in a row, with no task finished
    // anywhere between, stop the pool (a service whose calls all do so would
    // start a worker per call for good). Not one that had started and was
    // killed idle (a job waiting in its pipe not begun) by a signal from
    // outside: SIGKILL from a user or the OOM killer, SIGHUP from a closing
    // terminal (before, only SIGKILL was spared, and five SIGHUPs failed the
    // pool for good); a signal of its own fault (SIGSEGV, SIGABRT...) still
    // counts. Nor those lost when the forkserver died (killed with it):
    // before, a pool of 5 or more fresh workers took a zygote's death for a
    // crash loop and failed for good (helper-55's chaos trial).
    // But waitpid cannot tell who sent a signal: a worker that sends one to
    // itself while idle (an initializer's timer doing process.kill(
    // process.pid, 'SIGHUP'), or one a task left behind) looks killed from
    // outside too, and was replaced at once, for ever: a hot fork loop
    // (in 2 s, 72 workers started by a pool of one, 144 by a pool of two, on
    // a loaded 2-core VM). Failing the pool for it would fail it
    // for a user's kills too, so instead such deaths in a run with no task
    // finished anywhere between are replaced at once only as many as the
    // pool has workers (2 at least: a whole pool killed at once, or a
    // zygote's death, comes back at once); each later one waits 50 ms, then
    // twice as long as the one before, up to 2 s. That bounds the forks to a
    // handful, then about one per 2 s per worker, and a kill between tasks costs
    // nothing; a task that finishes anywhere ends the run. Kills of the
    // pool's own (timeouts, terminate) and retired workers do not count.
    const fromOutside = w.proc[kLostWithServer] || (w.ready && running === undefined && fatal === undefined && code !== null && code < 0 && !(signal !== null && kOwnFaults.has(signal)));
    const diedInJob = running !== undefined && fatal === undefined && loaded === jobTag(running.id);
    if (!w.everFinishedJob && !w.retiring && !w.killed && !w.initFailed && !fromOutside && this.#state !== 'terminated') {
      if (diedInJob && this.#jobDeaths++ === 0) this.#jobDeathsFrom = performance.now();
      else if (!diedInJob) this.#crashes++;
      // (A job begun before this run of deaths, still running elsewhere, may
      // yet finish: a long task must not fail with them; review helper-69.)
      if (this.#crashes >= kCrashLoopLimit || (this.#jobDeaths >= kJobDeathLimit && !this.#runningSince(this.#jobDeathsFrom))) {
        const n = diedInJob ? this.#jobDeaths : this.#crashes;
        const where = diedInJob ? 'in their tasks, none finishing' : 'before finishing any task';
        const last = fatal === undefined ? '' : `: the last on an uncaught error, ${errorLine(fatal.error)}`;
        this.#fail(new ProcessError(`Pool workers keep dying ${where} (${n} in a row, last exit code ${code}); see their stderr${last}`, fatal === undefined ? undefined : { cause: fatal.error }));
      }
    }
    // (After close(), an imap still reading its input will queue more: its
    // jobs found no worker left, and the loop waited for good; helper-98.)
    const replace = this.#state === 'terminated' || this.#fatal ? false : this.#needsWorker();
    const delay = fromOutside && !w.killed && !w.retiring ? this.#idleKillDelayMs() : 0;
    // A retiring worker was replaced when it retired, unless the pool was
    // closed and idle then: if it died holding jobs (now queued), nobody
    // else may be left to run them. Its replacement may since have been
    // killed idle and wait out its delay (#startWorkerLater): that one is
    // to come, and starting another here too left a pool of one with two
    // workers for good (review helper-118).
    if (replace && (!w.retiring || (!this.#hasActiveWorker() && this.#delayed.size === 0))) {
      if (delay > 0) this.#startWorkerLater(delay);
      else this.#startWorker();
    }
  }

  /** Whether a dead worker is to be replaced: the pool takes calls, or has work that may need it (`except`'s own aside). */
  #needsWorker(except?: Worker): boolean {
    return this.#state === 'running' || this.#queue.length > 0 || this.#busy(except) || this.#mayQueueMore();
  }

  /** Counts a worker killed idle from outside; how long its replacement waits (see #handleExit). */
  #idleKillDelayMs(): number {
    const late = ++this.#idleKills - Math.max(kIdleKillsAtOnce, this.#processes);
    return late <= 0 ? 0 : Math.min(kIdleKillMaxMs, kIdleKillBaseMs * 2 ** Math.min(late - 1, 30));
  }

  /**
   * A replacement started after `ms` (see #handleExit). Unref'd: an idle
   * pool must not keep the process alive for it (calls with work under way
   * do, see #hold). terminate(), a failure, a signal and close() with no
   * work left cancel it; meanwhile #dispatch starts no other in its place.
   */
  #startWorkerLater(ms: number): void {
    const timer = setTimeout(() => {
      this.#delayed.delete(timer);
      this.#wakeDelayedWaiters();
      // A copy in a 'fork' child (its timers came along): not its worker to start.
      if (myPid() !== this.#owner) return;
      if (this.#state === 'terminated' || this.#fatal !== undefined) return;
      if (this.#needsWorker()) this.#startWorker();
      this.#dispatch();
      this.#maybeFinish();
      this.#letGoIfDone();
    }, ms);
    timer.unref();
    this.#delayed.add(timer);
  }

  /** Replacements waiting out their delay are not started. */
  #cancelDelayed(): void {
    if (this.#delayed.size === 0) return;
    for (const t of this.#delayed) clearTimeout(t);
    this.#delayed.clear();
    this.#wakeDelayedWaiters();
  }

  #wakeDelayedWaiters(): void {
    const waiters = this.#delayedWaiters;
    this.#delayedWaiters = [];
    for (const r of waiters) r();
  }

  /**
   * A pool closed (or terminated, or failed) and not joined lets go once no
   * worker is left, nor will be: its signal handlers kept it, and every
   * such pool added two listeners for the process's life (review helper-98).
   */
  #letGoIfDone(): void {
    if (this.#state !== 'running' && this.#workers.size === 0 && this.#delayed.size === 0 && this.#queue.length === 0 && !this.#mayQueueMore()) this.#letGo();
  }

  /** Whether a live worker is on a job it was sent before `t`. */
  #runningSince(t: number): boolean {
    for (const w of this.#workers) if (!w.dead && w.inflight.length > 0 && (w.inflight[0]!.sentAt ?? Infinity) < t) return true;
    return false;
  }

  #hasActiveWorker(): boolean {
    for (const w of this.#workers) if (!w.dead && !w.retiring) return true;
    return false;
  }

  #busy(except?: Worker): boolean {
    for (const w of this.#workers) if (w !== except && !w.dead && w.inflight.length > 0) return true;
    return false;
  }

  /** After close(): once no work is left, ask every worker to exit. */
  #maybeFinish(): void {
    // An imap still reading its input after close() will queue more jobs:
    // its call keeps the workers (join() waits for it, as for queued work).
    // One that has read it all does not, its results taken or not (before,
    // any call not yet ended held them, and join() waited for good on an
    // imap whose consumer had left; review helper-98).
    if (this.#state !== 'closed' || this.#queue.length > 0 || this.#mayQueueMore()) return;
    this.#cancelDelayed(); // no work left for a replacement
    for (const w of this.#workers) {
      if (!w.dead && w.inflight.length === 0 && !w.retiring) {
        w.retiring = true;
        this.#stopWorker(w);
      }
    }
  }

  /** Whether a call of this pool may still queue jobs (see Call.mayQueue). */
  #mayQueueMore(): boolean {
    for (const call of this.#calls) if (call.mayQueue()) return true;
    return false;
  }

  /** A pool that cannot go on (crash loop, start failure): fail everything. */
  #fail(err: Error): void {
    if (this.#fatal) return;
    this.#fatal = err;
    this.#state = 'terminated';
    this.#cancelDelayed();
    this.#failAll(err);
    this.#failRoomWaiters();
    for (const w of this.#workers) this.#kill(w);
  }

  #failAll(err: Error): void {
    const jobs = this.#queue.drain();
    for (const w of this.#workers) jobs.push(...w.inflight);
    for (const job of jobs) {
      job.settled = true;
      this.#tally(job, 0, 0);
      if (job.timer) clearTimeout(job.timer);
    }
    for (const call of [...this.#calls]) call.fail(err);
  }

  // Calls with work under way keep the process alive (as a pending timer
  // would); an idle pool does not, so forgetting close() never hangs a
  // script at its end. An imap counts only while it has tasks out or reads
  // its input: one whose results wait for a consumer that left without
  // return() must not hold the process forever.
  #addCall(call: Call): void {
    this.#calls.add(call);
    this.#hold(call, true);
  }

  #removeCall(call: Call): void {
    this.#calls.delete(call);
    this.#hold(call, false);
    if (this.#state === 'closed') queueMicrotask(() => this.#maybeFinish()); // workers may have waited for this call
  }

  readonly #holding = new Set<Call>();

  #hold(call: Call, busy: boolean): void {
    if (busy) this.#holding.add(call);
    else this.#holding.delete(call);
    if (this.#holding.size > 0) this.#keepAlive ??= setInterval(() => {}, 1 << 30);
    else if (this.#keepAlive !== undefined) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }

  #onSignal(sig: NodeJS.Signals): void {
    // A fork child's copy of the parent's handler: the signal is not ours,
    // and it must not be swallowed either (terminate() of a 'fork' child
    // whose parent had a pool did nothing: helper-63).
    if (myPid() !== this.#owner) {
      reraise(sig);
      return;
    }
    // Someone else listens too: the signal is theirs to handle.
    if (process.listenerCount(sig) > countPoolHandlers(sig)) return;
    // Busy if this pool, or a pool that handled this same delivery before it
    // (and removed its handler), had pending calls: their rejections must be
    // seen, so the signal is not re-raised by the last, idle, pool.
    if (this.#calls.size > 0 && !busyOnSignal.has(sig)) {
      busyOnSignal.add(sig);
      queueMicrotask(() => busyOnSignal.delete(sig));
    }
    const busy = busyOnSignal.has(sig);
    this.#state = 'terminated';
    this.#cancelDelayed();
    const err = new AbortError(`Interrupted by ${sig}: the pool was stopped`);
    markSignalAbort(err, sig);
    if (busy) quietSignalAborts();
    this.#failAll(err);
    // A submit() waiting for room rejects with the same error: a plain
    // "Pool is terminated" was no signal's abort, so it was printed, and the
    // script exited 1 instead of 130 (review helper-98).
    this.#failRoomWaiters(err);
    for (const w of this.#workers) this.#kill(w);
    this.#removeSignalHandlers();
    // An idle pool must not swallow Ctrl-C: do what Node would have done.
    if (!busy) reraise(sig);
    else {
      process.exitCode = 128 + (sig === 'SIGINT' ? 2 : 15);
      // The pending calls reject now: a program that catches that has a
      // grace to clean up and end on its own, with that exit code. One still
      // running after it (a server, a timer, a loop of calls) dies of the
      // signal, as it would have with no pool. Before, a busy pool swallowed
      // the signal: a server kept serving after SIGTERM (docker stop) and
      // only a second signal ended it (helper-59).
      if (!reraiseScheduled.has(sig)) {
        reraiseScheduled.add(sig);
        setTimeout(() => {
          reraiseScheduled.delete(sig);
          reraise(sig);
        }, kSignalGraceMs).unref();
      }
    }
  }

  #removeSignalHandlers(): void {
    if (this.#signalHandler === undefined) return;
    process.removeListener('SIGINT', this.#signalHandler);
    process.removeListener('SIGTERM', this.#signalHandler);
  }

  toString(): string {
    let live = 0;
    for (const w of this.#workers) if (!w.dead) live++;
    return `<Pool ${this.#state} processes=${this.#processes} workers=${live} queued=${this.#queue.length}>`;
  }

  /** console.log shows what toString() says (it showed {}; helper-68). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

// Python refuses to pickle a pool; structured clone would deliver {}.
Object.defineProperty(Pool.prototype, kNotSendable, {
  value: 'A Pool cannot be sent to another process (its workers belong to the process that made it): make the pool in the process that uses it, or send the work back to this one through a Queue.',
});

function countPoolHandlers(sig: NodeJS.Signals): number {
  return process.listeners(sig).filter((l) => libraryHandlers.has(l)).length;
}
/** Signals whose current delivery a busy pool handled (see #onSignal). */
const busyOnSignal = new Set<NodeJS.Signals>();
/** Signals a busy pool will re-raise once the grace is over (see #onSignal). */
const reraiseScheduled = new Set<NodeJS.Signals>();
/** How long a program that caught a signal's AbortError has to end on its own before the signal is re-raised. */
const kSignalGraceMs = 1000;
let quietingSignalAborts = false;

/**
 * Ctrl-C during `await pool.map(...)` at a script's top level: the call's
 * AbortError went uncaught, and Node printed its stack (into the pool's code)
 * and exited with 1. Once a signal has stopped a pool, such an error left
 * uncaught ends the process quietly, as the signal would have: killed by it
 * (exiting with 130 / 143 instead ran the exit hook, which joined non-daemon
 * children for ever). Any other uncaught error still prints and exits
 * with 1, as Node does, unless the program listens for uncaught exceptions.
 * (A rejected top-level await, and an unhandled rejection with no listener of
 * its own, both arrive here.)
 */
function quietSignalAborts(): void {
  if (quietingSignalAborts) return;
  quietingSignalAborts = true;
  const onUncaught = (err: unknown): void => {
    // Ended as the signal would have ended it (returning kept alive a process
    // with a server or a timer, and Ctrl-C did nothing more).
    const sig = signalOfAbort(err);
    if (sig !== undefined) {
      reraise(sig);
      process.exit(); // the program listens for the signal itself now
    }
    if (process.listenerCount('uncaughtException') > 1) return; // the program's own listener has it
    process.stderr.write(`${err instanceof Error && err.stack !== undefined ? err.stack : String(err)}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', onUncaught);
}

/**
 * The *Async forms' outcome for a signal aborted before the call: its
 * AsyncResult fails with the reason (and errorCallback runs), as after any
 * abort. It threw at the call, which the docs keep for faults of the call
 * itself; a loop of applyAsync's stopped midway (review helper-124).
 */
function abortedCall(signal: AbortSignal | undefined): Promise<never> | undefined {
  return signal?.aborted === true ? Promise.reject(signal.reason) : undefined;
}

/**
 * Why a worker that reported an uncaught error died, for its WorkerExitError:
 * such an error has no task of its own, and may come from the task it was
 * running or from one it ran before (a timer it left, a rejection settled
 * later).
 */
function describeFatal(rejection: boolean, call: Call, lastDone: Worker['lastDone']): [why: string, from: string] {
  const why = rejection
    ? ' on an unhandled rejection (a promise that nothing awaited or caught, outside any task\'s own promise)'
    : ' on an uncaught exception (thrown from a timer or a callback, outside any task\'s own promise)';
  if (lastDone === undefined) return [why, ''];
  const items = lastDone.count === 1 ? `item ${lastDone.start}` : `items ${lastDone.start}-${lastDone.start + lastDone.count - 1}`;
  const whose = lastDone.call.deref() === call ? 'this call' : 'another call';
  return [why, `; it may also come from a task that ran before on that worker (the last: ${items} of ${whose})`];
}

/** `TypeError: message`, an error's first line for a message of ours. */
function errorLine(err: Error): string {
  return `${err.name}: ${err.message}`;
}

function signalName(n: number): NodeJS.Signals | null {
  for (const [name, num] of Object.entries(osConstants.signals)) if (num === n) return name as NodeJS.Signals;
  return null;
}
