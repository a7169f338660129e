// Pool(2).map of 1,000,000 `x => x * 2` tasks with the automatic chunksize,
// five times on one pool after a warm-up: items/s of each, and the median.
// A quick way to A/B a change against the pool bench's automatic-chunking
// row, whose run-to-run spread on the 2-vCPU VM is large (±20-48%).
// Standalone, not a bench topic: node bench/pool-auto.mjs
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const double = { module: fileURLToPath(new URL('./peers/task-double.mjs', import.meta.url)), export: 'default' };
const pool = new mp.Pool({ processes: 2 });
const items = Array.from({ length: 1_000_000 }, (_, i) => i);
await pool.map(double, items.slice(0, 10_000));
const rates = [];
for (let r = 0; r < 5; r++) {
  const t = performance.now();
  await pool.map(double, items);
  rates.push((items.length / (performance.now() - t)) * 1000);
}
const sorted = [...rates].sort((a, b) => a - b);
console.log(`M items/s: ${rates.map((x) => (x / 1e6).toFixed(2)).join(' ')}; median ${(sorted[2] / 1e6).toFixed(2)}`);
await pool.terminate();
