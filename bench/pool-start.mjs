// A pool made on demand: constructor, first result, terminate (ms), one pool
// every ~150 ms so that forkserver spares are ready (or every gapMs; 0: back
// to back, when the zygote forks each worker); prints each run and the
// median total. Standalone, not a bench topic: node bench/pool-start.mjs [runs] [gapMs]
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const double = { module: fileURLToPath(new URL('./peers/task-double.mjs', import.meta.url)), export: 'default' };
const runs = Number(process.argv[2] ?? 7);
const gapMs = Number(process.argv[3] ?? 150);
const totals = [];
for (let r = -1; r < runs; r++) {
  if (gapMs > 0) await new Promise((res) => setTimeout(res, gapMs));
  const t0 = performance.now();
  const pool = new mp.Pool({ processes: 2 });
  const t1 = performance.now();
  if ((await pool.apply(double, [21])) !== 42) throw new Error('wrong result');
  const t2 = performance.now();
  await pool.terminate();
  const t3 = performance.now();
  if (r < 0) continue; // the first pool also starts the zygote
  totals.push(t3 - t0);
  console.log(`constructor ${(t1 - t0).toFixed(1)} ms, first result ${(t2 - t1).toFixed(1)} ms, terminate ${(t3 - t2).toFixed(1)} ms, total ${(t3 - t0).toFixed(1)} ms`);
}
totals.sort((a, b) => a - b);
console.log(`median total of ${runs}: ${totals[totals.length >> 1].toFixed(1)} ms`);
