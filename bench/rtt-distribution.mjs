// Where a Pipe round trip's mean comes from: 3 runs, each 10,000 warm-up
// trips then 10,000 timed `await send` / `await recv` trips against an
// echoing child (the bench's set-up). Per run: the warm-up trips' mean and
// where their stalls fell, then the timed trips' mean, percentiles, and how
// many trips (and how much of the mean) fell in each size band.
// Standalone, not a bench topic:
//   node bench/rtt-distribution.mjs [--sync] [--cpus]
//   --sync  sendSync/recvSync on both sides
//   --cpus  every 100 timed trips, read both processes' CPU from /proc (Linux)
//           and print how often they shared one (costs ~0.2 µs a trip)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const peer = fileURLToPath(new URL('./queues-peer.mjs', import.meta.url));
const sync = process.argv.includes('--sync');
const cpus = process.argv.includes('--cpus');
const n = 10_000;
const edges = [0, 3, 5, 8, 12, 20, 35, 60, 100, 200, 500, 1000, Infinity];
/** /proc/<pid>/stat field 39: the CPU the process last ran on. */
const cpuOf = (pid) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[36]);

for (let r = 0; r < 3; r++) {
  const [a, b] = mp.Pipe();
  const child = spawn(process.execPath, [peer, 'pipe', sync ? 'echosync' : 'echo', 'obj', String(2 * n + 1), JSON.stringify(mp.toHandle(b))], { stdio: 'inherit' });
  const exited = new Promise((res) => child.on('exit', res));
  b.close();
  await a.send(0);
  await a.recv();
  const trips = new Float64Array(2 * n);
  let same = 0;
  let samples = 0;
  for (let i = 0; i < 2 * n; i++) {
    if (cpus && i >= n && i % 100 === 0) {
      samples++;
      if (cpuOf(process.pid) === cpuOf(child.pid)) same++;
    }
    const t = performance.now();
    if (sync) {
      a.sendSync(i);
      a.recvSync();
    } else {
      await a.send(i);
      await a.recv();
    }
    trips[i] = (performance.now() - t) * 1000;
  }
  await a.send('done');
  await exited;
  a.close();
  const mean = (xs) => xs.reduce((x, y) => x + y, 0) / xs.length;
  const warm = trips.subarray(0, n);
  const timed = trips.subarray(n);
  const sorted = Float64Array.from(timed).sort();
  const q = (p) => sorted[Math.floor(p * (sorted.length - 1))].toFixed(1);
  const stalls = warm.reduce((c, x) => c + (x >= 1000 ? 1 : 0), 0);
  console.log(`run ${r + 1}: warm-up mean ${mean(warm).toFixed(1)} µs (${stalls} trips >= 1 ms)`);
  console.log(`  timed: mean ${mean(timed).toFixed(1)} µs, p50 ${q(0.5)}, p90 ${q(0.9)}, p99 ${q(0.99)}, max ${q(1)}` +
    (cpus ? `; same CPU in ${((same / samples) * 100).toFixed(0)}% of samples` : ''));
  const bands = [];
  for (let k = 0; k < edges.length - 1; k++) {
    let c = 0;
    let s = 0;
    for (const x of timed) if (x >= edges[k] && x < edges[k + 1]) (c++, (s += x));
    if (c > 0) bands.push(`${edges[k]}-${edges[k + 1] === Infinity ? '' : edges[k + 1]}: ${c} (${(s / n).toFixed(1)})`);
  }
  console.log(`  µs band: trips (µs of the mean): ${bands.join(' | ')}`);
}
