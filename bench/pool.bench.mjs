/**
 * Issue 6's pool benchmark: multiproc's Pool beside the pools users would otherwise pick, on the same tasks.
 *
 * Rows: throughput (tasks/s) of 100,000 `x => x * 2` tasks, and pool start + first result + shutdown (ms),
 * for piscina, tinypool and workerpool (thread pools: in-process, no isolation; 2 threads each, task files in
 * bench/peers/) and Python's multiprocessing.Pool(2) (bench/py/pool.py; map with chunksize=1 and with its
 * automatic chunksize; start-up with fork, forkserver and spawn).
 *
 * multiproc's rows are adapters in `contenders` too (map with chunksize 1, map with automatic chunking), so
 * they are measured exactly as the peers are. A third group measures a CPU-bound map (2 workers vs serial).
 *
 * Method: throughput is timed on a started, warmed pool, submitting every task at once (Promise.all over
 * pool.run, or one map call for adapters that have `map`): 1,000 warm-up tasks, then one untimed run of
 * the measured work (Python's pool.py does the same), then the median of 5 runs (fewer when the runs so
 * far took over 8 s; 1 with --quick, on 20,000 tasks). Start-up is timed from `create()` to `close()` resolved, one untimed warm-up,
 * median of 7 runs (3 with --quick).
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as mp from 'multiproc';
import { Piscina } from 'piscina';
import Tinypool from 'tinypool';
import workerpool from 'workerpool';
import { median, runPython, spreadOf } from './lib/measure.mjs';

export const title = 'Pool';

const WORKERS = 2;
const taskModule = fileURLToPath(new URL('./peers/task-double.mjs', import.meta.url));
/** piscina's copy of the task, as CommonJS (see peers/task-double.cjs: Node aborted in its require() of the .mjs). */
const piscinaTask = fileURLToPath(new URL('./peers/task-double.cjs', import.meta.url));
const workerpoolScript = fileURLToPath(new URL('./peers/task-double.workerpool.cjs', import.meta.url));

/** Group names: the multiproc rows must use the same ones. */
export const groups = {
  throughput: (tasks) => `throughput, ${tasks.toLocaleString('en-US')} trivial tasks (x => x * 2), ${WORKERS} workers`,
  startup: `pool start + first result + shutdown, ${WORKERS} workers`,
  firstMap: (tasks) => `first map of a fresh pool (after one apply), ${tasks.toLocaleString('en-US')} trivial tasks, automatic chunksize, ${WORKERS} workers`,
};

/** Tasks/s of the first map of each of `pools` fresh Pool(2)s (after one apply: the workers are up): median. */
async function firstMapOf(tasks, pools) {
  const double = { module: taskModule, export: 'default' };
  const items = Array.from({ length: tasks }, (_, i) => i);
  const rates = [];
  for (let r = 0; r < pools; r++) {
    const pool = new mp.Pool({ processes: WORKERS });
    try {
      await pool.apply(double, [1]);
      const t = performance.now();
      const out = await pool.map(double, items);
      rates.push(tasks / ((performance.now() - t) / 1000));
      if (out[tasks - 1] !== 2 * (tasks - 1)) throw new Error('multiproc first map returned wrong results');
    } finally {
      await pool.terminate();
    }
  }
  return { value: median(rates), spread: rates.length >= 3 ? spreadOf(rates) : undefined, runs: rates.length };
}

/**
 * A contender is { name, baseline?, targets?, create(): Promise<PoolAdapter> } where
 * PoolAdapter = { run(x): Promise<number>, map?(xs: number[]): Promise<number[]>, close(): Promise<void> }.
 * `run` doubles one number in a worker; `map`, when present, is used for throughput instead of
 * Promise.all(xs.map(run)). `targets` = { throughput?, startup? } row targets (see bench/README.md).
 */
export const contenders = [
  {
    name: 'piscina',
    baseline: true,
    async create() {
      const pool = new Piscina({ filename: piscinaTask, minThreads: WORKERS, maxThreads: WORKERS });
      return { run: (x) => pool.run(x), close: () => pool.destroy() };
    },
  },
  {
    name: 'tinypool',
    async create() {
      const pool = new Tinypool({ filename: taskModule, minThreads: WORKERS, maxThreads: WORKERS });
      return { run: (x) => pool.run(x), close: () => pool.destroy() };
    },
  },
  {
    name: 'workerpool',
    async create() {
      const pool = workerpool.pool(workerpoolScript, { minWorkers: WORKERS, maxWorkers: WORKERS, workerType: 'thread' });
      return { run: (x) => pool.exec('double', [x]), close: () => pool.terminate() };
    },
  },
  {
    name: 'multiproc Pool.map, chunksize 1',
    targets: { throughput: { ratio: 3, vs: 'piscina' }, startup: { max: 10, text: '<= 10 ms (forkserver warm)' } },
    async create() {
      const pool = new mp.Pool({ processes: WORKERS });
      const double = { module: taskModule, export: 'default' };
      return { run: (x) => pool.apply(double, [x]), map: (xs) => pool.map(double, xs, { chunksize: 1 }), close: () => pool.terminate() };
    },
  },
  {
    name: 'multiproc Pool.map, automatic chunksize',
    targets: { throughput: { ratio: 1, vs: 'Python Pool.map, automatic chunksize (fork)' } },
    async create() {
      const pool = new mp.Pool({ processes: WORKERS });
      const double = { module: taskModule, export: 'default' };
      return { run: (x) => pool.apply(double, [x]), map: (xs) => pool.map(double, xs), close: () => pool.terminate() };
    },
  },
];

async function throughputOf(c, tasks, runs, budgetMs) {
  const pool = await c.create();
  try {
    const warm = Array.from({ length: 1000 }, (_, i) => i);
    await Promise.all(warm.map((x) => pool.run(x)));
    const items = Array.from({ length: tasks }, (_, i) => i);
    // One untimed run of the work itself: a fresh pool's first big map is slower (its workers' first
    // touches of their memory, and the first compiles of what only this path runs), and Python's row
    // is timed on a pool that has run the same work before (bench/py/pool.py).
    await (pool.map ? pool.map(items) : Promise.all(items.map((x) => pool.run(x))));
    const rates = [];
    const t0 = performance.now();
    // Slow pools get fewer runs, so that the topic stays near a minute on a busy 2-core machine.
    for (let r = 0; r < runs && (r === 0 || performance.now() - t0 < budgetMs); r++) {
      const t = performance.now();
      const out = pool.map ? await pool.map(items) : await Promise.all(items.map((x) => pool.run(x)));
      const dt = (performance.now() - t) / 1000;
      if (out.length !== tasks || out[tasks - 1] !== 2 * (tasks - 1)) throw new Error(`${c.name} returned wrong results`);
      rates.push(tasks / dt);
    }
    return { value: median(rates), spread: rates.length >= 3 ? spreadOf(rates) : undefined, runs: rates.length };
  } finally {
    await pool.close();
  }
}

/** Median ms from create() to close() resolved; with gapMs, idle that long before each timed run (a pool made on demand). */
async function startupOf(c, runs, gapMs = 0) {
  const once = async () => {
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    const t = performance.now();
    const pool = await c.create();
    const x = await pool.run(21);
    await pool.close();
    if (x !== 42) throw new Error(`${c.name} returned ${x} for 21`);
    return performance.now() - t;
  };
  await once();
  const samples = [];
  for (let r = 0; r < runs; r++) samples.push(await once());
  return { value: median(samples), spread: spreadOf(samples), runs };
}

const fibModule = fileURLToPath(new URL('./peers/task-fib.mjs', import.meta.url));

/**
 * The machine's own ceiling for WORKERS processes: WORKERS plain `node`
 * processes (no pool, no messages) run the same share of items at the same
 * time (started together at an agreed instant after their warm-up), each
 * timing itself; the ceiling is the time the whole list would take with
 * perfect balancing at the speeds they had side by side: items / sum(rates).
 * On this VM the vCPUs are not equally fast when both are busy (measured: of
 * two such processes one took ~103 ms and the other ~178 ms), so the ceiling
 * can be far below WORKERS x; no pool can beat it.
 */
async function splitCeiling(items) {
  const { spawn } = await import('node:child_process');
  const share = Math.ceil(items.length / WORKERS);
  const startAt = Date.now() + 600;
  const code = `import(${JSON.stringify(pathToFileURL(fibModule).href)}).then(({ default: fib }) => {
    fib(25);
    while (Date.now() < ${startAt});
    const t = performance.now();
    for (let i = 0; i < ${share}; i++) fib(${items[0]});
    process.stdout.write(String(performance.now() - t));
  });`;
  const ms = await Promise.all(Array.from({ length: WORKERS }, () => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (c) => (c === 0 ? resolve(Number(out)) : reject(new Error(`ceiling child exited ${c}`))));
  })));
  return items.length / ms.reduce((sum, m) => sum + share / m, 0);
}

/** Speed-up of a CPU-bound map on WORKERS processes over the same calls made serially in this process. */
export async function cpuBound(ctx) {
  const { default: fib } = await import(fibModule);
  const items = Array.from({ length: ctx.quick ? 16 : 48 }, () => 29);
  const group = `CPU-bound map (${items.length} x fib(29)), ${WORKERS} workers vs serial`;
  const serial = [];
  const parallel = [];
  const ceiling = [];
  const rounds = ctx.quick ? 1 : 5;
  const pool = new mp.Pool({ processes: WORKERS });
  try {
    await pool.map({ module: fibModule }, [20, 20]);
    for (let r = 0; r < rounds; r++) {
      let t = performance.now();
      let sum = 0;
      for (const n of items) sum += fib(n);
      serial.push(performance.now() - t);
      t = performance.now();
      const out = await pool.map({ module: fibModule }, items);
      parallel.push(performance.now() - t);
      if (out.reduce((a, b) => a + b, 0) !== sum) throw new Error('Pool returned wrong fib results');
    }
  } finally {
    await pool.terminate();
  }
  for (let r = 0; r < rounds; r++) ceiling.push(await splitCeiling(items));
  return [
    { group, name: 'serial, one process', value: median(serial), unit: 'ms', better: 'lower', baseline: true, spread: spreadOf(serial) },
    { group, name: `ceiling: ${WORKERS} plain node processes side by side, perfectly balanced`, value: median(ceiling), unit: 'ms', better: 'lower', spread: spreadOf(ceiling) },
    { group, name: `multiproc Pool(${WORKERS}).map`, value: median(parallel), unit: 'ms', better: 'lower', spread: spreadOf(parallel), target: { ratio: 1 / 1.8, vs: 'serial, one process', text: '>= 1.8x speed-up' } },
  ];
}

export async function run(ctx) {
  const tasks = ctx.quick ? 20_000 : 100_000;
  const tputRuns = ctx.quick ? 1 : 5;
  const startRuns = ctx.quick ? 3 : 7;
  const G = { throughput: groups.throughput(tasks), startup: groups.startup, firstMap: groups.firstMap(tasks) };
  const rows = [];
  const steps = contenders.length * 2 + 1;
  let step = 0;

  for (const c of contenders) {
    ctx.progress(step++ / steps, `${c.name}: throughput`);
    const t = await throughputOf(c, tasks, tputRuns, ctx.quick ? 2000 : 8000);
    rows.push({ group: G.throughput, name: c.name, value: t.value, unit: 'tasks/s', better: 'higher', spread: t.spread, baseline: c.baseline === true, ...(c.targets?.throughput ? { target: c.targets.throughput } : {}), params: { tasks, runs: t.runs } });
    ctx.progress(step++ / steps, `${c.name}: start + first result + shutdown`);
    const s = await startupOf(c, startRuns);
    rows.push({ group: G.startup, name: c.name, value: s.value, unit: 'ms', better: 'lower', spread: s.spread, baseline: c.baseline === true, ...(c.targets?.startup ? { target: c.targets.startup } : {}), params: { runs: s.runs } });
  }

  // On demand rather than back to back: the forkserver's spares are ready again (see docs/process.md).
  ctx.progress(step / steps, 'start-up, one pool every ~100 ms');
  const spacedG = `${G.startup}, one pool every ~100 ms`;
  for (const c of contenders.filter((x) => x.baseline || x.name === 'multiproc Pool.map, chunksize 1')) {
    const s = await startupOf(c, startRuns, 100);
    rows.push({ group: spacedG, name: c.name, value: s.value, unit: 'ms', better: 'lower', spread: s.spread, baseline: c.baseline === true, ...(c.targets?.startup ? { target: c.targets.startup } : {}), params: { runs: s.runs } });
  }

  // Throughput above is warm (as Python's); what a fresh pool's first big map costs, beside Python's.
  ctx.progress(step / steps, 'first map of a fresh pool');
  const fm = await firstMapOf(tasks, ctx.quick ? 1 : 5);
  rows.push({ group: G.firstMap, name: 'multiproc Pool.map, automatic chunksize', value: fm.value, unit: 'tasks/s', better: 'higher', spread: fm.spread, params: { tasks, pools: fm.runs } });

  ctx.progress(step / steps, 'CPU-bound map: serial vs Pool');
  rows.push(...(await cpuBound(ctx)));

  ctx.progress(step / steps, 'Python multiprocessing.Pool');
  const py = ctx.python ? await runPython(ctx, fileURLToPath(new URL('./py/pool.py', import.meta.url)), ctx.quick ? ['--quick'] : []) : null;
  const pyRow = (group, name, r, unit, better) =>
    rows.push(r ? { group, name, value: r.value, unit, better, ...(r.runs >= 3 ? { spread: r.spread } : {}), params: { runs: r.runs } } : { group, name, value: null, unit, better, note: ctx.python ? 'not available' : 'python3 not found' });
  if (py && py.tasks !== tasks) throw new Error(`bench/py/pool.py ran ${py.tasks} tasks, expected ${tasks}`);
  const dm = py?.default_method ?? 'fork';
  pyRow(G.throughput, `Python Pool.map, chunksize=1 (${dm})`, py?.throughput.chunksize_1, 'tasks/s', 'higher');
  pyRow(G.throughput, `Python Pool.map, automatic chunksize (${dm})`, py?.throughput.chunksize_auto, 'tasks/s', 'higher');
  pyRow(G.firstMap, `Python Pool.map, automatic chunksize (${dm})`, py?.first_map, 'tasks/s', 'higher');
  for (const m of ['fork', 'forkserver', 'spawn']) pyRow(G.startup, `Python Pool(2), ${m} (with-block: terminate)`, py?.startup[m], 'ms', 'lower');
  ctx.progress(1, 'done');

  if (availableParallelism() < WORKERS) ctx.log(`only ${availableParallelism()} CPU(s): ${WORKERS} workers share them`);
  // Rows grouped for reading: every throughput row, then every start-up row.
  const order = [G.throughput, G.firstMap, G.startup, `${G.startup}, one pool every ~100 ms`];
  return rows.sort((a, b) => order.indexOf(a.group) - order.indexOf(b.group));
}
