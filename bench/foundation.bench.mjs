/**
 * Issue 2: what one read or write of a shared number costs.
 *
 * Value / RawValue `.value` and SharedArray / RawArray element access (through the `a[i]` Proxy, the `.get(i)`
 * method and the `.view` typed array), in ns/op, beside a plain (unshared) JS Int32Array as the baseline,
 * `Atomics.load/store` on a SharedArrayBuffer (what a hand-written shared word costs), a Proxy with no traps
 * over an Int32Array (what any Proxy costs on this engine, the floor under `a[i]`), and Python's
 * multiprocessing Value / Array (lock=False and the default locked ones) measured by bench/py/foundation.py
 * in the same run. All int32 ('i').
 *
 * Method (bench/lib/measure.mjs): every case is its own loop function, calibrated to ~40 ms per run, warmed
 * up, then the median of 15 runs; each loop returns a value fed to a sink so it cannot be dropped. Indices
 * walk a 1024-element array (`i & 1023`), so element loads cannot be hoisted out of the loop. The loop itself
 * is part of every figure (~0.3-0.5 ns here for JS; ~15-25 ns for Python's bytecode loop, shown as its own row).
 */
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';
import { nsPerOp, runPython, settings } from './lib/measure.mjs';

export const title = 'Shared values and arrays';

const N = 1024;
const MASK = N - 1;

const G = {
  valueRead: 'Value read (int32 .value)',
  valueWrite: 'Value write (int32 .value = x)',
  arrayRead: 'SharedArray element read (int32, 1024 elements)',
  arrayWrite: 'SharedArray element write (int32, 1024 elements)',
};

/** Value / SharedArray with the default lock need the synchronization module; until it lands they throw. */
function tryLocked(make) {
  try {
    return { obj: make() };
  } catch (e) {
    return { why: /not available/.test(e.message) ? 'needs the process-shared RLock (issue 3)' : e.message };
  }
}

export async function run(ctx) {
  const opts = settings(ctx);
  const rows = [];
  const cases = [];
  const add = (group, name, loop, extra = {}) => cases.push({ group, name, loop, extra });
  const unavailable = (group, name, why) => cases.push({ group, name, why });

  // ---- Value ----
  const plain1 = new Int32Array(1);
  const sab1 = new Int32Array(new SharedArrayBuffer(4));
  const raw = mp.RawValue('i', 1);
  const locked = tryLocked(() => mp.Value('i', 1));

  add(G.valueRead, 'JS Int32Array[0] (plain, not shared)', (n) => {
    const t = plain1;
    let s = 0;
    for (let i = 0; i < n; i++) s = (s + t[0]) | 0;
    return s;
  }, { baseline: true, note: 'JIT may keep it in a register' });
  add(G.valueRead, 'JS Atomics.load(SAB Int32Array, 0)', (n) => {
    const t = sab1;
    let s = 0;
    for (let i = 0; i < n; i++) s = (s + Atomics.load(t, 0)) | 0;
    return s;
  });
  add(G.valueRead, 'multiproc RawValue .value', (n) => {
    const v = raw;
    let s = 0;
    for (let i = 0; i < n; i++) s = (s + v.value) | 0;
    return s;
  });
  if (locked.obj) {
    add(G.valueRead, 'multiproc Value .value (lock not taken on read)', (n) => {
      const v = locked.obj;
      let s = 0;
      for (let i = 0; i < n; i++) s = (s + v.value) | 0;
      return s;
    });
  } else unavailable(G.valueRead, 'multiproc Value .value (default lock)', locked.why);

  add(G.valueWrite, 'JS Int32Array[0] = x (plain, not shared)', (n) => {
    const t = plain1;
    for (let i = 0; i < n; i++) t[0] = i;
    return t[0];
  }, { baseline: true });
  add(G.valueWrite, 'JS Atomics.store(SAB Int32Array, 0, x)', (n) => {
    const t = sab1;
    for (let i = 0; i < n; i++) Atomics.store(t, 0, i);
    return t[0];
  });
  add(G.valueWrite, 'multiproc RawValue .value = x', (n) => {
    const v = raw;
    for (let i = 0; i < n; i++) v.value = i;
    return v.value;
  });
  if (locked.obj) {
    add(G.valueWrite, 'multiproc Value .value = x (lock not taken)', (n) => {
      const v = locked.obj;
      for (let i = 0; i < n; i++) v.value = i;
      return v.value;
    });
  } else unavailable(G.valueWrite, 'multiproc Value .value = x (default lock)', locked.why);

  // ---- SharedArray ----
  const plainN = new Int32Array(N).map((_, i) => i);
  // What any Proxy costs on this engine, whatever its traps do: the floor under `a[i]`.
  const bareProxy = new Proxy(new Int32Array(N), {});
  const rawArr = mp.RawArray('i', plainN);
  const lockedArr = tryLocked(() => mp.SharedArray('i', plainN));

  add(G.arrayRead, 'JS Int32Array[i] (plain, not shared)', (n) => {
    const t = plainN;
    let s = 0;
    for (let i = 0; i < n; i++) s = (s + t[i & MASK]) | 0;
    return s;
  }, { baseline: true });
  add(G.arrayRead, 'multiproc RawArray .view[i] (typed array)', (n) => {
    const t = rawArr.view;
    let s = 0;
    for (let i = 0; i < n; i++) s = (s + t[i & MASK]) | 0;
    return s;
  });
  add(G.arrayRead, 'multiproc RawArray .get(i)', (n) => {
    const a = rawArr;
    let s = 0;
    for (let i = 0; i < n; i++) s = (s + a.get(i & MASK)) | 0;
    return s;
  });
  add(G.arrayRead, 'JS Proxy with no traps over an Int32Array, p[i]', (n) => {
    const p = bareProxy;
    let s = 0;
    for (let i = 0; i < n; i++) s = (s + p[i & MASK]) | 0;
    return s;
  });
  add(G.arrayRead, 'multiproc RawArray a[i] (Proxy)', (n) => {
    const a = rawArr;
    let s = 0;
    for (let i = 0; i < n; i++) s = (s + a[i & MASK]) | 0;
    return s;
  });
  if (lockedArr.obj) {
    add(G.arrayRead, 'multiproc SharedArray a[i] (Proxy; lock not taken)', (n) => {
      const a = lockedArr.obj;
      let s = 0;
      for (let i = 0; i < n; i++) s = (s + a[i & MASK]) | 0;
      return s;
    });
  } else unavailable(G.arrayRead, 'multiproc SharedArray a[i] (default lock)', lockedArr.why);

  add(G.arrayWrite, 'JS Int32Array[i] = x (plain, not shared)', (n) => {
    const t = plainN;
    for (let i = 0; i < n; i++) t[i & MASK] = i;
    return t[n & MASK];
  }, { baseline: true });
  add(G.arrayWrite, 'multiproc RawArray .view[i] = x (typed array)', (n) => {
    const t = rawArr.view;
    for (let i = 0; i < n; i++) t[i & MASK] = i;
    return t[n & MASK];
  });
  add(G.arrayWrite, 'multiproc RawArray .set(i, x)', (n) => {
    const a = rawArr;
    for (let i = 0; i < n; i++) a.set(i & MASK, i);
    return a.view[n & MASK];
  });
  add(G.arrayWrite, 'JS Proxy with no traps over an Int32Array, p[i] = x', (n) => {
    const p = bareProxy;
    for (let i = 0; i < n; i++) p[i & MASK] = i;
    return p[n & MASK];
  });
  add(G.arrayWrite, 'multiproc RawArray a[i] = x (Proxy)', (n) => {
    const a = rawArr;
    for (let i = 0; i < n; i++) a[i & MASK] = i;
    return a.view[n & MASK];
  });
  if (lockedArr.obj) {
    add(G.arrayWrite, 'multiproc SharedArray a[i] = x (Proxy; lock not taken)', (n) => {
      const a = lockedArr.obj;
      for (let i = 0; i < n; i++) a[i & MASK] = i;
      return a.view[n & MASK];
    });
  } else unavailable(G.arrayWrite, 'multiproc SharedArray a[i] = x (default lock)', lockedArr.why);

  const steps = cases.length + (ctx.python ? 1 : 0);
  for (const [k, c] of cases.entries()) {
    if (c.why) {
      rows.push({ group: c.group, name: c.name, value: null, unit: 'ns/op', better: 'lower', note: c.why });
      continue;
    }
    ctx.progress(k / steps, c.name);
    const r = nsPerOp(c.loop, opts);
    const { note, ...flags } = c.extra;
    rows.push({ group: c.group, name: c.name, value: r.nsPerOp, unit: 'ns/op', better: 'lower', spread: r.spread, ...flags, ...(note ? { note } : {}), params: { n: r.n, runs: r.samples.length } });
  }
  raw.close();
  rawArr.close();
  locked.obj?.close();
  lockedArr.obj?.close();

  // ---- Python ----
  const pyNames = {
    value_read_raw: [G.valueRead, "Python Value('i', lock=False).value"],
    value_read_locked: [G.valueRead, "Python Value('i').value (default lock, taken on each access)"],
    value_read_floor: [G.valueRead, 'Python loop floor (s += local int)'],
    value_write_raw: [G.valueWrite, "Python Value('i', lock=False).value = x"],
    value_write_locked: [G.valueWrite, "Python Value('i').value = x (default lock)"],
    value_write_floor: [G.valueWrite, 'Python loop floor (local = x)'],
    array_read_raw: [G.arrayRead, "Python Array('i', lock=False)[i]"],
    array_read_locked: [G.arrayRead, "Python Array('i')[i] (default lock)"],
    array_read_list: [G.arrayRead, 'Python list[i] (plain, not shared)'],
    array_write_raw: [G.arrayWrite, "Python Array('i', lock=False)[i] = x"],
    array_write_locked: [G.arrayWrite, "Python Array('i')[i] = x (default lock)"],
    array_write_list: [G.arrayWrite, 'Python list[i] = x (plain, not shared)'],
  };
  if (ctx.python) {
    ctx.progress(cases.length / steps, 'Python multiprocessing.Value / Array');
    const py = await runPython(ctx, fileURLToPath(new URL('./py/foundation.py', import.meta.url)), ctx.quick ? ['--quick'] : []);
    for (const [key, [group, name]] of Object.entries(pyNames)) {
      const r = py.cases[key];
      if (!r) throw new Error(`bench/py/foundation.py gave no '${key}'`);
      rows.push({ group, name, value: r.ns, unit: 'ns/op', better: 'lower', spread: r.spread, params: { n: r.n, runs: r.runs } });
    }
  } else {
    for (const [group, name] of Object.values(pyNames)) rows.push({ group, name, value: null, unit: 'ns/op', better: 'lower', note: 'python3 not found' });
  }
  ctx.progress(1, 'done');

  // Rows in a stable reading order: each group's JS rows, then its Python rows.
  const order = Object.values(G);
  return rows.sort((a, b) => order.indexOf(a.group) - order.indexOf(b.group));
}
