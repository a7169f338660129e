// Synchronization benchmarks (issue 3): uncontended acquire+release and
// cross-process wake-up latency, each beside its floor and Python's peer.
// Run alone with `node bench/sync.bench.mjs [--quick]` (prints JSON), or
// through bench/run.mjs, which calls run(ctx).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as mp from 'multiproc';

export const title = 'Synchronization';

const here = fileURLToPath(new URL('.', import.meta.url));
const UNCONTENDED = 'uncontended acquire+release (one process)';
const PINGPONG = 'cross-process ping-pong wake-up (two parties alternating)';
const PY_LOCK = 'Python multiprocessing.Lock acquire()+release()';

/** Best of `reps` timings of `n` calls of body(), in ns per call, after ~300 ms of warm-up. */
function nsPerOp(n, reps, body) {
  const warm = performance.now() + 300;
  while (performance.now() < warm) body(Math.ceil(n / 10));
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    body(n);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / n);
  }
  return best;
}

function uncontended(quick) {
  const n = quick ? 1_000_000 : 5_000_000;
  const reps = quick ? 3 : 7;
  const rows = [];
  const sab = new Int32Array(new SharedArrayBuffer(64));
  const floor = nsPerOp(n, reps, (k) => {
    for (let i = 0; i < k; i++) {
      if (Atomics.compareExchange(sab, 0, 0, 1) !== 0) throw new Error('unexpected contention');
      Atomics.store(sab, 0, 0);
    }
  });
  rows.push({ group: UNCONTENDED, name: 'JS Atomics CAS + store on a SharedArrayBuffer (floor)', value: floor, unit: 'ns/op', better: 'lower', baseline: true });
  const lock = new mp.Lock();
  const tryNs = nsPerOp(n, reps, (k) => {
    for (let i = 0; i < k; i++) {
      if (!lock.tryAcquire()) throw new Error('unexpected contention');
      lock.release();
    }
  });
  const target = { ratio: 2, vs: 'JS Atomics CAS + store on a SharedArrayBuffer (floor)' };
  rows.push({ group: UNCONTENDED, name: 'multiproc Lock tryAcquire()+release()', value: tryNs, unit: 'ns/op', better: 'lower', target });
  const syncNs = nsPerOp(n, reps, (k) => {
    for (let i = 0; i < k; i++) {
      lock.acquireSync();
      lock.release();
    }
  });
  // The second target, ">= 5x faster than Python's Lock", on this row (one target per row).
  rows.push({ group: UNCONTENDED, name: 'multiproc Lock acquireSync()+release()', value: syncNs, unit: 'ns/op', better: 'lower', target: { ratio: 0.2, vs: PY_LOCK } });
  const rlock = new mp.RLock();
  const rNs = nsPerOp(n, reps, (k) => {
    for (let i = 0; i < k; i++) {
      rlock.tryAcquire();
      rlock.release();
    }
  });
  rows.push({ group: UNCONTENDED, name: 'multiproc RLock tryAcquire()+release()', value: rNs, unit: 'ns/op', better: 'lower' });
  const sem = new mp.Semaphore(1);
  const sNs = nsPerOp(n, reps, (k) => {
    for (let i = 0; i < k; i++) {
      sem.tryAcquire();
      sem.release();
    }
  });
  rows.push({ group: UNCONTENDED, name: 'multiproc Semaphore tryAcquire()+release()', value: sNs, unit: 'ns/op', better: 'lower' });
  lock.close(); rlock.close(); sem.close();
  return rows;
}

async function uncontendedAsync(quick) {
  const n = quick ? 200_000 : 1_000_000;
  const lock = new mp.Lock();
  let best = Infinity;
  for (let r = 0; r < (quick ? 2 : 4); r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      await lock.acquire();
      lock.release();
    }
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / n);
  }
  lock.close();
  return { group: UNCONTENDED, name: 'multiproc Lock await acquire()+release()', value: best, unit: 'ns/op', better: 'lower' };
}

/** Parent side of the Event ping-pong with a child process; µs per round trip. */
async function eventPingPong(rounds, async) {
  const warm = 200;
  const a = new mp.Event();
  const b = new mp.Event();
  const child = spawn(process.execPath, [join(here, 'sync-pingpong.child.mjs'),
    JSON.stringify({ a: mp.toHandle(a), b: mp.toHandle(b), rounds: rounds + warm, async })], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  let t0 = 0n;
  for (let i = 0; i < rounds + warm; i++) {
    if (i === warm) t0 = process.hrtime.bigint();
    a.set();
    if (async) await b.wait(); else b.waitSync();
    b.clear();
  }
  const us = Number(process.hrtime.bigint() - t0) / rounds / 1000;
  await exited;
  a.close(); b.close();
  return us;
}

/** Two processes each doing n acquireSync()+release() on one Lock; ns per acquire+release overall. */
async function contended(n) {
  const lock = new mp.Lock();
  const counter = mp.RawValue('i', 0);
  const ready = mp.RawValue('i', 0);
  const go = new mp.Event();
  const kids = [0, 1].map(() => {
    const child = spawn(process.execPath, [join(here, 'sync-contend.child.mjs'), JSON.stringify({
      lock: mp.toHandle(lock), counter: mp.toHandle(counter), go: mp.toHandle(go), ready: mp.toHandle(ready), n,
    })], { stdio: ['ignore', 'inherit', 'inherit'] });
    return new Promise((resolve) => child.on('exit', resolve));
  });
  while (Atomics.load(ready.toTypedArray(), 0) < 2) await new Promise((r) => setTimeout(r, 2));
  const t0 = process.hrtime.bigint();
  go.set();
  await Promise.all(kids);
  const ns = Number(process.hrtime.bigint() - t0) / (2 * n);
  if (counter.value !== 2 * n) throw new Error(`contended Lock lost updates: ${counter.value} of ${2 * n}`);
  lock.close(); counter.close(); ready.close(); go.close();
  return ns;
}

/** Main thread and a worker alternating with Atomics.wait/notify on a SharedArrayBuffer. */
async function workerPingPong(rounds) {
  const warm = 200;
  const sab = new Int32Array(new SharedArrayBuffer(128));
  const worker = new Worker(`
    const { workerData } = require('node:worker_threads');
    const w = workerData.w, n = workerData.n;
    for (let i = 0; i < n; i++) {
      while (Atomics.load(w, 0) === 0) Atomics.wait(w, 0, 0);
      Atomics.store(w, 0, 0);
      Atomics.store(w, 16, 1);
      Atomics.notify(w, 16, 1);
    }`, { eval: true, workerData: { w: sab, n: rounds + warm } });
  const exited = new Promise((resolve) => worker.on('exit', resolve));
  let t0 = 0n;
  for (let i = 0; i < rounds + warm; i++) {
    if (i === warm) t0 = process.hrtime.bigint();
    Atomics.store(sab, 0, 1);
    Atomics.notify(sab, 0, 1);
    while (Atomics.load(sab, 16) === 0) Atomics.wait(sab, 16, 0);
    Atomics.store(sab, 16, 0);
  }
  const us = Number(process.hrtime.bigint() - t0) / rounds / 1000;
  await exited;
  return us;
}

/** The C futex ping-pong, compiled now into a temp dir; null without a C compiler. */
function cPingPong(rounds, log) {
  if (process.platform !== 'linux') return null;
  const dir = mkdtempSync(join(tmpdir(), 'mp-bench-'));
  try {
    const exe = join(dir, 'pingpong');
    const cc = spawnSync('cc', ['-O2', '-o', exe, join(here, 'sync-pingpong.c')], { encoding: 'utf8' });
    if (cc.status !== 0) {
      log(`sync: no C futex floor (cc failed: ${(cc.stderr || cc.error?.message || '').trim().split('\n')[0]})`);
      return null;
    }
    return Number(execFileSync(exe, [String(rounds)], { encoding: 'utf8' }).trim());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function python(ctx) {
  if (!ctx.python) return null;
  const r = spawnSync(ctx.python, [join(here, 'py', 'sync_lock.py'), ...(ctx.quick ? ['--quick'] : [])], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) {
    ctx.log(`sync: Python peer failed: ${(r.stderr || '').trim().split('\n').pop()}`);
    return null;
  }
  return JSON.parse(r.stdout);
}

export async function run(ctx) {
  const progress = (f, label) => ctx.progress?.(f, label);
  progress(0, 'uncontended');
  const rows = uncontended(ctx.quick);
  rows.push(await uncontendedAsync(ctx.quick));
  progress(0.3, 'Python peer');
  const py = python(ctx);
  const pyNote = py ? {} : { note: ctx.python ? 'Python peer failed' : 'python3 not found' };
  rows.push({ group: UNCONTENDED, name: PY_LOCK, value: py ? py.uncontended_ns : null, unit: 'ns/op', better: 'lower', ...pyNote });

  const rounds = ctx.quick ? 2_000 : 10_000;
  progress(0.5, 'contended');
  const CONTENDED = 'contended Lock, 2 processes (acquire+release, overall)';
  rows.push({ group: CONTENDED, name: 'multiproc Lock acquireSync()+release()', value: await contended(ctx.quick ? 200_000 : 1_000_000), unit: 'ns/op', better: 'lower' });
  rows.push({ group: CONTENDED, name: 'Python multiprocessing.Lock acquire()+release()', value: py ? py.contended_ns : null, unit: 'ns/op', better: 'lower', baseline: true, ...pyNote });
  progress(0.6, 'ping-pong');
  const c = cPingPong(rounds, ctx.log);
  const workers = await workerPingPong(rounds);
  const floorName = c !== null ? 'C futex, two processes (floor)' : 'worker_threads Atomics.wait/notify (floor)';
  if (c !== null) rows.push({ group: PINGPONG, name: floorName, value: c, unit: 'µs/round trip', better: 'lower', baseline: true });
  rows.push({ group: PINGPONG, name: c !== null ? 'worker_threads Atomics.wait/notify' : floorName, value: workers, unit: 'µs/round trip', better: 'lower', ...(c === null ? { baseline: true } : {}) });
  const target = { ratio: 2, vs: floorName };
  rows.push({ group: PINGPONG, name: 'multiproc Event waitSync()/set(), two processes', value: await eventPingPong(rounds, false), unit: 'µs/round trip', better: 'lower', target });
  rows.push({ group: PINGPONG, name: 'multiproc Event await wait()/set(), two processes', value: await eventPingPong(rounds, true), unit: 'µs/round trip', better: 'lower' });
  rows.push({ group: PINGPONG, name: 'Python multiprocessing.Event, two processes', value: py ? py.pingpong_us : null, unit: 'µs/round trip', better: 'lower', ...pyNote });
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes('--quick');
  const hasPython = spawnSync('python3', ['--version']).status === 0;
  const rows = await run({ quick, python: hasPython ? 'python3' : null, log: (m) => console.error(m) });
  console.log(JSON.stringify(rows, null, 2));
}
