// Process start cost and the memory a child costs, for bench/run.mjs (or run
// alone: `node bench/process.bench.mjs [--quick]` prints the rows as JSON).
//
// 1. start+join of a no-op child, median ms: multiproc spawn / forkserver /
//    fork (fork measured in a `node --single-threaded` subprocess, the only
//    place it is offered) vs child_process.fork, new Worker, and Python's
//    multiprocessing spawn / forkserver / fork (bench/py/process_start.py).
// 2. unique memory (USS = Private_Clean + Private_Dirty from
//    /proc/PID/smaps_rollup) of an idle child: 10 forkserver children vs 10
//    spawned ones.
import { execFileSync, fork as cpFork, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as mp from 'multiproc';

export const title = 'Process start and memory';

const here = fileURLToPath(import.meta.url);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Median ms of `once`; with `gapMs`, the process idles that long before each timed start (an on-demand start, not a tight loop). */
async function timeIt(n, once, gapMs = 0) {
  await once(); // warm-up: first zygote, first tracker, disk cache
  // Steady state, for every method alike: a new zygote finishes settling in
  // the background (its code move, ~0.1-0.2 s here; docs/process.md).
  await new Promise((r) => setTimeout(r, 500));
  const times = [];
  for (let i = 0; i < n; i++) {
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    const t0 = performance.now();
    await once();
    times.push(performance.now() - t0);
  }
  return median(times);
}

const noop = () => {};

async function multiprocStart(method, n, gapMs = 0) {
  return timeIt(n, async () => {
    const p = new mp.Process({ target: noop, startMethod: method });
    p.start();
    await p.join();
    if (p.exitCode !== 0) throw new Error(`${method} child exited ${p.exitCode}`);
  }, gapMs);
}

function forkInSingleThreadedNode(n) {
  const out = execFileSync(process.execPath, ['--single-threaded', here, '--measure-fork', String(n)], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()).fork;
}

async function childProcessFork(n, script, gapMs = 0) {
  return timeIt(n, () => new Promise((resolve, reject) => {
    const c = cpFork(script, [], { stdio: 'ignore' });
    c.on('error', reject);
    c.on('exit', resolve);
  }), gapMs);
}

async function workerStart(n) {
  return timeIt(n, () => new Promise((resolve, reject) => {
    const w = new Worker('', { eval: true });
    w.on('error', reject);
    w.on('exit', resolve);
  }));
}

function python(ctx, n) {
  if (!ctx.python) return null;
  const r = spawnSync(ctx.python, [join(here, '..', 'py', 'process_start.py'), String(n)], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) {
    ctx.log(`python failed: ${r.stderr}`);
    return null;
  }
  return JSON.parse(r.stdout.trim());
}

function uss(pid) {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  let kb = 0;
  for (const m of text.matchAll(/^Private_(Clean|Dirty):\s+(\d+) kB/gm)) kb += Number(m[2]);
  return kb / 1024;
}

async function idleUss(method, count) {
  const ready = mp.RawArray('i', count);
  const procs = [];
  for (let i = 0; i < count; i++) {
    const p = new mp.Process({
      target: (flags, slot) => { flags[slot] = 1; return new Promise(() => setInterval(() => {}, 1 << 30)); },
      args: [ready, i],
      startMethod: method,
      daemon: true,
    });
    p.start();
    procs.push(p);
  }
  while ([...ready].some((x) => x === 0)) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 200)); // let start-up garbage settle
  const mb = procs.map((p) => uss(p.pid));
  for (const p of procs) p.kill();
  for (const p of procs) await p.join();
  ready.close();
  return mb.reduce((a, b) => a + b, 0) / mb.length;
}

export async function run(ctx) {
  const n = ctx.quick ? 5 : 30;
  const dir = mkdtempSync(join(tmpdir(), 'mp-bench-'));
  const script = join(dir, 'noop.cjs');
  writeFileSync(script, '');
  const group = 'start+join of a no-op child';
  const rows = [];
  const row = (name, value, extra = {}) => {
    if (value !== null && value !== undefined) rows.push({ group, name, value: Number(value.toFixed(2)), unit: 'ms', better: 'lower', ...extra });
  };
  try {
    ctx.log('child_process.fork');
    row('child_process.fork', await childProcessFork(n, script), { baseline: true });
    ctx.log('new Worker');
    row('new Worker (thread, for scale)', await workerStart(n));
    ctx.log('multiproc spawn');
    row('multiproc spawn', await multiprocStart('spawn', n));
    ctx.log('multiproc forkserver');
    row('multiproc forkserver', await multiprocStart('forkserver', n), {
      target: { ratio: 0.2, vs: 'child_process.fork' },
    });
    // On demand rather than back to back: the zygote's spares are ready again
    // (a tight loop measures how fast children can be made and reaped, which
    // on this VM is bound by the CPU every fork and first page touch costs).
    const gap = 100;
    const spaced = `start+join of a no-op child, one start every ~${gap} ms`;
    ctx.log('spaced starts');
    const cpSpaced = await childProcessFork(n, script, gap);
    rows.push({ group: spaced, name: 'child_process.fork', value: Number(cpSpaced.toFixed(2)), unit: 'ms', better: 'lower', baseline: true });
    const fsSpaced = await multiprocStart('forkserver', n, gap);
    rows.push({ group: spaced, name: 'multiproc forkserver (a spare ready)', value: Number(fsSpaced.toFixed(2)), unit: 'ms', better: 'lower', target: { ratio: 0.2, vs: 'child_process.fork' } });
    ctx.log('multiproc fork (node --single-threaded)');
    row('multiproc fork (node --single-threaded)', forkInSingleThreadedNode(n), { target: { ratio: 2, vs: 'Python multiprocessing fork' } });
    ctx.log('python');
    const py = python(ctx, ctx.quick ? 5 : 20);
    if (!py) {
      for (const m of ['spawn', 'forkserver', 'fork']) {
        rows.push({ group, name: `Python multiprocessing ${m}`, value: null, unit: 'ms', better: 'lower', note: ctx.python ? 'python3 failed' : 'python3 not found' });
      }
    } else {
      row('Python multiprocessing spawn', py.spawn);
      row('Python multiprocessing forkserver', py.forkserver);
      row('Python multiprocessing fork', py.fork);
      const fs = rows.find((r) => r.name === 'multiproc forkserver');
      if (fs && py.forkserver) fs.note = `target 2: <= Python forkserver (${py.forkserver.toFixed(1)} ms)`;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (process.platform === 'linux') {
    const count = ctx.quick ? 4 : 10;
    ctx.log('USS of idle children');
    const spawned = await idleUss('spawn', count);
    const forked = await idleUss('forkserver', count);
    const g = `unique memory (USS) of an idle child, mean of ${count}`;
    rows.push({ group: g, name: 'multiproc spawn', value: Number(spawned.toFixed(2)), unit: 'MB', better: 'lower', baseline: true });
    rows.push({ group: g, name: 'multiproc forkserver', value: Number(forked.toFixed(2)), unit: 'MB', better: 'lower', target: { ratio: 1 / 3, vs: 'multiproc spawn' } });
  }
  return rows;
}

if (process.argv[1] === here) {
  if (process.argv[2] === '--measure-fork') {
    const ms = await multiprocStart('fork', Number(process.argv[3] ?? 20));
    console.log(JSON.stringify({ fork: ms }));
  } else {
    const which = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim() || null;
    const rows = await run({ quick: process.argv.includes('--quick'), python: which('python3'), log: (m) => process.stderr.write(`${m}\n`) });
    console.log(JSON.stringify(rows, null, 2));
  }
}
