// Partner process of the Event ping-pong in sync.bench.mjs: waits on `a`, clears it, sets `b`.
import * as mp from 'multiproc';
const { a, b, rounds, async } = JSON.parse(process.argv[2]);
const ea = mp.fromHandle(a);
const eb = mp.fromHandle(b);
for (let i = 0; i < rounds; i++) {
  if (async) await ea.wait(); else ea.waitSync();
  ea.clear();
  eb.set();
}
ea.close();
eb.close();
