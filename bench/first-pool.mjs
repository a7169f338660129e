// The first Pool of a process: how long `new Pool({ processes: 2 })` blocks
// (the forkserver zygote is not running yet), how long until the first
// result, and how many times a 1 ms timer ran meanwhile (the event loop
// turning while the zygote boots). One pool per run, each in a fresh process.
// Standalone, not a bench topic: node bench/first-pool.mjs [runs, default 3]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

if (process.argv[2] === 'child') {
  const t0 = performance.now();
  const pool = new mp.Pool({ processes: 2 });
  const t1 = performance.now();
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  if ((await pool.apply((x) => x * 2, [21])) !== 42) throw new Error('wrong result');
  const t2 = performance.now();
  clearInterval(timer);
  await pool.terminate();
  console.log(`constructor ${(t1 - t0).toFixed(1)} ms, first result ${(t2 - t1).toFixed(1)} ms after it, timer ticks meanwhile ${ticks}`);
} else {
  const runs = Number(process.argv[2] ?? 3);
  for (let r = 0; r < runs; r++) {
    const out = spawnSync(process.execPath, [fileURLToPath(import.meta.url), 'child'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    process.stdout.write(out.stdout);
  }
}
