// Queues and pipes vs Node's IPC options and Python's multiprocessing.
// One-way throughput (small objects, 1 KB Buffers), Pipe round trip, 64 MB items.
// Standalone: node bench/queues.bench.mjs [--quick]  (prints the rows as JSON); each one-way
// measurement runs its receiver in a fresh process: node bench/queues.bench.mjs --oneway <multiproc|ipc|worker> ...
import { fork, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as mp from 'multiproc';
import { median, spreadOf } from './lib/measure.mjs';

export const title = 'Queues and pipes';

const peer = fileURLToPath(new URL('./queues-peer.mjs', import.meta.url));
const pyScript = fileURLToPath(new URL('./py/queues.py', import.meta.url));

function exited(child) {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`peer exited with ${code ?? signal}`))));
  });
}

/** The receiving side (rx, obj) and what the child gets (tx) for a queue or a pipe run. */
function transportPair(transport) {
  if (transport === 'queue') {
    const obj = new mp.Queue();
    const done2 = new mp.Queue();
    return { obj, done2, rx: () => obj.get(), tx: [obj, done2] };
  }
  const [a, b] = mp.Pipe();
  return { obj: a, done2: undefined, rx: () => a.recv(), tx: b };
}

/**
 * Every one-way rate (ours, the Node peers') is steady state: the clock
 * starts once the first half of the items has arrived, so that JIT warm-up,
 * the heap's growth, a fresh ring's first page touches and process start-up
 * are out of it for every Node row alike; items/s from there to the last
 * item. (Python's script starts its clock after the first fifth: it has no
 * such phase, see n below.)
 */
const warmItems = (n) => Math.floor(n / 2);

/**
 * items/s seen by the receiver (see warmItems).
 * mode 'async': `await put` / `await get` (send/recv for a pipe);
 * 'batched': the producer uses putMany (256 a call) and the receiver getMany;
 * 'sync': putSync / getSync, the blocking calls Python's put() and get() are
 * (this process's event loop stands still while it reads).
 */
async function oneWayMultiproc(transport, kind, n, mode = 'async') {
  const { rx, tx, obj, done2 } = transportPair(transport);
  const batched = mode === 'batched';
  const sync = mode === 'sync';
  const role = batched ? 'produce-many' : sync ? 'produce-sync' : 'produce';
  const child = spawn(process.execPath, [peer, transport, role, kind, String(n), JSON.stringify(Array.isArray(tx) ? tx.map((x) => mp.toHandle(x)) : mp.toHandle(tx))], { stdio: 'inherit' });
  const done = exited(child);
  if (transport === 'pipe') tx.close();
  const warm = warmItems(n);
  let got = 0;
  if (batched) while (got < warm) got += (await obj.getMany()).length;
  else if (sync) for (; got < warm; got++) obj.getSync();
  else for (; got < warm; got++) await rx();
  const from = got;
  const t0 = performance.now();
  if (batched) while (got < n) got += (await obj.getMany()).length;
  else if (sync) for (; got < n; got++) obj.getSync();
  else for (; got < n; got++) await rx();
  const dt = performance.now() - t0;
  if (transport === 'queue') await done2.put('done');
  else await obj.send('done');
  await done;
  obj.close();
  return ((n - from) / dt) * 1000;
}

async function oneWayIpc(kind, n) {
  const child = fork(peer, ['ipc', 'produce', kind, String(n)], { serialization: 'advanced', stdio: 'inherit' });
  let got = 0;
  let t0 = 0;
  const rate = await new Promise((resolve, reject) => {
    child.on('message', () => {
      if (++got === warmItems(n)) t0 = performance.now();
      if (got === n) resolve(((n - warmItems(n)) / (performance.now() - t0)) * 1000);
    });
    child.on('exit', (code) => reject(new Error(`IPC peer exited (${code}) after ${got} of ${n} messages`)));
  });
  child.kill();
  return rate;
}

async function oneWayWorker(kind, n) {
  const w = new Worker(peer, { workerData: ['worker', 'produce', kind, String(n)] });
  let got = 0;
  let t0 = 0;
  const rate = await new Promise((resolve, reject) => {
    w.on('message', () => {
      if (++got === warmItems(n)) t0 = performance.now();
      if (got === n) resolve(((n - warmItems(n)) / (performance.now() - t0)) * 1000);
    });
    w.on('error', reject);
  });
  await w.terminate();
  return rate;
}

/**
 * Round trips of a small message, `n` warm-up trips then `n` timed ones on
 * the same connection (every peer alike): { mean, median, coldMean } in µs.
 *
 * The mean is the total time over the timed trips; the median is of each
 * trip timed on its own, which shows the common trip apart from the rare
 * stalls that set the mean. coldMean is the mean of the warm-up trips: on this
 * 2-vCPU VM most of a fresh pair's millisecond stalls fall in its first few
 * thousand trips, while V8 compiles the hot code on background threads that
 * need one of the two CPUs both sides are busy on (bench/rtt-distribution.mjs
 * shows where they fall).
 */
function tripStats(trips, n) {
  const mean = (from, to) => {
    let s = 0;
    for (let i = from; i < to; i++) s += trips[i];
    return (s / (to - from)) * 1000;
  };
  const sorted = Float64Array.from(trips.subarray(n)).sort();
  return { mean: mean(n, trips.length), median: sorted[sorted.length >> 1] * 1000, coldMean: mean(0, n) };
}

/** sync: both sides use sendSync/recvSync (they block their thread). */
async function rttPipe(n, sync = false) {
  const [a, b] = mp.Pipe();
  const child = spawn(process.execPath, [peer, 'pipe', sync ? 'echosync' : 'echo', 'obj', String(2 * n + 1), JSON.stringify(mp.toHandle(b))], { stdio: 'inherit' });
  const done = exited(child);
  b.close();
  await a.send(0);
  await a.recv();
  const trips = new Float64Array(2 * n);
  let t = performance.now();
  if (sync) {
    for (let i = 0; i < 2 * n; i++) {
      a.sendSync(i);
      a.recvSync();
      const now = performance.now();
      trips[i] = now - t;
      t = now;
    }
  } else {
    for (let i = 0; i < 2 * n; i++) {
      await a.send(i);
      await a.recv();
      const now = performance.now();
      trips[i] = now - t;
      t = now;
    }
  }
  await a.send('done');
  await done;
  a.close();
  return tripStats(trips, n);
}

/** The same trips over an EventEmitter-style peer (IPC, worker_threads): message m is answered with m. */
async function rttEmitter(target, send, n) {
  const trips = new Float64Array(2 * n);
  let t = 0;
  return new Promise((resolve, reject) => {
    target.on('error', reject);
    target.on('exit', () => reject(new Error('echo peer exited early')));
    target.on('message', (m) => {
      const now = performance.now();
      if (m > 0) trips[m - 1] = now - t;
      t = now;
      if (m === 2 * n) resolve(tripStats(trips, n));
      else send(m + 1);
    });
    send(0);
  });
}

async function rttIpc(n) {
  const child = fork(peer, ['ipc', 'echo', 'obj', String(2 * n + 1)], { serialization: 'advanced', stdio: 'inherit' });
  const stats = await rttEmitter(child, (m) => child.send(m), n);
  child.kill();
  return stats;
}

async function rttWorker(n) {
  const w = new Worker(peer, { workerData: ['worker', 'echo', 'obj', String(2 * n + 1)] });
  const stats = await rttEmitter(w, (m) => w.postMessage(m), n);
  await w.terminate();
  return stats;
}

/** GB/s for `count` items of `size` bytes from a child, as the receiver sees them. */
async function bigItems(transport, size, count) {
  const { rx, tx, obj, done2 } = transportPair(transport);
  const child = spawn(process.execPath, [peer, transport, 'big', String(size), String(count + 1), JSON.stringify(Array.isArray(tx) ? tx.map((x) => mp.toHandle(x)) : mp.toHandle(tx))], { stdio: 'inherit' });
  const done = exited(child);
  if (transport === 'pipe') tx.close();
  let b = await rx();
  if (b.length !== size) throw new Error('bad size');
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    b = await rx();
    if (b.length !== size || b[size - 1] !== 1) throw new Error('bad item');
  }
  const s = (performance.now() - t0) / 1000;
  if (transport === 'queue') await done2.put('done');
  else await obj.send('done');
  await done;
  obj.close();
  done2?.close();
  return (size * count) / s / 1e9;
}

function copyCeiling(size, count) {
  const src = Buffer.alloc(size, 1);
  let best = 0;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const dst = Buffer.allocUnsafeSlow(size);
      src.copy(dst);
    }
    best = Math.max(best, (size * count) / ((performance.now() - t0) / 1000) / 1e9);
  }
  return best;
}

async function python(ctx, n, rt, only) {
  if (!ctx.python) return null;
  const args = only ? [pyScript, String(n), String(rt), '1', only] : [pyScript, String(n), String(rt), ctx.quick ? '1' : '3'];
  const child = spawn(ctx.python, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await exited(child);
  return JSON.parse(out);
}

/**
 * Runs one one-way measurement with the receiver in a fresh Node process of
 * its own (this file, --oneway), for every Node row alike: the topic's host
 * process has, by the later rows, a grown heap and code compiled for other
 * transports, which slowed whichever row came later (multiproc's Queue ran at
 * 0.89-0.94M items/s in the host, 1.1-1.5M in a fresh process).
 */
async function fresh(which, ...args) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--oneway', which, ...args.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await exited(child);
  return JSON.parse(out);
}

const oneWay = {
  multiproc: (transport, kind, n, mode) => oneWayMultiproc(transport, kind, Number(n), mode),
  ipc: (kind, n) => oneWayIpc(kind, Number(n)),
  worker: (kind, n) => oneWayWorker(kind, Number(n)),
};

export async function run(ctx) {
  const step = async (what, p) => {
    ctx.log?.(`  ${what}`);
    return p();
  };
  /** One-way rates: median of 3 fresh runs (each its own producer process; `runs` if given), 1 with --quick. */
  const rate = async (what, fn, runs = 3) => {
    const xs = [];
    for (let r = 0; r < (ctx.quick ? 1 : runs); r++) xs.push(await step(what, fn));
    return xs.length >= 3 ? { value: median(xs), spread: spreadOf(xs) } : { value: xs[0] };
  };
  // A million items per one-way run: over the first few hundred thousand a
  // process's V8 heap is still growing (its young generation doubles up to
  // its maximum, every new page a fault: ~30 µs each on this VM), which
  // slowed every Node row; measured for multiproc's Queue, three fresh runs
  // each of 300k / 1M / 2M items: 1.11-1.27M, 1.38-1.48M, 1.50-1.59M items/s,
  // and 1.03-1.17M, 1.12-1.37M, 1.34-1.57M in a later run of
  // `node bench/queue-oneway.mjs <items>` (as it then measured: one rate a run).
  // Python has no such phase (75-97k items/s at 100k, 77-80k at 300k, one
  // check): it keeps pyN.
  // Since the thirtieth session: two million, the clock started after the
  // first million (warmItems). A Node process's rate still climbed until
  // ~800k items in: `await put` of the bench's item into a fresh queue, rounds
  // of 200k in one process, ~790, ~510, ~480, ~435, ~435 ns a put (and
  // encode + await alone 527, 349, 343, 304, 290 ns, and make +
  // JSON.stringify + await 657, 574, 604, 553 ns: V8's, every Node row's),
  // so a clock started at 200k measured part of the climb, and its rate moved
  // with how far each process had got (1.66-2.43M items/s for one build).
  // `node bench/queue-warmup.mjs put|encode|json` shows the climb.
  const n = ctx.quick ? 50_000 : 2_000_000;
  const rt = ctx.quick ? 2_000 : 10_000;
  const pyN = ctx.quick ? 20_000 : 100_000;
  const big = 64 << 20;
  const bigCount = ctx.quick ? 3 : 8;
  const rows = [];
  const small = 'one-way small objects {id, name, tags} (items/s)';
  const kb = 'one-way 1 KB Buffers (items/s)';
  const rttG = 'Pipe round trip, small message, mean after warm-up (µs)';
  const bigG = '64 MB Buffer item (GB/s)';
  ctx.log?.('queues: python');
  const py = await python(ctx, pyN, rt);

  ctx.log?.('queues: small objects');
  rows.push({ group: small, name: 'child_process IPC (advanced)', ...(await rate('oneWayIpc obj, n', () => fresh('ipc', 'obj', n))), unit: 'items/s', better: 'higher', baseline: true });
  rows.push({ group: small, name: 'worker_threads postMessage', ...(await rate('oneWayWorker obj, n', () => fresh('worker', 'obj', n))), unit: 'items/s', better: 'higher' });
  // The Queue row's target is a ratio to Python's Queue: the two are
  // measured in alternation (Python, ours, Python, ours...), five runs each,
  // so that a change in this VM's speed over the topic's minutes (the same
  // loop of pure JS took 43 to 74 ms within one session) moves both sides of
  // the ratio alike. Python's other rows come from the one run above.
  const pySmall = [];
  const queueSmall = await rate('oneWayMultiproc queue, obj, n', async () => {
    if (py) pySmall.push((await step('python Queue, obj', () => python(ctx, pyN, rt, 'queue_small'))).queue_small);
    return fresh('multiproc', 'queue', 'obj', n, 'async');
  }, 5);
  const pyQueueSmall = pySmall.length >= 3 ? { value: median(pySmall), spread: spreadOf(pySmall) } : { value: pySmall[0] };
  if (py) rows.push({ group: small, name: 'Python multiprocessing.Queue', ...pyQueueSmall, unit: 'items/s', better: 'higher' });
  if (py) rows.push({ group: small, name: 'Python multiprocessing.Pipe', value: py.pipe_small, unit: 'items/s', better: 'higher' });
  rows.push({
    group: small, name: 'multiproc Queue', ...queueSmall, unit: 'items/s', better: 'higher',
    target: py ? { ratio: 10, vs: 'Python multiprocessing.Queue' } : { min: 2.3e6, text: '>= 2.3M items/s' },
  });
  rows.push({
    group: small, name: 'multiproc Queue putMany/getMany (256 a batch)', ...(await rate('oneWayMultiproc queue, obj, n, batched', () => fresh('multiproc', 'queue', 'obj', n, 'batched'))), unit: 'items/s', better: 'higher',
    target: { min: 2.3e6, text: '>= 2.3M items/s' },
  });
  rows.push({
    group: small, name: 'multiproc Queue putSync/getSync (blocking, as Python\'s put/get)', ...(await rate('oneWayMultiproc queue, obj, n, sync', () => fresh('multiproc', 'queue', 'obj', n, 'sync'))), unit: 'items/s', better: 'higher',
    target: py ? { ratio: 10, vs: 'Python multiprocessing.Queue' } : { min: 2.3e6, text: '>= 2.3M items/s' },
  });
  rows.push({ group: small, name: 'multiproc Pipe', ...(await rate('oneWayMultiproc pipe, obj, n', () => fresh('multiproc', 'pipe', 'obj', n, 'async'))), unit: 'items/s', better: 'higher' });

  ctx.log?.('queues: 1 KB buffers');
  rows.push({ group: kb, name: 'child_process IPC (advanced)', ...(await rate('oneWayIpc buf, n', () => fresh('ipc', 'buf', n))), unit: 'items/s', better: 'higher', baseline: true });
  rows.push({ group: kb, name: 'worker_threads postMessage', ...(await rate('oneWayWorker buf, n', () => fresh('worker', 'buf', n))), unit: 'items/s', better: 'higher' });
  if (py) rows.push({ group: kb, name: 'Python multiprocessing.Queue', value: py.queue_buf, unit: 'items/s', better: 'higher' });
  if (py) rows.push({ group: kb, name: 'Python multiprocessing.Pipe', value: py.pipe_buf, unit: 'items/s', better: 'higher' });
  rows.push({ group: kb, name: 'multiproc Queue', ...(await rate('oneWayMultiproc queue, buf, n', () => fresh('multiproc', 'queue', 'buf', n, 'async'))), unit: 'items/s', better: 'higher', target: { min: 1e6, text: '>= 1M items/s' } });
  rows.push({
    group: kb, name: 'multiproc Queue putMany/getMany (256 a batch)', ...(await rate('oneWayMultiproc queue, buf, n, batched', () => fresh('multiproc', 'queue', 'buf', n, 'batched'))), unit: 'items/s', better: 'higher',
    target: { min: 1e6, text: '>= 1M items/s' },
  });
  rows.push({
    group: kb, name: 'multiproc Queue putSync/getSync (blocking, as Python\'s put/get)', ...(await rate('oneWayMultiproc queue, buf, n, sync', () => fresh('multiproc', 'queue', 'buf', n, 'sync'))), unit: 'items/s', better: 'higher',
    target: { min: 1e6, text: '>= 1M items/s' },
  });
  rows.push({ group: kb, name: 'multiproc Pipe', ...(await rate('oneWayMultiproc pipe, buf, n', () => fresh('multiproc', 'pipe', 'buf', n, 'async'))), unit: 'items/s', better: 'higher' });

  ctx.log?.('queues: round trips');
  const rttMedG = 'Pipe round trip, small message, median trip (µs)';
  const rttColdG = 'Pipe round trip, small message, mean of the warm-up trips (µs)';
  /** Each stat: the median of 3 runs (1 with --quick), each a fresh peer. */
  const trips = async (what, fn) => {
    const runs = [];
    for (let r = 0; r < (ctx.quick ? 1 : 3); r++) runs.push(await step(what, fn));
    const of = (key) => (runs.length >= 3 ? { value: median(runs.map((x) => x[key])), spread: spreadOf(runs.map((x) => x[key])) } : { value: runs[0][key] });
    return { mean: of('mean'), median: of('median'), coldMean: of('coldMean') };
  };
  const ipcRtt = await trips('rttIpc rt', () => rttIpc(rt));
  const workerRtt = await trips('rttWorker rt', () => rttWorker(rt));
  const pipeRtt = await trips('rttPipe rt', () => rttPipe(rt));
  const syncRtt = await trips('rttPipe sync', () => rttPipe(rt, true));
  const pyRtt = { mean: py?.pipe_rtt_us, median: py?.pipe_rtt_median_us, coldMean: py?.pipe_rtt_cold_us };
  const rttRows = (g, key, target) => {
    rows.push({ group: g, name: 'child_process IPC (advanced)', ...ipcRtt[key], unit: 'µs', better: 'lower', baseline: true });
    rows.push({ group: g, name: 'worker_threads postMessage', ...workerRtt[key], unit: 'µs', better: 'lower' });
    if (py) rows.push({ group: g, name: 'Python multiprocessing.Pipe', value: pyRtt[key], unit: 'µs', better: 'lower' });
    rows.push({ group: g, name: 'multiproc Pipe', ...pipeRtt[key], unit: 'µs', better: 'lower', ...(target ? { target: { ratio: 0.2, vs: 'child_process IPC (advanced)' } } : {}) });
    rows.push({ group: g, name: 'multiproc Pipe (sendSync/recvSync)', ...syncRtt[key], unit: 'µs', better: 'lower' });
  };
  rttRows(rttG, 'mean', true);
  rttRows(rttMedG, 'median', true);
  rttRows(rttColdG, 'coldMean', false);

  ctx.log?.('queues: 64 MB items');
  rows.push({ group: bigG, name: 'Buffer.copy into a new Buffer (ceiling)', value: copyCeiling(big, bigCount), unit: 'GB/s', better: 'higher', baseline: true });
  rows.push({
    group: bigG, name: 'multiproc Queue', value: await step('bigItems queue, big, bigCount', () => bigItems('queue', big, bigCount)), unit: 'GB/s', better: 'higher',
    target: { ratio: 1 / 3, vs: 'Buffer.copy into a new Buffer (ceiling)' },
  });
  rows.push({ group: bigG, name: 'multiproc Pipe', value: await step('bigItems pipe, big, bigCount', () => bigItems('pipe', big, bigCount)), unit: 'GB/s', better: 'higher' });
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--oneway') {
  const [which, ...args] = process.argv.slice(3);
  console.log(JSON.stringify(await oneWay[which](...args)));
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { execFileSync } = await import('node:child_process');
  let python = null;
  try {
    execFileSync('python3', ['-c', 'import multiprocessing'], { stdio: 'ignore' });
    python = 'python3';
  } catch {
    // no python here
  }
  const rows = await run({ quick: process.argv.includes('--quick'), python, log: (m) => process.stderr.write(`${m}\n`) });
  console.log(JSON.stringify(rows, null, 1));
}
