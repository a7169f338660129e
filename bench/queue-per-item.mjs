// Per-item cost in one process (ns), a 1 MiB queue, 256 small objects
// {id, name, tags} at a time: putSync + getSync per item against putManySync
// + getManySync per batch. Medians of 9 rounds of 256,000 items.
// Standalone, not a bench topic: node bench/queue-per-item.mjs
import * as mp from 'multiproc';

const N = 256_000;
const B = 256;
const items = Array.from({ length: B }, (_, i) => ({ id: i, name: `item-${i}`, tags: ['red', 'green', 'blue'] }));
const q = new mp.Queue();
const rounds = { putSync: [], getSync: [], putManySync: [], getManySync: [] };
for (let r = 0; r < 10; r++) {
  let put = 0;
  let get = 0;
  let putMany = 0;
  let getMany = 0;
  for (let i = 0; i < N; i += B) {
    let t = performance.now();
    for (let j = 0; j < B; j++) q.putSync(items[j]);
    put += performance.now() - t;
    t = performance.now();
    for (let j = 0; j < B; j++) q.getSync();
    get += performance.now() - t;
    t = performance.now();
    q.putManySync(items);
    putMany += performance.now() - t;
    t = performance.now();
    for (let got = 0; got < B; ) got += q.getManySync(B).length;
    getMany += performance.now() - t;
  }
  if (r === 0) continue; // warm-up
  rounds.putSync.push(put);
  rounds.getSync.push(get);
  rounds.putManySync.push(putMany);
  rounds.getManySync.push(getMany);
}
const med = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
for (const [k, xs] of Object.entries(rounds)) console.log(`${k.padEnd(12)} ${((med(xs) / N) * 1e6).toFixed(0)} ns/item`);
q.close();
