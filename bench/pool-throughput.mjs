// Pool(2).map of 100,000 `x => x * 2` tasks at chunksize 1, three times on
// one pool after 1,000 warm-up tasks: tasks/s of each. A quick way to A/B a
// change against the pool bench's throughput row (alternate two builds, or
// an environment switch, run by run).
// Standalone, not a bench topic: node bench/pool-throughput.mjs
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const double = { module: fileURLToPath(new URL('./peers/task-double.mjs', import.meta.url)), export: 'default' };
const pool = new mp.Pool({ processes: 2 });
await pool.map(double, Array.from({ length: 1000 }, (_, i) => i), { chunksize: 1 });
const items = Array.from({ length: 100_000 }, (_, i) => i);
const rates = [];
for (let r = 0; r < 3; r++) {
  const t = performance.now();
  const res = await pool.map(double, items, { chunksize: 1 });
  if (res[99_999] !== 199_998) throw new Error('wrong result');
  rates.push(`${Math.round(items.length / (performance.now() - t))}k`);
}
console.log(`tasks/s: ${rates.join(' ')}`);
await pool.terminate();
