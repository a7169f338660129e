// How long a fresh Node process takes to reach its steady rate: rounds of
// 200,000 items of the bench's {id, name, tags} object, ns per item a round.
//   put:    `await q.put(make(i))` into a fresh 32 MiB queue (no consumer);
//   encode: multiproc's encode + `await undefined` (no queue);
//   json:   JSON.stringify + `await undefined` (no multiproc at all).
// Run each in a fresh process: the climb over the first ~800k items is V8's
// (the json mode shows it too), and is why bench/queues.bench.mjs times its
// one-way rows after a million items.
// Standalone, not a bench topic: node bench/queue-warmup.mjs [put|encode|json] [rounds, default 6]
import { createRequire } from 'node:module';
import * as mp from 'multiproc';

const { encode } = createRequire(import.meta.url)('../dist/cjs/codec.js');
const make = (i) => ({ id: i, name: `item-${i}`, tags: ['red', 'green', 'blue'] });
const n = 200_000;
const mode = process.argv[2] ?? 'put';
const rounds = Number(process.argv[3] ?? 6);
let sink = 0;
const res = [];
for (let r = 0; r < rounds; r++) {
  const q = mode === 'put' ? new mp.Queue({ capacityBytes: 32 << 20 }) : null;
  const t0 = performance.now();
  if (q !== null) for (let i = 0; i < n; i++) await q.put(make(i));
  else if (mode === 'encode') {
    for (let i = 0; i < n; i++) {
      sink += encode(make(i)).size;
      await undefined;
    }
  } else {
    for (let i = 0; i < n; i++) {
      sink += JSON.stringify(make(i)).length;
      await undefined;
    }
  }
  res.push(((performance.now() - t0) / n * 1e6).toFixed(0));
  q?.close();
}
console.log(`${mode}: ${res.join(' ')} ns an item, rounds of ${n}${sink < 0 ? '' : ''}`);
