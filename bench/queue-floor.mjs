// What bounds one-way Queue throughput: a child putSync()s n items of one
// kind, this process getSync()s them; items/s after the first fifth, three
// fresh pairs. Kinds: buf64 (a 64-byte Buffer: the ring alone), int, str,
// obj (the queues bench's {id, name, tags}: the ring plus the object codec).
// Standalone, not a bench topic: node bench/queue-floor.mjs [kind, default all] [items, default 2000000]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const [, , kindArg = 'all', nStr = '2000000', role, handle] = process.argv;
const n = Number(nStr);
const b64 = Buffer.alloc(64, 3);
const makers = {
  buf64: () => b64,
  int: (i) => i,
  str: (i) => `item-${i}`,
  obj: (i) => ({ id: i, name: `item-${i}`, tags: ['red', 'green', 'blue'] }),
};
if (role === 'produce') {
  const q = mp.fromHandle(JSON.parse(handle));
  const make = makers[kindArg];
  for (let i = 0; i < n; i++) q.putSync(make(i));
  process.exit(0);
}
for (const kind of kindArg === 'all' ? Object.keys(makers) : [kindArg]) {
  const rates = [];
  for (let r = 0; r < 3; r++) {
    const q = new mp.Queue();
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), kind, nStr, 'produce', JSON.stringify(mp.toHandle(q))], { stdio: 'inherit' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    let got = 0;
    for (; got < n / 5; got++) q.getSync();
    const t0 = performance.now();
    for (; got < n; got++) q.getSync();
    rates.push(((n - n / 5) / (performance.now() - t0) / 1000).toFixed(2));
    await exited;
    q.close();
  }
  console.log(`${kind.padEnd(6)} ${rates.join(', ')} M items/s`);
}
