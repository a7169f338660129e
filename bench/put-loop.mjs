// One process, no consumer: ns per `await q.put(item)` of fresh small objects
// {id, name, tags} into a 16 MB queue (drained between rounds), beside two
// controls that touch no shared memory: a pure-JS fib loop and an
// allocate-and-JSON.stringify loop. Run it several times, pinned or not
// (`taskset -c 0 node bench/put-loop.mjs`), to see how much a fresh process's
// rate moves on this VM while the controls do not.
// Standalone, not a bench topic: node bench/put-loop.mjs [items per round, default 100000]
import * as mp from 'multiproc';

const n = Number(process.argv[2] ?? 100_000);
const make = (i) => ({ id: i, name: `item-${i}`, tags: ['red', 'green', 'blue'] });
const fib = (k) => (k < 2 ? k : fib(k - 1) + fib(k - 2));

const q = new mp.Queue({ capacityBytes: 16 << 20 });
let put = 0;
// Six rounds: the first two fault in the ring's pages and warm the JIT; the last three are reported.
for (let r = 0; r < 6; r++) {
  const t = performance.now();
  for (let i = 0; i < n; i++) await q.put(make(i));
  if (r >= 3) put += (performance.now() - t) / 3;
  while (q.qsize() > 0) q.getManyNowait(10_000);
}
q.close();
let t = performance.now();
for (let i = 0; i < 8; i++) fib(29);
const fibMs = performance.now() - t;
let json = 0;
let sink = 0;
for (let r = 0; r < 4; r++) {
  t = performance.now();
  for (let i = 0; i < 1_000_000; i++) sink += JSON.stringify(make(i)).length;
  json = performance.now() - t; // ms for a million items = ns per item; the last round counts
}
if (sink === 0) console.log('unreachable');
console.log(`await put ${((put * 1e6) / n).toFixed(0)} ns/item; controls: 8 x fib(29) ${fibMs.toFixed(0)} ms, make + JSON.stringify ${json.toFixed(0)} ns/item`);
