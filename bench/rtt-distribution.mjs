// Where a Pipe round trip's mean comes from: 3 x 10,000 `await send` /
// `await recv` trips against an echoing child (the bench's set-up), each
// trip timed; prints mean, percentiles, and the share of the total time
// spent in trips of each size. Add --sync for sendSync/recvSync.
// Standalone, not a bench topic: node bench/rtt-distribution.mjs [--sync]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const peer = fileURLToPath(new URL('./queues-peer.mjs', import.meta.url));
const sync = process.argv.includes('--sync');
const n = 10_000;
for (let r = 0; r < 3; r++) {
  const [a, b] = mp.Pipe();
  const child = spawn(process.execPath, [peer, 'pipe', sync ? 'echosync' : 'echo', 'obj', String(n), JSON.stringify(mp.toHandle(b))], { stdio: 'inherit' });
  const exited = new Promise((res) => child.on('exit', res));
  b.close();
  await a.send(0);
  await a.recv();
  const trips = new Float64Array(n - 1);
  for (let i = 1; i < n; i++) {
    const t = performance.now();
    if (sync) {
      a.sendSync(i);
      a.recvSync();
    } else {
      await a.send(i);
      await a.recv();
    }
    trips[i - 1] = (performance.now() - t) * 1000;
  }
  await a.send('done');
  await exited;
  a.close();
  const total = trips.reduce((x, y) => x + y, 0);
  const sorted = Float64Array.from(trips).sort();
  const q = (p) => sorted[Math.floor(p * (sorted.length - 1))].toFixed(1);
  const share = (lo, hi) => {
    let c = 0;
    let s = 0;
    for (const x of trips) if (x >= lo && x < hi) (c++, (s += x));
    return `${lo}-${hi === Infinity ? '' : hi} µs: ${c} trips, ${((s / total) * 100).toFixed(0)}%`;
  };
  console.log(`mean ${(total / trips.length).toFixed(1)} µs, p50 ${q(0.5)}, p90 ${q(0.9)}, p99 ${q(0.99)}, max ${q(1)}`);
  console.log(`  ${[share(0, 20), share(20, 100), share(100, 1000), share(1000, Infinity)].join(' | ')}`);
}
