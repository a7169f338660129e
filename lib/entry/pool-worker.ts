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
import { SerializationError } from '../errors';
import { explainReferenceError, kProgressSink, loadTask, type TaskTarget } from '../task';

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

interface WireError {
  name: string;
  message: string;
  stack?: string;
  props?: Record<string, unknown>;
}

function wire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: `A non-Error value was thrown: ${String(err)}` };
  const props: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err)) {
    if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) props[k] = v;
  }
  return { name: err.name, message: err.message, stack: err.stack, props };
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
  await serveJobs(conn);
  conn.close();
  process.exit(0);
}

/** Runs the jobs that arrive on conn, in order, until 'stop' or EOF. */
async function serveJobs(conn: Connection): Promise<void> {
  const fns = new Map<number, { fn: (...args: unknown[]) => unknown; source: boolean }>();
  let lastRss = 0;
  // The item running now, for reportProgress() (jobs and their items run one at a time).
  let progressJob = 0;
  let progressIndex = 0;
  const sinks = globalThis as unknown as Record<symbol, ((v: unknown) => boolean) | undefined>;
  const sink = (value: unknown): boolean => {
    if (progressJob === 0) return false;
    // sendSync: a value that cannot be sent throws here, in the task.
    conn.sendSync({ t: 'progress', id: progressJob, index: progressIndex, value });
    return true;
  };
  sinks[kProgressSink] = sink;
  try {
    for (;;) {
      let msg: JobMsg | { t: 'stop' };
      try {
        msg = (await conn.recv()) as JobMsg | { t: 'stop' };
      } catch {
        break; // the parent is gone or closed the pipe
      }
      if (msg.t === 'stop') break;
      const t0 = performance.now();
      let entry = fns.get(msg.fn);
      let failed: { index: number; error: WireError } | undefined;
      const values: unknown[] = [];
      try {
        if (entry === undefined) {
          if (msg.def === undefined) throw new Error(`Internal error: task #${msg.fn} was never sent to this worker`);
          entry = { fn: await loadTask(msg.def), source: msg.def.kind === 'source' };
          fns.set(msg.fn, entry);
        }
      } catch (e) {
        failed = { index: 0, error: wire(e) };
      }
      if (entry !== undefined && failed === undefined) {
        const { fn, source } = entry;
        for (let i = 0; i < msg.items.length; i++) {
          if (msg.progress) {
            progressJob = msg.id;
            progressIndex = i;
          }
          try {
            let r = msg.star ? fn(...(msg.items[i] as unknown[])) : fn(msg.items[i]);
            if (r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function') r = await r;
            values.push(r);
          } catch (e) {
            failed = { index: i, error: wire(source ? explainReferenceError(e, 'A pool task function') : e) };
            break;
          } finally {
            progressJob = 0;
          }
        }
      }
      const now = performance.now();
      const ms = now - t0;
      let rss: number | undefined;
      if (now - lastRss >= kRssEveryMs) {
        rss = process.memoryUsage.rss();
        lastRss = now;
      }
      if (failed !== undefined) {
        conn.send({ t: 'done', id: msg.id, ok: false, index: failed.index, error: failed.error, ms, rss });
        continue;
      }
      try {
        conn.send({ t: 'done', id: msg.id, ok: true, values, ms, rss });
      } catch (e) {
        const err = new SerializationError(`A task's result could not be sent back to the parent: ${(e as Error).message}`, { cause: e });
        conn.send({ t: 'done', id: msg.id, ok: false, index: 0, error: wire(err), ms, rss });
      }
    }
  } finally {
    if (sinks[kProgressSink] === sink) sinks[kProgressSink] = undefined;
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

