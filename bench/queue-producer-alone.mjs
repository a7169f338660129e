// A Queue producer in a child, timed alone (this process waits until the
// items are all in, then drains them) and then paired with this process
// getting them as they come; four rounds of 500,000 {id, name, tags} objects
// into a 64 MiB queue. Tells the producer's own cost from what a concurrent
// consumer adds. Standalone, not a bench topic: node bench/queue-producer-alone.mjs [items]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as mp from 'multiproc';

const [, , nStr = '500000', role, handle, ctlHandle] = process.argv;
const n = Number(nStr);
const make = (i) => ({ id: i, name: `item-${i}`, tags: ['red', 'green', 'blue'] });
if (role === 'produce') {
  const q = mp.fromHandle(JSON.parse(handle));
  const ctl = mp.fromHandle(JSON.parse(ctlHandle));
  for (let cmd = ctl.getSync(); cmd !== 'exit'; cmd = ctl.getSync()) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) q.putSync(make(i));
    console.log(`  producer (${cmd}) ${(n / (performance.now() - t0) / 1000).toFixed(2)} M items/s`);
  }
  process.exit(0);
}
const q = new mp.Queue({ capacityBytes: 64 * 1024 * 1024 });
const ctl = new mp.Queue();
const child = spawn(process.execPath, [fileURLToPath(import.meta.url), nStr, 'produce', JSON.stringify(mp.toHandle(q)), JSON.stringify(mp.toHandle(ctl))], { stdio: 'inherit' });
const exited = new Promise((resolve) => child.on('exit', resolve));
const nap = new Int32Array(new SharedArrayBuffer(4));
for (let r = 0; r < 4; r++) {
  ctl.putSync('alone');
  while (q.qsize() < n) Atomics.wait(nap, 0, 0, 5);
  Atomics.wait(nap, 0, 0, 20);
  for (let got = 0; got < n; got++) q.getSync();
  ctl.putSync('paired');
  const t0 = performance.now();
  for (let got = 0; got < n; got++) q.getSync();
  console.log(`consumer (paired) ${(n / (performance.now() - t0) / 1000).toFixed(2)} M items/s`);
}
ctl.putSync('exit');
await exited;
q.close();
ctl.close();
