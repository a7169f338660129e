// The first maps of a fresh pool: Pool(2), 1,000 concurrent applies of
// `x => x * 2`, then seven maps of 100,000 items with the automatic
// chunksize, M items/s of each. The pool bench's automatic-chunking row
// times a pool in this state; a change that slows the workers' warm-up
// shows in maps 2-3 here (the twentieth session bisected one so).
// Standalone, not a bench topic: node bench/pool-warmup.mjs
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const double = { module: fileURLToPath(new URL('./peers/task-double.mjs', import.meta.url)), export: 'default' };
const pool = new mp.Pool({ processes: 2 });
await Promise.all(Array.from({ length: 1000 }, (_, i) => pool.apply(double, [i])));
const items = Array.from({ length: 100_000 }, (_, i) => i);
const rates = [];
for (let r = 0; r < 7; r++) {
  const t = performance.now();
  await pool.map(double, items);
  rates.push(items.length / (performance.now() - t) / 1000);
}
console.log(`maps 1-7: ${rates.map((x) => x.toFixed(2)).join(' ')} M items/s`);
await pool.terminate();
