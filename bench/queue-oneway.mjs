// One-way Queue throughput of a fresh producer, window by window: a producer
// child does `await put` of the bench's {id, name, tags} objects, this process
// `await get`; items/s over each window of 500,000 items, three fresh
// producers (each with a fresh consumer process, as the queues topic runs
// them). Shows how far into a run a fresh pair reaches its steady rate (V8's
// warm-up), which is what the topic's clock (warmItems) must leave out.
// (Until the thirty-first session it printed one rate a pair, from the first
// fifth of its items to the last, with the consumer in this process: the
// figures BENCHMARKS.md's older sections quote from it.)
// Standalone, not a bench topic: node bench/queue-oneway.mjs [items, default 3000000] [window, default 500000]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const self = fileURLToPath(import.meta.url);
const peer = fileURLToPath(new URL('./queues-peer.mjs', import.meta.url));
const n = Number(process.argv[2] ?? 3_000_000);
const w = Number(process.argv[3] ?? 500_000);

if (process.argv[4] === '--consumer') {
  const q = new mp.Queue();
  const done = new mp.Queue();
  const child = spawn(process.execPath, [peer, 'queue', 'produce', 'obj', String(n), JSON.stringify([mp.toHandle(q), mp.toHandle(done)])], { stdio: 'inherit' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const rates = [];
  await q.get();
  let t = performance.now(); // from the first item: the producer's start-up is not a window's
  for (let got = 1; got < n; got++) {
    await q.get();
    if ((got + 1) % w === 0) {
      const now = performance.now();
      rates.push((rates.length === 0 ? w - 1 : w) / (now - t) / 1000); // (the first window counts from the first item)
      t = now;
    }
  }
  await done.put('done');
  await exited;
  q.close();
  done.close();
  console.log(rates.map((r) => r.toFixed(2)).join(' '));
} else {
  for (let r = 0; r < 3; r++) {
    const child = spawn(process.execPath, [self, String(n), String(w), '--consumer'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await new Promise((resolve) => child.on('exit', resolve));
    console.log(`fresh pair ${r + 1}, M items/s per ${w} items: ${out.trim()}`);
  }
}
