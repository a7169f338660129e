// Why a fresh pool's first big map is slow: Pool(2), 1000 applies, then four
// maps of 100,000 `x => x * 2` tasks (automatic chunksize), each with its
// time and the minor page faults and CPU ticks of the workers and of this
// process over it (Linux: /proc/PID/stat). Standalone, not a bench topic:
// node bench/pool-first-map.mjs
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const double = { module: fileURLToPath(new URL('./peers/task-double.mjs', import.meta.url)), export: 'default' };
const items = Array.from({ length: 100_000 }, (_, i) => i);
const stat = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1].split(' '); return { minflt: Number(f[7]), utime: Number(f[11]), stime: Number(f[12]) }; };
const pool = new mp.Pool({ processes: 2 });
await Promise.all(Array.from({ length: 1000 }, (_, i) => pool.apply(double, [i])));
const pids = pool.stats().workers.map((w) => w.pid);
const self = () => stat(process.pid);
for (let r = 0; r < 4; r++) {
  const b = pids.map(stat); const bs = self();
  const t = performance.now();
  await pool.map(double, items);
  const ms = performance.now() - t;
  const a = pids.map(stat); const as = self();
  console.log(`map ${r}: ${ms.toFixed(1)} ms; workers minflt +${a.map((x, i) => x.minflt - b[i].minflt).join('/')}, cpu ticks +${a.map((x, i) => x.utime + x.stime - b[i].utime - b[i].stime).join('/')}; parent minflt +${as.minflt - bs.minflt}, ticks +${as.utime + as.stime - bs.utime - bs.stime}`);
}
await pool.terminate();
