// What a pool's shutdown costs on this machine: forkserver children that
// sleep are SIGKILLed and reaped, and each start's kill -> exit seen (ms) is
// printed; the kernel's teardown of a child's address space is most of it.
// Modes: `plain` (as terminate() does), `pin` (children pinned to different
// CPUs with taskset first: do the teardowns run side by side?), `nice` (the
// victims' nice value raised to 19 before the kill).
// Standalone, not a bench topic: node bench/pool-shutdown.mjs [plain|pin|nice] [children, default 2]
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const mode = process.argv[2] ?? 'plain';
const n = Number(process.argv[3] ?? 2);
const sleeper = { module: fileURLToPath(new URL('./peers/task-sleep.mjs', import.meta.url)), export: 'default' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
{
  const p = new mp.Process({ target: sleeper });
  p.start(); // starts the zygote
  await sleep(1000);
  p.kill();
  await p.join();
}
const worst = [];
for (let r = 0; r < 10; r++) {
  const ps = Array.from({ length: n }, () => new mp.Process({ target: sleeper }));
  for (const p of ps) p.start();
  if (mode === 'pin') ps.forEach((p, i) => execFileSync('taskset', ['-a', '-p', '-c', String(i % os.availableParallelism()), String(p.pid)], { stdio: 'ignore' }));
  await sleep(300);
  const t0 = performance.now();
  if (mode === 'nice') for (const p of ps) os.setPriority(p.pid, 19);
  for (const p of ps) p.kill();
  const seen = [];
  await Promise.all(ps.map((p) => p.join().then(() => seen.push(performance.now() - t0))));
  console.log(`kill -> exit seen: ${seen.map((x) => x.toFixed(1)).join(', ')} ms`);
  worst.push(Math.max(...seen));
}
worst.sort((a, b) => a - b);
console.log(`${mode}, ${n} children: median of 10 (last exit): ${worst[5].toFixed(1)} ms`);
