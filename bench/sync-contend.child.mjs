// Contender for the "contended Lock" row of sync.bench.mjs: waits for `go`, then
// acquires and releases `lock` n times around a one-word increment.
import * as mp from 'multiproc';
const { lock, counter, go, ready, n } = JSON.parse(process.argv[2]);
const l = mp.fromHandle(lock);
const cell = mp.fromHandle(counter).toTypedArray();
const r = mp.fromHandle(ready).toTypedArray();
const g = mp.fromHandle(go);
Atomics.add(r, 0, 1);
g.waitSync();
for (let i = 0; i < n; i++) {
  l.acquireSync();
  cell[0]++;
  l.release();
}
