/**
 * The worker side of Pool (lib/pool.ts): a Process target that receives jobs
 * on its Connection, runs them one after another and sends results back in
 * the same order. Task functions are compiled once and cached by key.
 *
 * A worker ignores SIGINT: Ctrl-C reaches the whole process group, and the
 * parent decides (it rejects pending calls and kills the workers), so users
 * never see a stack trace from every child (CPython's bpo-8296).
 */
import { Pipe, type Connection } from '../connection';
import { AbortError, SerializationError, TimeoutError } from '../errors';
import { disposeShared, forEachShared } from '../reduction';
import { jobTag, kUserWord } from '../symbols';
import { explainReferenceError, kProgressSink, kSignalSink, loadTask, type TaskTarget } from '../task';
import { wire, type WireError } from '../wire-error';

interface WorkerInit {
  initializer?: TaskTarget;
  initargs: unknown[];
}

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

export async function poolWorkerMain(conn: Connection, init: WorkerInit): Promise<void> {
  process.on('SIGINT', () => {});
  try {
    if (init.initializer !== undefined) {
      const f = await loadTask(init.initializer);
      await f(...init.initargs);
    }
  } catch (e) {
    conn.send({ t: 'init-failed', error: wire(init.initializer?.kind === 'source' ? explainReferenceError(e, 'A pool task function') : e) });
    process.exit(1);
  }
  conn.send({ t: 'ready', pid: process.pid });
  await serveJobs(conn, init.initargs);
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
  /** Shared objects in the jobs read so far, released as each job ends. */
  readonly received: ReceivedShared;
  #waiter: ((m: Queued | { t: 'stop' } | null) => void) | null = null;

  constructor(conn: Connection, received: ReceivedShared, onCancel: (id: number, kind: CancelKind) => void) {
    this.received = received;
    void this.#pump(conn, onCancel);
  }

  async #pump(conn: Connection, onCancel: (id: number, kind: CancelKind) => void): Promise<void> {
    for (;;) {
      let m: ToWorker | null;
      try {
        m = (await conn.recv()) as ToWorker;
      } catch {
        m = null; // the parent is gone or closed the pipe
      }
      if (m !== null && m.t === 'cancel') {
        const queued = this.#queue.find((q) => q !== null && q.t === 'job' && q.id === m.id) as Queued | undefined;
        if (queued !== undefined) queued.cancelled = m.kind;
        else onCancel(m.id, m.kind);
        continue;
      }
      if (m !== null && m.t === 'job') this.received.hold(m.items);
      const w = this.#waiter;
      if (w !== null) {
        this.#waiter = null;
        w(m);
      } else this.#queue.push(m);
      if (m === null || m.t === 'stop') return;
    }
  }

  /** The next job or 'stop' if one has arrived (null: EOF), else undefined: then wait(). */
  take(): Queued | { t: 'stop' } | null | undefined {
    return this.#queue.length > 0 ? this.#queue.shift() : undefined;
  }

  /** The next job or 'stop' (null at EOF), once it arrives. */
  wait(): Promise<Queued | { t: 'stop' } | null> {
    return new Promise((resolve) => (this.#waiter = resolve));
  }
}

/**
 * The shared objects (Value, Queue, Lock...) that job items brought, counted
 * by the jobs read but not yet finished that hold them: each is disposed
 * when the last such job ends (after its answer went, which took its own
 * references for whatever the result carries). Without this, every one stayed
 * attached, its segment in /dev/shm, until the worker's GC (which a small
 * worker may never run) or the tree's end: one segment a task, two for a
 * Value with its lock. Jobs are read ahead, and receiving an object this
 * process already has gives the same JS object, so a count, not a
 * per-job dispose. Objects the initializer received are kept for the
 * worker's life; a task that keeps an argument for later tasks must get it
 * from initargs instead (documented in docs/pool.md).
 */
class ReceivedShared {
  readonly #uses = new Map<object, number>();
  readonly #pinned = new Set<object>();

  pin(value: unknown): void {
    forEachShared(value, (o) => this.#pinned.add(o));
  }

  hold(items: unknown): void {
    forEachShared(items, (o) => this.#uses.set(o, (this.#uses.get(o) ?? 0) + 1));
  }

  release(items: unknown): void {
    forEachShared(items, (o) => {
      const n = (this.#uses.get(o) ?? 1) - 1;
      if (n > 0) {
        this.#uses.set(o, n);
        return;
      }
      this.#uses.delete(o);
      if (!this.#pinned.has(o)) disposeShared(o);
    });
  }
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

/**
 * Runs the jobs that arrive on conn, in order, until 'stop' or EOF. Answers
 * go back with sendSync, in order with reportProgress()'s messages (it blocks
 * only while the pipe to the parent is full, and the parent never stops
 * reading); an answer that cannot be encoded throws here, where it is caught.
 */
async function serveJobs(conn: Connection, initargs: unknown[] = []): Promise<void> {
  const fns = new Map<number, { fn: (...args: unknown[]) => unknown; source: boolean }>();
  const loadFailures = new Map<number, { error: unknown }>();
  let lastRss = 0;
  let running: Running | null = null;
  const received = new ReceivedShared();
  received.pin(initargs);
  const inbox = new Inbox(conn, received, (id, kind) => {
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
  try {
    for (;;) {
      let msg = inbox.take();
      if (msg === undefined) msg = await inbox.wait();
      if (msg === null || msg.t === 'stop') break;
      const tag = jobTag(msg.id);
      if (jobWord.length > 0) Atomics.store(jobWord, 0, tag);
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
            entry = { fn: await loadTask(msg.def), source: msg.def.kind === 'source' };
          } catch (e) {
            loadFailures.set(msg.fn, { error: e });
            throw e;
          }
          fns.set(msg.fn, entry);
        }
      } catch (e) {
        failed = { index: 0, error: wire(e) };
      }
      if (entry !== undefined && failed === undefined) {
        const { fn, source } = entry;
        for (let i = 0; i < msg.items.length; i++) {
          if (job.cancelled !== null) {
            // The rest of the chunk is not run; the parent discards this job's answer.
            failed = { index: i, error: wire(job.cancelled) };
            break;
          }
          job.index = i;
          try {
            let r = msg.star ? fn(...(msg.items[i] as unknown[])) : fn(msg.items[i]);
            if (r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function') r = await r;
            values.push(r);
          } catch (e) {
            failed = { index: i, error: wire(source ? explainReferenceError(e, 'A pool task function') : e) };
            break;
          }
        }
      }
      running = null;
      if (jobWord.length > 0 && Atomics.compareExchange(jobWord, 0, tag, 0) !== tag) await awaitKill();
      const now = performance.now();
      const ms = now - t0;
      let rss: number | undefined;
      if (now - lastRss >= kRssEveryMs) {
        rss = process.memoryUsage.rss();
        lastRss = now;
      }
      if (failed !== undefined) {
        conn.sendSync({ t: 'done', id: msg.id, ok: false, index: failed.index, error: failed.error, ms, rss, ...(job.cancelled ? { cancelled: true } : {}) });
      } else {
        try {
          conn.sendSync({ t: 'done', id: msg.id, ok: true, values, ms, rss });
        } catch (e) {
          const err = new SerializationError(`A task's result could not be sent back to the parent: ${(e as Error).message}`, { cause: e });
          conn.sendSync({ t: 'done', id: msg.id, ok: false, index: 0, error: wire(err), ms, rss });
        }
      }
      received.release(msg.items);
    }
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
export async function rehearsePoolWorker(): Promise<void> {
  const [parent, worker] = Pipe();
  try {
    await parent.send({ t: 'job', id: 1, fn: 1, star: false, items: [1, 'a', { x: 1.5 }], def: { kind: 'source', source: '(x) => x' } } satisfies JobMsg);
    await parent.send({ t: 'stop' });
    await serveJobs(worker);
    await parent.recv();
  } finally {
    parent.close();
    worker.close();
  }
}

