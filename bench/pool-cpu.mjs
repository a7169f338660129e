// CPU time a pool made on demand costs each process: Pool(2) + apply + terminate,
// one pool every ~150 ms, 20 pools; user and system ms per pool for this
// process, the forkserver zygote, and its children (the workers and the spares
// it forks to replace them: the zygote's cutime/cstime in /proc/PID/stat, USER_HZ ticks).
// Standalone, Linux only, not a bench topic: node bench/pool-cpu.mjs
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const double = { module: fileURLToPath(new URL('./peers/task-double.mjs', import.meta.url)), export: 'default' };
const runs = 20;
const ticks = (pid) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ').slice(11, 15).map(Number);
{
  const pool = new mp.Pool({ processes: 2 });
  await pool.apply(double, [1]); // starts the zygote
  await pool.terminate();
}
await new Promise((r) => setTimeout(r, 500));
const zygote = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(' ')
  .map(Number).find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('forkserver-main'));
const z0 = ticks(zygote);
const p0 = process.cpuUsage();
let wall = 0;
for (let r = 0; r < runs; r++) {
  await new Promise((res) => setTimeout(res, 150));
  const t0 = performance.now();
  const pool = new mp.Pool({ processes: 2 });
  await pool.apply(double, [21]);
  await pool.terminate();
  wall += performance.now() - t0;
}
await new Promise((r) => setTimeout(r, 300));
const z1 = ticks(zygote);
const p1 = process.cpuUsage(p0);
const ms = (t) => ((t * 10) / runs).toFixed(1);
console.log(`per pool: wall ${(wall / runs).toFixed(1)} ms; this process user ${(p1.user / 1000 / runs).toFixed(1)} sys ${(p1.system / 1000 / runs).toFixed(1)} ms; ` +
  `zygote user ${ms(z1[0] - z0[0])} sys ${ms(z1[1] - z0[1])} ms; workers and spares user ${ms(z1[2] - z0[2])} sys ${ms(z1[3] - z0[3])} ms`);
