// One-way Queue throughput for a chosen number of small objects: a producer
// child does `await put`, this process `await get`; items/s after the first
// fifth, three fresh producers. Shows how the rate depends on the run's
// length (V8's heap grows over the first few hundred thousand items).
// Standalone, not a bench topic: node bench/queue-oneway.mjs [items, default 1000000]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const peer = fileURLToPath(new URL('./queues-peer.mjs', import.meta.url));
const n = Number(process.argv[2] ?? 1_000_000);
const rates = [];
for (let r = 0; r < 3; r++) {
  const q = new mp.Queue();
  const done = new mp.Queue();
  const child = spawn(process.execPath, [peer, 'queue', 'produce', 'obj', String(n), JSON.stringify([mp.toHandle(q), mp.toHandle(done)])], { stdio: 'inherit' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  let got = 0;
  for (; got < n / 5; got++) await q.get();
  const t0 = performance.now();
  for (; got < n; got++) await q.get();
  rates.push(((n - n / 5) / (performance.now() - t0) / 1000).toFixed(2));
  await done.put('done');
  await exited;
  q.close();
  done.close();
}
console.log(`${n} items: ${rates.join(', ')} M items/s`);
