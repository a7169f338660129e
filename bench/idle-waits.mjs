// What pending async waits cost while nothing happens: n waits on n distinct
// Events, on n distinct Semaphores, and n parties of one Barrier, in this
// process; CPU share (process.cpuUsage over 3 s) and thread count (Linux).
// Standalone, not a bench topic: node bench/idle-waits.mjs [n, default 2000]
import { readFileSync } from 'node:fs';
import * as mp from 'multiproc';

const n = Number(process.argv[2] ?? 2000);
const threads = () => (process.platform === 'linux' ? readFileSync('/proc/self/status', 'utf8').match(/^Threads:\s+(\d+)/m)[1] : '?');
async function measure(label, setup) {
  const { waits, end } = setup();
  await new Promise((r) => setTimeout(r, 1000)); // past the first slices
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 3000));
  const c = process.cpuUsage(c0);
  const share = (c.user + c.system) / 1000 / (performance.now() - t0);
  console.log(`${label.padEnd(22)} ${(share * 100).toFixed(1)}% of a CPU, ${threads()} threads`);
  end();
  await Promise.allSettled(waits);
}
await measure(`${n} Event.wait()`, () => {
  const evs = Array.from({ length: n }, () => new mp.Event());
  return { waits: evs.map((e) => e.wait()), end: () => evs.forEach((e) => { e.set(); }) };
});
await measure(`${n} Semaphore.acquire()`, () => {
  const sems = Array.from({ length: n }, () => new mp.Semaphore(0));
  return { waits: sems.map((s) => s.acquire()), end: () => sems.forEach((s) => s.release()) };
});
await measure(`${n} Barrier parties`, () => {
  const b = new mp.Barrier(n + 1);
  return { waits: Array.from({ length: n }, () => b.wait()), end: () => b.abort() };
});
