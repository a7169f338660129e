// Receiving a shared object this process holds already (a Value with its
// lock, through a queue) while it holds N other segments: the cost per item
// should not grow with N (it did: each receipt walked every attachment of
// the process to give the lock's handle reference back).
// Standalone, not a bench topic: node bench/receive-held.mjs [N ...] (default 0 2000 10000)
import * as mp from 'multiproc';

for (const N of process.argv.length > 2 ? process.argv.slice(2).map(Number) : [0, 2000, 10000]) {
  const keep = Array.from({ length: N }, () => new mp.RawValue('i', 1));
  const v = new mp.Value('i', 3);
  const q = new mp.Queue();
  const rounds = [];
  for (let r = 0; r < 5; r++) {
    for (let i = 0; i < 200; i++) q.putSync(v);
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) q.getSync();
    rounds.push(((performance.now() - t0) / 200) * 1000);
  }
  rounds.sort((a, b) => a - b);
  console.log(`holding ${N} other segments: getSync of a Value this process has ${rounds[2].toFixed(1)} us (median of 5 rounds of 200)`);
  for (const k of keep) k.close();
  v.close();
  q.close();
}
